"""Is this hub ready to serve, and is its home sound? Plain functions returning `Check`s, used by
the web app's `/readyz` and by `hub doctor` (docs/operations.md).

Readiness (`readiness`): the database answers, its schema is at the migrations' head, the keys
are there (the secret status links are signed with; the evidence signing key when remote signing
is on), and the recordings and material stores take a file. `doctor` adds what a running API
process does not need to re-check every few seconds: the catalogue, the working-day calendar for
the coming year, the plugins, a check of every department connection, and — offline, no message
is sent — each partner hub's configuration (跨省通办; `hub partners check` also pings them).

A check's `detail` names settings and files by name, never a path, a URL or a secret: readiness
answers unauthenticated callers."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from hub.catalog.loader import check_catalog
from hub.catalog.models import Catalog
from hub.connection_config import Connection, load_connections
from hub.connectors import Connector
from hub.errors import ConfigInvalid, ConfigProblem
from hub.partners import load_partners
from hub.partners.config import cross_check
from hub.plugins import PluginHost
from hub.settings import Settings, load_settings
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.workdays import WorkCalendar, load_schedules

SECRET_FILE = "secret.key"  # in the hub home: what status links and tickets are signed with (hub.web.app)
MIN_SECRET = 16
CALENDAR_DAYS = 365
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok]


def _why(exc: BaseException) -> str:
    """An OSError's reason without its file name; other errors by their class."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


# ---------------------------------------------------------------- readiness


@cache
def head_revision() -> str | None:
    return migrate.head_revision()  # the shipped scripts do not change while the process runs


def check_database(engine: Engine) -> list[Check]:
    """`database` (a connection and a query) and `migrations` (the schema at head)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            # read directly: alembic's MigrationContext logs two INFO lines per call (every probe)
            current = (
                conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
                if inspect(conn).has_table(VERSION_TABLE)
                else None
            )
    except Exception as exc:
        return [
            Check("database", False, f"unreachable ({type(exc).__name__})"),
            Check("migrations", False, "not checked: the database is unreachable"),
        ]
    head = head_revision()
    if current == head:
        return [Check("database", True, engine.dialect.name), Check("migrations", True, f"at head {head}")]
    if current is None:
        return [
            Check("database", True, engine.dialect.name),
            Check("migrations", False, f"no schema: run `hub db upgrade` (head is {head})"),
        ]
    return [
        Check("database", True, engine.dialect.name),
        Check("migrations", False, f"at {current}, head is {head}: run `hub db upgrade`"),
    ]


def check_secret_key(settings: Settings) -> Check:
    """The key status links and 网上核验 tickets are signed with (HUB_SECRET_KEY or secret.key)."""
    if (env := os.environ.get("HUB_SECRET_KEY")) is not None:
        if len(env) < MIN_SECRET:
            return Check("secret_key", False, f"HUB_SECRET_KEY is shorter than {MIN_SECRET} characters")
        return Check("secret_key", True, "HUB_SECRET_KEY")
    path = settings.home / SECRET_FILE
    if not path.exists():
        if _can_create(settings.home):
            return Check("secret_key", True, f"{SECRET_FILE}: made when `hub serve` first starts")
        return Check("secret_key", False, f"{SECRET_FILE} missing and the hub home is not writable")
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        return Check("secret_key", False, f"{SECRET_FILE} unreadable ({_why(exc)})")
    if len(value) < MIN_SECRET:
        return Check("secret_key", False, f"{SECRET_FILE} is shorter than {MIN_SECRET} characters")
    return Check("secret_key", True, SECRET_FILE)


def check_signing_key(settings: Settings) -> Check:
    """The key evidence is sealed with (Ed25519, or crypto.signature's algorithm). A configured key (HUB_SIGNING_KEY_FILE, or a
    `signing.key_file` other than the default) must be there: making a new one would seal
    evidence with a key nobody holds a copy of. The default one in the hub home is made on first
    use (a trial), so its absence is fine while the home is writable."""
    path, source, configured = settings.signing_key_file
    if not path.exists():
        if configured:
            return Check("signing_key", False, f"{source}: the key file is missing")
        if _can_create(path.parent):
            return Check("signing_key", True, f"{source}: made on first use (production supplies its own)")
        return Check("signing_key", False, f"{source}: missing and cannot be made")
    try:
        pem = path.read_bytes()
    except OSError as exc:
        return Check("signing_key", False, f"{source}: unreadable ({_why(exc)})")
    problem, algorithm = _key_problem(pem)
    return Check("signing_key", problem is None, f"{source}: {problem or algorithm + ' private key'}")


def _key_problem(pem: bytes) -> tuple[str | None, str]:
    """(what is wrong with a private key file, its algorithm): any algorithm hub.crypto signs
    with (Ed25519, ECDSA P-256, RSA, SM2) will do."""
    if b"-----BEGIN" not in pem or b"PRIVATE KEY-----" not in pem:
        return "not a PEM private key", ""
    from hub import crypto

    try:
        key = crypto.load_private(pem)
    except (ValueError, TypeError) as exc:
        return f"cannot be loaded ({type(exc).__name__})", ""
    return None, {"ed25519": "Ed25519"}.get(key.algorithm, key.algorithm.upper())


def _can_create(folder: Path) -> bool:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK)


def check_writable(name: str, folder: Path, label: str, prefix: str = ".health-") -> Check:
    """The folder exists (made if need be, as its users would) and a file can be written in it,
    synced and removed. Tried, not asked (os.access says yes to root on a read-only mount)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=prefix)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return Check(name, False, f"{label}: not writable ({_why(exc)})")
    return Check(name, True, f"{label}: writable")


def check_storage(settings: Settings) -> list[Check]:
    # the store's own prefix for half-received files: housekeeping removes one a crash left
    return [check_writable("materials", settings.path(settings.materials_dir), "materials_dir", ".incoming-health-")]


def _probe_engine(engine: Engine, timeout: float) -> Engine:
    """On PostgreSQL a connection of its own, never the pool's: probes every few seconds against
    a server that hangs would otherwise hold pooled connections the requests need."""
    if engine.dialect.name != "postgresql":
        return engine
    return create_engine(engine.url, poolclass=NullPool, connect_args={"connect_timeout": max(1, int(timeout))})


def readiness(settings: Settings, engine: Engine, *, plugins: PluginHost, timeout: float = 5.0) -> list[Check]:
    """What `/readyz` checks, with what the loaded plugins need (their `health_checks`, e.g.
    remote signing's key and recordings folder). A database that does not answer within
    `timeout` seconds fails (a dead server can hold a connect for minutes)."""
    checks = with_timeout("database", timeout, lambda: check_database(_probe_engine(engine, timeout)))
    if len(checks) == 1:  # timed out or failed before a result
        checks.append(Check("migrations", False, "not checked: the database did not answer"))
    checks.append(check_secret_key(settings))
    checks += check_storage(settings)
    for found in plugins.hook.health_checks(settings=settings):
        checks += found or []
    return checks


# ---------------------------------------------------------------- doctor


def check_catalogue(catalog: Catalog | None, problems: list[ConfigProblem]) -> Check:
    """What `check_catalog` found (the catalogue is loaded once for the checks that need it)."""
    errors = [p for p in problems if not p.warning]
    if errors or catalog is None:
        shown = "; ".join(str(p) for p in errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        return Check("catalogue", False, f"{len(errors)} error(s): {shown}")
    return Check(
        "catalogue",
        True,
        f"{len(catalog.items)} items, {len(catalog.bundles)} bundles, {len(catalog.departments)} departments, "
        f"{len(catalog.desks)} desks",
    )


def check_verifiers(settings: Settings, catalog: Catalog | None) -> Check:
    """网上核验: every `verifiers:` entry names a configured connection; kinds the catalogue asks
    for without a verifier are listed (a desk then takes the paper copy)."""
    kinds = sorted({m.verify for i in (catalog.items.values() if catalog else ()) for m in i.materials if m.verify})
    names = {p.stem for p in settings.connections_dir.glob("*.yaml")} if settings.connections_dir.is_dir() else set()
    unknown = sorted(f"{k} -> {c}" for k, c in settings.verifiers.items() if c not in names)
    if unknown:
        return Check("verifiers", False, f"no such connection: {', '.join(unknown)}")
    uncovered = [k for k in kinds if k not in settings.verifiers]
    covered = f"{len(kinds) - len(uncovered)} of {len(kinds)} kinds the catalogue verifies online"
    return Check("verifiers", True, covered + (f"; paper only: {', '.join(uncovered)}" if uncovered else ""))


def check_licence_sources(settings: Settings, catalog: Catalog | None) -> Check:
    """电子证照 at intake: every `licence_sources:` entry names a configured connection; licence
    types the catalogue's materials take with no department library are listed (looked up in
    the hub's own library only)."""
    types = sorted({m.licence for i in (catalog.items.values() if catalog else ()) for m in i.materials if m.licence})
    names = {p.stem for p in settings.connections_dir.glob("*.yaml")} if settings.connections_dir.is_dir() else set()
    unknown = sorted(f"{t} -> {c}" for t, c in settings.licence_sources.items() if c not in names)
    if unknown:
        return Check("licence_sources", False, f"no such connection: {', '.join(unknown)}")
    ours = [t for t in types if t not in settings.licence_sources]
    covered = f"{len(types) - len(ours)} of {len(types)} licence types the catalogue takes have a department library"
    return Check("licence_sources", True, covered + (f"; our library only: {', '.join(ours)}" if ours else ""))


def check_calendar(settings: Settings, today: date, days: int = CALENDAR_DAYS) -> Check:
    """Every year the next `days` days touch has an official schedule (calendar/YEAR.yaml or the
    chinesecalendar package): otherwise due dates falling there are provisional."""
    schedules, problems = load_schedules(settings.calendar_dir)
    if problems:
        return Check("calendar", False, "; ".join(str(p) for p in problems[:3]))
    calendar = WorkCalendar(schedules)
    last = today + timedelta(days=days)
    missing = calendar.provisional_years(today.year, last.year)
    if missing:
        years = ", ".join(str(y) for y in missing)
        return Check(
            "calendar",
            False,
            f"no official holiday schedule for {years} (add calendar/{missing[0]}.yaml from the State Council "
            f"notice): due dates there are provisional",
        )
    sources = ", ".join(f"{y} {calendar.source(y).value}" for y in range(today.year, last.year + 1))
    return Check("calendar", True, f"{today} to {last} covered ({sources})")


def load_plugins(settings: Settings) -> tuple[PluginHost, Check]:
    """The home's plugin host, and the `plugins` check: every allowlisted plugin installed and
    loaded. A plugin that fails to import leaves a host without plugins (and a failed check)."""
    try:
        host = PluginHost.configured(settings.plugins)
    except Exception as exc:  # a plugin that fails to import
        return PluginHost.empty(), Check("plugins", False, f"a plugin failed to load: {type(exc).__name__}: {exc}")
    loaded = sorted(i.name for i in host.infos if i.loaded)
    missing = sorted(host.allowed - set(loaded))
    if missing:
        return host, Check("plugins", False, "; ".join(f"{name}: allowed but not installed" for name in missing))
    return host, Check("plugins", True, ", ".join(loaded) or "none")


def with_timeout(name: str, seconds: float, work: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run `work` in a daemon thread; a check still running after `seconds` fails (and is left
    to finish on its own: a hung connect must not hang the caller, nor its exit)."""
    box: list[Check | list[Check]] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name=f"check-{name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return [Check(name, False, f"no answer within {seconds:g} s")]
    if error:
        return [Check(name, False, f"{type(error[0]).__name__}: {error[0]}")]
    result = box[0]
    return result if isinstance(result, list) else [result]


def check_connection(
    name: str, connection: Connection, types: dict[str, type[Connector]], lease_seconds: float | None = None
) -> Check:
    """`hub connectors check NAME` and `hub doctor`: config (with the dispatch lease, when given),
    credentials, reachability. Whatever goes wrong is this connection's failed check."""
    label = f"connection:{name}"
    try:
        connector = connection.make(types, lease_seconds=lease_seconds)
    except ConfigInvalid as exc:
        return Check(label, False, "; ".join(str(p) for p in exc.problems))
    try:
        result = connector.check()
    except Exception as exc:
        return Check(label, False, f"{type(exc).__name__}: {exc}")
    finally:
        connector.close()
    return Check(label, result.ok, result.message)


def check_connections(settings: Settings, plugins: PluginHost, timeout: float) -> list[Check]:
    """`connections` (their files) and one `connection:NAME` per connection, checked at once,
    each given `timeout` seconds."""
    types = plugins.connector_types
    connections, problems = load_connections(settings.connections_dir, types, why_unknown=plugins.why_no_type)
    out = [Check("connections", not problems, "; ".join(str(p) for p in problems) or f"{len(connections)} configured")]
    results: dict[str, list[Check]] = {}

    def one(name: str, conn: Connection) -> None:
        results[name] = with_timeout(
            f"connection:{name}", timeout, lambda: check_connection(name, conn, types, settings.dispatch_lease_seconds)
        )

    threads = [threading.Thread(target=one, args=item, daemon=True) for item in sorted(connections.items())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    for name in sorted(connections):
        out += results.get(name, [Check(f"connection:{name}", False, f"no answer within {timeout:g} s")])
    return out


def check_exchange_key(settings: Settings) -> Check:
    """Our exchange identity, needed once any partner is configured: `exchange.hub_id` set, and
    the key our messages are signed with there (`hub partners keygen`)."""
    if not settings.exchange.hub_id:
        return Check("exchange_key", False, "partners configured but hub.yaml has no exchange.hub_id")
    path, source, _ = settings.exchange_key_file
    if not path.exists():
        return Check("exchange_key", False, f"{source}: the key file is missing (run `hub partners keygen`)")
    try:
        pem = path.read_bytes()
    except OSError as exc:
        return Check("exchange_key", False, f"{source}: unreadable ({_why(exc)})")
    problem, algorithm = _key_problem(pem)
    return Check("exchange_key", problem is None, f"{source}: {problem or algorithm + ' private key'}")


def check_public_url(settings: Settings, database_url: str) -> Check:
    """Where residents' QR codes and status links point (`public_url`, HUB_PUBLIC_URL). A bad value
    never gets here (the settings refuse it). Unset is fine for a hub tried on one machine; on
    PostgreSQL — a deployment — it is said, as a warning that does not fail the check: behind a
    proxy every receipt would print the proxy's inner address."""
    if settings.public_url:
        return Check("public_url", True, "set (status links and QR codes use it)")
    if database_url.startswith("postgresql"):
        return Check(
            "public_url",
            True,
            "warning: unset — receipts' QR codes use the address each request came to, and sealed notices "
            "and licences print http://127.0.0.1:8000; set public_url in hub.yaml or HUB_PUBLIC_URL "
            "before anything is issued",
        )
    return Check(
        "public_url",
        True,
        "unset: status links use the address each request came to; sealed notices and licences print "
        "http://127.0.0.1:8000",
    )


def check_partners(settings: Settings, catalog: Catalog | None) -> list[Check]:
    """跨省通办, offline: `exchange_key` when any partner file exists, and one `partner:NAME` per
    file — it loads; the items it accepts from us are in our catalogue and open in those modes;
    its TLS trust file exists; the desks it names exist (what `hub partners check` checks before
    it pings). Nothing when no partner is configured."""
    partners = load_partners(settings.partners_dir, home=settings.home)
    if not partners:
        return []
    checks = [check_exchange_key(settings)]
    for name, problems in sorted(partners.problems.items()):
        shown = "; ".join(str(p) for p in problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        checks.append(Check(f"partner:{name}", False, shown or "the file does not load"))
    for name, p in sorted(partners.by_name.items()):
        out = cross_check(p, catalog=catalog, resolve=settings.path)
        detail = "; ".join(out) or f"{p.display} ({p.hub_id}): file loads, accepts {len(p.accepts)} of our items"
        checks.append(Check(f"partner:{name}", not out, detail))
    return checks


def check_seals(settings: Settings, catalog: Catalog | None, database_url: str, now: datetime) -> list[Check]:
    """电子印章 (docs/seals.md): every department and the hub has a seal, none expires within 30
    days, each chains to a trusted root, and no test CA's seal on PostgreSQL (production)."""
    from hub.seals.checks import seal_checks
    from hub.seals.store import holders

    if catalog is None:
        return []
    found = seal_checks(
        settings.home / "seals",
        holders(settings.county.name, catalog),
        production=database_url.startswith("postgresql"),
        now=now,
    )
    return [Check(p.name, p.ok, p.detail) for p in found]


def doctor(
    home: Path, *, today: date | None = None, timeout: float = 10.0, database_url: str | None = None
) -> list[Check]:
    """Everything `/readyz` checks, and the catalogue, the calendar for the coming year, the
    plugins, every connection and every partner hub's configuration. `today` in the county
    (default: now)."""
    try:
        settings = load_settings(home)
    except ConfigInvalid as exc:
        return [Check("settings", False, "; ".join(str(p) for p in exc.problems))]
    checks = [Check("settings", True, "hub.yaml")]
    engine = make_engine(database_url or settings.resolved_database_url, pool_size=1, pool_timeout=timeout)
    plugins, plugins_check = load_plugins(settings)
    try:
        checks += readiness(settings, engine, plugins=plugins, timeout=timeout)
        catalog, problems = check_catalog(settings.config_dir)
        checks.append(check_catalogue(catalog, problems))
        checks.append(check_verifiers(settings, catalog))
        checks.append(check_licence_sources(settings, catalog))
        checks.append(check_calendar(settings, today or datetime.now(settings.tz).date()))
        checks.append(check_public_url(settings, database_url or settings.resolved_database_url))
        checks.append(plugins_check)
        checks += check_connections(settings, plugins, timeout)
        checks += check_partners(settings, catalog)
        checks += check_seals(settings, catalog, database_url or settings.resolved_database_url, datetime.now(UTC))
    finally:
        engine.dispose()
    return checks
