"""The demo's 跨省通办 walk-through: a 福鼎 (Fujian) item collected at a 泰顺 bank outlet, sent to
the 福鼎 hub as a signed message, accepted and decided there, and its result and status brought
back into 泰顺's event chain — two real hubs, each with its own home and database, talking over
loopback. `make demo` starts the 福鼎 hub (`hub sandbox partner-home`) and names its home in
HUB_DEMO_PARTNER_HOME; the 福鼎 officer's steps are taken on that hub's own database.

Messages carry real timestamps (a partner refuses a stale one), so this part runs on the real
clock, not the demo's simulated one."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from rich.markup import escape

from hub import applications as svc
from hub.applications import Actor
from hub.context import Hub
from hub.errors import HubError
from hub.events import verify_chain
from hub.exchange import catalogue, log
from hub.exchange.identity import verification_keys
from hub.exchange.send import send
from hub.ids import id_check_digit, mask_id
from hub.lifecycle import STATE_ZH, Role

PARTNER_HOME_ENV = "HUB_DEMO_PARTNER_HOME"
PDF = b"%PDF-1.4\n% Tongban Hub demo scan (cross-region)\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@contextmanager
def _served(hub: Hub, url: str) -> Iterator[None]:
    """Our hub's web app at `url` while the block runs: the partner delivers its news there."""
    import uvicorn

    from hub.web.app import create_app

    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", parts.port or 80))
    server = uvicorn.Server(uvicorn.Config(create_app(hub), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def run(home: Path, say: Callable[[str], None]) -> list[str]:
    """The walk-through; returns problems (empty when every chain and both logs verify)."""
    partner_home = os.environ.get(PARTNER_HOME_ENV)
    hub = Hub.open(home)
    try:
        partner = hub.partners.by_name.get("fuding")
        if partner is None or not partner_home:
            say("  （未配置福鼎伙伴枢纽，跳过；`make demo` 会启动它 — skipped: no partner hub）")
            return []
        theirs = Hub.open(Path(partner_home))
        try:
            return _walk(hub, theirs, partner, say)
        finally:
            theirs.close()
    finally:
        hub.close()


def _walk(hub: Hub, theirs: Hub, partner, say: Callable[[str], None]) -> list[str]:
    deadline = time.monotonic() + 30  # `make demo` starts the partner hub beside us: give it time to listen
    while True:
        try:
            version, count, _ = catalogue.sync(hub, partner)
            break
        except HubError as exc:
            if time.monotonic() > deadline:
                say(f"  福鼎枢纽无应答，跳过 (partner hub not answering): {escape(str(exc))}")
                return []
            time.sleep(0.5)
    say(f"  同步跨域通办目录：福鼎 {count} 项，版本 {version}（签名已验）")
    teller = Actor(name="王芳", role=Role.teller, desk="bank-xiahong")
    first17 = "35098219480612" + "024"
    app = svc.create(
        hub,
        svc.NewApplication(
            subject="fuding:GG00501000",
            desk="bank-xiahong",
            applicant=svc.Applicant(name="郑阿公", id=first17 + id_check_digit(first17)),
            form={"contact_phone": "13905770088", "delivery_method": "代收窗口领取"},
            materials=[
                svc.MaterialIn(name="居民身份证", filename="身份证.pdf", content=PDF + b"zheng"),
                svc.MaterialIn(name="近期免冠彩色证件照", filename="照片.pdf", content=PDF + b"photo"),
            ],
        ),
        teller,
        first_review=svc.FirstReview(checklist=["身份证原件已核", "照片符合要求"], note="福鼎户籍，现居泰顺"),
    )
    say(
        f"  {teller.name}（下洪农商银行网点）代收福鼎市事项：{app.number} 老年人优待证，"
        f"申请人 郑阿公 {mask_id(app.applicant_id)}，收件地→审批地 {app.collecting_division}→{app.deciding_division}"
    )
    with _served(hub, partner_url_of_us(theirs)):
        sent = send(hub)
        link = svc.read(hub, app.number, Actor(name="demo", role=Role.supervisor))
        remote = next((e.data.get("remote_number") for e in link.events if e.action == "partner_received"), None)
        say(f"  签名报文送达福鼎枢纽：{sent.delivered} 件，对方收件号 {remote}（签名回执已验）")
        officer = Actor(name="福鼎市民政局 陈丽", role=Role.officer, department="fd-mzj")
        for action in ("accept", "start_review", "approve"):
            b = svc.transition(theirs, remote, action, officer)
        b = svc.read(theirs, remote, officer)
        svc.attach_result(theirs, remote, b.parts[0].id, "老年人优待证.pdf", PDF + b"card", officer)
        b = svc.transition(theirs, remote, "issue", officer)
        say(f"  福鼎：{officer.name} 受理、审批、出件（期限 {b.due_date}，按福鼎工作日历）")
        back = send(theirs)
        say(f"  福鼎枢纽回传状态与结果文件：{back.delivered} 条报文")
    mine = svc.read(hub, app.number, Actor(name="demo", role=Role.supervisor))
    results = [m.name for m in mine.materials if m.kind == "result"]
    chain = verify_chain(mine)
    say(
        f"  泰顺办件 {mine.number}：[bold]{STATE_ZH[mine.state]}[/]，结果 {'、'.join(results) or '—'}，"
        f"事件链 {len(mine.events)} 条 {'✓' if chain.ok else '✗'}；窗口当面送达"
    )
    problems = [] if chain.ok else [f"{mine.number}: {chain.problem}"]
    for name, h in (("泰顺", hub), ("福鼎", theirs)):
        with h.sessions() as session:
            report = log.verify(log.entries(session), verification_keys(h))
        say(f"  {name}消息日志：{report.entries} 条，{report.signatures_checked} 个签名校验通过")
        problems += [f"{name} log: {p}" for p in report.problems]
    return problems


def partner_url_of_us(theirs: Hub) -> str:
    """Where the partner hub sends to us (its partners/taishun.yaml)."""
    me = next(p for p in theirs.partners.by_name.values() if p.hub_id == "taishun")
    return me.spec.url
