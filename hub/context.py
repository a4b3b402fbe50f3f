"""The hub as the core sees it: settings, catalogue, working-day calendar, material store and
database, opened once from a hub home. Jobs, the CLI and (later) the API all start here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.catalog import Catalog, load_catalog
from hub.connection_config import Connection, by_connection, load_connections
from hub.connectors import Connector
from hub.errors import ConfigInvalid, ConfigProblem, HubError
from hub.materials import MaterialStore
from hub.outgoing_materials import OutgoingMaterials
from hub.plugins import PluginHost
from hub.settings import Settings, load_settings
from hub.storage.engine import WRITE, make_engine, session_factory
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
        return cls(
            settings=settings,
            catalog=load_catalog(settings.config_dir),
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
        )

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
