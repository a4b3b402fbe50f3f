"""crypto agility (密评): each application's event chain and each message log entry records its
hash algorithm; the message log's signature column fits RSA signatures

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every chain written before this was sha256: the server default says so for old rows
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("hash_alg", sa.String(length=16), server_default="sha256", nullable=False))
    with op.batch_alter_table("partner_message_log") as batch:
        batch.add_column(sa.Column("hash_alg", sa.String(length=16), server_default="sha256", nullable=False))
        batch.alter_column("signature", type_=sa.String(length=600), existing_type=sa.String(length=200))


def downgrade() -> None:
    with op.batch_alter_table("partner_message_log") as batch:
        batch.alter_column("signature", type_=sa.String(length=200), existing_type=sa.String(length=600))
        batch.drop_column("hash_alg")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("hash_alg")
