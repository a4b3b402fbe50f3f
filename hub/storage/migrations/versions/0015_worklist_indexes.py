"""indexes for the to-do pages and list filters: a desk's intake by day, the received-date
filter, 容缺 commitments still owed (partial) by due date (the name search uses 0009's index)

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


OPEN = sa.text("closed_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_applications_desk_created", "applications", ["desk_code", "created_at"], unique=False)
    op.create_index("ix_applications_created_at", "applications", ["created_at"], unique=False)
    op.create_index("ix_deficiencies_open_due", "deficiencies", ["due_date"], postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_deficiencies_open_due", table_name="deficiencies")
    op.drop_index("ix_applications_created_at", table_name="applications")
    op.drop_index("ix_applications_desk_created", table_name="applications")
