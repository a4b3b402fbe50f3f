"""The demo `make demo` runs: sample applications from bank outlets and enclave windows walked
through the life cycle on a simulated clock, printing what happened. Everything goes through the
same core functions the CLI and jobs use; nothing here is special-cased."""

from __future__ import annotations

import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from hub import applications as svc
from hub import demo_agency as agency_demo
from hub import demo_cross_region as cross_region
from hub import demo_online as online_demo
from hub import demo_paperless as paperless
from hub import demo_queue as queue_demo
from hub import supervision
from hub.applications import Actor
from hub.applications.licences import sealed_pdf as licence_pdf
from hub.context import Hub
from hub.documents.kinds import KINDS
from hub.documents.library import verify_file
from hub.errors import HubError
from hub.events import verify_chain
from hub.ids import id_check_digit, mask_id, mask_name
from hub.jobs.dispatch import dispatch
from hub.jobs.documents import documents as documents_job
from hub.jobs.sync import sync
from hub.lifecycle import STATE_ZH, Role
from hub.presenters import application_detail
from hub.seals import verify_pdf
from hub.storage.tables import Application, Document, Licence

CST = ZoneInfo("Asia/Shanghai")
PDF = b"%PDF-1.4\n% Tongban Hub demo scan\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)

TELLER = Actor(name="王芳", role=Role.teller, desk="bank-xiahong")
TELLER_BZ = Actor(name="周敏", role=Role.teller, desk="bank-baizhang")
HZ = Actor(name="陈静", role=Role.enclave_clerk, desk="enclave-hangzhou")
SH = Actor(name="李娜", role=Role.enclave_clerk, desk="enclave-shanghai")


def _officer(department: str, name: str) -> Actor:
    return Actor(name=name, role=Role.officer, department=department)


MZJ, YBJ, GJJ = _officer("ts-mzj", "民政局 林晓"), _officer("ts-ybj", "医保局 张伟"), _officer("ts-gjj", "公积金 黄磊")
RSJ = _officer("ts-rsj", "人社局 吴丹")


def _id(born: str, seq: str) -> str:
    first17 = f"330329{born}{seq}"
    return first17 + id_check_digit(first17)


def _pdf(tag: str) -> bytes:
    return PDF + tag.encode()


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 9, 28, 9, tzinfo=CST)

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)

    def day(self, d: date, hour: int = 9) -> None:
        self.now = datetime(d.year, d.month, d.day, hour, tzinfo=CST)


def _department_up(hub: Hub, connection: str, wait_seconds: float = 15.0) -> bool:
    """Is the (sandbox) department system answering? `make demo` starts it beside the demo."""
    if connection not in hub.connections:
        return False
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            connector = hub.connector(connection)
        except HubError:  # e.g. HUB_SANDBOX_TOKEN not set
            return False
        try:
            if connector.check().ok:
                return True
        finally:
            connector.close()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)


def run(home: Path, console: Console | None = None) -> int:
    out = console or Console(width=None if sys.stdout.isatty() else 150)
    clock = _Clock()
    hub = Hub.open(home, clock=clock)
    numbers: list[str] = []
    broken = 0

    def say(text: str) -> None:
        out.print(f"[dim]{clock.now:%Y-%m-%d}[/] {text}")

    def step(app, action: str, who: Actor, **kw):
        app = svc.transition(hub, app.number, action, who, **kw)
        due = f" 期限 {app.due_date}{'(临时)' if app.due_provisional else ''}" if app.due_date else ""
        say(f"  {who.name} → {action}: [bold]{STATE_ZH[app.state]}[/]{due}")
        return app

    out.print("[bold]通办枢纽演示 Tongban Hub demo[/] — 模拟时钟 simulated clock from 2026-09-28\n")

    # 1. Bank outlet: 老年人优待证, collected and first-reviewed by the bank, decided by the county.
    say("[bold]① 下洪社区农商银行网点：老年人优待证[/]")
    app = svc.create(
        hub,
        svc.NewApplication(
            subject="GG00501000",
            desk="bank-xiahong",
            applicant=svc.Applicant(name="林阿婆", id=_id("19500315", "021")),
            form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
            materials=[
                svc.MaterialIn(name="居民身份证", filename="身份证.pdf", content=_pdf("lin")),
                svc.MaterialIn(name="近期免冠彩色证件照", filename="照片.jpg", content=JPEG),
            ],
        ),
        TELLER,
    )
    numbers.append(app.number)
    say(f"  {TELLER.name} 收件 {app.number}，申请人 林阿婆 {mask_id(app.applicant_id)}")
    if _department_up(hub, "gongan-soap", wait_seconds=2):
        # 网上核验: the household register is checked with 公安 online instead of a paper copy
        connector = hub.connector("gongan-soap")
        try:
            check = connector.verify("household_registration", {"id_number": app.applicant_id, "name": "林阿婆"})
        finally:
            connector.close()
        say(
            f"  网上核验 户籍 (gongan-soap, SOAP): {'一致' if check.ok else '不一致'} {check.detail.get('address', '')}"
        )
    app = step(app, "pre_review", TELLER)
    for action in ("accept", "start_review", "approve", "issue"):
        app = step(app, action, MZJ)
    app = step(app, "deliver", TELLER)

    # 2. Enclave window in Hangzhou: instant medical-insurance filing.
    say("[bold]② 杭州“办事不回乡”服务点：医保异地就医备案（即办）[/]")
    app = svc.create(
        hub,
        svc.NewApplication(
            subject="GG00301001",
            desk="enclave-hangzhou",
            applicant=svc.Applicant(name="陈志强", id=_id("19900701", "013")),
            form={
                "destination_division": "330105",
                "residence_address": "杭州市拱墅区湖墅南路88号",
                "filing_start_date": "2026-10-01",
                "contact_phone": "13857712345",
            },
            materials=[
                svc.MaterialIn(name="居民身份证", filename="id.pdf", content=_pdf("chen")),
                svc.MaterialIn(name="异地长期居住个人承诺书", filename="承诺书.pdf", content=_pdf("promise")),
            ],
        ),
        HZ,
    )
    numbers.append(app.number)
    say(f"  {HZ.name} 收件 {app.number}（收件地 {app.collecting_division} → 审批地 {app.deciding_division}）")
    app = step(app, "accept", YBJ)
    if _department_up(hub, "yibao-rest"):
        sent = dispatch(hub, connection="yibao-rest")
        remote = application_detail(hub, svc.read(hub, app.number, YBJ))["deliveries"][0]
        say(f"  推送医保经办系统 yibao-rest: {escape(sent.line())}，对方编号 {remote['remote_id']}")
        # the sandbox department decides by itself after a moment: sync until its decision is back
        # (a busy machine takes longer), within a bound
        deadline = time.monotonic() + 30
        while True:
            synced = sync(hub, connection="yibao-rest")
            app = svc.read(hub, app.number, YBJ)
            if app.state not in ("accepted", "in_review") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        results = application_detail(hub, app)["results"]
        say(
            f"  同步 {escape(synced.line())} → [bold]{STATE_ZH[app.state]}[/]，结果文件 {escape(results[0]['name']) if results else '无'}"
        )
    else:
        say("  [yellow]医保系统沙箱未运行（hub sandbox run），由医保局在枢纽内审批[/]")
        for action in ("start_review", "approve"):
            app = step(app, action, YBJ)

    # 3. Hangzhou again: housing-fund withdrawal with materials missing (容缺) and a 补正 in between.
    say("[bold]③ 杭州服务点：住房公积金租房提取 — 容缺受理 + 补正停表[/]")
    clock.day(date(2026, 9, 29))
    fund = svc.create(
        hub,
        svc.NewApplication(
            subject="GG00401001",
            desk="enclave-hangzhou",
            applicant=svc.Applicant(name="陈志强", id=_id("19900701", "013")),
            form={
                "rental_address": "杭州市拱墅区湖墅南路88号",
                "monthly_rent": "2500",
                "lease_start_date": "2026-01-01",
                "lease_end_date": "2026-12-31",
                "withdrawal_amount": "15000",
                "marital_status": "已婚",
                "payee_bank_name": "浙江泰顺农村商业银行",
                "payee_bank_account": "6230910199001234567",
                "contact_phone": "13857712345",
            },
            materials=[
                svc.MaterialIn(name=n, filename=f"{n}.pdf", content=_pdf(n))
                for n in ("居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明")
            ],
        ),
        HZ,
    )
    numbers.append(fund.number)
    try:
        svc.transition(hub, fund.number, "accept", GJJ)
    except HubError as exc:
        say(f"  受理被拒 refused: {escape(str(exc))}")
    fund = step(fund, "accept", GJJ, commitment_due=date(2026, 10, 12))
    say(f"  容缺材料: {'、'.join(d.material for d in fund.deficiencies)}，承诺 2026-10-12 前补交")
    clock.day(date(2026, 9, 30))
    fund = step(fund, "request_supplement", GJJ, reason="租赁期限与提取金额不符，请补正")
    clock.day(date(2026, 10, 9))
    fund = step(fund, "resume", HZ)
    say(f"  停表 {fund.paused_workdays} 个工作日（国庆假期不计），期限顺延")
    fund = svc.attach(
        hub, fund.number, [svc.MaterialIn(name="房屋租赁合同", filename="租赁合同.pdf", content=_pdf("lease"))], HZ
    )
    say("  补交 房屋租赁合同 → 该项容缺承诺关闭")
    clock.day(date(2026, 10, 12))
    for w in supervision.warnings(hub, HZ):
        say(f"  [yellow]预警 {w.kind}[/] {w.number} {escape(w.message)}")
    fund = step(fund, "start_review", GJJ)
    fund = step(fund, "approve", GJJ)

    # 4. Shanghai: a bundle (一件事) across three departments; one part is denied and stays visible.
    say("[bold]④ 上海服务点：退休一件事（人社 + 医保 + 公积金）[/]")
    names = [
        "居民身份证",
        "参保缴费记录",
        "本人人事档案",
        "医保缴费年限记录",
        "住房公积金账户信息",
        "退休证明",
        "住房公积金提取及销户申请书",
    ]
    bundle = svc.create(
        hub,
        svc.NewApplication(
            subject="YJS-TXLX",
            desk="enclave-shanghai",
            applicant=svc.Applicant(name="吴建国", id=_id("19661008", "035")),
            form={
                "retirement_type": "正常退休",
                "retirement_date": "2026-10-31",
                "payee_bank_name": "浙江泰顺农村商业银行",
                "payee_bank_account": "6230910199007654321",
                "contact_phone": "13606770002",
                "supplementary_payment": "否",
            },
            materials=[svc.MaterialIn(name=n, filename=f"{n}.pdf", content=_pdf("wu" + n)) for n in names],
        ),
        SH,
    )
    numbers.append(bundle.number)
    say(f"  {SH.name} 收件 {bundle.number}，拆分为 {len(bundle.parts)} 个部门事项")
    bundle = step(bundle, "accept", RSJ)
    for who in (RSJ, YBJ, GJJ):
        bundle = step(bundle, "start_review", who)
    bundle = step(bundle, "approve", RSJ)
    bundle = step(bundle, "approve", YBJ)
    bundle = step(bundle, "deny", GJJ, reason="公积金账户存在未结清贷款")
    say("  " + "；".join(f"{p.title} {STATE_ZH[p.state]}" for p in bundle.parts))
    bundle = step(bundle, "issue", RSJ)

    # 4b. Shanghai: a housing-fund withdrawal whose account-closing form is signed face to face;
    # accepted and left for the 公积金 officer to hold the remote signing in the web UI.
    say("[bold]④b 上海服务点：公积金退休提取，须远程面签[/]")
    retire = svc.create(
        hub,
        svc.NewApplication(
            subject="GG00401002",
            desk="enclave-shanghai",
            applicant=svc.Applicant(name="吴建国", id=_id("19661008", "035")),
            form={
                "retirement_date": "2026-10-31",
                "payee_bank_name": "浙江泰顺农村商业银行",
                "payee_bank_account": "6230910199007654321",
                "contact_phone": "13606770002",
            },
            materials=[
                svc.MaterialIn(name=n, filename=f"{n}.pdf", content=_pdf("wu-retire" + n))
                for n in ("居民身份证", "住房公积金账户信息", "退休证明", "住房公积金提取及销户申请书")
            ],
        ),
        SH,
    )
    numbers.append(retire.number)
    retire = step(retire, "pre_review", SH)
    retire = step(retire, "accept", GJJ)
    say(f"  {retire.number} 待远程面签：公积金账号 huanglei 在办件页「发起远程面签」，上海服务点账号 lina 「进入面签」")

    # 5. Bad input and an illegal transition: refused, nothing written.
    say("[bold]⑤ 错误输入与非法操作[/]")
    bad_id = _id("19580315", "002")[:-1] + ("0" if _id("19580315", "002")[-1] != "0" else "1")
    try:
        svc.create(
            hub,
            svc.NewApplication(
                subject="GG00501000",
                desk="bank-baizhang",
                applicant=svc.Applicant(name="张三", id=bad_id),
                form={"delivery_method": "窗口领取", "contact_phone": "13900000000"},
            ),
            TELLER_BZ,
        )
    except HubError as exc:
        say(f"  [red]拒绝 refused[/]: {escape(str(exc))}")
    try:
        svc.transition(hub, numbers[1], "deliver", HZ)
    except HubError as exc:
        say(f"  [red]拒绝 refused[/]: {escape(str(exc))}")

    # 6. Late December: a due date that lands in 2027, for which no official schedule exists yet.
    say("[bold]⑥ 百丈镇网点：年底受理，期限落在2027年[/]")
    clock.day(date(2026, 12, 30))
    late = svc.create(
        hub,
        svc.NewApplication(
            subject="GG00401001",
            desk="bank-baizhang",
            applicant=svc.Applicant(name="周小红", id=_id("19920214", "048")),
            form={
                "rental_address": "泰顺县百丈镇百福路12号",
                "monthly_rent": "800",
                "lease_start_date": "2026-03-01",
                "lease_end_date": "2027-02-28",
                "withdrawal_amount": "6000",
                "marital_status": "未婚",
                "payee_bank_name": "浙江泰顺农村商业银行",
                "payee_bank_account": "6230910199005550123",
                "contact_phone": "13587770003",
            },
            materials=[
                svc.MaterialIn(name=n, filename=f"{n}.pdf", content=_pdf("zhou" + n))
                for n in ("居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明", "房屋租赁合同", "结婚证")
            ],
        ),
        TELLER_BZ,
    )
    numbers.append(late.number)
    say(f"  {TELLER_BZ.name} 收件 {late.number}")
    late = step(late, "pre_review", TELLER_BZ)
    late = step(late, "accept", GJJ)
    say("  2027年放假安排尚未发布：期限按法定节假日推算，标为临时 (provisional)")

    # 7. County hall: an application with no uploaded paper at all (无纸化): identity by 网上核验,
    # the business licence by reference from the 电子证照 platform.
    say("[bold]⑦ 县政务服务中心：发票领用 — 无纸化（网上核验 + 电子证照）[/]")
    clock.day(date(2026, 12, 31))
    if _department_up(hub, "gongan-soap", wait_seconds=2) and (done := paperless.run(hub, say)):
        numbers.append(done)

    # 8. 跨省通办: a 福鼎 (Fujian) item collected here and decided there, between two real hubs.
    out.print()
    out.print("[bold]⑧ 跨省通办：福鼎市事项在泰顺网点代收，福鼎审批[/]（真实时钟 real clock）")
    cross = cross_region.run(home, out.print)
    for problem in cross:
        out.print(f"[red]✗ {escape(problem)}[/]")
    broken += len(cross)

    # 9. 服务渠道: the channels the seeds run on — an appointment, a queue ticket called to a counter
    #    and the 叫号屏; an agent's door-to-door task with the signed 委托书; a resident applying online.
    out.print()
    out.print("[bold]⑨ 服务渠道：预约取号叫号、帮代办上门、网上办[/]")
    broken += _channels(hub, numbers, say)

    # 10. 文书与电子证照: every notice the steps above owed, sealed now (what `hub run documents` does
    #    every few minutes) and checked as anyone would check it; the licences approval issued.
    out.print()
    out.print("[bold]⑩ 文书与电子证照：每一步的通知书加盖电子印章，准予的证照签发电子证照[/]")
    broken += _documents_and_licences(hub, numbers, out)

    # Summary: every application, its divisions, state and whether its event chain verifies.
    table = Table("办件号", "事项", "窗口", "收件地→审批地", "状态", "结果", "期限", "纸质材料", "事件链")
    with hub.sessions() as session:
        for number in numbers:
            a = svc.get(session, number, Actor(name="demo", role=Role.supervisor))
            chain = verify_chain(a)
            broken += not chain.ok
            desk = hub.catalog.desks[a.desk_code].name
            table.add_row(
                a.number,
                a.title,
                desk,
                f"{a.collecting_division}→{a.deciding_division}",
                STATE_ZH[a.state],
                svc.outcome_of(a) or "",
                f"{a.due_date or ''}{'*' if a.due_provisional else ''}",
                _paper(a),
                f"{len(a.events)} ✓" if chain.ok else "✗",
            )
    out.print()
    out.print(table)
    out.print("* 临时期限 provisional due date (no official holiday schedule for that year yet)")
    out.print(
        f"数据库 database: {hub.settings.resolved_database_url.split('///')[-1]}   "
        f"查看 show: hub --home {home} apps show {numbers[2]}"
    )
    hub.close()
    return broken


def _channels(hub: Hub, numbers: list[str], say: Callable[[str], None]) -> int:
    """Step ⑨: the queue, agency service and the online channel, each through its own core
    functions (the pages and the API call the same). Returns how many of them failed."""
    failed = 0
    try:
        say("  预约与叫号（县政务服务中心）")
        display = queue_demo.run(hub, say)
        say(f"  叫号屏 display: {display}")
    except HubError as exc:
        say(f"  [red]✗ 预约叫号 {escape(str(exc))}[/]")
        failed += 1
    try:
        say("  帮代办（东溪乡）")
        numbers.append(agency_demo.run(hub, say))
    except HubError as exc:
        say(f"  [red]✗ 帮代办 {escape(str(exc))}[/]")
        failed += 1
    say("  网上办（浙里办 sandbox identity service）")
    if done := online_demo.run(hub, say):
        numbers.append(done)
    return failed


def _documents_and_licences(hub: Hub, numbers: list[str], out: Console) -> int:
    """Seal what is owed, check every sealed file the way `hub documents verify` and `hub licences
    verify` do, and say what was issued. Returns the number of problems."""
    summary = documents_job(hub, limit=1000)
    problems = list(summary.errors)
    kinds: Counter[str] = Counter()
    with hub.sessions() as session:
        issued = session.execute(
            select(Document, Application.number)
            .join(Application, Application.id == Document.application_id)
            .where(Application.number.in_(numbers), Document.state == "issued")
        ).all()
        licences = list(session.scalars(select(Licence).where(Licence.application_number.in_(numbers))))
        session.expunge_all()
    for doc, number in issued:
        check = verify_file(hub, hub.store.path_of(doc.sha256).read_bytes())
        kinds[KINDS[doc.kind].title] += 1
        if not check.ok:
            problems.append(f"{number} {KINDS[doc.kind].title}: 印章或摘要校验失败 (seal or digest does not verify)")
    out.print(
        f"  加盖电子印章的文书 sealed notices: {len(issued)} 份，校验通过 {len(issued) - len(problems)} 份 — "
        + "、".join(f"{title} {n}" for title, n in sorted(kinds.items()))
    )
    for licence in licences:
        seals = verify_pdf(hub, licence_pdf(hub, licence.number))
        ok = bool(seals) and all(c.ok for c in seals)
        problems += [] if ok else [f"{licence.number}: 电子证照印章校验失败 (the licence's seal does not verify)"]
        out.print(
            f"  电子证照 {licence.type_name} [bold]{licence.number}[/]（{licence.issuer_name}，持证人 "
            f"{escape(mask_name(licence.holder_name))}）{'印章有效 ✓' if ok else '✗'}  "
            f"查验页 public check: /l/{licence.code}"
        )
    for problem in problems:
        out.print(f"[red]✗ {escape(problem)}[/]")
    return len(problems)


def _paper(app) -> str:
    """Uploaded materials, or 无纸化 when none and online checks or licences stood in for them."""
    uploaded = sum(m.kind == "material" for m in app.materials)
    if uploaded:
        return f"{uploaded} 份"
    return "无纸化" if svc.verified_materials(app) else "无"


# One account per role for trying the web UI after the walk-through (the names match the actors above).
DEMO_ACCOUNTS = [
    ("wangfang", "王芳", Role.teller, "bank-xiahong", None),
    ("chenjing", "陈静", Role.enclave_clerk, "enclave-hangzhou", None),
    ("linxiao", "民政局 林晓", Role.officer, None, "ts-mzj"),
    ("zhangwei", "医保局 张伟", Role.officer, None, "ts-ybj"),
    ("huanglei", "公积金 黄磊", Role.officer, None, "ts-gjj"),
    ("lina", "李娜", Role.enclave_clerk, "enclave-shanghai", None),
    ("zhangmin", "张敏", Role.clerk, "hall-county", None),
    ("zhengjie", "税务局 郑洁", Role.officer, None, "ts-swj"),
    ("supervisor", "督查 赵敏", Role.supervisor, None, None),
    ("ops", "运维 孙强", Role.ops, None, None),
]


def demo_accounts(home: Path) -> list[tuple[str, str, str, str]]:
    """Create the demo accounts with fresh random passwords: (username, password, role, where)."""
    from hub.users import add_user, list_users, reset_password

    hub = Hub.open(home, connectors=False)
    out = []
    try:
        for username, name, role, desk, department in DEMO_ACCOUNTS:
            password = secrets.token_urlsafe(9)
            add_user(hub, username, password, display_name=name, role=role, desk=desk, department=department)
            where = (
                hub.catalog.desks[desk].name if desk else hub.catalog.departments[department].name if department else ""
            )
            out.append((username, password, role.value, where))
        # the 代办员 step ⑨ put on the roster (its own login): a fresh password to log in with too
        # (the agent's board /agency and the offline kit /kit/)
        if agency_demo.AGENT_LOGIN in {p.username for p in list_users(hub)}:
            password = secrets.token_urlsafe(9)
            reset_password(hub, agency_demo.AGENT_LOGIN, password)
            out.append((agency_demo.AGENT_LOGIN, password, Role.agent.value, hub.catalog.desks[agency_demo.DESK].name))
    finally:
        hub.close()
    return out
