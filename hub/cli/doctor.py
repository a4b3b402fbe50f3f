"""`hub doctor`: is this hub home sound? Everything `/readyz` checks, plus the catalogue, the
working-day calendar for the coming year, the plugins and every connection (docs/operations.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hub import health
from hub.cli.common import console, home_of, print_json, styled


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable: {ok, failed, checks}")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds each connection (and the database) may take")
    ] = 10.0,
) -> None:
    """Check the hub home: database and migrations, keys, stores, catalogue, calendar, plugins,
    connections. One line per check; exit 1 if any fails."""
    checks = health.doctor(home_of(ctx), timeout=timeout)
    bad = health.failed(checks)
    if as_json:
        print_json({"ok": not bad, "failed": bad, "checks": [c.as_dict() for c in checks]})
    else:
        table = Table("check", "result", "detail")
        for c in checks:
            table.add_row(c.name, styled("✓", "green") if c.ok else styled("✗", "red"), c.detail)
        out = console()
        out.print(table)
        out.print(f"{len(bad)} failed: {', '.join(bad)}", style="red") if bad else out.print(
            styled("all checks passed", "green")
        )
    if bad:
        raise typer.Exit(1)
