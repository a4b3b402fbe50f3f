"""The `hub` command. Thin: parse, call the core, print. Errors the user can act on are printed
as one line per problem (FILE:LINE: message, or field: message) and exit non-zero."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from hub import __version__, logs
from hub.cli import (
    accounts,
    agency,
    apps,
    backup,
    calendar,
    catalog,
    connectors,
    db,
    demo,
    doctor,
    documents,
    intake,
    jobs,
    kit,
    licences,
    partners,
    queue,
    seals,
    serve,
)
from hub.cli.common import State, fail
from hub.errors import ConfigInvalid, HubError, InvalidInput
from hub.plugins import PluginHost
from hub.settings import find_home, load_settings


class HubCommands(TyperGroup):
    """The `hub` group, with the commands plugins add (`register_commands`, e.g. `hub sandbox`)
    for the home's allowlist. They are looked up when the command line is parsed, never at
    import: the hub home is known only then, and a plugin's CLI module may import hub.cli."""

    def _plugins(self, ctx: click.Context) -> click.Group:
        group = ctx.meta.get("hub.plugin_commands")
        if group is None:
            configured = None
            try:
                home = find_home(ctx.params.get("home"))
                if (home / "hub.yaml").is_file():
                    configured = load_settings(home).plugins
            except HubError:  # no home, or a broken hub.yaml: the command itself says so
                pass
            extra = typer.Typer()
            PluginHost.configured(configured).hook.register_commands(cli=extra)
            group = typer.main.get_group(extra) if extra.registered_groups or extra.registered_commands else None
            group = group or click.Group()
            ctx.meta["hub.plugin_commands"] = group
        return group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins(ctx).list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._plugins(ctx).get_command(ctx, cmd_name)


app = typer.Typer(
    name="hub",
    cls=HubCommands,
    help="Tongban Hub (通办枢纽): county government-service integration hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="HUB_HOME", help="Hub home (working directory); default: $HUB_HOME or ."),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", envvar="HUB_LOG_LEVEL", help="Log to stderr from this level: DEBUG, INFO, WARNING"),
    ] = "WARNING",
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar="HUB_LOG_FORMAT",
            help="text (default, for people) or json (one object per line, for production log collectors)",
        ),
    ] = "text",
) -> None:
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise typer.BadParameter(f"unknown level {log_level}", param_hint="--log-level")
    if log_format not in logs.FORMATS:
        raise typer.BadParameter(f"unknown format {log_format}: text or json", param_hint="--log-format")
    logs.configure(level, log_format)  # resident ID numbers masked in either
    ctx.meta["hub.logging"] = (level, log_format)  # for `hub serve`'s uvicorn
    ctx.obj = State(home=home)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


app.command(name="init")(db.init)
app.add_typer(db.app, name="db")
app.add_typer(catalog.app, name="catalog")
app.add_typer(calendar.app, name="calendar")
app.add_typer(apps.app, name="apps")
app.add_typer(backup.app, name="backup")
app.command(name="demo")(demo.demo)
app.add_typer(connectors.plugins_app, name="plugins")
app.add_typer(connectors.connectors_app, name="connectors")
app.add_typer(jobs.run_app, name="run")
app.add_typer(jobs.outbox_app, name="outbox")
app.add_typer(intake.app, name="intake")
app.add_typer(partners.app, name="partners")
app.add_typer(seals.app, name="seals")
app.add_typer(documents.app, name="documents")
app.add_typer(licences.app, name="licences")
app.add_typer(kit.app, name="kit")
app.add_typer(queue.app, name="queue")  # appointments and the queue (hub.appointments)
app.command(name="serve")(serve.serve)
app.command(name="doctor")(doctor.doctor)
app.add_typer(accounts.users_app, name="users")
app.add_typer(accounts.tokens_app, name="tokens")
app.add_typer(agency.agents_app, name="agents")  # 帮代办: the roster
app.add_typer(agency.agency_app, name="agency")


def main() -> None:
    try:
        app()
    except InvalidInput as exc:
        for err in exc.errors:
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:  # a value rejected at the edge (lengths, shapes) before the core saw it
        for err in exc.errors(include_url=False):
            print(f"error: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", file=sys.stderr)
        sys.exit(2)
    except ConfigInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        sys.exit(2)
    except HubError as exc:
        fail(str(exc))
