"""Operability: /healthz and /readyz (each failure named, nothing leaked), /metrics computed from
the database (and who may read it), JSON logs with request and job ids and ID numbers masked,
and `hub doctor` (docs/operations.md)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from typer.testing import CliRunner

from hub import applications as svc
from hub import logs, signing, supervision
from hub.cli import app as cli
from hub.context import Hub
from hub.jobs.dispatch import dispatch
from hub.lifecycle import Role
from hub.ops import run_job
from hub.storage.engine import make_engine
from hub.tokens import create_token
from hub.web.app import create_app
from hub.workdays import Source, WorkCalendar
from plugins.sandbox.rest_department import RestDepartment
from tests.conftest import CST, make_id
from tests.support.samples import ELDER_ID, HZ_CLERK, SH_CLERK, TELLER, elderly_card, fund_rent, fund_retire, officer
from tests.test_dispatch import filing

TOKEN = "operability-test-token"
YBJ, GJJ = officer("ts-ybj"), officer("ts-gjj")
LOCAL, REMOTE = ("127.0.0.1", 50000), ("203.0.113.7", 50000)


@pytest.fixture
def dept() -> Iterator[RestDepartment]:
    d = RestDepartment(token=TOKEN).start()
    yield d
    d.stop()


@pytest.fixture
def wired(home: Path, db_url: str, clock, dept, monkeypatch) -> Iterator[Hub]:
    """A hub whose only connection is yibao-rest, pointed at a sandbox department."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    for path in (home / "connections").glob("*.yaml"):
        if path.stem != "yibao-rest":
            path.unlink()
    path = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"], conf["config"]["retries"] = dept.url, 0
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    h = Hub.open(home, database_url=db_url, clock=clock)
    yield h
    h.close()


def client(hub: Hub, address: tuple[str, int] = LOCAL) -> TestClient:
    return TestClient(create_app(hub), base_url="http://127.0.0.1", client=address)


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    with client(hub) as c:
        yield c


# ---------------------------------------------------------------- /healthz, /readyz


def test_alive_and_ready_on_a_fresh_hub(web: TestClient):
    alive = web.get("/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert alive.headers["x-request-id"]
    ready = web.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok" and body["failed"] == []
    names = {c["name"] for c in body["checks"]}
    assert {"database", "migrations", "secret_key", "materials"} <= names
    assert web.app.state.hub.plugins.loaded("video")  # the dev install has the video extra: key and recordings count
    assert {"signing_key", "recordings"} <= names
    schema = web.get("/openapi.json").json()
    assert not {"/healthz", "/readyz", "/metrics"} & set(schema["paths"])  # not part of the API


def test_alive_without_a_database_but_not_ready(web: TestClient, hub: Hub, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError("connection to 10.0.0.9:5432 refused")

    monkeypatch.setattr(hub.engine, "connect", unreachable)
    if hub.engine.dialect.name == "postgresql":
        # the probe opens a connection of its own (never the pool's): send it to a closed port
        monkeypatch.setattr(hub.engine, "url", hub.engine.url.set(host="127.0.0.1", port=1))
    assert web.get("/healthz").status_code == 200
    ready = web.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["database", "migrations"]
    assert "10.0.0.9" not in ready.text
    samples = scrape(web)
    assert samples[("hub_database_up", ())] == 0


def make_read_only(path: Path, request: pytest.FixtureRequest) -> None:
    """Really read-only, also for root (for whom chmod changes nothing): the immutable flag."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        request.addfinalizer(lambda: path.chmod(0o755))
        return
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
        return
    path.rmdir()  # a file system without the flag: a file where the folder should be
    path.write_bytes(b"")


def test_not_ready_when_the_recordings_cannot_be_written(web: TestClient, hub: Hub, request):
    make_read_only(signing.recordings_root(hub), request)
    ready = web.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["failed"] == ["recordings"]
    (check,) = [c for c in body["checks"] if c["name"] == "recordings"]
    assert check["detail"].startswith("signing.recordings_dir: not writable")
    assert str(hub.settings.home) not in ready.text


def test_not_ready_when_the_database_is_behind_the_migrations(web: TestClient, hub: Hub):
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    ready = web.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["migrations"]
    (check,) = [c for c in ready.json()["checks"] if c["name"] == "migrations"]
    assert "at 0005" in check["detail"] and "hub db upgrade" in check["detail"]


def test_not_ready_without_the_configured_signing_key(web: TestClient, tmp_path: Path, monkeypatch):
    missing = tmp_path / "secrets" / "signing-ed25519.pem"
    monkeypatch.setenv("HUB_SIGNING_KEY_FILE", str(missing))
    ready = web.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["signing_key"]
    assert str(tmp_path) not in ready.text and "HUB_SIGNING_KEY_FILE: the key file is missing" in ready.text
    missing.parent.mkdir()
    missing.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert web.get("/readyz").json()["failed"] == ["signing_key"]  # not a private key
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    missing.write_bytes(pem)
    assert web.get("/readyz").status_code == 200


def test_not_ready_with_a_short_secret(hub: Hub, monkeypatch):
    monkeypatch.setenv("HUB_SECRET_KEY", "s3cr3t")
    with client(hub) as c:
        ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["secret_key"]
    assert "HUB_SECRET_KEY is shorter than 16" in ready.text and "s3cr3t" not in ready.text


# ---------------------------------------------------------------- /metrics


def scrape(c: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = c.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def metric(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_are_the_databases_figures(wired: Hub, clock, dept):
    # two 3-working-day applications: A overdue by Friday, B due Monday (yellow)
    clock.set(date(2026, 11, 2), hour=9)
    overdue = svc.transition(wired, svc.create(wired, fund_rent(), HZ_CLERK).number, "accept", GJJ).number
    retire = svc.create(wired, fund_retire(), SH_CLERK).number
    svc.transition(wired, retire, "pre_review", SH_CLERK)
    svc.transition(wired, retire, "accept", GJJ)
    session = signing.start(wired, retire, GJJ)
    clock.set(date(2026, 11, 4), hour=9)
    due_soon = svc.transition(
        wired, svc.create(wired, fund_rent(source_ref="b"), HZ_CLERK).number, "accept", GJJ
    ).number
    # Friday 10:00: one filing delivered after half an hour, one refused (dead), one waiting
    clock.set(date(2026, 11, 6), hour=10)
    delivered = svc.transition(wired, svc.create(wired, filing(1), HZ_CLERK).number, "accept", YBJ).number
    clock.advance(seconds=1800)
    assert run_job(wired, dispatch).delivered == 1
    svc.transition(wired, svc.create(wired, filing(2), HZ_CLERK).number, "accept", YBJ)
    dept.token = "rotated"
    assert run_job(wired, dispatch).dead == 1
    dept.token = TOKEN
    svc.transition(wired, svc.create(wired, filing(3), HZ_CLERK).number, "accept", YBJ)
    svc.create(wired, elderly_card(), TELLER)
    clock.advance(seconds=600)  # 10:40

    with client(wired) as c:
        samples = scrape(c)
    m = lambda name, **labels: metric(samples, name, **labels)  # noqa: E731
    assert m("hub_database_up") == 1
    # received: the enclave's six (three in the last hour), the bank's one
    assert m("hub_applications_received_total", channel="enclave") == 6
    assert m("hub_applications_received_total", channel="bank") == 1
    assert m("hub_applications_received_total", channel="hall") == 0
    assert m("hub_applications_received_last_hour", channel="enclave") == 3
    assert m("hub_applications_received_last_hour", channel="bank") == 1
    assert m("hub_applications", channel="bank", state="received") == 1
    # the cards, as the supervisors' list has them
    alerts = supervision.warnings(wired, svc.Actor(name="s", role=Role.supervisor))
    red = {a.number for a in alerts if a.kind == "red"}
    yellow = {a.number for a in alerts if a.kind == "yellow"}
    assert overdue in red and due_soon in yellow
    assert m("hub_applications_overdue") == len(red) and m("hub_applications_due_soon") == len(yellow)
    # the outbox: one pending ten minutes, one dead letter, one delivered in 30 minutes
    assert m("hub_outbox_depth", connection="yibao-rest", state="pending") == 1
    assert m("hub_outbox_depth", connection="yibao-rest", state="dead") == 1
    assert m("hub_outbox_dead_letters", connection="yibao-rest") == 1
    assert m("hub_outbox_oldest_pending_seconds", connection="yibao-rest") == pytest.approx(600, abs=1)
    bucket = lambda le: m("hub_outbox_delivery_latency_seconds_bucket", connection="yibao-rest", le=le)  # noqa: E731
    assert (bucket("900.0"), bucket("3600.0"), bucket("+Inf")) == (0, 1, 1)
    assert m("hub_outbox_delivery_latency_seconds_gcount", connection="yibao-rest") == 1
    assert m("hub_outbox_delivery_latency_seconds_gsum", connection="yibao-rest") == pytest.approx(1800, abs=1)
    assert delivered
    # signing and jobs
    assert m("hub_signing_sessions_open", step=session.step) == 1
    assert m("hub_signing_sessions_live") == 0  # media runs in no process here
    half_past = datetime(2026, 11, 6, 10, 30, tzinfo=CST).astimezone(UTC).timestamp()
    assert m("hub_job_last_success_timestamp_seconds", job="dispatch", target="") == pytest.approx(half_past)
    assert m("hub_job_last_run_ok", job="dispatch", target="") == 1
    # one connection failing every run is not hidden by another's success after it
    from types import SimpleNamespace

    def sync(hub, connection):  # named like the real job; fails for gongan-soap only
        bad = connection == "gongan-soap"
        return SimpleNamespace(errors=int(bad), line=lambda: f"sync: {int(bad)} errors")

    run_job(wired, sync, connection="gongan-soap")
    clock.advance(seconds=60)
    run_job(wired, sync, connection="yibao-rest")
    with client(wired) as c:
        jobs = scrape(c)
    assert metric(jobs, "hub_job_last_run_ok", job="sync", target="gongan-soap") == 0
    assert metric(jobs, "hub_job_last_run_ok", job="sync", target="yibao-rest") == 1
    # a day later the delivery is out of the window; the counters stay
    clock.advance(days=1)
    with client(wired) as c:
        later = scrape(c)
    assert metric(later, "hub_outbox_delivery_latency_seconds_gcount", connection="yibao-rest") == 0
    assert metric(later, "hub_applications_received_last_hour", channel="enclave") == 0
    assert metric(later, "hub_applications_received_total", channel="enclave") == 6


def test_http_metrics_count_requests_by_route_template(web: TestClient, hub: Hub):
    for _ in range(2):
        assert web.get("/healthz").status_code == 200
    assert web.get("/no/such/page", headers={"accept": "application/json"}).status_code == 404
    secret, _ = create_token(hub, "reader", role=Role.ops, scopes=["applications:read"], created_by="test")
    assert web.get("/api/v1/applications/NOPE", headers={"authorization": f"Bearer {secret}"}).status_code == 404
    samples = scrape(web)
    m = lambda name, **labels: metric(samples, name, **labels)  # noqa: E731
    assert m("hub_http_requests_total", method="GET", route="/healthz", status="200") == 2
    assert m("hub_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert m("hub_http_requests_total", method="GET", route="/api/v1/applications/{number}", status="404") == 1
    assert m("hub_http_request_duration_seconds_count", method="GET", route="/healthz") == 2
    assert not any("NOPE" in str(labels) for _, labels in samples)


def test_metrics_need_an_ops_token_off_this_machine(hub: Hub):
    ops, _ = create_token(hub, "prometheus", role=Role.ops, scopes=["ops"], created_by="test")
    teller, _ = create_token(
        hub, "bank", role=Role.teller, desk="bank-xiahong", scopes=["applications:read"], created_by="test"
    )
    with client(hub, REMOTE) as remote:
        assert remote.get("/healthz").status_code == 200  # probes stay open
        assert remote.get("/readyz").status_code == 200
        refused = remote.get("/metrics")
        assert refused.status_code == 401 and "hub_" not in refused.text
        assert remote.get("/metrics", headers={"authorization": "Bearer tbh_wrong"}).status_code == 401
        assert remote.get("/metrics", headers={"authorization": f"Bearer {teller}"}).status_code == 403
        assert "hub_database_up 1.0" in remote.get("/metrics", headers={"authorization": f"Bearer {ops}"}).text
    with client(hub, LOCAL) as local:
        assert local.get("/metrics").status_code == 200
        # through a proxy on this machine everyone would come from loopback: a forwarded request is not local
        assert local.get("/metrics", headers={"x-forwarded-for": "198.51.100.1"}).status_code == 401


# ---------------------------------------------------------------- logs


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes as JSON lines, from INFO."""
    out = io.StringIO()
    handler = logs.make_handler("json", out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_log_lines_carry_the_request_id_and_mask_id_numbers(hub: Hub, json_log: io.StringIO):
    app = create_app(hub)

    @app.get("/log-something", include_in_schema=False)
    def log_something() -> dict:  # a plain def: runs in a worker thread, which must see the id too
        logging.getLogger("hub.test").warning(
            "核验 %s for %s", ELDER_ID, {"id": make_id(seq="077")}, extra={"applicant": ELDER_ID}
        )
        return {}

    with TestClient(app, base_url="http://127.0.0.1") as c:
        answered = c.get("/log-something", headers={"x-request-id": "trace-42.a"})
        assert answered.headers["x-request-id"] == "trace-42.a"
        fresh = c.get("/log-something", headers={"x-request-id": "bad id\twith spaces"})
    own = fresh.headers["x-request-id"]
    assert own != "bad id\twith spaces" and len(own) == 16
    out = json_log.getvalue()
    assert ELDER_ID not in out and make_id(seq="077") not in out
    first, second = [x for x in lines(json_log) if x["logger"] == "hub.test"]
    assert first["request_id"] == "trace-42.a" and second["request_id"] == own
    assert first["level"] == "WARNING" and first["ts"].endswith("Z")
    assert first["msg"].startswith(f"核验 {ELDER_ID[:4]}**********{ELDER_ID[-4:]} for ")
    assert first["applicant"] == f"{ELDER_ID[:4]}**********{ELDER_ID[-4:]}"


def test_access_log_and_exceptions_are_masked_too():
    out = io.StringIO()
    handler = logs.make_handler("json", out)  # as `hub serve` gives uvicorn's loggers
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.1.2.3:5555", "GET", f"/search?q={ELDER_ID}", "1.1", 200),
        None,
    )
    try:
        raise ValueError(f"bad applicant {ELDER_ID}")
    except ValueError:
        failure = logging.LogRecord("hub.test", logging.ERROR, __file__, 2, "failed", None, sys.exc_info())
    token = logs.request_id.set("req-1")
    try:
        handler.handle(access)
        handler.handle(failure)
    finally:
        logs.request_id.reset(token)
    assert ELDER_ID not in out.getvalue()
    first, second = lines(out)
    assert first["request_id"] == "req-1" and first["status"] == 200 and first["method"] == "GET"
    assert first["path"] == f"/search?q={ELDER_ID[:4]}**********{ELDER_ID[-4:]}"
    assert "ValueError: bad applicant 3303**********" in second["exc"]


def test_log_lines_of_a_job_carry_its_run(hub: Hub, json_log: io.StringIO):
    def noisy(hub: Hub) -> None:
        logging.getLogger("hub.jobs.noisy").warning("working")

    run_job(hub, noisy)
    (line,) = [x for x in lines(json_log) if x["logger"] == "hub.jobs.noisy"]
    with hub.sessions() as s:
        run_id = s.execute(text("SELECT max(id) FROM job_runs WHERE job = 'noisy'")).scalar()
    assert line["job_id"] == f"noisy:{run_id}" and "request_id" not in line
    assert logs.job_id.get() is None  # only inside the run


def test_text_logs_are_masked_and_the_cli_writes_json(tmp_path: Path):
    out = io.StringIO()
    record = logging.LogRecord("hub.x", logging.WARNING, __file__, 1, "id %s", (ELDER_ID,), None)
    handler = logs.make_handler("text", out)
    handler.handle(record)
    assert ELDER_ID not in out.getvalue() and "WARNING hub.x: id 3303**********" in out.getvalue()
    env = {k: v for k, v in os.environ.items() if k != "HUB_LOG_FORMAT"}
    made = subprocess.run(
        [sys.executable, "-m", "hub", "--log-format", "json", "--log-level", "INFO", "init", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    parsed = [json.loads(line) for line in made.stderr.splitlines()]
    assert parsed and all({"ts", "level", "logger", "msg"} <= set(p) for p in parsed)
    refused = subprocess.run(
        [sys.executable, "-m", "hub", "version"], capture_output=True, text=True, env={**env, "HUB_LOG_FORMAT": "xml"}
    )
    assert refused.returncode == 2 and "--log-format" in refused.stderr


# ---------------------------------------------------------------- hub doctor


def window_years() -> list[int]:
    today = datetime.now(CST).date()
    return list(range(today.year, (today + timedelta(days=365)).year + 1))


@pytest.fixture
def sound_home(home: Path, db_url: str, dept, monkeypatch) -> Path:
    """A hub home `hub doctor` passes: its one connection reachable, the calendar typed in for
    every year of the coming twelve months the package does not know."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    for path in (home / "connections").glob("*.yaml"):
        if path.stem != "yibao-rest":
            path.unlink()
    path = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = dept.url
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    settings = yaml.safe_load((home / "hub.yaml").read_text(encoding="utf-8"))
    settings["verifiers"] = {}  # their connections are gone: 网上核验 falls back to paper here
    settings["licence_sources"] = {}  # and 电子证照 are looked up in the hub's own library only
    (home / "hub.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    package = WorkCalendar()
    for year in window_years():
        if package.source(year) is not Source.package:
            (home / "calendar" / f"{year}.yaml").write_text(
                f"year: {year}\nnotice: test schedule\nholidays:\n  - {{name: 元旦, from: {year}-01-01, to: {year}-01-01}}\n",
                encoding="utf-8",
            )
    return home


def doctor(home: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["--home", str(home), "doctor", "--json", "--timeout", "5", *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


def test_doctor_passes_a_sound_home(sound_home: Path):
    code, report = doctor(sound_home)
    assert code == 0, report
    names = [c["name"] for c in report["checks"]]
    for name in ("database", "migrations", "secret_key", "signing_key", "recordings", "materials", "catalogue"):
        assert name in names
    assert {"calendar", "plugins", "connections", "connection:yibao-rest"} <= set(names)
    table = CliRunner().invoke(cli, ["--home", str(sound_home), "doctor"])
    assert table.exit_code == 0 and "✓" in table.stdout and "✗" not in table.stdout


def test_doctor_fails_naming_a_year_without_a_schedule(sound_home: Path):
    last = window_years()[-1]
    assert WorkCalendar().source(last) is not Source.package, "the package now knows next year: pick a later one"
    (sound_home / "calendar" / f"{last}.yaml").unlink()
    code, report = doctor(sound_home)
    assert code == 1 and report["failed"] == ["calendar"]
    (check,) = [c for c in report["checks"] if c["name"] == "calendar"]
    assert str(last) in check["detail"]


def test_doctor_fails_naming_an_unreachable_connection(sound_home: Path, dept):
    dept.stop()
    code, report = doctor(sound_home)
    assert code == 1 and report["failed"] == ["connection:yibao-rest"]
    table = CliRunner().invoke(cli, ["--home", str(sound_home), "doctor", "--timeout", "5"])
    assert table.exit_code == 1 and "✗" in table.stdout and "connection:yibao-rest" in table.stdout


def test_doctor_fails_on_an_old_schema(sound_home: Path, db_url: str):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    engine.dispose()
    code, report = doctor(sound_home)
    assert code == 1 and report["failed"] == ["migrations"]


def test_doctor_checks_each_partner_offline(sound_home: Path, tmp_path: Path):
    from plugins.sandbox.partner_hub import pair, write_partner_home

    fuding = write_partner_home(tmp_path / "fuding")
    # nothing listens there: doctor sends nothing (`hub partners check` pings)
    pair(sound_home, "http://127.0.0.1:9", fuding, "http://127.0.0.1:9")
    code, report = doctor(sound_home)
    assert code == 0, report
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["exchange_key"]["ok"] and checks["partner:fuding"]["ok"]
    assert "福鼎市" in checks["partner:fuding"]["detail"]

    key = sound_home / "exchange-ed25519.pem"
    kept = key.read_bytes()
    key.unlink()  # partners configured, our key gone: every message would go unsigned
    code, report = doctor(sound_home)
    assert code == 1 and report["failed"] == ["exchange_key"]
    (check,) = [c for c in report["checks"] if c["name"] == "exchange_key"]
    assert "exchange.key_file" in check["detail"] and "keygen" in check["detail"]
    assert str(sound_home) not in check["detail"]  # names the setting, never the path
    key.write_bytes(kept)

    spec = yaml.safe_load((sound_home / "partners" / "fuding.yaml").read_text(encoding="utf-8"))
    spec["tls"] = {"ca_file": "partners/fuding-ca.pem"}
    spec["accepts"].append({"item": "GG00104001", "modes": ["joint"]})
    (sound_home / "partners" / "fuding.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (sound_home / "partners" / "broken.yaml").write_text("name: 坏的\n", encoding="utf-8")
    code, report = doctor(sound_home)
    assert code == 1 and report["failed"] == ["partner:broken", "partner:fuding"]
    checks = {c["name"]: c for c in report["checks"]}
    assert "tls.ca_file file is missing" in checks["partner:fuding"]["detail"]
    assert "GG00104001 does not allow joint" in checks["partner:fuding"]["detail"]
    assert "broken.yaml" in checks["partner:broken"]["detail"]
