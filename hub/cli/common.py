"""What the CLI commands share: the hub home, opening the hub, the acting user, output."""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from hub.applications import Actor
from hub.context import Hub
from hub.lifecycle import Role
from hub.settings import find_home


@dataclass
class State:
    home: Path | None


def home_of(ctx: typer.Context) -> Path:
    return find_home(ctx.obj.home if ctx.obj else None)


def open_hub(ctx: typer.Context) -> Hub:
    return Hub.open(home_of(ctx))


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def console() -> Console:
    """Rich console; when piped, wide enough that tables are not cut to 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 160)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


ActorName = Annotated[
    str | None, typer.Option("--actor", envvar="HUB_ACTOR", help="Who acts (recorded on the event); default cli:$USER")
]
RoleOpt = Annotated[Role, typer.Option("--role", help="Role acted in; scopes what is shown (ops: everything, masked)")]
WriteRoleOpt = Annotated[
    Role, typer.Option("--role", help="Role acted in (required; `system` for scripts acting as the hub itself)")
]
DeskOpt = Annotated[str | None, typer.Option("--desk", help="Desk the actor works at (teller, clerk)")]
DepartmentOpt = Annotated[str | None, typer.Option("--department", help="Department the actor belongs to (officer)")]


def make_actor(name: str | None, role: Role, desk: str | None, department: str | None) -> Actor:
    return Actor(name=name or f"cli:{getpass.getuser()}", role=role, desk=desk, department=department)
