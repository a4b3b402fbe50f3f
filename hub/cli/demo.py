"""`hub demo`: walk sample applications through the life cycle, print what happened, then serve
the web UI with one demo account per role (or exit at once with --exit, for scripts and CI)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hub.cli.common import console, home_of, styled


def demo(
    ctx: typer.Context,
    exit_after: Annotated[
        bool, typer.Option("--exit", envvar="HUB_DEMO_EXIT", help="Exit after the walk-through instead of serving")
    ] = False,
    port: Annotated[int, typer.Option("--port")] = 8000,
) -> None:
    """Walk sample applications from bank outlets and enclave windows through the life cycle."""
    from hub.demo import demo_accounts, run

    home = home_of(ctx)
    if run(home):
        raise typer.Exit(1)
    accounts = demo_accounts(home)
    table = Table("用户名 username", "密码 password (demo only)", "角色 role", "窗口 / 部门")
    for row in accounts:
        table.add_row(*row)
    out = console()
    out.print("\n", styled("演示账号 Demo accounts", "bold"), " (fresh passwords each run)", sep="")
    out.print(table)
    if exit_after:
        return
    import uvicorn

    from hub.context import Hub
    from hub.web.app import create_app

    out.print(styled(f"打开 open http://127.0.0.1:{port}/", "bold"), " — Ctrl-C 停止 stop")
    uvicorn.run(create_app(Hub.open(home)), host="127.0.0.1", port=port, log_level="warning", server_header=False)
