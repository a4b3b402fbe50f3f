"""the licence library (电子证照): licences the hub issued, their metadata and status

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "licences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("type_code", sa.String(length=32), nullable=False),
        sa.Column("type_name", sa.String(length=100), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("holder_id", sa.String(length=64), nullable=False),
        sa.Column("holder_id_type", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=40), nullable=False),
        sa.Column("issuer_name", sa.String(length=100), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="valid", nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.Column("revocation_reason", sa.String(length=500), nullable=True),
        sa.Column("application_number", sa.String(length=40), nullable=True),
        sa.Column("part_id", sa.String(length=36), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"], name=op.f("fk_licences_sha256_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licences")),
        sa.UniqueConstraint("code", name=op.f("uq_licences_code")),
        sa.UniqueConstraint("number", name=op.f("uq_licences_number")),
    )
    op.create_index("ix_licences_holder", "licences", ["holder_id", "type_code"], unique=False)
    op.create_index(op.f("ix_licences_application_number"), "licences", ["application_number"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_licences_application_number"), table_name="licences")
    op.drop_index("ix_licences_holder", table_name="licences")
    op.drop_table("licences")
