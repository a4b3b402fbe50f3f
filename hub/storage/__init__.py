"""Storage: SQLAlchemy 2 tables, engines (embedded SQLite in WAL mode, or PostgreSQL) and
Alembic migrations shipped inside the package."""
