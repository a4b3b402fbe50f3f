"""`hub init` and `hub db`: write a hub home, migrate its database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub import rollups
from hub.cli.common import home_of
from hub.home import write_home, write_sandbox_seals
from hub.settings import load_settings
from hub.storage import migrate
from hub.storage.engine import make_engine

app = typer.Typer(help="Database: migrations and status.", no_args_is_help=True)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (settings, catalogue, calendar, connections)")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the configuration files of an existing home")
    ] = False,
) -> None:
    """Write a working directory from the sample configuration and create its database."""
    home = write_home(directory, force=force)
    settings = load_settings(home)
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    made = write_sandbox_seals(home)
    typer.echo(f"已创建工作目录 (hub home written): {home}")
    if made:
        typer.echo(f"  测试印章 (test seals, sandbox only): {len(made)} — real ones: hub seals import")
    typer.echo(f"  export HUB_HOME={home}")


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Apply migrations up to the newest."""
    settings = load_settings(home_of(ctx))
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate.upgrade(engine)
        typer.echo(f"database at revision {migrate.current_revision(engine)}")
        with engine.begin() as conn:  # a database that predates the rollups: fill them from its events
            filled = rollups.backfill_if_empty(conn, settings.tz)
        if filled is not None:
            typer.echo(f"已由事件生成统计汇总 (dashboard rollups filled from the events): {filled} rows")
    finally:
        engine.dispose()


@app.command()
def rollups_check(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild every rollup row from the events")] = False,
) -> None:
    """Compare the dashboard's rollups with the events (exit 1 on a difference), or rebuild them."""
    settings = load_settings(home_of(ctx))
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            if rebuild:
                typer.echo(f"rebuilt: {rollups.backfill(conn, settings.tz)} rows")
                return
            span = rollups.event_days(conn, settings.tz)
            if span is None:
                typer.echo("no events")
                return
            want = rollups.recompute(conn, settings.tz, *span)
            have = rollups.stored(conn, *span)
    finally:
        engine.dispose()
    wrong = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    for key in wrong[:20]:
        typer.echo(f"differs: {key}: stored {have.get(key)} events {want.get(key)}")
    typer.echo(f"{len(want)} rows from the events, {len(wrong)} differ")
    if wrong:
        raise typer.Exit(1)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the database revision; exit 1 if migrations are pending."""
    settings = load_settings(home_of(ctx))
    engine = make_engine(settings.resolved_database_url)
    try:
        current, head = migrate.current_revision(engine), migrate.head_revision()
    finally:
        engine.dispose()
    typer.echo(f"current: {current}  head: {head}")
    if current != head:
        raise typer.Exit(1)
