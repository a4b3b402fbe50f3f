"""indexes for the to-do pages and list filters: a desk's intake by day, the received-date
filter, search by applicant name, 容缺 commitments still owed by due date

Revision ID: 0015
Revises: 0008
Create Date: 2026-12-04
"""

from alembic import op

revision = "0015"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index("ix_applications_desk_created", ["desk_code", "created_at"], unique=False)
        batch_op.create_index("ix_applications_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_applications_applicant_name", ["applicant_name"], unique=False)
    with op.batch_alter_table("deficiencies", schema=None) as batch_op:
        batch_op.create_index("ix_deficiencies_open_due", ["closed_at", "due_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deficiencies", schema=None) as batch_op:
        batch_op.drop_index("ix_deficiencies_open_due")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index("ix_applications_applicant_name")
        batch_op.drop_index("ix_applications_created_at")
        batch_op.drop_index("ix_applications_desk_created")
