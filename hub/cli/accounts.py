"""`hub users` and `hub tokens`: the people who log in and the systems' API tokens. Desk and
department credentials need a second person's approval (双人授权, docs/web.md)."""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub import audit
from hub.applications import Actor
from hub.cli.common import console, fail, open_hub
from hub.context import Hub
from hub.lifecycle import Role
from hub.tokens import SCOPES, create_token, list_tokens, revoke_token
from hub.users import ROLE_ZH, Person, add_user, approve, list_users, needs_approval, reset_password, set_disabled

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


Approver = Annotated[
    str | None,
    typer.Option(
        "--approver",
        help="双人授权: for teller, enclave_clerk, clerk and officer a second person of that desk or"
        " department (same role) or a supervisor, for supervisor and system a supervisor, approves with"
        " their username and password",
    ),
]
ApproverPasswordFile = Annotated[
    Path | None,
    typer.Option("--approver-password-file", help="The approver's password from this file (else asked, not echoed)"),
]


def _approval(
    hub: Hub, role: Role, desk: str | None, department: str | None, approver: str | None, path: Path | None
) -> Person | None:
    """The approver of a credential for a case role, who types their own password (never on the
    command line). Ops at the host cannot give itself a desk's powers (docs/web.md)."""
    if not needs_approval(hub, role):
        return None
    password = None
    if approver:
        if path is not None:
            password = path.read_text(encoding="utf-8").strip()
        elif env := os.environ.get("HUB_APPROVER_PASSWORD"):
            password = env
        elif sys.stdin.isatty():
            password = getpass.getpass(f"授权人 {approver} 的密码 approver's password: ")
    return approve(hub, role, desk, department, approver, password, requester=None)


def _cli_actor() -> Actor:
    return Actor(name=f"cli:{getpass.getuser()}"[:100], role=Role.system)


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
    approver: Approver = None,
    approver_password_file: ApproverPasswordFile = None,
) -> None:
    """Add a user bound to a desk (teller, enclave clerk) or a department (officer); those need
    --approver."""
    hub = open_hub(ctx)
    approved = _approval(hub, role, desk, department, approver, approver_password_file)
    password, generated = _password(password_file, generate)
    p = add_user(hub, username, password, display_name=name, role=role, desk=desk, department=department)
    audit.record(
        hub,
        _cli_actor(),
        "user_add",
        target=p.username,
        role=p.role.value,
        place=p.desk or p.department,
        approved_by=approved.username if approved else None,
    )
    typer.echo(
        f"added {p.username} ({p.role.value}{' @ ' + (p.desk or p.department) if p.desk or p.department else ''})"
    )
    if generated:
        typer.echo(f"initial password (shown once): {password}")


@users_app.command("disable")
def users_disable(
    ctx: typer.Context,
    username: str,
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable")] = False,
    approver: Approver = None,
    approver_password_file: ApproverPasswordFile = None,
) -> None:
    """Disable a user (their sessions end at once), or --enable again. Re-enabling a desk or
    department user gives a credential back, so it needs --approver like issuing one."""
    hub = open_hub(ctx)
    approved = None
    if enable:
        user = next((u for u in list_users(hub) if u.username == username), None)
        if user is None:
            fail(f"no such user {username}")
        approved = _approval(hub, user.role, user.desk, user.department, approver, approver_password_file)
        if approved is not None and approved.username == username:
            fail("the approver must be a second person, not the user who is re-enabled")
    p = set_disabled(hub, username, not enable)
    if enable:
        audit.record(
            hub, _cli_actor(), "user_enabled", target=p.username, approved_by=approved.username if approved else None
        )
    typer.echo(f"{p.username}: {'disabled' if p.disabled else 'enabled'}")


@users_app.command("reset-password")
def users_reset(
    ctx: typer.Context,
    username: str,
    password_file: PasswordFile = None,
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it once")] = False,
    approver: Approver = None,
    approver_password_file: ApproverPasswordFile = None,
) -> None:
    """Set a new password; the user's sessions end and a lockout is lifted. For a desk or
    department user (who could otherwise be taken over) it needs --approver."""
    hub = open_hub(ctx)
    user = next((u for u in list_users(hub) if u.username == username), None)
    if user is None:
        fail(f"no such user {username}")
    approved = _approval(hub, user.role, user.desk, user.department, approver, approver_password_file)
    if approved is not None and approved.username == username:
        fail("the approver must be a second person, not the user whose password is reset")
    password, generated = _password(password_file, generate)
    p = reset_password(hub, username, password)
    audit.record(
        hub, _cli_actor(), "password_reset", target=p.username, approved_by=approved.username if approved else None
    )
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
    approver: Approver = None,
    approver_password_file: ApproverPasswordFile = None,
) -> None:
    """Create a token; the secret is printed once and only its hash is kept. A desk or
    department token needs --approver."""
    hub = open_hub(ctx)
    approved = _approval(hub, role, desk, department, approver, approver_password_file)
    secret, info = create_token(
        hub,
        name,
        role=role,
        scopes=scope,
        desk=desk,
        department=department,
        created_by=f"cli:{getpass.getuser()}",
        days=days,
    )
    audit.record(
        hub,
        _cli_actor(),
        "token_create",
        target=str(info.id),
        role=info.role.value,
        place=info.desk or info.department,
        scopes=list(info.scopes),
        approved_by=approved.username if approved else None,
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
