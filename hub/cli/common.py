"""What the CLI commands share: the hub home, opening the hub, the acting user, output."""

from __future__ import annotations

import getpass
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

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


# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates
# that reorder what a terminal shows (a name could otherwise hide or fake the text around it)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: str) -> str:
    """`value` with every character that drives a terminal instead of showing shown as an escape
    (ESC as \\x1b): data printed must not move the cursor, open hyperlinks or recolour the screen."""
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], value)


class DataConsole(Console):
    """The only console the CLI prints through. Every string it is given (table cells, lines) is
    data: Rich markup (`[/x]` would raise MarkupError, `[link=…]` would hide a link), `:emoji:`
    codes and highlighting are never applied, whatever a caller passes, and control characters
    are shown as escapes. Styling is done with `styled()` (a Text), never with markup in strings."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs.update(markup=False, emoji=False, highlight=False, highlighter=None)
        return super().render_str(printable(text), **kwargs)


def console() -> DataConsole:
    """The CLI's console; when piped, wide enough that tables are not cut to 80 columns."""
    return DataConsole(width=None if sys.stdout.isatty() else 160, markup=False, emoji=False, highlight=False)


def echo(line: str, err: bool = False) -> None:
    """A plain line that carries data (names, reasons, problems): control characters escaped."""
    typer.echo(printable(line), err=err)


def styled(text: str, style: str) -> Text:
    """A fixed label in colour or bold (the hub's own words, never data)."""
    return Text(text, style=style)


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
