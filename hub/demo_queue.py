"""The demo's appointments and queue (预约 / 取号 / 叫号): the county hall publishes slots for the
next working day, a resident books one by phone through the desk (and is reminded), today's
walk-ins take tickets — 林阿婆 (78) goes first as 老年人优先 —, the clerk calls them to counter 3,
and the called ticket becomes the application the clerk receives. The 叫号屏 at /display/hall-county
shows the calls. The same core functions as the pages, the API and `hub queue`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from rich.markup import escape

from hub import applications as svc
from hub.applications import Actor
from hub.appointments import bookings, calls, figures, slots, tickets
from hub.appointments.bookings import Person
from hub.context import Hub
from hub.errors import InvalidInput
from hub.jobs.reminders import next_workday, reminders
from hub.lifecycle import Role

DESK = "hall-county"
CLERK = Actor(name="张敏", role=Role.clerk, desk=DESK)
ELDER, ELDER_ID = "林阿婆", "330329194803150023"  # born 1948: priority as elderly
WORKER, WORKER_ID = "陈志强", "330329199007010137"


def run(hub: Hub, say: Callable[[str], None]) -> str:
    """The 叫号屏's path (/display/hall-county) once the walk-through is done."""
    day = next_workday(hub, hub.today())
    try:
        made = slots.publish(
            hub, CLERK, desk=DESK, group="zonghe", day=day, starts="09:00", ends="11:00", capacity=4, every_minutes=30
        )
    except InvalidInput:  # the demo ran before today: those slots are there already
        made = slots.listing(hub, DESK, group="zonghe", start=day, days=1)
    say(f"  发布预约时段 {day} 综合类: {len(made)} 个时段，每段 4 人")
    try:
        b = bookings.book(hub, CLERK, made[0].id, Person(WORKER_ID, WORKER, "13857712345"), channel="desk")
        say(f"  电话预约 {b.name} {b.day} {b.starts}-{b.ends}，预约码 {b.code}")
    except InvalidInput as exc:
        say(f"  电话预约: {escape(exc.errors[0].reason.zh)}")
    say(f"  {reminders(hub).line()}")
    walk_in = tickets.take(hub, CLERK, DESK, group="zonghe")
    elder = tickets.take(hub, CLERK, DESK, group="zonghe", id_number=ELDER_ID)
    say(f"  现场取号 {walk_in.number}；{ELDER} 取号 {elder.number}（老年人优先）")
    called = calls.call_next(hub, CLERK, "3")
    assert called is not None
    say(f"  叫号: 请 {called.number} 号到 3 号窗口（叫号屏 /display/{DESK}）")
    app = svc.create(
        hub,
        svc.NewApplication(
            subject="GG00501000",
            desk=DESK,
            applicant=svc.Applicant(name=ELDER, id=ELDER_ID),
            form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        ),
        CLERK,
    )
    calls.link(hub, CLERK, called.id, app.number)
    calls.finish(hub, CLERK, called.id)
    say(f"  {called.number} 号收件为办件 {app.number}，办结")
    f = figures.queue_figures(hub, hub.today() - timedelta(days=30), hub.today())
    for r in f.by_desk:
        say(f"  排队统计 {r.label}: 取号 {r.tickets}，平均等候 {r.wait_avg} 分钟，过号 {r.no_shows}")
    return f"/display/{DESK}"
