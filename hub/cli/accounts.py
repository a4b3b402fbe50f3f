"""`hub users` and `hub tokens`: the people who log in and the systems' API tokens. Desk and
department credentials need a second person's approval (双人授权, docs/web.md)."""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.applications import Actor
from hub.cli.common import console, fail, open_hub
from hub.context import Hub
from hub.errors import NotFound
from hub.lifecycle import Role
from hub.tokens import SCOPES, issue_token, list_tokens, withdraw_token
from hub.users import (
    ROLE_ZH,
    Approval,
    Person,
    accounts_page,
    disable_user,
    issue_enable,
    issue_password_reset,
    issue_user,
    needs_approval,
    person_named,
    unlock_user,
)

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


def _approval(approver: str | None, path: Path | None) -> Approval:
    """The approver of a credential for a case role, who types their own password (never on the
    command line). Ops at the host cannot give itself a desk's powers (docs/web.md)."""
    password = None
    if approver:
        if path is not None:
            password = path.read_text(encoding="utf-8").strip()
        elif env := os.environ.get("HUB_APPROVER_PASSWORD"):
            password = env
        elif sys.stdin.isatty():
            password = getpass.getpass(f"授权人 {approver} 的密码 approver's password: ")
    return Approval(approver, password)


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
    temporary: Annotated[
        bool, typer.Option("--temporary", help="Generate a temporary password: changed at the first login")
    ] = False,
    approver: Approver = None,
    approver_password_file: ApproverPasswordFile = None,
) -> None:
    """Add a user bound to a desk (teller, enclave clerk) or a department (officer); those need
    --approver. The same rules as the ops page (hub.users.issue_user)."""
    hub = open_hub(ctx)
    approval = _approval(approver, approver_password_file) if needs_approval(hub, role) else Approval()
    password, generated = (None, True) if temporary else _password(password_file, generate)
    p, made = issue_user(
        hub,
        _cli_actor(),
        username=username,
        display_name=name,
        role=role,
        desk=desk,
        department=department,
        password=password,
        approval=approval,
    )
    typer.echo(
        f"added {p.username} ({p.role.value}{' @ ' + (p.desk or p.department) if p.desk or p.department else ''})"
    )
    if made:
        typer.echo(f"temporary password (shown once, to be changed at the first login): {made}")
    elif generated:
        typer.echo(f"initial password (shown once): {password}")


def _user_or_fail(hub: Hub, username: str) -> Person:
    try:
        return person_named(hub, username)
    except NotFound:
        fail(f"no such user {username}")


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
    if enable:
        user = _user_or_fail(hub, username)
        approval = _approval(approver, approver_password_file) if needs_approval(hub, user.role) else Approval()
        p = issue_enable(hub, _cli_actor(), username, approval=approval)
    else:
        p = disable_user(hub, _cli_actor(), username)
    typer.echo(f"{p.username}: {'disabled' if p.disabled else 'enabled'}")


@users_app.command("unlock")
def users_unlock(ctx: typer.Context, username: str) -> None:
    """Lift a lockout (five wrong passwords) without changing the password."""
    hub = open_hub(ctx)
    was = unlock_user(hub, _cli_actor(), username)
    typer.echo(f"{username}: {'unlocked' if was else 'was not locked'}")


@users_app.command("reset-password")
def users_reset(
    ctx: typer.Context,
    username: str,
    password_file: PasswordFile = None,
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it once")] = False,
    temporary: Annotated[
        bool, typer.Option("--temporary", help="Generate a temporary password: changed at the next login")
    ] = False,
    approver: Approver = None,
    approver_password_file: ApproverPasswordFile = None,
) -> None:
    """Set a new password; the user's sessions end and a lockout is lifted. For a desk or
    department user (who could otherwise be taken over) it needs --approver."""
    hub = open_hub(ctx)
    user = _user_or_fail(hub, username)
    approval = _approval(approver, approver_password_file) if needs_approval(hub, user.role) else Approval()
    if approval.username == username:
        fail("the approver must be a second person, not the user whose password is reset")
    password, generated = (None, True) if temporary else _password(password_file, generate)
    p, made = issue_password_reset(hub, _cli_actor(), username, password=password, approval=approval)
    typer.echo(f"password reset for {p.username}")
    if made:
        typer.echo(f"temporary password (shown once, to be changed at the next login): {made}")
    elif generated:
        typer.echo(f"new password (shown once): {password}")


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every user with their state (disabled, locked until, temporary password) and last login,
    in the hub's time zone."""
    hub = open_hub(ctx)
    table = Table("username", "name", "role", "desk / department", "state", "last login")
    offset = 0
    while True:  # a page at a time, as the ops page reads them
        rows, total = accounts_page(hub, limit=500, offset=offset)
        for a in rows:
            p = a.person
            state = (
                "disabled" if p.disabled else f"locked until {_local(hub, a.locked_until)}" if a.locked else "active"
            )
            table.add_row(
                p.username,
                p.display_name,
                f"{p.role.value} {ROLE_ZH[p.role.value]}",
                p.desk or p.department or "",
                state + (" (temporary password)" if p.must_change_password else ""),
                _local(hub, a.last_login_at) or "never",
            )
        offset += len(rows)
        if not rows or offset >= total:
            break
    console().print(table)


def _local(hub: Hub, at: datetime | None) -> str:
    """A stored (naive UTC) time in the hub's zone, as the pages show it."""
    return at.replace(tzinfo=UTC).astimezone(hub.settings.tz).strftime("%Y-%m-%d %H:%M") if at else ""


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
    approval = _approval(approver, approver_password_file) if needs_approval(hub, role) else Approval()
    secret, info = issue_token(
        hub,
        _cli_actor(),
        name,
        role=role,
        scopes=scope,
        desk=desk,
        department=department,
        days=days,
        approval=approval,
        remote=False,
    )
    typer.echo(f"token {info.id} ({info.prefix}…) created; store it now, it is not shown again:")
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(ctx: typer.Context) -> None:
    hub = open_hub(ctx)
    table = Table("id", "name", "prefix", "role", "desk / department", "scopes", "last used", "state")
    for t in list_tokens(hub):
        table.add_row(
            str(t.id),
            t.name,
            t.prefix,
            t.role.value,
            t.desk or t.department or "",
            " ".join(t.scopes),
            _local(hub, t.last_used_at),
            "revoked" if t.revoked_at else "active",
        )
    console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: int) -> None:
    info = withdraw_token(open_hub(ctx), _cli_actor(), token_id)
    typer.echo(f"token {info.id} revoked")
