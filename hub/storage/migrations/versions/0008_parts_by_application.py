"""index application_parts by application: every read of an application loads its parts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("application_parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_application_parts_application_id"), ["application_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("application_parts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_parts_application_id"))
