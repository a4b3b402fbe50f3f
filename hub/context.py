"""The hub as the core sees it: settings, catalogue, working-day calendar, material store and
database, opened once from a hub home. Jobs, the CLI and (later) the API all start here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hub import rollups
from hub.catalog import Catalog, load_catalog
from hub.connection_config import Connection, by_connection, load_connections
from hub.connectors import Connector
from hub.errors import ConfigInvalid, ConfigProblem, HubError
from hub.materials import MaterialStore
from hub.outgoing_materials import OutgoingMaterials
from hub.partners import Partners, load_partners
from hub.partners.items import StoredList, merged, stored_payload
from hub.plugins import PluginHost
from hub.settings import Settings, load_settings
from hub.storage.engine import WRITE, make_engine, session_factory
from hub.storage.tables import PartnerCatalogue
from hub.workdays import WorkCalendar

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Hub:
    settings: Settings
    catalog: Catalog
    calendar: WorkCalendar
    store: MaterialStore
    engine: Engine
    sessions: sessionmaker[Session]
    plugins: PluginHost = field(default_factory=PluginHost.empty)
    connections: dict[str, Connection] = field(default_factory=dict)
    # connections whose file is broken (bad YAML, a type no loaded plugin provides), by name:
    # reported when used, while every other connection works
    connection_problems: dict[str, list[ConfigProblem]] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default=utcnow)
    # what plugins keep for this hub while it is open, by plugin name (as Flask's app.extensions)
    extensions: dict[str, Any] = field(default_factory=dict)
    # 跨省通办: partner hubs (partners/*.yaml); `catalog` then also holds the items of their lists
    partners: Partners = field(default_factory=Partners)
    local_catalog: Catalog | None = None  # the catalogue files alone (None: `catalog` is that)
    _lists_seen: tuple | None = field(default=None, repr=False)
    _lists_checked: float = field(default=0.0, repr=False)
    _lists_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls,
        home: Path,
        *,
        database_url: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        connectors: bool = True,
    ) -> Hub:
        """The hub of a home, with its one plugin host. `connectors=False` for a process that
        never talks to another system (an ingest worker): plugins and connections are not
        loaded, which saves a second."""
        settings = load_settings(Path(home))
        engine = make_engine(database_url or settings.resolved_database_url, settings.database_pool_size)
        host = PluginHost.empty()
        connections: dict[str, Connection] = {}
        broken: dict[str, list[ConfigProblem]] = {}
        if connectors:
            host = PluginHost.configured(settings.plugins)
            connections, problems = load_connections(
                settings.connections_dir, host.connector_types, why_unknown=host.why_no_type
            )
            broken = by_connection(problems)
            for name, found in broken.items():
                log.warning("connection %s is not usable: %s", name, "; ".join(str(p) for p in found))
        catalog = load_catalog(settings.config_dir)
        hub = cls(
            settings=settings,
            catalog=catalog,
            calendar=WorkCalendar.from_dir(settings.calendar_dir),
            store=MaterialStore(
                settings.path(settings.materials_dir), settings.max_material_bytes, settings.allowed_media_types
            ),
            engine=engine,
            sessions=session_factory(engine),
            plugins=host,
            connections=connections,
            connection_problems=broken,
            clock=clock,
            partners=load_partners(settings.partners_dir, home=settings.home),
            local_catalog=catalog,
        )
        rollups.install(hub.sessions, settings.tz)  # the dashboard's rollups move with each event
        from hub.documents.owe import install as owe_documents  # here: documents import the applications

        owe_documents(hub, hub.sessions)  # notices are owed in the transaction of their event
        for name, found in hub.partners.problems.items():
            log.warning("partner %s is not usable: %s", name, "; ".join(str(p) for p in found))
        hub.partner_lists_current(force=True)
        return hub

    def partner_lists_current(self, *, force: bool = False, every_seconds: float = 5.0) -> None:
        """Bring the partners' item lists into `catalog` if another process (or this one) stored
        newer ones. A query at most every `every_seconds` per process; nothing without partners."""
        if not self.partners.by_name or self.local_catalog is None:
            return
        if not force and time.monotonic() - self._lists_checked < every_seconds:
            return
        with self._lists_lock:
            self._lists_checked = time.monotonic()
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(
                        select(PartnerCatalogue.partner, PartnerCatalogue.version, PartnerCatalogue.fetched_at)
                    ).all()
                    seen = (tuple(sorted((r.partner, r.version, r.fetched_at) for r in rows)), self.today())
                    if seen == self._lists_seen:
                        return
                    bodies = dict(conn.execute(select(PartnerCatalogue.partner, PartnerCatalogue.body)).all())
            except SQLAlchemyError:  # a database not migrated yet (`hub db upgrade` opens the hub too)
                log.debug("partner item lists not read", exc_info=True)
                rows, bodies, seen = [], {}, None  # partners' desks still; their items once readable
            lists = {
                r.partner: StoredList(r.partner, r.version, r.fetched_at, stored_payload(bodies[r.partner]))
                for r in rows
                if r.partner in bodies
            }
            self.catalog = merged(
                self.local_catalog,
                self.partners,
                lists,
                county_division=self.settings.county.division,
                now=self.now().replace(tzinfo=None),
                stale_after=timedelta(days=self.settings.exchange.catalogue_stale_days),
            )
            self._lists_seen = seen

    @property
    def connector_types(self) -> dict[str, type[Connector]]:
        return self.plugins.connector_types

    def connector(self, name: str) -> Connector:
        """A connector for the named connection (its config validated, secrets resolved now)."""
        if name in self.connection_problems:
            raise ConfigInvalid(self.connection_problems[name])
        if name not in self.connections:
            raise HubError(f"连接 {name} 未配置 (no connection {name} in connections/)")
        connector = self.connections[name].make(
            self.connector_types, lease_seconds=self.settings.dispatch_lease_seconds
        )
        connector.materials = OutgoingMaterials(self.store, self.settings, name)
        return connector

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def today(self) -> date:
        """Today's date where the county is (due dates are local calendar dates)."""
        return self.clock().astimezone(self.settings.tz).date()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction. On SQLite it takes the write lock at once; on PostgreSQL rows are
        locked by the SELECT … FOR UPDATE of the code that changes them."""
        with self.sessions() as session, session.begin():
            session.connection(execution_options={WRITE: True})
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[DbConnection]:
        """A write transaction on a plain connection, for hot paths that write rows without the
        ORM (a Session costs about a millisecond of CPU per transaction). Same locking as
        `transaction`."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()
