"""`hub queue`: appointments and the queue from the command line (docs/appointments.md) — the item
groups, publishing and listing slots, a phone booking, taking a ticket, calling the next one, and
the figures. The same core functions as the pages and the API (hub.appointments)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from hub.appointments import bookings, calls, figures, slots, tickets
from hub.appointments.bookings import Person
from hub.appointments.common import groups_of, parse_day
from hub.cli.common import ActorName, DeskOpt, console, make_actor, open_hub, print_json
from hub.lifecycle import Role

app = typer.Typer(help="Appointments and the queue (预约 / 取号 / 叫号).", no_args_is_help=True)
slots_app = typer.Typer(help="Desks' appointment slots: publish, list, capacity, close.", no_args_is_help=True)
app.add_typer(slots_app, name="slots")

StaffRole = Annotated[Role, typer.Option("--role", help="clerk or enclave_clerk at --desk; supervisor for slots")]
JsonOpt = Annotated[bool, typer.Option("--json")]


@app.command("groups")
def list_groups(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The item groups (config/appointments.yaml) and the desks serving each."""
    hub = open_hub(ctx)
    groups = groups_of(hub)
    rows = [
        {"code": g.code, "letter": g.letter, "name": g.name, "items": g.items, "desks": groups.desks_of[g.code]}
        for g in groups
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("分组 group", "字母 letter", "名称 name", "事项 items", "窗口 desks")
    for r in rows:
        table.add_row(r["code"], r["letter"], r["name"], str(len(r["items"])), ", ".join(r["desks"]))
    console().print(table)


@slots_app.command("publish")
def publish(
    ctx: typer.Context,
    desk: Annotated[str, typer.Option("--desk")],
    group: Annotated[str, typer.Option("--group")],
    day: Annotated[str, typer.Option("--day", help="YYYY-MM-DD, a working day")],
    starts: Annotated[str, typer.Option("--from", help="HH:MM")],
    ends: Annotated[str, typer.Option("--to", help="HH:MM")],
    capacity: Annotated[int, typer.Option("--capacity")],
    every: Annotated[int | None, typer.Option("--every", help="minutes per slot (default: one slot)")] = None,
    role: StaffRole = Role.clerk,
    actor: ActorName = None,
) -> None:
    """Publish slots at a desk (as its staff, or a supervisor)."""
    hub = open_hub(ctx)
    who = make_actor(actor, role, desk if role is not Role.supervisor else None, None)
    made = slots.publish(
        hub, who, desk=desk, group=group, day=day, starts=starts, ends=ends, capacity=capacity, every_minutes=every
    )
    typer.echo(f"published {len(made)} slot(s): " + ", ".join(f"#{s.id} {s.starts}-{s.ends}" for s in made))


@slots_app.command("list")
def list_slots(
    ctx: typer.Context,
    desk: Annotated[str, typer.Option("--desk")],
    start: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD (default today)")] = None,
    days: Annotated[int, typer.Option(min=1, max=90)] = 14,
    as_json: JsonOpt = False,
) -> None:
    hub = open_hub(ctx)
    found = slots.listing(hub, desk, start=parse_day(start, "from") if start else None, days=days)
    rows = [
        {
            "id": s.id,
            "day": s.day.isoformat(),
            "starts": s.starts,
            "ends": s.ends,
            "group": s.group,
            "booked": s.booked,
            "capacity": s.capacity,
            "closed": s.closed,
        }
        for s in found
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("#", "日期 day", "时段 time", "分组 group", "已约/容量 booked", "状态")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["day"],
            f"{r['starts']}-{r['ends']}",
            r["group"],
            f"{r['booked']}/{r['capacity']}",
            "停止预约 closed" if r["closed"] else "",
        )
    console().print(table)


@slots_app.command("capacity")
def capacity(
    ctx: typer.Context,
    slot: int,
    value: int,
    desk: DeskOpt = None,
    role: StaffRole = Role.clerk,
    actor: ActorName = None,
) -> None:
    """A slot's new capacity (never below what is booked)."""
    hub = open_hub(ctx)
    s = slots.set_capacity(hub, make_actor(actor, role, desk, None), slot, value)
    typer.echo(f"slot #{s.id}: {s.booked}/{s.capacity}")


@slots_app.command("close")
def close(ctx: typer.Context, slot: int, desk: DeskOpt = None, role: StaffRole = Role.clerk, actor: ActorName = None):
    """Stop new bookings in a slot (those made stand)."""
    hub = open_hub(ctx)
    s = slots.close(hub, make_actor(actor, role, desk, None), slot)
    typer.echo(f"slot #{s.id} closed ({s.booked} booked)")


@app.command("book")
def book(
    ctx: typer.Context,
    slot: int,
    name: Annotated[str, typer.Option("--name")],
    id_number: Annotated[str, typer.Option("--id")],
    desk: Annotated[str, typer.Option("--desk")],
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    role: StaffRole = Role.clerk,
    actor: ActorName = None,
) -> None:
    """A phone booking made by the desk's staff for a resident."""
    hub = open_hub(ctx)
    b = bookings.book(hub, make_actor(actor, role, desk, None), slot, Person(id_number, name, phone), channel="desk")
    typer.echo(f"booked {b.code}: {b.day} {b.starts}-{b.ends} {b.group_name} ({b.name} {b.id_number})")


@app.command("ticket")
def ticket(
    ctx: typer.Context,
    desk: Annotated[str, typer.Option("--desk")],
    group: Annotated[str | None, typer.Option("--group", help="a walk-in for this item group")] = None,
    code: Annotated[str | None, typer.Option("--code", help="check in a booking by its code")] = None,
    id_number: Annotated[str | None, typer.Option("--id", help="ID number (priority; or check-in)")] = None,
    role: StaffRole = Role.clerk,
    actor: ActorName = None,
) -> None:
    """Take a ticket: a walk-in (--group) or a booking's check-in (--code, or --id alone)."""
    hub = open_hub(ctx)
    t = tickets.take(hub, make_actor(actor, role, desk, None), desk, group=group, code=code, id_number=id_number)
    typer.echo(f"ticket {t.number}" + (f" (priority: {t.priority_reason})" if t.priority_reason else ""))


@app.command("call")
def call(
    ctx: typer.Context,
    desk: Annotated[str, typer.Option("--desk")],
    counter: Annotated[str, typer.Option("--counter")],
    role: StaffRole = Role.clerk,
    actor: ActorName = None,
) -> None:
    """Call the next ticket to a counter."""
    hub = open_hub(ctx)
    t = calls.call_next(hub, make_actor(actor, role, desk, None), counter)
    typer.echo(f"{t.number} → counter {t.counter}" if t else "nobody waiting")


@app.command("figures")
def show_figures(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD (default: 30 days ago)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD (default today)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Waiting time (ticket → call) and service time (call → finish), minutes, per desk and group."""
    hub = open_hub(ctx)
    b = parse_day(end, "to") if end else hub.today()
    a = parse_day(start, "from") if start else b - timedelta(days=30)
    f = figures.queue_figures(hub, a, b)
    if as_json:
        print_json({kind: [r.__dict__ for r in getattr(f, f"by_{kind}")] for kind in ("desk", "group", "item")})
        return
    table = Table("", "取号", "办结", "过号", "等候均值", "等候P90", "办理均值", "办理P90")
    for r in [*f.by_desk, *f.by_group]:
        table.add_row(
            r.label,
            *(str(v) if v is not None else "—" for v in (r.tickets, r.served, r.no_shows)),
            *(f"{v}" if v is not None else "—" for v in (r.wait_avg, r.wait_p90, r.service_avg, r.service_p90)),
        )
    console().print(table)
