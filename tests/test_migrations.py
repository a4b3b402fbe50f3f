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


def test_an_applications_parts_are_found_by_index_not_by_scanning_every_part(db_url):
    """Every read of an application loads its parts: without the index that is a scan of all
    parts in the hub (25–35 ms at 200,000 applications, issue 21)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = " ".join(
                    str(row[-1])
                    for row in conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN SELECT * FROM application_parts WHERE application_id = 1"
                    )
                )
                assert "USING INDEX ix_application_parts_application_id" in plan, plan
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: ask whether an index could serve
                plan = " ".join(
                    row[0]
                    for row in conn.exec_driver_sql("EXPLAIN SELECT * FROM application_parts WHERE application_id = 1")
                )
                assert "ix_application_parts_application_id" in plan, plan
    finally:
        engine.dispose()
