"""indexes for the deadline sweep, the warnings and the list filters, chosen from query plans
(tests/test_query_plans.py): clocked and provisional applications by id (partial), open 容缺
commitments by application (partial), applicants by name

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CLOCKED_SQL = "state IN ('accepted', 'in_review', 'supplement_requested')"


def _partial(predicate: str) -> dict:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def upgrade() -> None:
    op.create_index("ix_applications_clocked", "applications", ["id"], unique=False, **_partial(CLOCKED_SQL))
    op.create_index(
        "ix_applications_provisional",
        "applications",
        ["id"],
        unique=False,
        postgresql_where=sa.text("due_provisional"),
        sqlite_where=sa.text("due_provisional = 1"),  # SQLite's booleans are 0/1, as queries write them
    )
    op.create_index("ix_applications_applicant_name", "applications", ["applicant_name"], unique=False)
    op.create_index(
        "ix_deficiencies_open", "deficiencies", ["application_id"], unique=False, **_partial("closed_at IS NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_deficiencies_open", table_name="deficiencies")
    op.drop_index("ix_applications_applicant_name", table_name="applications")
    op.drop_index("ix_applications_provisional", table_name="applications")
    op.drop_index("ix_applications_clocked", table_name="applications")
