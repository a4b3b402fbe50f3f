"""Migrations build the schema the models describe, on an empty SQLite and PostgreSQL database."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import Base


def test_upgrade_empty_database_to_head_matches_models(db_url):
    engine = make_engine(db_url)
    try:
        # db_url is already migrated by the fixture; a second upgrade is a no-op, not an error
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"applications", "application_parts", "events", "blobs", "deficiencies", "counters"} <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_upgrade_from_nothing_on_a_fresh_sqlite_file(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
