"""`hub calendar`: working-day arithmetic ops use to explain due dates."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import print_json
from hub.errors import HubError
from hub.settings import find_home
from hub.workdays import OutOfCalendar, Source, WorkCalendar

app = typer.Typer(help="Working-day calendar (holidays, make-up working days).", no_args_is_help=True)


def _calendar(ctx: typer.Context) -> WorkCalendar:
    """The hub home's calendar when there is one; the built-in sources otherwise."""
    try:
        home = find_home(ctx.obj.home if ctx.obj else None)
    except HubError:  # no hub home: built-in sources only
        return WorkCalendar()
    return WorkCalendar.from_dir(Path(home) / "calendar")


@app.command("add-workdays")
def add_workdays(
    ctx: typer.Context,
    start: Annotated[str, typer.Argument(help="Start date, YYYY-MM-DD (not counted)")],
    n: Annotated[int, typer.Argument(min=0, help="Working days to add")],
    explain: Annotated[bool, typer.Option("--explain", help="List the days off that were skipped")] = False,
) -> None:
    """Print the date N working days after START (both within the calendar's covered years)."""
    try:
        day = date.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter("日期格式应为 YYYY-MM-DD (expected YYYY-MM-DD)", param_hint="START") from None
    cal = _calendar(ctx)
    try:
        result, provisional = cal.add_workdays(day, n)
    except OutOfCalendar as exc:  # the library's rule, named as this command's arguments
        raise exc.renamed({"start": "START", "n": "N"}.get(exc.argument, exc.argument)) from None
    typer.echo(result.isoformat())
    if explain:
        d = day
        while d < result:
            d += timedelta(days=1)
            if not cal.is_workday(d):
                name = cal.holiday_name(d) or "周末 weekend"
                print(f"  {d} {name} ({cal.source(d.year).value})", file=sys.stderr)
    if provisional:
        years = sorted({y for y in range(day.year, result.year + 1) if cal.source(y) is Source.computed})
        print(f"provisional: no official holiday schedule for {', '.join(map(str, years))}", file=sys.stderr)


@app.command()
def sources(
    ctx: typer.Context,
    first: Annotated[int, typer.Argument(help="First year")] = date.today().year,
    last: Annotated[int | None, typer.Argument(help="Last year")] = None,
) -> None:
    """Which source decides working days in each year (config, package, computed)."""
    cal = _calendar(ctx)
    cal.check_year(first, "FIRST")  # also bounds the listing to the covered years
    cal.check_year(last or first + 1, "LAST")
    print_json({y: cal.source(y).value for y in range(first, (last or first + 1) + 1)})
