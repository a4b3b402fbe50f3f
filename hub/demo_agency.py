"""The demo's 帮代办: 东溪乡's window registers a request for 林阿公 (78, cannot travel) for his
老年人优待证; 代办员 吴刚, on the roster for 东溪乡, takes it (抢单), visits, collects his ID card,
both sign the 委托书 (signatures drawn here as a tablet would send them), and 吴刚 receives the
application at the township centre as his agent. Then a major project in the 项目台账 with the
application linked and a milestone. All through the functions the pages and the CLI call."""

from __future__ import annotations

import base64
import io
import secrets
from collections.abc import Callable
from datetime import date, timedelta

from rich.markup import escape

from hub.agency import figures, projects, roster, tasks
from hub.applications import Actor
from hub.context import Hub
from hub.ids import id_check_digit, uscc_check_char
from hub.lifecycle import STATE_ZH, Role
from hub.users import add_user

AGENT_LOGIN, AGENT_NAME = "daiban-wugang", "吴刚"
DESK = "township-dongxi"
DONGXI = "330329201"
CLERK = Actor(name="东溪乡便民服务中心 吴丽", role=Role.clerk, desk=DESK)
SUPERVISOR = Actor(name="督查 赵敏", role=Role.supervisor)
OPS = Actor(name="运维 孙强", role=Role.ops)


def _id(division: str, born: str, seq: str) -> str:
    first17 = f"{division}{born}{seq}"
    return first17 + id_check_digit(first17)


def _signature(seed: int) -> str:
    """A drawn signature as the canvas pad sends it (PNG data URL, ink on transparent)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (360, 120), (0, 0, 0, 0))
    pen = ImageDraw.Draw(img)
    for i in range(4):
        x = 20 + 80 * i + seed * 7
        pen.line([(x, 90), (x + 30, 25), (x + 55, 95), (x + 75, 40)], fill=(20, 20, 20, 255), width=4)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _agent(hub: Hub) -> tasks.Who:
    with hub.sessions() as session:
        known = roster.profile(session, AGENT_LOGIN) is not None
    if not known:
        add_user(hub, AGENT_LOGIN, secrets.token_urlsafe(12), display_name=AGENT_NAME, role=Role.agent, desk=DESK)
        roster.add(
            hub,
            OPS,
            AGENT_LOGIN,
            name=AGENT_NAME,
            id_number=_id("330329", "19850601", "013"),
            phone="13905770100",
            desks=[DESK],
            townships=[DONGXI],
        )
    return tasks.who(hub, Actor(name=AGENT_NAME, role=Role.agent, desk=DESK), AGENT_LOGIN)


def run(hub: Hub, say: Callable[[str], None]) -> str:
    """The application number the agency task produced."""
    me = _agent(hub)
    say(f"  代办员名册：{AGENT_NAME}（东溪乡便民服务中心，服务 {roster.township_name(DONGXI)}）")
    task = tasks.open_task(
        hub,
        tasks.Who(CLERK),
        tasks.NewTask(
            subject="GG00501000",
            resident_name="林阿公",
            resident_id=_id("330329", "19480403", "027"),
            phone="13905770002",
            township=DONGXI,
            address="泰顺县东溪乡东溪村12号",
            preferred_time="周三上午",
            note="老人腿脚不便，请上门办理",
        ),
    )
    say(f"  窗口登记代办需求 #{task.id}：林阿公 老年人优待证办理（{roster.township_name(DONGXI)}）")
    tasks.take(hub, me, task.id)
    say(f"  {AGENT_NAME} 接单（抢单）")
    tasks.record_visit(
        hub, me, task.id, tasks.VisitIn(place="东溪乡东溪村12号", outcome="collected", note="核对身份证原件")
    )
    id_card = "%PDF-1.4\n% 林阿公 居民身份证 (demo)\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".encode()
    tasks.collect_material(hub, me, task.id, "居民身份证", "身份证.pdf", id_card)
    sha = tasks.sign_consent(hub, me, task.id, _signature(0), _signature(1))
    say(f"  上门服务 1 次，收取居民身份证；委托书双方签名，PDF sha256 {sha[:16]}…")
    app = tasks.start_application(
        hub, me, task.id, {"delivery_method": "邮寄送达", "mailing_address": "泰顺县东溪乡东溪村12号",
                           "contact_phone": "13905770002"}, "demo",
    )  # fmt: skip
    say(f"  {AGENT_NAME} 代为收件：[bold]{escape(app.number)}[/] {STATE_ZH[app.state]}（代办人 {AGENT_NAME}）")
    tasks.finish(hub, me, task.id)

    boss = tasks.Who(SUPERVISOR)
    base = "91330329MA2K7Q8L1"
    project = projects.create(
        hub,
        boss,
        projects.NewProject(
            name="泰顺县氡泉康养综合体项目",
            company_name="泰顺县文旅投资有限公司",
            credit_code=base + uscc_check_char(base),
            investment_wan=120000,
            agent=AGENT_LOGIN,
        ),
    )
    projects.link_application(hub, boss, project.id, app.number)
    today = hub.today()
    projects.add_milestone(hub, me, project.id, "用地预审与选址意见书", today - timedelta(days=3))
    projects.add_milestone(hub, me, project.id, "建设工程规划许可证", today + timedelta(days=30))
    ledger = projects.ledger(hub, boss, project.id)
    say(
        f"  项目台账 #{project.id} {escape(project.name)}：{len(ledger.applications)} 个办件，"
        f"{len(ledger.milestones)} 个节点，逾期 {len(ledger.overdue)} 项"
    )
    with hub.sessions() as session:
        day: date = hub.today()
        c = figures.counts(session, day, day)
    say(
        f"  今日帮代办：上门 {c['visits']} 次，新任务 {c['tasks_opened']}，办结 {c['tasks_done']}，代办办件 {c['applications']}"
    )
    return app.number
