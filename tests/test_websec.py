"""Web security findings of the December review, each pinned by a test that failed before its fix:
no caching of personal data, secret query parameters out of the logs, no typed passwords in the
audit log, desk credentials only with a second person's approval, a real outbox page, a login
throttle shared through Redis."""

from __future__ import annotations

import io
import logging

from fastapi.testclient import TestClient
from sqlalchemy import select

from hub import audit
from hub.context import Hub
from hub.lifecycle import Role
from hub.logs import make_handler
from hub.storage.tables import AttachedMaterial
from hub.users import add_user
from tests.test_web_api import FILES, PASSWORD, apps, login, submit, tokens, web  # noqa: F401  (fixtures)

# ---------------------------------------------------------------- Cache-Control


def test_personal_data_is_never_cached(web: TestClient, tokens, apps, hub: Hub):  # noqa: F811
    own = apps["xiahong"]
    t = tokens["teller"]
    detail = web.get(f"/api/v1/applications/{own}", headers=t)
    assert detail.status_code == 200 and detail.headers["cache-control"] == "no-store"
    with hub.sessions() as session:
        material_id = session.scalars(select(AttachedMaterial.id)).first()
    download = web.get(f"/api/v1/applications/{own}/materials/{material_id}", headers=t)
    assert download.status_code == 200 and download.headers["cache-control"] == "no-store"
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    login(web, "wangfang")
    page = web.get(f"/applications/{own}", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    # errors and the login page too (a CSRF token); the hub's own assets stay cacheable
    assert web.get("/api/v1/applications/nope", headers=t).headers["cache-control"] == "no-store"
    assert web.get("/login").headers["cache-control"] == "no-store"
    css = web.get("/static/app.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")


# ---------------------------------------------------------------- secrets out of the logs


def test_access_log_line_loses_the_status_key():
    out = io.StringIO()
    handler = make_handler("text", out)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/s/XH-2026-000001?k=0123456789abcdef0123&lang=en", "1.1", 200),
        None,
    )
    handler.handle(record)
    json_out = io.StringIO()
    make_handler("json", json_out).handle(
        logging.LogRecord("hub", logging.INFO, __file__, 1, "status link %s", ("/s/X?lang=zh&k=0123456789abcdef",), None)
    )
    for line in (out.getvalue(), json_out.getvalue()):
        assert "0123456789abcdef" not in line and "k=[redacted]" in line, line
    assert "lang=en" in out.getvalue()  # harmless parameters stay readable


# ---------------------------------------------------------------- failed logins in the audit log


def test_failed_login_audits_only_real_usernames(web: TestClient, hub: Hub):  # noqa: F811
    add_user(hub, "linxiao", PASSWORD, display_name="林晓", role=Role.officer, department="ts-mzj")
    assert login(web, "Tongban#2026-secret", "anything-at-all").status_code == 401  # a password in the wrong box
    assert login(web, "linxiao", "wrong-password-x").status_code == 401
    failed = [e for e in audit.entries(hub) if e.action == "login_failed"]
    assert [e.actor for e in reversed(failed)] == ["(unknown user)", "linxiao"]
    for e in failed:
        assert "Tongban#2026-secret" not in repr((e.actor, e.target, e.data))
