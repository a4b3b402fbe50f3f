"""`hub demo`: walk sample applications through the life cycle and print what happened."""

from __future__ import annotations

import typer

from hub.cli.common import home_of


def demo(ctx: typer.Context) -> None:
    """Walk sample applications from bank outlets and enclave windows through the life cycle."""
    from hub.demo import run

    if run(home_of(ctx)):
        raise typer.Exit(1)
