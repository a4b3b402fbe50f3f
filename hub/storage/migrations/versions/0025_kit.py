"""the offline kit (政务背包): enrolled devices and the records they synced

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kit_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_sync_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_kit_devices_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kit_devices")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_kit_devices_token_hash")),
    )
    op.create_index(op.f("ix_kit_devices_user_id"), "kit_devices", ["user_id"], unique=False)
    op.create_table(
        "kit_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("application_number", sa.String(length=40), nullable=True),
        sa.Column("signature_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["kit_devices.id"], name=op.f("fk_kit_records_device_id_kit_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kit_records")),
        sa.UniqueConstraint("device_id", "record_id", name="uq_kit_records"),
    )


def downgrade() -> None:
    op.drop_table("kit_records")
    op.drop_index(op.f("ix_kit_devices_user_id"), table_name="kit_devices")
    op.drop_table("kit_devices")
