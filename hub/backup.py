"""The database half of backup and restore, and the checks around them. `hub backup create|
verify|restore` (hub/cli/backup.py, which scripts/backup and scripts/restore call) drives it;
the files are copied by `hub.backup_files`.

A backup folder:

    backup.json          what, when, from which hub version and schema revision, row counts
    database.dump        PostgreSQL: pg_dump --format=custom      (or database.sqlite: SQLite)
    files/config/…       hub.yaml (database password removed), departments, desks, catalogue, …
    files/materials/…    the material store (content-addressed: each file is named by its sha256)
    files/recordings/…   signing sessions' recordings and sealed evidence
    files/reports/…      the daily reports and alert lists
    signing-public-key.pem   the evidence key's public half (the private key is backed up apart)
    MANIFEST.sha256      `sha256sum` of every file above; restore checks it before anything else

Database URLs never reach a command line or the output: they come from hub settings or the
environment, are handed to pg_dump/pg_restore as libpq variables, and are shown masked."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.backup_files import MANIFEST
from hub.batches.staging import sha256_of
from hub.errors import HubError
from hub.home import SAMPLE_ENTRIES
from hub.settings import SETTINGS_FILE, Settings, load_settings
from hub.signing_key import key_id, load_private_key, public_pem
from hub.storage import migrate
from hub.storage.engine import make_engine

FORMAT = "tongban-backup/1"
INFO = "backup.json"
PG_DUMP = "database.dump"
SQLITE_COPY = "database.sqlite"
PUBLIC_KEY = "signing-public-key.pem"
FILES = "files"
# what the backup copies from the hub home besides the material store and the recordings
HOME_ENTRIES = [*SAMPLE_ENTRIES, "reports"]
RESTORE_URL_ENV = "HUB_RESTORE_DATABASE_URL"  # the restore's target: in the environment, not argv

# URL query parameters libpq also takes from the environment (pg_dump and pg_restore get them so)
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "gssencmode": "PGGSSENCMODE",
}


class Refused(HubError):
    """The backup or restore cannot go on; nothing was written (by this step)."""


def utc_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def without_password(url: URL) -> str:
    return url._replace(password=None).render_as_string(hide_password=False)  # URL.set(password=None) keeps it


def kind_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise Refused(f"不支持的数据库 (unsupported database {name}): {masked(url)}")
    return name


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise Refused("内存数据库无法备份或恢复 (an in-memory SQLite database cannot be backed up or restored)")
    return Path(database)


def libpq_env(url: str) -> dict[str, str]:
    """The environment pg_dump/pg_restore connect with: the URL's parts as PG* variables (a
    password on a command line would be visible to every user of the machine in `ps`)."""
    u = make_url(url)
    env = dict(os.environ)  # PGPASSFILE, PGSSLMODE … the operator set still apply
    for key, value in (
        ("PGHOST", u.host),
        ("PGPORT", u.port),
        ("PGUSER", u.username),
        ("PGPASSWORD", u.password),
        ("PGDATABASE", u.database),
    ):
        if value is not None:
            env[key] = str(value)
    for key, value in u.query.items():
        if key not in _LIBPQ_ENV:
            raise Refused(f"database_url: 参数 {key} 无法传给 pg_dump (query parameter {key} is not supported here)")
        env[_LIBPQ_ENV[key]] = value if isinstance(value, str) else value[-1]
    return env


def _run(cmd: list[str], env: dict[str, str]) -> str:
    tool = cmd[0]
    if shutil.which(tool) is None:
        raise Refused(f"找不到 {tool} (not found on PATH): install the PostgreSQL client tools of the server's version")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HubError(f"{tool} 失败 (failed, exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def tool_version(tool: str) -> str:
    out = _run([tool, "--version"], dict(os.environ))
    return out.strip().split(") ", 1)[-1].split()[0]  # "pg_dump (PostgreSQL) 15.20 (Debian …)" -> 15.20


# ---------------------------------------------------------------- what a database holds


def facts(conn: Connection) -> dict[str, Any]:
    """Schema revision and row counts, as backup.json states them and restore compares them."""
    names = set(inspect(conn).get_table_names())

    def count(table: str, where: str = "") -> int | None:
        return conn.execute(text(f"SELECT count(*) FROM {table} {where}")).scalar_one() if table in names else None

    revision = (
        conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if "alembic_version" in names else None
    )
    return {
        "revision": revision,
        "counts": {
            "applications": count("applications"),
            "events": count("events"),
            "material_files": count("blobs"),
            "signing_sessions": count("signing_sessions"),
            # sessions with evidence to verify: sealed (or aborted and sealed), recordings kept
            "evidence_packages": count("signing_sessions", "WHERE manifest_sha256 IS NOT NULL AND purged_at IS NULL"),
        },
    }


def _write_expected(conn: Connection, path: Path) -> None:
    """The files the snapshot refers to — every material file (with its size) and every kept
    evidence folder — so the backup can prove it copied them all (`finish`)."""
    names = set(inspect(conn).get_table_names())

    def rows(sql: str):  # streamed: a store may hold millions of files
        return conn.execute(text(sql).execution_options(stream_results=True, yield_per=5000))

    with open(path, "w", encoding="utf-8") as out:
        if "blobs" in names:
            for sha, size in rows("SELECT sha256, size FROM blobs"):
                out.write(f"blob {sha} {size}\n")
        if "signing_sessions" in names:
            for (session_id,) in rows(
                "SELECT id FROM signing_sessions WHERE manifest_sha256 IS NOT NULL AND purged_at IS NULL"
            ):
                out.write(f"session {session_id}\n")


# ---------------------------------------------------------------- backup


def dump_database(settings: Settings, out: Path, expected: Path) -> dict[str, Any]:
    """A consistent snapshot of the database into `out`, the facts about it, and the list of
    files it refers to — all of the same moment."""
    url = settings.resolved_database_url
    kind = kind_of(url)
    info: dict[str, Any] = {"kind": kind, "url": masked(url)}
    if kind == "sqlite":
        source, copy = sqlite_path(url), out / SQLITE_COPY
        if not source.is_file():
            raise Refused(f"数据库文件不存在 (database file not found): {source}")
        # the online backup API copies one consistent state while the hub goes on writing (a
        # plain copy of a WAL database can miss or tear the newest transactions)
        src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(copy)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            if (check := dst.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise HubError(f"{SQLITE_COPY}: integrity check failed: {check}")
        finally:
            dst.close()
            src.close()
        engine = create_engine(f"sqlite:///{copy}")  # plain: the hub's engine would turn WAL back on
        try:
            with engine.connect() as conn:
                info |= facts(conn)
                _write_expected(conn, expected)
        finally:
            engine.dispose()
        return info
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(text("SET TRANSACTION READ ONLY"))
                # pg_dump reads the snapshot this transaction exported: the dump, the counts and
                # the file list are of one instant
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                info |= facts(conn)
                info["server_version"] = conn.execute(text("SHOW server_version")).scalar_one().split()[0]
                _write_expected(conn, expected)
                _run(
                    [
                        "pg_dump",
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        "--no-password",
                        f"--file={out / PG_DUMP}",
                    ],
                    libpq_env(url),
                )
    except SQLAlchemyError as exc:
        raise HubError(f"数据库连接失败 (cannot read the database {masked(url)}): {_short(exc)}") from None
    finally:
        engine.dispose()
    info["pg_dump_version"] = tool_version("pg_dump")
    return info


def _short(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def public_key_of(key_file: Path) -> tuple[bytes, str]:
    """(public PEM, key id) of the evidence key in `key_file` (never made here)."""
    key = load_private_key(key_file)
    return public_pem(key), key_id(key)


def _algorithm_of(key_file: Path) -> str:
    """The signature algorithm of the key in `key_file` (ed25519, sm2, ...), read from the key."""
    return load_private_key(key_file).algorithm


def scrub_settings(path: Path) -> bool:
    """Remove a password written into hub.yaml's database_url from the backup's copy: secrets
    are backed up apart. True if there was one."""
    if not path.is_file():
        return False
    body = path.read_text(encoding="utf-8")
    found = False

    def strip(m: re.Match[str]) -> str:
        nonlocal found
        try:  # the value as YAML reads it (a quoted password may hold a '#')
            value = str(yaml.safe_load(m.group(0).split(":", 1)[1]) or "")
        except yaml.YAMLError:
            value = m.group(2).strip().strip("\"'")
        try:
            u = make_url(value)
        except Exception:
            # not a URL we can read: never copy what might hold a password
            found = True
            return f"{m.group(1)}null  # removed by `hub backup create`: set it again after restore"
        if u.password is None:
            return m.group(0)
        found = True
        trailing = m.group(2)[len(m.group(2).rstrip()) :]  # the space before a comment stays
        return f"{m.group(1)}{json.dumps(without_password(u))}{trailing}"

    body = re.sub(r"^(database_url:\s*)(.+)$", strip, body, flags=re.M)
    if found:
        path.write_text(body, encoding="utf-8")
    return found


def finish_backup(settings: Settings, out: Path, expected: Path, info: dict[str, Any]) -> list[str]:
    """After the files are copied: every file the database snapshot refers to must be in the
    backup (a missing one would be data loss on restore); the key's public half; the file
    counts. Returns warnings."""
    warnings: list[str] = []
    files = out / FILES
    missing: list[str] = []
    with open(expected, encoding="utf-8") as listed:
        for line in listed:
            what, name, *rest = line.split()
            if what == "blob":
                path = files / "materials" / name[:2] / name[2:4] / name
                if not path.is_file():
                    missing.append(f"materials/{name[:2]}/{name[2:4]}/{name}: missing")
                elif path.stat().st_size != int(rest[0]):
                    missing.append(
                        f"materials/{name[:2]}/{name[2:4]}/{name}: {path.stat().st_size} bytes, not {rest[0]}"
                    )
            elif not (files / "recordings" / name / "manifest.json").is_file():
                missing.append(f"recordings/{name}/: the sealed evidence is missing")
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  … and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise HubError(
            f"备份不完整：数据库引用的文件缺失 (the database refers to files the hub home does not have; "
            f"the backup is incomplete — run `hub apps verify-all` on the hub):\n  {shown}"
        )
    if scrub_settings(files / "config" / SETTINGS_FILE):
        warnings.append(
            "hub.yaml: database_url holds a password; the backup's copy has it removed — keep it in "
            "HUB_DATABASE_URL or ~/.pgpass instead"
        )
    # 密评: what new hashes and keys are made with here (what was written names its own)
    info["crypto"] = {"hash": settings.crypto.hash, "signature": settings.crypto.signature}
    key_file = settings.signing_key_file.path
    if key_file.is_file():
        pem, found_id = public_key_of(key_file)
        (out / PUBLIC_KEY).write_bytes(pem)
        info["signing_key"] = {"id": found_id, "algorithm": _algorithm_of(key_file), "public_key": PUBLIC_KEY}
    else:
        info["signing_key"] = None
        if info["database"]["counts"].get("evidence_packages"):
            warnings.append(f"signing key {key_file} not found: the evidence cannot be verified with this backup alone")
    # the exchange key (跨省通办) is a secret kept apart as the evidence key is: the backup names it,
    # so a restore can be checked against the key the partners hold for us
    exchange_key = settings.exchange_key_file.path
    if settings.exchange.hub_id and exchange_key.is_file():
        exchange = load_private_key(exchange_key)
        info["exchange_key"] = {"id": key_id(exchange), "algorithm": exchange.algorithm, "file": str(exchange_key)}
    else:
        info["exchange_key"] = None
        if settings.exchange.hub_id and any(settings.partners_dir.glob("*.yaml")):
            warnings.append(
                f"exchange key {exchange_key} not found: partners cannot check our messages until it is restored"
            )
    info["files"] = {
        part: sum(1 for p in (files / part).rglob("*") if p.is_file()) if (files / part).is_dir() else 0
        for part in ("config", "materials", "recordings", "reports")
    }
    return warnings


# ---------------------------------------------------------------- the manifest


def read_manifest(folder: Path) -> dict[str, str]:
    """path -> sha256 from MANIFEST.sha256 (sha256sum's format, with its escapes for names
    holding a backslash or a newline)."""
    entries: dict[str, str] = {}
    body = (folder / MANIFEST).read_text(encoding="utf-8")
    for number, line in enumerate(body.split("\n")[:-1], start=1):
        escaped = line.startswith("\\")
        line = line[1:] if escaped else line
        sha, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise Refused(f"{MANIFEST} line {number}: not a sha256sum line")
        if escaped:
            name = re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", "r": "\r"}.get(m.group(1), m.group(1)), name)
        entries[name.removeprefix("./")] = sha
    return entries


def check_manifest(folder: Path) -> int:
    """Every file the manifest lists is there with its sha256, and nothing else is: the first
    problems named. Returns the number of files checked."""
    if not (folder / MANIFEST).is_file():
        raise Refused(f"{folder / MANIFEST}: missing — not a backup, or an unfinished one")
    listed = read_manifest(folder)
    problems: list[str] = []
    present = {
        rel
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and (rel := p.relative_to(folder).as_posix()) != MANIFEST
    }
    for name, sha in sorted(listed.items()):
        path = folder / name
        if name not in present:
            problems.append(f"{name}: missing")
        elif sha256_of(path) != sha:
            problems.append(f"{name}: sha256 does not match {MANIFEST}")
    problems += [f"{name}: not in {MANIFEST}" for name in sorted(present - set(listed))]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise Refused(
            f"备份已损坏或被改动，未恢复任何内容 (the backup is damaged or was changed; nothing restored):\n  {shown}"
        )
    return len(listed)


# ---------------------------------------------------------------- restore


def read_info(folder: Path) -> dict[str, Any]:
    info = json.loads((folder / INFO).read_text(encoding="utf-8"))
    if info.get("format") != FORMAT:
        raise Refused(f"{INFO}: format {info.get('format')!r}, this hub reads {FORMAT}")
    return info


def restore_url(home: Path) -> str:
    """The target database, from the environment; relative SQLite paths inside the new home."""
    url = os.environ.get(RESTORE_URL_ENV) or "sqlite:///hub.db"
    if kind_of(url) == "sqlite" and not sqlite_path(url).is_absolute():
        url = f"sqlite:///{(home / sqlite_path(url)).resolve()}"
    return url


def known_revisions() -> set[str]:
    return {r.revision for r in ScriptDirectory(str(migrate.MIGRATIONS)).walk_revisions()}


def new_settings(backup: Path, home: Path) -> Settings:
    """The settings the restored home will have: the backup's hub.yaml, in the new home."""
    return load_settings(backup / FILES / "config").model_copy(update={"home": home})


def _not_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


@contextmanager
def _target(url: str) -> Iterator[Connection]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise Refused(f"无法连接目标数据库 (cannot connect to {masked(url)}): {_short(exc)}") from None
    finally:
        engine.dispose()


def first_table(url: str) -> str | None:
    """A table the target database already holds (applications first), with its row count."""
    if kind_of(url) == "sqlite" and not sqlite_path(url).exists():
        return None
    with _target(url) as conn:
        tables = sorted(inspect(conn).get_table_names(), key=lambda t: (t != "applications", t))
        if kind_of(url) == "postgresql":  # any schema: pg_restore must not meet anything
            tables = tables or [
                f"{s}.{t}"
                for s, t in conn.execute(
                    text(
                        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema"
                        " NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
                    )
                )
            ]
        if not tables:
            return None
        if "." in tables[0]:  # in another schema: named, not counted
            return tables[0]
        rows = conn.execute(text(f'SELECT count(*) FROM "{tables[0]}"')).scalar_one()
        return f"{tables[0]} ({rows} rows)"


def preflight(backup: Path, home: Path, *, force: bool, signing_key: Path | None) -> dict[str, str]:
    """Everything restore checks before it writes anything. Returns where the files go."""
    info = read_info(backup)
    url = restore_url(home)
    kind = kind_of(url)
    if kind != info["database"]["kind"]:
        raise Refused(
            f"备份是 {info['database']['kind']} 数据库，目标是 {kind} "
            f"(the backup holds a {info['database']['kind']} database: give one with --database-url)"
        )
    revision = info["database"].get("revision")
    if revision and revision not in known_revisions():
        raise Refused(
            f"{INFO}: 备份来自更新的版本 (the backup's schema revision {revision} is newer than this code's "
            f"{migrate.head_revision()}): restore with the release that made it, or a newer one"
        )
    if _not_empty(home) and not force:
        raise Refused(f"{home} 不为空 (not empty); restore into a new or empty folder, or --force")
    settings = new_settings(backup, home)
    targets = {
        "MATERIALS": settings.path(settings.materials_dir),
        "RECORDINGS": settings.path(settings.signing.recordings_dir),
    }
    for name, path in targets.items():
        if _not_empty(path) and not force:
            raise Refused(
                f"{path} 不为空 (not empty: the restored {name.lower()} would mix with what is there); --force"
            )
    if (table := first_table(url)) and not force:
        raise Refused(
            f"目标数据库不为空，未作任何改动 (the target database {masked(url)} is not empty: table {table}; "
            "nothing changed). Restore into an empty database, or --force to replace what the backup holds"
        )
    if kind == "postgresql":
        tool_version("pg_restore")  # there, before anything is written
    key_target = settings.signing_key_file.path
    if signing_key is not None:
        if not signing_key.is_file():
            raise Refused(f"--signing-key {signing_key}: not found")
        expected = (info.get("signing_key") or {}).get("id")
        try:
            _, found_id = public_key_of(signing_key)
        except (ValueError, TypeError) as exc:
            raise Refused(f"--signing-key {signing_key}: not a PEM private key ({exc})") from None
        if expected and found_id != expected:
            raise Refused(
                f"--signing-key {signing_key}: key {found_id[:16]}…, but the evidence in this backup was sealed "
                f"with {expected[:16]}…"
            )
        if key_target.exists() and key_target.read_bytes() != signing_key.read_bytes():
            raise Refused(f"{key_target}: a different signing key is already there")
    return {
        **{k: str(v) for k, v in targets.items()},
        "KEY_TARGET": str(key_target),
        "PUBLIC_KEY": str(backup / PUBLIC_KEY) if (backup / PUBLIC_KEY).is_file() else "",
        "DB_SHOWN": masked(url),
    }


def point_home(home: Path) -> None:
    """hub.yaml of the restored home names the database it was restored into, without its
    password (give that as HUB_DATABASE_URL, PGPASSWORD or in ~/.pgpass): the copy from the
    backup names the old one, and a drill must never write to production."""
    url = restore_url(home)
    if kind_of(url) == "sqlite" and sqlite_path(url).is_relative_to(home.resolve()):
        shown = f"sqlite:///{sqlite_path(url).relative_to(home.resolve()).as_posix()}"
    else:
        shown = without_password(make_url(url))
    path = home / SETTINGS_FILE
    body = path.read_text(encoding="utf-8")
    line = f"database_url: {json.dumps(shown)}  # restored {utc_text()}"
    body, n = re.subn(r"^database_url:.*$", line, body, count=1, flags=re.M)
    path.write_text(body if n else body.rstrip("\n") + "\n" + line + "\n", encoding="utf-8")


def restore_database(backup: Path, home: Path, *, force: bool) -> None:
    url = restore_url(home)
    if kind_of(url) == "sqlite":
        target = sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            stale.unlink(missing_ok=True)  # only with --force is anything there (preflight)
        shutil.copyfile(backup / SQLITE_COPY, target)
        return
    u = make_url(url)
    cmd = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--no-password"]
    if force:
        cmd += ["--clean", "--if-exists"]
    _run([*cmd, f"--dbname={u.database}", str(backup / PG_DUMP)], libpq_env(url))
    with _target(url) as conn:  # a restored database has no planner statistics yet
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def compare(backup: Path, home: Path) -> list[str]:
    """The restored database's counts against the backup's (after the migrations)."""
    info = read_info(backup)
    with _target(restore_url(home)) as conn:
        now = facts(conn)["counts"]
    return [
        f"{name}: {now.get(name)} restored, the backup holds {want}"
        for name, want in info["database"]["counts"].items()
        if want is not None and now.get(name) != want
    ]
