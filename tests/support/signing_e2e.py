"""A full remote signing in Debian's Chromium: the desk page and the officer page, each with the
browser's fake camera and microphone, through the hub on 127.0.0.1.

Run by tests/test_signing_browser.py inside a fresh network namespace (`unshare -n`, loopback
only), so that no media can leave the machine whatever Chromium gathers:

    python -m tests.support.signing_e2e RESULT.json

Writes what it saw to RESULT.json and screenshots to test-artifacts/signing-*.png."""

from __future__ import annotations

import json
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from hub import applications as svc
from hub import signing
from hub.lifecycle import Role
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
TIMEOUT_MS = 60_000  # generous: CI shares 2 cores between Chromium, the hub and the encoders


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"signing-{name}.png"), full_page=True)


def log_in(page, base: str, who: tuple[str, str]) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.locator("form[action='/login'] button").click()
    page.wait_for_load_state()


def current(page, step: str) -> None:
    expect(page.locator(f"#steps li.current[data-step={step}]")).to_be_visible(timeout=TIMEOUT_MS)


def remote_width(page) -> int:
    return page.evaluate("document.querySelector('#remote').videoWidth")


def main(out: Path) -> int:
    result: dict = {"ok": False}
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
        try:
            with serving(hub) as base, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
                pages = {}
                errors: list[str] = []
                for role in ("officer", "desk"):
                    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 1000})
                    context.set_default_timeout(TIMEOUT_MS)
                    page = context.new_page()
                    page.on("pageerror", lambda exc, role=role: errors.append(f"{role}: {exc}"))
                    log_in(page, base, OFFICER if role == "officer" else DESK)
                    pages[role] = page
                o, d = pages["officer"], pages["desk"]
                o.goto(f"{base}/applications/{number}")
                o.locator(f"form[action='/applications/{number}/signing'] button").click()
                o.wait_for_url(f"{base}/signing/*")
                session_id = o.url.rsplit("/", 1)[-1]
                d.goto(f"{base}/applications/{number}")
                d.locator(f"a[href='/signing/{session_id}']").click()
                d.wait_for_url(f"{base}/signing/{session_id}")
                for p in (o, d):
                    p.locator("#start-media").click()
                for p in (o, d):
                    current(p, "consent")
                for p in (o, d):  # each page shows the other side's picture
                    p.wait_for_function("document.querySelector('#remote').videoWidth > 0", timeout=TIMEOUT_MS)
                result["remote_video"] = {"officer": remote_width(o), "desk": remote_width(d)}
                shot(o, "1-officer-connected")
                shot(d, "1-desk-connected")
                d.locator("[data-panel=consent] [data-act=consent]").click()
                current(o, "identity")
                for box in o.locator("[data-panel=identity] input[type=checkbox]").all():
                    box.check()
                o.locator("[data-act=identity]").click()
                current(o, "readback")
                o.locator("[data-act=readback_show]").click()
                expect(d.locator("#confirm-readback")).to_be_enabled(timeout=TIMEOUT_MS)
                expect(d.locator("#readback")).to_contain_text("吴建国")
                shot(d, "2-desk-readback")
                d.locator("#confirm-readback").click()
                current(d, "signature")
                pad = d.locator("#pad").bounding_box()
                d.mouse.move(pad["x"] + 40, pad["y"] + 150)
                d.mouse.down()
                for i in range(1, 30):  # a scribble across the pad
                    d.mouse.move(pad["x"] + 40 + i * 15, pad["y"] + 110 + (30 if i % 2 else -30))
                d.mouse.up()
                d.locator("[data-act=signature]").click()
                current(d, "otp")
                expect(d.locator("#otp")).to_have_text(__import__("re").compile(r"^\d{6}$"), timeout=TIMEOUT_MS)
                code = d.locator("#otp").inner_text()
                shot(d, "3-desk-code")
                current(o, "otp")
                o.fill("#otp-code", code)
                o.locator("[data-act=otp]").click()
                current(o, "seal")
                o.locator("[data-act=seal]").click()
                for p in (o, d):
                    expect(p.locator("[data-panel=ended].active")).to_contain_text("面签完成", timeout=TIMEOUT_MS)
                shot(o, "4-officer-sealed")
                shot(d, "4-desk-sealed")
                browser.close()
            s, _ = signing.read_any(hub, session_id)
            folder = signing.folder_of(hub, s)
            verdict = evidence.verify_folder(folder, evidence.signing_key(hub).public_key())
            result |= {
                "session": session_id,
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


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
