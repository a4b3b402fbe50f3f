"""licences: one per approved part (unique part_id), the issuer's library index, and the sealed
PDF's digest with its algorithm (crypto.hash)

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("licences") as batch:
        batch.create_unique_constraint("uq_licences_part_id", ["part_id"])
        batch.add_column(sa.Column("digest_algorithm", sa.String(length=16), server_default="sha256", nullable=False))
        batch.add_column(sa.Column("digest", sa.String(length=128), nullable=True))
    op.create_index("ix_licences_issuer", "licences", ["issuer", "issued_on"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_licences_issuer", table_name="licences")
    with op.batch_alter_table("licences") as batch:
        batch.drop_column("digest")
        batch.drop_column("digest_algorithm")
        batch.drop_constraint("uq_licences_part_id", type_="unique")
