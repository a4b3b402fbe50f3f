"""licences: one per approved part (unique part_id), and the issuer's library index

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-04
"""

from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("licences") as batch:
        batch.create_unique_constraint("uq_licences_part_id", ["part_id"])
    op.create_index("ix_licences_issuer", "licences", ["issuer", "issued_on"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_licences_issuer", table_name="licences")
    with op.batch_alter_table("licences") as batch:
        batch.drop_constraint("uq_licences_part_id", type_="unique")
