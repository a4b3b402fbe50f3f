"""A full remote signing in Debian's Chromium: the desk page and the officer page, each with the
browser's fake camera and microphone, through the hub on 127.0.0.1.

Run by tests/test_signing_browser.py inside a fresh network namespace (`unshare -n`, loopback
only), so that no media can leave the machine whatever Chromium gathers:

    python -m tests.support.signing_e2e RESULT.json

Writes what it saw to RESULT.json and screenshots to test-artifacts/signing-*.png. Both pages run
at 1366×768 (a county office's laptop): at every step the page must not scroll and both videos
and the step's buttons must lie inside the window (`layout`). The desk does not open the session
itself: it waits on its own list page for the alert that the officer started one."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from hub import applications as svc
from hub import signing
from hub.lifecycle import Role
from hub.signing_key import signing_key
from hub.users import add_user
from tests.conftest import CST, Clock
from tests.support.samples import SH_CLERK, fund_retire, officer
from tests.support.webserver import CHROMIUM_ARGS as BASE_ARGS
from tests.support.webserver import serving, sqlite_hub
from video import evidence

CHROMIUM_ARGS = [
    *BASE_ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # real (loopback) candidates, not .local names
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESK = ("chenjing", "shanghai-飞地-2026")
OFFICER = ("zhaolei", "gongjijin-审批-2026")
# Every wait below is on a state (the session's step on the server, a peer connection's state, a
# page element); this is only the guard that ends a walk which stopped making progress. It is
# generous because CI shares 2 cores between Chromium, the hub, aiortc's encoders and whatever
# else runs; tests/test_signing_browser.py gives the whole subprocess a little more.
GUARD_SECONDS = 600
# Records every RTCPeerConnection the page makes, so that the walk can wait on (and report) its
# connection state: the page keeps its own in a closure.
PEERS_SCRIPT = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__peers = [];
  function Recorded(...args) {
    const pc = new Native(...args);
    window.__peers.push(pc);
    return pc;
  }
  Recorded.prototype = Native.prototype;
  window.RTCPeerConnection = Recorded;
})();
"""
CONNECTED = "window.__peers.some((pc) => pc.connectionState === 'connected')"
# the page's own answer to a failed start: the error shown and the start button usable again
START_FAILED = "document.querySelector('#error').textContent !== '' && !document.querySelector('#start-media').disabled"
POLL_MS = 200
VIEWPORT = {"width": 1366, "height": 768}
# what must be in the window at every step, without scrolling: both videos and the active
# panel's visible buttons (an empty list means the page fits)
LAYOUT_JS = """() => {
  const W = window.innerWidth, H = window.innerHeight;
  const out = [];
  if (document.documentElement.scrollHeight > H + 1) out.push(`page scrolls: ${document.documentElement.scrollHeight} > ${H}`);
  const els = [...document.querySelectorAll('#remote, #local, .panel.active button, .panel.active canvas')];
  for (const el of els) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;  // not shown in this step
    if (r.left < 0 || r.top < 0 || r.right > W + 1 || r.bottom > H + 1) {
      out.push(`${el.id || el.dataset.act || el.tagName}: ${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.right)}x${Math.round(r.bottom)}`);
    }
  }
  return out;
}"""
SESSION_JS = "async (id) => (await fetch(`/api/v1/signing/${id}`, {credentials: 'same-origin'})).json()"


NAVIGATION_MS = 120_000  # one page to the next: far more than any machine needs, far less than the guard


class Guard:
    """The walk's one deadline; each wait gets the time that is left (in ms, for Playwright)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def ms(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the signing walk made no progress within {GUARD_SECONDS} s")
        return left * 1000


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"signing-{name}.png"), full_page=True)


def log_in(page: Page, base: str, who: tuple[str, str]) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.locator("form[action='/login'] button").click()
    # logged in when the page we land on offers 退出 (a load state alone may be the login page's)
    page.locator("header form[action='/logout'] button").wait_for(state="visible")


def remote_width(page: Page) -> int:
    return page.evaluate("document.querySelector('#remote').videoWidth")


def session(page: Page, session_id: str) -> dict[str, Any]:
    """The session as the hub has it (GET /api/v1/signing/{id}, with this page's login)."""
    return page.evaluate(SESSION_JS, session_id)


def what_pages_show(pages: dict[str, Page]) -> dict[str, Any]:
    """For a failure's report: each page's address and the start of its text (a page that never
    reached the signing room shows where it stopped, e.g. an error page), its peer connections,
    status and error lines."""
    seen: dict[str, Any] = {}
    for role, page in pages.items():
        try:
            seen[role] = page.evaluate(
                """() => ({
                  url: location.href,
                  text: (document.body?.innerText || '').slice(0, 400),
                  peers: (window.__peers || []).map((pc) => [pc.connectionState, pc.iceConnectionState, pc.iceGatheringState]),
                  status: document.querySelector('#status')?.textContent,
                  error: document.querySelector('#error')?.textContent,
                  current: document.querySelector('#steps li.current')?.dataset.step,
                })"""
            )
        except Exception as exc:  # the page itself may be what failed
            seen[role] = repr(exc)
    return seen


def until(page: Page, js: str, guard: Guard, arg: Any = None) -> Any:
    """Poll `js` (a function) in the page until it returns something truthy, and return that.
    Playwright's wait_for_function would evaluate a string, which the page's CSP forbids."""
    while True:
        value = page.evaluate(js, arg)
        if value:
            return value
        page.wait_for_timeout(min(POLL_MS, guard.ms()))


def start_media(pages: dict[str, Page], guard: Guard) -> None:
    """Each side turns on camera and microphone, and its peer connection to the hub comes up (or
    the page reports why not: then the walk fails with the page's own message).

    One side after the other: two first offers that reach the hub at the same moment race in
    video/web.py `_live` (both find no room, the second cannot take the session folder's lock
    and is answered 409 "session runs on another media node"); on a busy machine that is what
    kept the desk from ever connecting. That race is the hub's to fix, not this walk's to hit by
    chance."""
    for role, p in pages.items():
        p.locator("#start-media").click(timeout=guard.ms())
        outcome = until(p, f"() => ({CONNECTED}) ? 'connected' : ({START_FAILED}) ? 'failed' : null", guard)
        if outcome != "connected":
            raise RuntimeError(f"{role}: the page could not start its media: {p.locator('#error').inner_text()}")


def wait_for_step_change(page: Page, session_id: str, step: str, guard: Guard) -> dict[str, Any]:
    """The session as the hub has it once it is past `step` (or sent back, or ended): polled
    through the API, as the page itself polls it."""
    while True:
        s = session(page, session_id)
        if s["state"] != "open" or s["step"] != step:
            return s
        page.wait_for_timeout(min(POLL_MS, guard.ms()))


def check_layout(pages: dict[str, Page], step: str, result: dict[str, Any]) -> None:
    """Record what does not fit the 1366×768 window on either page at this step."""
    for role, p in pages.items():
        for problem in p.evaluate(LAYOUT_JS):
            result.setdefault("layout", []).append(f"{role} at {step}: {problem}")


def walk(o: Page, d: Page, session_id: str, guard: Guard, result: dict[str, Any]) -> None:
    """Do what the session's current step asks for until it is sealed. Driven by the hub's state,
    not a fixed script: a connection that drops for a few seconds (a busy machine) sends the
    session back to the identity check, and the walk goes through it again."""
    visits: dict[str, int] = {}
    s = session(o, session_id)
    while s["state"] == "open":
        step = s["step"]
        visits[step] = visits.get(step, 0) + 1
        for p in (o, d):  # the page shows this step's panel (it polls each second)
            expect(p.locator(f".panel.active[data-panel={step}]")).to_have_count(1, timeout=guard.ms())
        check_layout({"officer": o, "desk": d}, step, result)
        if step == "preflight":  # passes by itself once both pictures and sounds arrive
            pass
        elif step == "consent":
            d.locator("[data-panel=consent] [data-act=consent]").click(timeout=guard.ms())
        elif step == "identity":
            # beside the video: the applicant's ID details to compare the face with
            card = o.locator("#id-card")
            expect(card).to_be_visible(timeout=guard.ms())
            result["id_card"] = {
                "name": card.locator("#id-name").inner_text(),
                "id": card.locator("#id-number").inner_text(),
            }
            shot(o, "2-officer-identity")
            for box in o.locator("[data-panel=identity] input[type=checkbox]").all():
                box.check(timeout=guard.ms())
            o.locator("[data-act=identity]").click(timeout=guard.ms())
        elif step == "readback":
            if not s["readback_shown"]:
                o.locator("[data-act=readback_show]").click(timeout=guard.ms())
            expect(d.locator("#confirm-readback")).to_be_enabled(timeout=guard.ms())
            expect(d.locator("#readback")).to_contain_text("吴建国", timeout=guard.ms())
            shot(d, "2-desk-readback")
            d.locator("#confirm-readback").click(timeout=guard.ms())
        elif step == "signature":
            d.locator("#clear-pad").click(timeout=guard.ms())
            pad = d.locator("#pad").bounding_box(timeout=guard.ms())
            d.mouse.move(pad["x"] + 40, pad["y"] + 150)
            d.mouse.down()
            for i in range(1, 30):  # a scribble across the pad
                d.mouse.move(pad["x"] + 40 + i * 15, pad["y"] + 110 + (30 if i % 2 else -30))
            d.mouse.up()
            d.locator("[data-act=signature]").click(timeout=guard.ms())
        elif step == "otp":
            expect(d.locator("#otp")).to_have_text(re.compile(r"^\d{6}$"), timeout=guard.ms())
            code = d.locator("#otp").inner_text()
            shot(d, "3-desk-code")
            o.fill("#otp-code", code, timeout=guard.ms())
            o.locator("[data-act=otp]").click(timeout=guard.ms())
        elif step == "seal":
            o.locator("[data-act=seal]").click(timeout=guard.ms())
        s = wait_for_step_change(o, session_id, step, guard)
    result["visits"] = visits


def main(out: Path) -> int:
    result: dict[str, Any] = {"ok": False}
    guard = Guard(GUARD_SECONDS)
    with (
        tempfile.TemporaryDirectory() as tmp,
        sqlite_hub(Path(tmp), Clock(datetime(2026, 9, 21, 10, tzinfo=CST))) as hub,
    ):
        hub.settings.signing.ice_host_addresses = ["127.0.0.1"]
        hub.settings.signing.segment_seconds = 2
        add_user(hub, *DESK, display_name="陈静", role=Role.enclave_clerk, desk="enclave-shanghai")
        add_user(hub, *OFFICER, display_name="赵磊", role=Role.officer, department="ts-gjj")
        number = svc.create(hub, fund_retire(), SH_CLERK).number
        svc.transition(hub, number, "pre_review", SH_CLERK)
        svc.transition(hub, number, "accept", officer("ts-gjj"))
        pages: dict[str, Page] = {}
        try:
            with serving(hub) as base, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
                errors: list[str] = []
                for role in ("officer", "desk"):
                    context = browser.new_context(locale="zh-CN", viewport=VIEWPORT)
                    context.set_default_timeout(GUARD_SECONDS * 1000)
                    context.add_init_script(PEERS_SCRIPT)
                    page = context.new_page()
                    page.on("pageerror", lambda exc, role=role: errors.append(f"{role}: {exc}"))
                    log_in(page, base, OFFICER if role == "officer" else DESK)
                    pages[role] = page
                try:
                    sealed(pages, base, number, guard, result)
                except Exception:
                    result["pages"] = what_pages_show(pages)
                    raise
                browser.close()
            session_id = result["session"]
            s, _ = signing.read_any(hub, session_id)
            folder = signing.folder_of(hub, s)
            verdict = evidence.verify_folder(folder, signing_key(hub).public_key())
            result |= {
                "state": s.state,
                "verified": verdict.ok,
                "problems": verdict.problems,
                "files": [f["path"] for f in (verdict.manifest or {}).get("files", [])],
                "page_errors": errors,
                "timeline": [e.action for e in svc.read(hub, number, officer("ts-gjj")).events],
                "ok": True,
            }
        except Exception:
            result["error"] = traceback.format_exc()
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if result["ok"] else 1


def sealed(pages: dict[str, Page], base: str, number: str, guard: Guard, result: dict[str, Any]) -> None:
    """From the application's page to a sealed signing, on both pages."""
    o, d = pages["officer"], pages["desk"]
    d.goto(f"{base}/applications")  # the desk at work on another page
    expect(d.locator("#desk-alert")).to_be_hidden()
    o.goto(f"{base}/applications/{number}")
    # pressed from the keyboard, not clicked at coordinates: the page's material previews may still
    # be laying out, and a click that lands beside the button starts nothing (the walk then waited
    # out its whole guard on the application page)
    o.locator(f"form[action='/applications/{number}/signing'] button").press("Enter")
    o.wait_for_url(f"{base}/signing/*", timeout=min(NAVIGATION_MS, guard.ms()))
    session_id = result["session"] = o.url.rsplit("/", 1)[-1]
    alert = d.locator("#desk-alert")  # the desk's page is told, without reloading
    expect(alert).to_contain_text(f"远程面签已开始 — 办件号 {number}", timeout=guard.ms())
    result["desk_alert"] = alert.inner_text()
    shot(d, "0-desk-alerted")
    alert.locator(f"a[href='/signing/{session_id}']").press("Enter")  # the alert box just appeared
    d.wait_for_url(f"{base}/signing/{session_id}", timeout=min(NAVIGATION_MS, guard.ms()))
    start_media(pages, guard)
    for p in (o, d):  # each page shows the other side's picture
        until(p, "() => document.querySelector('#remote').videoWidth > 0", guard)
    result["remote_video"] = {"officer": remote_width(o), "desk": remote_width(d)}
    check_layout(pages, "connected", result)
    shot(o, "1-officer-connected")
    shot(d, "1-desk-connected")
    walk(o, d, session_id, guard, result)
    for p in (o, d):
        expect(p.locator("[data-panel=ended].active")).to_contain_text("面签完成", timeout=guard.ms())
    shot(o, "4-officer-sealed")
    shot(d, "4-desk-sealed")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
