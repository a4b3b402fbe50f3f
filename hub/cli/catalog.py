"""`hub catalog`: check, list and show the item catalogue."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.appointments.groups import check_groups
from hub.catalog.loader import check_catalog, load_catalog
from hub.catalog.models import CHANNEL_ZH, Bundle, Channel
from hub.cli.common import console, home_of, print_json
from hub.context import utcnow
from hub.documents import templates as notice_templates
from hub.documents.kinds import KINDS
from hub.errors import ConfigProblem
from hub.workdays import WorkCalendar, load_schedules

app = typer.Typer(help="Item catalogue (事项目录): check, list, show.", no_args_is_help=True)

DirOpt = Annotated[Path | None, typer.Option("--dir", help="Configuration folder to check instead of the hub home")]


def _config_dir(ctx: typer.Context, directory: Path | None) -> Path:
    return directory if directory is not None else home_of(ctx)


def calendar_coverage(config_dir: Path, calendar: WorkCalendar, horizon_days: int) -> list[ConfigProblem]:
    """Warn for each year a due date may fall in that no official schedule covers."""
    today = utcnow().date()
    last = (today + timedelta(days=horizon_days)).year
    return [
        ConfigProblem(
            str(config_dir.name + f"/calendar/{year}.yaml"),
            1,
            f"{year}年无官方放假安排，期限按法定节假日推算且不含调休，标为临时 "
            f"(no official {year} holiday schedule: due dates in {year} are provisional)",
            warning=True,
        )
        for year in calendar.provisional_years(today.year, last)
    ]


@app.command()
def check(ctx: typer.Context, directory: DirOpt = None) -> None:
    """Validate catalogue, departments, desks, calendar and notice templates; print FILE:LINE: message per problem."""
    config_dir = _config_dir(ctx, directory)
    catalog, problems = check_catalog(config_dir)
    schedules, cal_problems = load_schedules(config_dir / "calendar")
    problems += cal_problems
    if catalog is not None:
        # statutory limits are working days; 1.5x calendar days plus holidays bounds the horizon
        horizon = max((i.statutory_days for i in catalog.items.values()), default=0) * 3 // 2 + 30
        problems += calendar_coverage(config_dir, WorkCalendar(schedules), horizon)
        # the notice templates, each rendered against a sample case (hub.documents.templates)
        problems += notice_templates.check(config_dir, list(KINDS), set(catalog.items) | set(catalog.bundles))
        problems += check_groups(config_dir, catalog)[1]  # the queue's item groups (appointments.yaml)
    for p in problems:
        print(p, file=sys.stderr)
    errors = [p for p in problems if not p.warning]
    if errors or catalog is None:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        raise typer.Exit(1)
    joint = f" (+{len(catalog.joint_bundles)} 多地联办 with partner items)" if catalog.joint_bundles else ""
    typer.echo(
        f"OK: {len(catalog.items)} items, {len(catalog.bundles)} bundles{joint}, "
        f"{len(catalog.departments)} departments, {len(catalog.desks)} desks"
    )


@app.command("list")
def list_items(
    ctx: typer.Context,
    channel: Annotated[Channel | None, typer.Option(help="Only items delegated to this channel")] = None,
    directory: DirOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List items and bundles."""
    cat = load_catalog(_config_dir(ctx, directory))
    subjects = [*cat.items.values(), *cat.bundles.values()]
    if channel:
        subjects = [s for s in subjects if channel in s.channels]
    if as_json:
        print_json([{"code": s.code, "title": s.title, "channels": [c.value for c in s.channels]} for s in subjects])
        return
    table = Table("编码 code", "事项 item", "部门 dept", "承诺/法定 days", "渠道 channels")
    for s in subjects:
        if isinstance(s, Bundle):
            dept, days = "一件事 bundle", "-"
        else:
            dept = cat.departments[s.department].short_name
            days = "即办" if s.instant else f"{s.promised_days}/{s.statutory_days}"
        table.add_row(s.code, s.title, dept, days, "、".join(CHANNEL_ZH[c.value] for c in s.channels))
    console().print(table)


@app.command()
def show(ctx: typer.Context, code: str, directory: DirOpt = None) -> None:
    """Show one item or bundle (with a bundle's merged form) as JSON."""
    cat = load_catalog(_config_dir(ctx, directory))
    subject = cat.subject(code)
    if subject is None:
        raise typer.BadParameter(f"事项编码 {code} 不在事项目录中 (unknown code)", param_hint="CODE")
    data = subject.model_dump(mode="json")
    if isinstance(subject, Bundle):
        data["merged_form"] = [f.model_dump(mode="json") for f in cat.form_of(subject)]
        data["merged_materials"] = [m.model_dump(mode="json") for m in cat.materials_of(subject)]
    print_json(data)
