"""`hub apps`: create, move, attach to, list and show applications without the UI."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from rich.table import Table

from hub import applications as svc
from hub import integrity, supervision
from hub.applications.listing import ListQuery, find_applications
from hub.cli.common import (
    ActorName,
    DepartmentOpt,
    DeskOpt,
    RoleOpt,
    WriteRoleOpt,
    console,
    echo,
    make_actor,
    open_hub,
    print_json,
    styled,
)
from hub.errors import FieldError, Forbidden, InvalidInput, Reason
from hub.events import verify_chain
from hub.lifecycle import ACTIONS, Role
from hub.presenters import application_detail, application_summary

app = typer.Typer(help="Applications (办件): create, transition, attach, list, show.", no_args_is_help=True)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise InvalidInput.field(option, f"应为 名称=值: {v!r}", "expected NAME=VALUE")
        out[key.strip()] = value
    return out


def _licence_refs(values: list[str]) -> list[svc.LicenceRef]:
    """`--licence MATERIAL=NUMBER` or `MATERIAL=NUMBER@SOURCE` (library, or a connection)."""
    refs = []
    for material, value in _pairs(values, "--licence").items():
        number, _, source = value.partition("@")
        refs.append(svc.LicenceRef(material=material, number=number.strip(), source=source.strip() or None))
    return refs


@app.command()
def create(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--item", "--bundle", help="Item or bundle code")],
    desk: Annotated[str, typer.Option("--desk", help="Desk taking the application")],
    name: Annotated[str, typer.Option("--name", help="Applicant's name (person or company)")],
    id_: Annotated[str, typer.Option("--id", help="Resident ID number, or credit code with --company")],
    company: Annotated[bool, typer.Option("--company", help="The applicant is a company")] = False,
    form: Annotated[list[str], typer.Option("--form", "-f", help="Form field NAME=VALUE (repeatable)")] = [],  # noqa: B006
    form_json: Annotated[Path | None, typer.Option("--form-json", help="Form data as a JSON file")] = None,
    material: Annotated[list[str], typer.Option("--material", "-m", help="Material NAME=PATH (repeatable)")] = [],  # noqa: B006
    licence: Annotated[
        list[str],
        typer.Option("--licence", "-l", help="电子证照 instead of a copy: MATERIAL=NUMBER[@SOURCE] (repeatable)"),
    ] = [],  # noqa: B006
    agent: Annotated[str | None, typer.Option("--agent", help="帮代办: agent NAME=ID_NUMBER")] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Your idempotency key: the same ref returns the same application")
    ] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Save without submitting")] = False,
    actor: ActorName = None,
    role: WriteRoleOpt = ...,  # writes name their role: no silent all-powerful default
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Receive a new application at a desk (收件)."""
    hub = open_hub(ctx)
    data: dict[str, Any] = json.loads(form_json.read_text(encoding="utf-8")) if form_json else {}
    data |= _pairs(form, "--form")
    agent_pair = _pairs([agent], "--agent") if agent else {}
    new = svc.NewApplication(
        subject=subject,
        desk=desk,
        applicant=svc.Applicant(type="company" if company else "person", name=name, id=id_),
        agent=svc.Agent(name=next(iter(agent_pair)), id_number=next(iter(agent_pair.values()))) if agent_pair else None,
        form=data,
        materials=[
            svc.MaterialIn(name=k, filename=Path(p).name, path=Path(p))
            for k, p in _pairs(material, "--material").items()
        ],
        licences=_licence_refs(licence),
        source_ref=ref,
        draft=draft,
    )
    result = svc.create(hub, new, make_actor(actor, role, desk, None))
    _print_result(hub, result, as_json)


def _print_result(hub, result, as_json: bool) -> None:
    if as_json:
        print_json(application_detail(hub, result))
    else:
        s = application_summary(hub, result)
        due = (
            f" 期限 due {s['due_date']}{' (临时 provisional)' if s['due_provisional'] else ''}" if s["due_date"] else ""
        )
        echo(f"{s['number']} {s['title']} — {s['state_zh']} ({s['state']}){due}")


@app.command()
def transition(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Application number")],
    action: Annotated[str, typer.Argument(help=f"One of: {', '.join(ACTIONS)}")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required to reject, deny, withdraw, request supplement)")
    ] = None,
    part: Annotated[str | None, typer.Option("--part", help="Item code of the part (bundles)")] = None,
    commit_due: Annotated[
        str | None, typer.Option("--commit-due", help="容缺: date the missing materials are promised by")
    ] = None,
    ask_field: Annotated[
        list[str] | None,
        typer.Option("--ask-field", help="补正: a form field to correct, NAME or NAME=NOTE (repeatable)"),
    ] = None,
    ask_material: Annotated[
        list[str] | None,
        typer.Option("--ask-material", help="补正: a material to bring, NAME or NAME=NOTE (repeatable)"),
    ] = None,
    place: Annotated[str | None, typer.Option("--place", help="补正: where to bring them (default: the desk)")] = None,
    supplement_due: Annotated[
        str | None, typer.Option("--supplement-due", help="补正: by when (default: the item's 补正 period)")
    ] = None,
    actor: ActorName = None,
    role: WriteRoleOpt = ...,  # writes name their role: no silent all-powerful default
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Take a life-cycle action on an application or one of its parts."""
    hub = open_hub(ctx)
    due = _date(commit_due, "--commit-due")
    ask = None
    if ask_field or ask_material or place or supplement_due:
        ask = svc.SupplementAsk(
            fields=[_wanted(v) for v in ask_field or []],
            materials=[_wanted(v) for v in ask_material or []],
            place=place,
            due_date=_date(supplement_due, "--supplement-due"),
        )
    result = svc.transition(
        hub,
        number,
        action,
        make_actor(actor, role, desk, department),
        reason=reason,
        part=part,
        commitment_due=due,
        ask=ask,
    )
    _print_result(hub, result, as_json)


def _date(value: str | None, option: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput([FieldError(option, Reason("日期格式应为 YYYY-MM-DD", "expected YYYY-MM-DD"))]) from None


def _wanted(value: str) -> svc.Wanted:
    name, _, note = value.partition("=")
    return svc.Wanted(name=name.strip(), note=note or None)


@app.command()
def correct(
    ctx: typer.Context,
    number: str,
    field: Annotated[list[str], typer.Option("--field", "-f", help="补正: form field NAME=VALUE (repeatable)")],
    actor: ActorName = None,
    role: WriteRoleOpt = ...,
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """补正: correct form fields the open request names (the catalogue's rules, as at intake)."""
    hub = open_hub(ctx)
    result = svc.correct_fields(hub, number, _pairs(field, "--field"), make_actor(actor, role, desk, department))
    _print_result(hub, result, as_json)


@app.command()
def attach(
    ctx: typer.Context,
    number: str,
    material: Annotated[list[str], typer.Option("--material", "-m", help="Material NAME=PATH (repeatable)")] = [],  # noqa: B006
    licence: Annotated[
        list[str],
        typer.Option("--licence", "-l", help="电子证照 instead of a copy: MATERIAL=NUMBER[@SOURCE] (repeatable)"),
    ] = [],  # noqa: B006
    actor: ActorName = None,
    role: WriteRoleOpt = ...,  # writes name their role: no silent all-powerful default
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
) -> None:
    """Add materials (files, or licences by reference); one owed under 容缺 closes its commitment."""
    hub = open_hub(ctx)
    if not material and not licence:
        raise InvalidInput.field("--material", "请给出 --material 或 --licence", "give --material or --licence")
    who = make_actor(actor, role, desk, department)
    items = [
        svc.MaterialIn(name=k, filename=Path(p).name, path=Path(p)) for k, p in _pairs(material, "--material").items()
    ]
    refs = _licence_refs(licence)
    result = svc.attach(hub, number, items, who) if items else None
    if refs:
        result = svc.attach_licences(hub, number, refs, who)
    _print_result(hub, result, False)


@app.command("licences")
def licences(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--item", "--bundle", help="Item or bundle code")],
    material: Annotated[str, typer.Option("--material", "-m", help="The material's name")],
    id_: Annotated[str, typer.Option("--id", help="Applicant's resident ID number or credit code")],
    name: Annotated[str, typer.Option("--name", help="Applicant's name: must be the holder's")],
    form: Annotated[list[str], typer.Option("--form", "-f", help="Form field NAME=VALUE (a credit code)")] = [],  # noqa: B006
    number: Annotated[str | None, typer.Option("--application", help="The case, when attaching later")] = None,
    actor: ActorName = None,
    role: WriteRoleOpt = ...,  # audited: who asked
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
) -> None:
    """查询电子证照: the applicant's licences a material may be satisfied by (ours and the
    department's library), with status today; pick one for `create`/`attach --licence`.
    Audited (docs/intake-licences.md)."""
    hub = open_hub(ctx)
    item = hub.catalog.subject(subject)
    if item is None:
        raise InvalidInput.field("--item", f"事项 {subject} 不存在", "no such item")
    from hub.web.desk_intake import lookup_licences  # the one audited lookup (loaded only here)

    who = make_actor(actor, role, desk, department)
    if number is not None:  # the case must be one the actor may see
        with hub.sessions() as session:
            svc.get(session, number, who)
    try:
        found = lookup_licences(
            hub, item, material, (id_.strip().upper(), name.strip()), _pairs(form, "--form"), who, application=number
        )
    except InvalidInput as exc:
        if any(e.field == "material" for e in exc.errors):
            raise InvalidInput.field("--material", exc.errors[0].reason.zh, exc.errors[0].reason.en) from None
        raise
    print_json(found)


@app.command("list")
def list_(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="Only this state")] = None,
    desk: Annotated[
        str | None, typer.Option("--desk", help="Only this desk (and, for front-desk roles, the actor's desk)")
    ] = None,
    number: Annotated[str | None, typer.Option("--number", help="Exactly this application number")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Exactly this applicant name")] = None,
    id_number: Annotated[
        str | None, typer.Option("--id-number", help="A whole ID number or credit code (never a part of one)")
    ] = None,
    q: Annotated[str | None, typer.Option("--q", help="A number, a name or a whole ID number")] = None,
    limit: int = 100,
    actor: ActorName = None,
    role: RoleOpt = Role.ops,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List applications (resident ID numbers masked), newest first; the REST list's filters."""
    hub = open_hub(ctx)
    who = make_actor(actor, role, desk, department)
    query = ListQuery.parse(
        state=state, desk=desk, number=number, applicant_name=name, applicant_id=id_number, q=q, limit=limit
    )
    with hub.sessions() as session:
        rows = [application_summary(hub, a) for a in find_applications(session, who, query, hub.settings.tz)]
    if as_json:
        print_json(rows)
        return
    table = Table("办件号 number", "事项 item", "窗口 desk", "申请人 applicant", "状态 state", "期限 due", "")
    for r in rows:
        due = (r["due_date"] or "") + ("*" if r["due_provisional"] else "")
        table.add_row(
            r["number"],
            r["title"],
            r["desk_name"],
            f"{r['applicant_name']} {r['applicant_id']}",
            r["state_zh"],
            due,
            r["signal"] or "",
        )
    console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    number: str,
    reveal_id: Annotated[bool, typer.Option("--reveal-id", help="Show full ID numbers")] = False,
    actor: ActorName = None,
    role: RoleOpt = Role.ops,
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one application: state, due date, parts, materials, commitments, events."""
    hub = open_hub(ctx)
    who = make_actor(actor, role, desk, department)
    if reveal_id and not svc.may_reveal_ids(who):
        raise Forbidden(f"角色 {who.role.value} 不能查看完整证件号码 (role may not see full ID numbers)")
    app_ = svc.read(hub, number, who)
    view = application_detail(hub, app_, reveal_id=reveal_id)
    if as_json:
        print_json(view)
        return
    c = console()
    c.print(styled(view["number"], "bold"), f"{view['title']} — {view['state_zh']} ({view['state']})")
    c.print(f"申请人 {view['applicant']['name']} {view['applicant']['id']}  窗口 {view['desk_name']}")
    c.print(f"收件地 {view['collecting_division']['name']} → 审批地 {view['deciding_division']['name']}")
    if view["due_date"]:
        c.print(
            f"期限 due {view['due_date']}{' (临时 provisional)' if view['due_provisional'] else ''}  {view['signal'] or ''}"
        )
    for p in view["parts"]:
        c.print(f"  · {p['item_code']} {p['title']} [{p['department']}] {p['state_zh']}")
    for d in view["deliveries"]:
        c.print(
            f"  推送 {d['part']} → {d['connection']}: {d['state']} ({d['attempts']} 次)"
            f"{' ' + d['remote_id'] if d['remote_id'] else ''}{' 错误 ' + d['last_error'] if d['last_error'] else ''}"
        )
    for r in view["results"]:
        c.print(f"  结果 {r['part']} {r['name']} sha256 {r['sha256'][:12]}…")
    for d in view["deficiencies"]:
        c.print(
            f"  容缺 {d['material']} 承诺 {d['due_date']} {'已补齐' if d['closed'] else ('已逾期' if d['overdue'] else '待补')}"
        )
    tz = hub.settings.tz
    table = Table("#", "时间 at", "操作 action", "状态 state", "人员 actor", "理由 reason")
    for e in view["events"]:
        table.add_row(
            str(e["seq"]),
            datetime.fromisoformat(e["at"]).astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            e["action"] + (f" [{e['part']}]" if e["part"] else ""),
            f"{e['from'] or ''}→{e['to'] or ''}",
            f"{e['actor']} ({e['role']})",
            e["reason"] or "",
        )
    c.print(table)
    c.print(
        f"event chain ({view['chain']['hash_alg']}): {'OK' if view['chain']['ok'] else 'BROKEN: ' + view['chain']['problem']}"
    )


@app.command()
def verify(
    ctx: typer.Context, number: Annotated[list[str] | None, typer.Argument(help="Numbers; default all")] = None
) -> None:
    """Verify event chains; exit 1 naming every application whose chain is broken."""
    hub = open_hub(ctx)
    if number:
        who = make_actor(None, Role.system, None, None)
        with hub.sessions() as session:
            results = [(n, verify_chain(svc.get(session, n, who))) for n in number]
        broken = [(n, r.problem) for n, r in results if not r.ok]
        checked = len(results)
    else:  # the whole hub, a chunk at a time (the same walk as `verify-all`)
        report = integrity.IntegrityReport()
        integrity.check_chains(hub, report)
        broken = [(f.subject, f.problem) for f in report.failures]
        checked = report.chains.checked
    for n, problem in broken:
        echo(f"{n}: BROKEN {problem}", err=True)
    typer.echo(f"{checked - len(broken)} chain(s) OK, {len(broken)} broken")
    if broken:
        raise typer.Exit(1)


class ProgressLines:
    """verify-all's progress on stderr (stdout stays the report, or pure JSON): a line at most
    every `every` seconds, and one when each phase ends, with the rate so far."""

    PHASES: ClassVar[dict[str, str]] = {"chains": "事件链 event chains", "materials": "材料文件 material files"}

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.started: dict[str, float] = {}
        self.mark = self.last_line = time.monotonic()  # a phase starts when the one before ends

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        start = self.started.setdefault(phase, self.mark)
        finished = done >= total
        if finished:
            self.mark = now
        elif now - self.last_line < self.every:
            return
        self.last_line = now
        rate = done / max(now - start, 1e-3)
        echo(f"核验进度 progress: {self.PHASES.get(phase, phase)} {done:,}/{total:,} ({rate:,.0f}/s)", err=True)


@app.command("verify-all")
def verify_all(
    ctx: typer.Context,
    skip_materials: Annotated[
        bool, typer.Option("--skip-materials", help="Only the event chains (hashing the store takes a while)")
    ] = False,
    show: Annotated[int, typer.Option("--show", help="How many failures to print")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The whole hub, as after a restore: every application's event chain and every material file
    the database refers to (present, size, sha256). A summary table, then the first failures;
    exit 1 on any."""
    hub = open_hub(ctx)
    try:
        report = integrity.verify_hub(hub, materials=not skip_materials, progress=ProgressLines())
    finally:
        hub.close()
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "chains": vars(report.chains),
                "events": report.events,
                "materials": None if skip_materials else vars(report.materials),
                "failures": [vars(f) for f in report.failures],
            }
        )
    else:
        table = Table("检查 check", "已查 checked", "通过 ok", "失败 failed", title="完整性核验 integrity")
        table.add_row(
            "事件链 event chains",
            str(report.chains.checked),
            str(report.chains.checked - report.chains.failed),
            str(report.chains.failed),
        )
        if not skip_materials:
            m = report.materials
            table.add_row("材料文件 material files", str(m.checked), str(m.checked - m.failed), str(m.failed))
        console().print(table)
        typer.echo(f"{report.events} event(s), {report.bytes_hashed} byte(s) of material hashed")
        for f in report.failures[:show]:
            echo(f"FAIL {f.kind} {f}", err=True)
        if len(report.failures) > show:
            typer.echo(f"… and {len(report.failures) - show} more failure(s)", err=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def warnings(
    ctx: typer.Context,
    actor: ActorName = None,
    role: RoleOpt = Role.ops,
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Red and yellow cards, overdue 容缺 commitments, provisional due dates."""
    hub = open_hub(ctx)
    # Streamed a page of applications at a time: only those that can carry an alert are read.
    rows = supervision.iter_warnings(hub, make_actor(actor, role, desk, department))
    if as_json:  # a JSON array written an alert at a time: the whole list is never held
        typer.echo("[", nl=False)
        for i, w in enumerate(rows):
            item = {"number": w.number, "kind": w.kind, "message": w.message, "due_date": w.due_date}
            typer.echo(("," if i else "") + "\n  " + json.dumps(item, ensure_ascii=False, default=str), nl=False)
        typer.echo("\n]")
        return
    count = 0
    for w in rows:
        echo(f"{w.kind:22} {w.number}  {w.message}")
        count += 1
    typer.echo(f"{count} warning(s)")
