"""`hub serve` (the web UI and REST API), `hub users` and `hub tokens`."""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.cli.common import console, fail, open_hub
from hub.lifecycle import Role
from hub.tokens import SCOPES, create_token, list_tokens, revoke_token
from hub.users import ROLE_ZH, add_user, list_users, reset_password, set_disabled

users_app = typer.Typer(help="People who log in to the web UI: add, disable, reset passwords.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for systems: create (shown once), list, revoke.", no_args_is_help=True)

PasswordFile = Annotated[
    Path | None, typer.Option("--password-file", help="Read the password from this file (else asked, not echoed)")
]


def _password(path: Path | None, generate: bool) -> tuple[str, bool]:
    """(password, was it generated). Never from the command line, where `ps` would show it."""
    if generate:
        return secrets.token_urlsafe(12), True
    if path is not None:
        return path.read_text(encoding="utf-8").strip(), False
    if env := os.environ.get("HUB_NEW_PASSWORD"):
        return env, False
    if not sys.stdin.isatty():
        fail("no password: give --password-file, --generate, HUB_NEW_PASSWORD, or run on a terminal")
    first = getpass.getpass("新密码 new password: ")
    if getpass.getpass("再输入一次 again: ") != first:
        fail("passwords differ")
    return first, False


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    username: str,
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 王芳")],
    role: Annotated[Role, typer.Option("--role")],
    desk: Annotated[str | None, typer.Option("--desk", help="For teller, enclave_clerk, clerk")] = None,
    department: Annotated[str | None, typer.Option("--department", help="For officer")] = None,
    password_file: PasswordFile = None,
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it once")] = False,
) -> None:
    """Add a user bound to a desk (teller, enclave clerk) or a department (officer)."""
    password, generated = _password(password_file, generate)
    p = add_user(open_hub(ctx), username, password, display_name=name, role=role, desk=desk, department=department)
    typer.echo(
        f"added {p.username} ({p.role.value}{' @ ' + (p.desk or p.department) if p.desk or p.department else ''})"
    )
    if generated:
        typer.echo(f"initial password (shown once): {password}")


@users_app.command("disable")
def users_disable(
    ctx: typer.Context, username: str, enable: Annotated[bool, typer.Option("--enable", help="Re-enable")] = False
) -> None:
    """Disable a user (their sessions end at once), or --enable again."""
    p = set_disabled(open_hub(ctx), username, not enable)
    typer.echo(f"{p.username}: {'disabled' if p.disabled else 'enabled'}")


@users_app.command("reset-password")
def users_reset(
    ctx: typer.Context,
    username: str,
    password_file: PasswordFile = None,
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it once")] = False,
) -> None:
    """Set a new password; the user's sessions end and a lockout is lifted."""
    password, generated = _password(password_file, generate)
    p = reset_password(open_hub(ctx), username, password)
    typer.echo(f"password reset for {p.username}")
    if generated:
        typer.echo(f"new password (shown once): {password}")


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    table = Table("username", "name", "role", "desk / department", "state")
    for p in list_users(open_hub(ctx)):
        table.add_row(
            p.username,
            p.display_name,
            f"{p.role.value} {ROLE_ZH[p.role.value]}",
            p.desk or p.department or "",
            "disabled" if p.disabled else "active",
        )
    console().print(table)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: str,
    role: Annotated[Role, typer.Option("--role", help="Acts as this role (e.g. teller for a bank's system)")],
    scope: Annotated[list[str], typer.Option("--scope", help=f"Repeat; one of: {', '.join(SCOPES)}")],
    desk: Annotated[str | None, typer.Option("--desk")] = None,
    department: Annotated[str | None, typer.Option("--department")] = None,
    days: Annotated[int | None, typer.Option("--days", help="Expires after this many days")] = None,
) -> None:
    """Create a token; the secret is printed once and only its hash is kept."""
    secret, info = create_token(
        open_hub(ctx),
        name,
        role=role,
        scopes=scope,
        desk=desk,
        department=department,
        created_by=f"cli:{getpass.getuser()}",
        days=days,
    )
    typer.echo(f"token {info.id} ({info.prefix}…) created; store it now, it is not shown again:")
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(ctx: typer.Context) -> None:
    table = Table("id", "name", "prefix", "role", "desk / department", "scopes", "last used", "state")
    for t in list_tokens(open_hub(ctx)):
        table.add_row(
            str(t.id),
            t.name,
            t.prefix,
            t.role.value,
            t.desk or t.department or "",
            " ".join(t.scopes),
            str(t.last_used_at or ""),
            "revoked" if t.revoked_at else "active",
        )
    console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: int) -> None:
    info = revoke_token(open_hub(ctx), token_id)
    typer.echo(f"token {info.id} revoked")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback by default")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (PostgreSQL for more than one)")] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            envvar="HUB_FORWARDED_ALLOW_IPS",
            help="Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For/-Proto are believed",
        ),
    ] = None,
) -> None:
    """Serve the web UI and the REST API (/api/v1, schema at /openapi.json)."""
    import uvicorn

    from hub.logs import uvicorn_log_config

    level, log_format = ctx.meta.get("hub.logging", (logging.WARNING, "text"))
    hub = open_hub(ctx)
    if workers > 1 and hub.engine.dialect.name == "sqlite":
        fail("more than one worker needs PostgreSQL (SQLite has one writer)")
    hub.close()
    os.environ["HUB_HOME"] = str(hub.settings.home)
    typer.echo(f"通办枢纽 serving on http://{host}:{port}/  (API: /api/v1, schema: /openapi.json)")
    uvicorn.run(
        "hub.web.asgi:app",
        host=host,
        port=port,
        workers=workers,
        # uvicorn's own and access logs (at --log-level: INFO shows each request) and, in every
        # worker process, the app's: one format, request ids, ID numbers masked
        log_config=uvicorn_log_config(level, log_format),
        # behind a reverse proxy the client's address (login throttling, audit) comes from its
        # X-Forwarded-For — believed only from the proxies named; otherwise never
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "",
        server_header=False,
    )
