"""Backup and restore as ops run them: `scripts/backup` of a hub with applications through their
life cycle and sealed signing evidence, `scripts/restore` into an EMPTY database and a fresh
home, on SQLite and on PostgreSQL. The restored hub has the same applications, states and chain
heads, and every chain, material file and evidence package verifies; a changed backup, a
non-empty database, a tampered event row and a missing recording segment are each named."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url

from hub import applications as svc
from hub import backup, rollups, signing
from hub.context import Hub
from hub.home import write_home
from hub.seals import ensure_test_seals
from hub.signing_key import load_private_key
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import Application, SigningSession
from tests.conftest import CST, PDF, PG_URL, Clock
from tests.support.samples import HZ_CLERK, SH_CLERK, TELLER, elderly_card, fund_rent, officer, retirement
from tests.test_signing import GJJ, accepted_case, fake_segments, walk_to_seal
from video.sessions import seal_session

ROOT = Path(__file__).resolve().parent.parent
MZJ, RSJ, YBJ = officer("ts-mzj"), officer("ts-rsj"), officer("ts-ybj")
CORE = ["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明"]  # 容缺: the lease may follow


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A script or `hub` as ops run it: nothing of this process's hub settings leaks in."""
    base = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_DATABASE_URL", "HUB_SIGNING_KEY_FILE")}
    base |= {"HUB_PYTHON": sys.executable, **(env or {})}
    cmd = [str(ROOT / "scripts" / script), *args] if script != "hub" else [sys.executable, "-m", "hub", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=base, check=False, timeout=300)


# ---------------------------------------------------------------- databases


@dataclass
class Databases:
    """Where the source hub lives and where restores go: throwaway databases on the backend."""

    kind: str
    root: Path
    made: list[str] = field(default_factory=list)

    def _admin(self):
        return create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")

    def empty(self, label: str) -> str:
        """A new, empty database's URL."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / f'{label}-{uuid.uuid4().hex[:6]}.db'}"
        name = f"hub_backup_{label}_{uuid.uuid4().hex[:8]}"
        admin = self._admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.made.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.made:
            return
        admin = self._admin()
        with admin.connect() as conn:
            for name in self.made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dbs(request, tmp_path_factory) -> Iterator[Databases]:
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("HUB_TEST_DATABASE_URL is not set: no PostgreSQL server to back up and restore on")
    d = Databases(request.param, tmp_path_factory.mktemp(f"db-{request.param}"))
    yield d
    d.drop_all()


# ---------------------------------------------------------------- the hub to back up


def table_of(hub: Hub) -> list[tuple[str, str, str]]:
    with hub.sessions() as session:
        return [
            (a.number, a.state, a.chain_head) for a in session.scalars(select(Application).order_by(Application.number))
        ]


def sessions_of(hub: Hub) -> list[tuple[str, str, str | None]]:
    with hub.sessions() as session:
        return [
            (s.id, s.state, s.manifest_sha256)
            for s in session.scalars(select(SigningSession).order_by(SigningSession.id))
        ]


def walk(hub: Hub) -> dict[str, str]:
    """Applications through their life cycle, and signing evidence: one of each shape."""
    done = {}
    n = svc.create(hub, elderly_card(), TELLER).number  # decided, approved
    svc.transition(hub, n, "pre_review", TELLER)
    for action in ("accept", "start_review", "approve"):
        svc.transition(hub, n, action, MZJ)
    done["decided"] = n
    n = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK).number  # 容缺, attach, 补正, decided
    svc.transition(hub, n, "accept", GJJ, commitment_due=date(2026, 10, 9))
    lease = svc.MaterialIn(name="房屋租赁合同", filename="lease.pdf", content=PDF + b"lease")
    svc.attach(hub, n, [lease], HZ_CLERK)
    svc.transition(hub, n, "start_review", GJJ)
    svc.transition(hub, n, "request_supplement", GJJ, reason="租赁合同页码不全")
    svc.transition(hub, n, "resume", HZ_CLERK)
    svc.transition(hub, n, "approve", GJJ)
    done["supplemented"] = n
    n = svc.create(hub, fund_rent(), HZ_CLERK).number  # withdrawn
    svc.transition(hub, n, "accept", GJJ)
    svc.transition(hub, n, "withdraw", HZ_CLERK, reason="申请人撤回")
    done["withdrawn"] = n
    n = svc.create(hub, retirement(), SH_CLERK).number  # a bundle, one part denied
    svc.transition(hub, n, "accept", RSJ)
    for who in (RSJ, YBJ, GJJ):
        svc.transition(hub, n, "start_review", who)
    svc.transition(hub, n, "approve", RSJ)
    svc.transition(hub, n, "deny", GJJ, reason="公积金账户存在未结清贷款")
    done["bundle"] = n
    n = accepted_case(hub)  # remote signing, sealed
    s = signing.start(hub, n, GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    seal_session(hub, s.id, GJJ)
    done["signed"], done["session"] = n, s.id
    n = accepted_case(hub)  # remote signing, aborted: its partial recording is sealed too
    s = signing.start(hub, n, GJJ)
    fake_segments(hub, s.id)
    signing.abort(hub, s.id, SH_CLERK, "申请人身体不适，改日再办")
    seal_session(hub, s.id, None)
    done["aborted_session"] = s.id
    done["received"] = svc.create(hub, elderly_card(desk="bank-xiahong", source_ref="b-7:1"), TELLER).number
    return done


@dataclass
class Source:
    home: Path
    url: str
    numbers: dict[str, str]
    applications: list[tuple[str, str, str]]
    sessions: list[tuple[str, str, str | None]]
    backup: Path

    @property
    def env(self) -> dict[str, str]:
        return {"HUB_DATABASE_URL": self.url}


@pytest.fixture(scope="module")
def source(dbs: Databases, tmp_path_factory) -> Source:
    root = tmp_path_factory.mktemp(f"source-{dbs.kind}")
    home = write_home(root / "home")
    url = f"sqlite:///{home / 'hub.db'}" if dbs.kind == "sqlite" else dbs.empty("src")
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    hub = Hub.open(home, database_url=url, clock=Clock(datetime(2026, 9, 21, 10, tzinfo=CST).astimezone(UTC)))
    try:
        ensure_test_seals(hub)
        numbers = walk(hub)
        apps, sessions = table_of(hub), sessions_of(hub)
    finally:
        hub.close()
    backup = root / "backup"
    done = run("backup", "--home", str(home), "--out", str(backup), env={"HUB_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    return Source(home, url, numbers, apps, sessions, backup)


@dataclass
class Restored:
    home: Path
    url: str
    output: str

    @property
    def env(self) -> dict[str, str]:
        return {"HUB_DATABASE_URL": self.url}


@pytest.fixture(scope="module")
def restored(source: Source, dbs: Databases, tmp_path_factory) -> Restored:
    home = tmp_path_factory.mktemp(f"restored-{dbs.kind}") / "home"
    url = dbs.empty("dst")
    done = run("restore", "--from", str(source.backup), "--home", str(home), "--database-url", url)
    assert done.returncode == 0, done.stdout + done.stderr
    return Restored(home, url, done.stdout + done.stderr)


# ---------------------------------------------------------------- the round trip


def test_backup_holds_the_snapshot_its_counts_and_a_manifest(source: Source, dbs: Databases):
    info = json.loads((source.backup / "backup.json").read_text(encoding="utf-8"))
    assert info["database"]["kind"] == dbs.kind and info["database"]["revision"] == migrate.head_revision()
    assert info["database"]["counts"]["applications"] == len(source.applications) == 7
    assert info["database"]["counts"]["evidence_packages"] == 2
    assert info["signing_key"]["id"] and (source.backup / "signing-public-key.pem").is_file()
    assert info["signing_key"]["algorithm"] == "ed25519" and info["crypto"] == {
        "hash": "sha256",
        "signature": "ed25519",
    }
    assert (source.backup / ("database.sqlite" if dbs.kind == "sqlite" else "database.dump")).is_file()
    listed = (source.backup / "MANIFEST.sha256").read_text(encoding="utf-8")
    files = sorted(
        p.relative_to(source.backup).as_posix()
        for p in source.backup.rglob("*")
        if p.is_file() and p.name != "MANIFEST.sha256"
    )
    assert sorted(line.split("  ", 1)[1] for line in listed.splitlines()) == files
    assert f"files/recordings/{source.numbers['session']}/manifest.json" in files
    assert not any("signing-ed25519" in f or "secret.key" in f or f.endswith(".live") for f in files)
    # the seals' certificates and roots are in it, their private keys are not
    assert "files/config/seals/ts-mzj/seal.crt" in files and "files/config/seals/trust/test-ca.pem" in files
    assert not any(f.endswith(".key") for f in files)
    # sha256sum alone checks it, as the docs say
    assert subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=source.backup).returncode == 0


def test_restore_into_an_empty_database_has_the_same_hub_and_verifies(source: Source, restored: Restored):
    assert "restore complete and verified" in restored.output
    assert "counts match the backup: 7 applications" in restored.output
    hub = Hub.open(restored.home, database_url=restored.url)
    try:
        assert table_of(hub) == source.applications
        assert sessions_of(hub) == source.sessions
    finally:
        hub.close()
    settings = (restored.home / "hub.yaml").read_text(encoding="utf-8")
    assert "database_url:" in settings and source.url not in settings  # never the old database
    chains = run("hub", "--home", str(restored.home), "apps", "verify-all", env=restored.env)
    assert chains.returncode == 0, chains.stderr
    assert "事件链 event chains" in chains.stdout and " 7 " in chains.stdout
    # no key installed (none was given): the backup's public key checks the evidence
    evidence = run(
        "hub",
        "--home",
        str(restored.home),
        "evidence",
        "verify",
        "--all",
        "--public-key",
        str(source.backup / "signing-public-key.pem"),
        env=restored.env,
    )
    assert evidence.returncode == 0, evidence.stderr
    assert "已核验 checked" in evidence.stdout


# ---------------------------------------------------------------- refusals and failures named


def test_a_changed_file_in_the_backup_is_refused_and_named(source: Source, dbs: Databases, tmp_path: Path):
    copy = tmp_path / "backup"
    shutil.copytree(source.backup, copy)
    material = sorted((copy / "files" / "materials").rglob("*"))[-1]
    data = bytearray(material.read_bytes())
    data[len(data) // 2] ^= 0x01
    material.write_bytes(bytes(data))
    url = dbs.empty("changed")
    done = run("restore", "--from", str(copy), "--home", str(tmp_path / "new"), "--database-url", url)
    name = material.relative_to(copy).as_posix()
    assert done.returncode == 1 and f"{name}: sha256 does not match MANIFEST.sha256" in done.stderr, done.stderr
    assert not (tmp_path / "new").exists()
    assert_empty(url)


def test_restore_into_a_non_empty_database_is_refused_and_changes_nothing(
    source: Source, dbs: Databases, tmp_path: Path
):
    before = database_text(source.url)
    done = run("restore", "--from", str(source.backup), "--home", str(tmp_path / "new"), "--database-url", source.url)
    assert done.returncode == 1, done.stdout
    assert f"not empty: table applications ({len(source.applications)} rows)" in done.stderr, done.stderr
    assert not (tmp_path / "new").exists()
    assert database_text(source.url) == before


def test_a_tampered_event_row_fails_verify_all_naming_the_application(source: Source, restored: Restored):
    number = source.numbers["supplemented"]
    engine = make_engine(restored.url)
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT e.id, e.reason FROM events e JOIN applications a ON a.id = e.application_id "
                "WHERE a.number = :n AND e.action = 'request_supplement'"
            ),
            {"n": number},
        ).one()
        conn.execute(text("UPDATE events SET reason = :r WHERE id = :id"), {"r": "页码齐全", "id": row.id})
    try:
        done = run("hub", "--home", str(restored.home), "apps", "verify-all", env=restored.env)
        assert done.returncode == 1
        assert f"FAIL chain {number}: event #" in done.stderr and "content does not match its hash" in done.stderr
        assert done.stderr.count("FAIL") == 1, done.stderr  # the others still verify
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE events SET reason = :r WHERE id = :id"), {"r": row.reason, "id": row.id})
        engine.dispose()


def test_a_missing_material_file_fails_verify_all_naming_the_file(source: Source, restored: Restored):
    victim = sorted((restored.home / "materials").rglob("*"))[-1]
    saved = victim.read_bytes()
    victim.unlink()
    try:
        done = run("hub", "--home", str(restored.home), "apps", "verify-all", env=restored.env)
        assert done.returncode == 1
        shown = victim.relative_to(restored.home).as_posix()
        assert f"FAIL material {shown}: missing (application " in done.stderr, done.stderr
    finally:
        victim.write_bytes(saved)


def test_a_deleted_recording_segment_fails_evidence_verify_naming_session_and_file(source: Source, restored: Restored):
    session = source.numbers["session"]
    segment = restored.home / "recordings" / session / "desk" / "000001.webm"
    saved = segment.read_bytes()
    segment.unlink()
    try:
        done = run(
            "hub",
            "--home",
            str(restored.home),
            "evidence",
            "verify",
            "--all",
            "--public-key",
            str(source.backup / "signing-public-key.pem"),
            env=restored.env,
        )
        assert done.returncode == 1
        assert f"FAIL {session} ({source.numbers['signed']}): desk/000001.webm: missing" in done.stderr, done.stderr
    finally:
        segment.write_bytes(saved)


def test_restore_with_the_signing_key_installs_it_and_refuses_another(source: Source, dbs: Databases, tmp_path: Path):
    other = tmp_path / "other.pem"
    load_private_key(other, create=True)
    url = dbs.empty("key")
    done = run(
        "restore",
        *("--from", str(source.backup), "--home", str(tmp_path / "new"), "--database-url", url),
        *("--signing-key", str(other)),
    )
    assert done.returncode == 1 and "but the evidence in this backup was sealed with" in done.stderr, done.stderr
    assert_empty(url)
    key = source.home / "signing-ed25519.pem"
    done = run(
        "restore",
        *("--from", str(source.backup), "--home", str(tmp_path / "new"), "--database-url", url),
        *("--signing-key", str(key)),
    )
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "new" / "signing-ed25519.pem"
    assert installed.read_bytes() == key.read_bytes() and installed.stat().st_mode & 0o777 == 0o600
    # with its own key in place the restored hub verifies its evidence unaided
    assert (
        run(
            "hub", "--home", str(tmp_path / "new"), "evidence", "verify", "--all", env={"HUB_DATABASE_URL": url}
        ).returncode
        == 0
    )


def test_the_production_hubs_settings_do_not_leak_into_a_restore(source: Source, dbs: Databases, tmp_path: Path):
    """A restore drill runs on a machine where HUB_HOME, HUB_DATABASE_URL and HUB_SIGNING_KEY_FILE
    name the production hub: the restore must use none of them."""
    production_key = tmp_path / "production.pem"
    load_private_key(production_key, create=True)
    before = database_text(source.url)
    done = run(
        "restore",
        *("--from", str(source.backup), "--home", str(tmp_path / "new"), "--database-url", dbs.empty("leak")),
        env={"HUB_HOME": str(source.home), "HUB_DATABASE_URL": source.url, "HUB_SIGNING_KEY_FILE": str(production_key)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"install the hub's signing key at {tmp_path / 'new' / 'signing-ed25519.pem'} " in done.stderr
    assert database_text(source.url) == before


def test_a_backup_from_a_newer_release_is_refused(source: Source, dbs: Databases, tmp_path: Path):
    copy = tmp_path / "backup"
    shutil.copytree(source.backup, copy)
    info = json.loads((copy / "backup.json").read_text(encoding="utf-8"))
    info["database"]["revision"] = "9999"
    (copy / "backup.json").write_text(json.dumps(info), encoding="utf-8")
    sums = subprocess.run(["sha256sum", "backup.json"], cwd=copy, capture_output=True, text=True, check=True).stdout
    manifest = (copy / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines(keepends=True)
    (copy / "MANIFEST.sha256").write_text(
        "".join(sums if line.endswith("  backup.json\n") else line for line in manifest), encoding="utf-8"
    )
    done = run("restore", "--from", str(copy), "--home", str(tmp_path / "new"), "--database-url", dbs.empty("newer"))
    assert done.returncode == 1 and "schema revision 9999 is newer than this code's" in done.stderr, done.stderr
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- no database: secrets and the manifest format


def test_passwords_go_to_libpq_variables_and_are_shown_masked():
    url = "postgresql+psycopg://hub:s3cret@db.example:6432/tongban?sslmode=verify-full&application_name=backup"
    env = backup.libpq_env(url)
    assert {
        k: env[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGAPPNAME")
    } == {
        "PGHOST": "db.example",
        "PGPORT": "6432",
        "PGUSER": "hub",
        "PGPASSWORD": "s3cret",
        "PGDATABASE": "tongban",
        "PGSSLMODE": "verify-full",
        "PGAPPNAME": "backup",
    }
    assert "s3cret" not in backup.masked(url) and backup.masked(url).startswith("postgresql+psycopg://hub:***@")
    with pytest.raises(backup.Refused, match="fancy"):
        backup.libpq_env("postgresql://hub@db/tongban?fancy=1")


def test_a_password_in_hub_yaml_is_not_copied_into_the_backup(tmp_path: Path):
    settings = tmp_path / "hub.yaml"
    settings.write_text("county: {name: x, division: '330329'}\ndatabase_url: postgresql://hub:s3cret@db/hub  # prod\n")
    assert backup.scrub_settings(settings) is True
    assert "s3cret" not in settings.read_text() and 'database_url: "postgresql://hub@db/hub"' in settings.read_text()
    assert backup.scrub_settings(settings) is False  # nothing left to remove


def test_the_restored_home_names_the_new_database_without_its_password(tmp_path: Path, monkeypatch):
    home = write_home(tmp_path / "home")
    monkeypatch.setenv(backup.RESTORE_URL_ENV, "postgresql://hub:s3cret@db2:5432/hub_restored")
    backup.point_home(home)
    body = (home / "hub.yaml").read_text(encoding="utf-8")
    assert "s3cret" not in body and 'database_url: "postgresql://hub@db2:5432/hub_restored"' in body
    monkeypatch.setenv(backup.RESTORE_URL_ENV, f"sqlite:///{home / 'restored.db'}")
    backup.point_home(home)
    assert 'database_url: "sqlite:///restored.db"' in (home / "hub.yaml").read_text(encoding="utf-8")


def test_the_manifest_reader_takes_sha256sums_escapes(tmp_path: Path):
    odd = tmp_path / "files" / "a\\b\nc.pdf"
    odd.parent.mkdir()
    odd.write_bytes(PDF)
    subprocess.run(
        "find . -type f ! -name MANIFEST.sha256 -printf '%P\\0' | xargs -0 sha256sum -- > MANIFEST.sha256",
        shell=True,
        cwd=tmp_path,
        check=True,
    )
    assert backup.read_manifest(tmp_path) == {"files/a\\b\nc.pdf": hashlib.sha256(PDF).hexdigest()}
    assert backup.check_manifest(tmp_path) == 1
    (tmp_path / "files" / "extra.pdf").write_bytes(PDF)
    with pytest.raises(backup.Refused, match=r"files/extra.pdf: not in MANIFEST.sha256"):
        backup.check_manifest(tmp_path)


# ---------------------------------------------------------------- SQLite only: the backup's own guarantees


def test_a_backup_missing_a_file_the_database_refers_to_fails(tmp_path: Path):
    """The order guarantee, checked: a material file the snapshot refers to and the store lacks
    fails the backup, naming it, and leaves no backup folder behind."""
    home = write_home(tmp_path / "home")
    url = f"sqlite:///{home / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    hub = Hub.open(home, database_url=url)
    try:
        app = svc.create(hub, elderly_card(), TELLER)
        sha = app.materials[0].sha256
        hub.store.path_of(sha).unlink()
    finally:
        hub.close()
    done = run("backup", "--home", str(home), "--out", str(tmp_path / "backup"))
    assert done.returncode == 1 and f"materials/{sha[:2]}/{sha[2:4]}/{sha}: missing" in done.stderr, done.stderr
    assert not (tmp_path / "backup").exists() and not list(tmp_path.glob("backup.partial-*"))


def test_a_backup_of_an_older_schema_is_migrated_on_restore(tmp_path: Path, monkeypatch):
    home = write_home(tmp_path / "home")
    url = f"sqlite:///{home / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0005")  # before signing sessions existed
    engine.dispose()
    hub = Hub.open(home, database_url=url)
    # the dashboard's rollups came later (0010): today's code writing into this older schema
    # keeps none
    sa_event.remove(hub.sessions, "after_flush", rollups._after_flush)
    monkeypatch.setattr(rollups, "count_submissions", lambda *args: None)
    try:
        # with the desk's first review and without reading it back: the bulk path writes only the
        # columns it names, so today's code can still write into the older schema this test needs
        review = svc.FirstReview(checklist=["原件已核"])
        number = svc.receive(hub, elderly_card(), TELLER, first_review=review, brief=True)[0].number
    finally:
        hub.close()
    assert run("backup", "--home", str(home), "--out", str(tmp_path / "backup")).returncode == 0
    info = json.loads((tmp_path / "backup" / "backup.json").read_text(encoding="utf-8"))
    assert info["database"]["revision"] == "0005" and info["database"]["counts"]["signing_sessions"] is None
    done = run("restore", "--from", str(tmp_path / "backup"), "--home", str(tmp_path / "new"))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "new" / "hub.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == migrate.head_revision()
        assert conn.execute("SELECT number FROM applications").fetchall() == [(number,)]


# ---------------------------------------------------------------- helpers


def database_text(url: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                *conn.execute(text("SELECT number, state, chain_head, updated_at FROM applications ORDER BY number")),
                *conn.execute(text("SELECT application_id, seq, hash FROM events ORDER BY application_id, seq")),
            ]
    finally:
        engine.dispose()


def assert_empty(url: str) -> None:
    if url.startswith("sqlite"):
        assert not Path(make_url(url).database).exists()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                ).scalar_one()
                == 0
            )
    finally:
        engine.dispose()
