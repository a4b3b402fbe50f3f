"""Web security findings of the December review, each pinned by a test that failed before its fix:
no caching of personal data, secret query parameters out of the logs, no typed passwords in the
audit log, desk credentials only with a second person's approval, a real outbox page, a login
throttle shared through Redis."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub import audit
from hub.context import Hub
from hub.lifecycle import Role
from hub.logs import make_handler
from hub.storage.tables import ApiToken, Application, AttachedMaterial, OutboxRow, Part
from hub.users import add_user
from hub.web.app import create_app
from tests.support.sshd import free_port
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
        logging.LogRecord(
            "hub", logging.INFO, __file__, 1, "status link %s", ("/s/X?lang=zh&k=0123456789abcdef",), None
        )
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


# ---------------------------------------------------------------- who may issue desk credentials


def _token_count(hub: Hub) -> int:
    with hub.sessions() as session:
        return len(session.scalars(select(ApiToken.id)).all())


def test_ops_cannot_mint_a_desk_token_alone(web: TestClient, tokens, hub: Hub):  # noqa: F811
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    add_user(hub, "zhaolei", PASSWORD, display_name="赵磊", role=Role.teller, desk="bank-baizhang")
    add_user(hub, "chenjing", PASSWORD, display_name="陈静", role=Role.supervisor)
    add_user(hub, "yunwei", PASSWORD, display_name="运维", role=Role.ops)
    body = {"name": "bank", "role": "teller", "desk": "bank-xiahong", "scopes": ["applications:read"]}
    before = _token_count(hub)
    refused = [
        {},  # ops alone
        {"approver": "yunwei", "approver_password": PASSWORD},  # ops vouching for ops
        {"approver": "zhaolei", "approver_password": PASSWORD},  # a teller of another bank
        {"approver": "wangfang", "approver_password": "not-her-password"},
        {"approver": "nobody-at-all", "approver_password": PASSWORD},
    ]
    for extra in refused:
        r = web.post("/api/v1/ops/tokens", json=body | extra, headers=tokens["ops"])
        assert r.status_code == 403, (extra, r.text)
        assert r.json()["errors"][0]["field"] == "approver" and "token" not in r.json()
    assert _token_count(hub) == before  # nothing written
    # a session of the ops person (not only a bearer token) is refused the same way
    login(web, "yunwei")
    csrf = web.get("/ops", headers={"accept": "text/html"}).text.split('name="csrf_token" value="')[1].split('"')[0]
    r = web.post("/api/v1/ops/tokens", json=body, headers={"x-csrf-token": csrf})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "approver"
    web.cookies.clear()
    for approver in ("wangfang", "chenjing"):  # the desk's own teller, or a supervisor
        r = web.post(
            "/api/v1/ops/tokens",
            json=body | {"approver": approver, "approver_password": PASSWORD},
            headers=tokens["ops"],
        )
        assert r.status_code == 201, r.text
        assert audit.entries(hub)[0].data["approved_by"] == approver
        assert (
            web.get("/api/v1/me", headers={"authorization": f"Bearer {r.json()['token']}"}).json()["role"] == "teller"
        )


def cli(home, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_cli_desk_credentials_need_a_second_person(tmp_path):
    home = tmp_path / "home"
    assert cli(home, "init", str(home)).returncode == 0
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    new = tmp_path / "new"
    new.write_text("another-long-password")
    # the first supervisor needs nobody (someone must start); the second needs the first
    assert (
        cli(
            home, "users", "add", "boss", "--name", "陈静", "--role", "supervisor", "--password-file", str(pw)
        ).returncode
        == 0
    )
    r = cli(home, "users", "add", "boss2", "--name", "钱", "--role", "supervisor", "--password-file", str(pw))
    assert r.returncode != 0 and "approver" in r.stderr
    teller = ["users", "add", "wangfang", "--name", "王芳", "--role", "teller", "--desk", "bank-xiahong"]
    r = cli(home, *teller, "--password-file", str(pw))
    assert r.returncode != 0 and "approver" in r.stderr, r.stderr
    r = cli(home, *teller, "--password-file", str(pw), "--approver", "boss", "--approver-password-file", str(new))
    assert r.returncode != 0 and "approver" in r.stderr  # the approver's password is wrong
    assert "wangfang" not in cli(home, "users", "list").stdout  # nothing written
    r = cli(home, *teller, "--password-file", str(pw), "--approver", "boss", "--approver-password-file", str(pw))
    assert r.returncode == 0, r.stderr
    # ops at the host cannot take the teller's account over with a new password …
    r = cli(home, "users", "reset-password", "wangfang", "--password-file", str(new))
    assert r.returncode != 0 and "approver" in r.stderr
    # … nor mint her desk's token
    token = ["tokens", "create", "bank", "--role", "teller", "--desk", "bank-xiahong", "--scope", "applications:read"]
    r = cli(home, *token)
    assert r.returncode != 0 and "approver" in r.stderr
    assert "bank" not in cli(home, "tokens", "list").stdout
    r = cli(home, *token, "--approver", "wangfang", env={"HUB_APPROVER_PASSWORD": PASSWORD})
    assert r.returncode == 0 and "tbh_" in r.stdout, r.stderr
    r = cli(home, "tokens", "create", "all", "--role", "system", "--scope", "ops")
    assert r.returncode != 0 and "approver" in r.stderr  # a system token: a supervisor approves
    # ops tokens (Prometheus) stay ops' own business
    assert cli(home, "tokens", "create", "prometheus", "--role", "ops", "--scope", "ops").returncode == 0
    # disabling needs nobody; giving the account back is issuing a credential again
    assert cli(home, "users", "disable", "wangfang").returncode == 0
    r = cli(home, "users", "disable", "wangfang", "--enable")
    assert r.returncode != 0 and "approver" in r.stderr
    r = cli(home, "users", "disable", "wangfang", "--enable", "--approver", "boss", "--approver-password-file", str(pw))
    assert r.returncode == 0 and "wangfang: enabled" in r.stdout, r.stderr


# ---------------------------------------------------------------- the outbox, a page at a time


def test_outbox_pages_through_every_row(web: TestClient, tokens, apps, hub: Hub):  # noqa: F811
    with hub.transaction() as session:
        app = session.scalars(select(Application).where(Application.number == apps["xiahong"])).one()
        part_id = session.scalars(select(Part.id).where(Part.application_id == app.id)).first()
        now = datetime(2026, 10, 1, 9)
        session.add_all(
            OutboxRow(
                part_id=part_id,
                application_id=app.id,
                connection="ts-mzj",
                kind=f"k{i}",
                state="dead" if i % 5 == 0 else "pending",
                next_attempt_at=now,
                created_at=now,
            )
            for i in range(230)
        )
    ops_token = tokens["ops"]
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = web.get("/api/v1/ops/outbox", params={"limit": 100, "offset": offset}, headers=ops_token).json()
        assert page["total"] == 230 and page["limit"] == 100
        seen += [r["id"] for r in page["items"]]
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == 230  # every row once: none silently cut off at 200
    dead = web.get("/api/v1/ops/outbox", params={"state": "dead", "limit": 10}, headers=ops_token).json()
    assert dead["total"] == 46 and len(dead["items"]) == 10 and dead["next_offset"] == 10
    r = web.get("/api/v1/ops/outbox", params={"limit": 501}, headers=ops_token)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"
    # the ops page pages the same way
    add_user(hub, "yunwei", PASSWORD, display_name="运维", role=Role.ops)
    login(web, "yunwei")
    html = web.get("/ops", params={"outbox": "pending", "outbox_offset": 100}, headers={"accept": "text/html"}).text
    assert "共 184 条" in html and "第 101—184 条" in html and "outbox_offset=0" in html
    # and so does `hub outbox list`, which says how many there are in all
    from typer.testing import CliRunner

    from hub.cli import app as cli

    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False)}
    home = ["--home", str(hub.settings.home), "outbox", "list"]
    shown = CliRunner().invoke(cli, [*home, "--limit", "200"], env=env)
    assert shown.exit_code == 0 and "1–200 of 230; next page: --offset 200" in shown.output, shown.output
    rest = CliRunner().invoke(cli, [*home, "--offset", "200", "--json"], env=env)
    listed = __import__("json").loads(rest.output)
    assert listed["total"] == 230 and len(listed["items"]) == 30


# ---------------------------------------------------------------- the login throttle across replicas


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """HUB_TEST_REDIS_URL, else a private redis-server on a free loopback port (as the SFTP
    tests run their own sshd): a fresh machine needs only the package, no running service."""
    if url := os.environ.get("HUB_TEST_REDIS_URL"):
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed (apt-get install redis-server) and HUB_TEST_REDIS_URL unset")
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 60  # a guard only: the loop ends when the server answers
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=5).ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _failed_logins(client: TestClient, n: int) -> list[int]:
    return [login(client, f"nobody{i}", "wrong-password-x").status_code for i in range(n)]


def test_login_throttle_is_shared_through_redis(hub: Hub, redis_url: str):
    import redis

    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter("tbh-login*"):  # what an earlier run left
        r.delete(key)
    hub.settings.redis_url = redis_url
    # two API processes of one deployment: each its own app and throttle, one Redis
    with (
        TestClient(create_app(hub), base_url="http://127.0.0.1") as a,
        TestClient(create_app(hub), base_url="http://127.0.0.1") as b,
    ):
        assert _failed_logins(a, 10) == [401] * 10
        assert _failed_logins(b, 10) == [401] * 10
        assert _failed_logins(a, 1) == [429]  # 20 in all from this address: the next is refused everywhere
        assert _failed_logins(b, 1) == [429]
    assert any(r.scan_iter("tbh-login*"))
    for key in r.scan_iter("tbh-login*"):
        r.delete(key)


def test_login_throttle_without_redis_counts_per_process(hub: Hub):
    hub.settings.redis_url = None
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as a:
        assert _failed_logins(a, 20) == [401] * 20 and _failed_logins(a, 1) == [429]
    # Redis configured but down: logins go on, counted in the process
    hub.settings.redis_url = "redis://127.0.0.1:1/0"
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as c:
        assert _failed_logins(c, 20) == [401] * 20 and _failed_logins(c, 1) == [429]


def test_a_favicon_and_page_titles_that_say_where_you_are(web: TestClient):  # noqa: F811
    """Browsers ask for /favicon.ico on every page (a 404 each time), and a title names the page
    before the hub: tabs of the inbox, the dashboard and a case are told apart (issue 21)."""
    icon = web.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    page = web.get("/login").text
    assert "<title>登录 · 通办枢纽</title>" in page
    assert '<link rel="icon" href="/favicon.ico"' in page
