"""licences instead of paper at intake: materials satisfied by a licence, by reference

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "material_licences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("material", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("type_code", sa.String(length=32), nullable=False),
        sa.Column("type_name", sa.String(length=100), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("holder_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=100), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status_at_check", sa.String(length=16), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("checked_by", sa.String(length=100), nullable=False),
        sa.Column("licence_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_material_licences_application_id_applications")
        ),
        sa.ForeignKeyConstraint(["licence_id"], ["licences.id"], name=op.f("fk_material_licences_licence_id_licences")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_material_licences")),
        sa.UniqueConstraint("application_id", "material", name="uq_material_licences"),
    )
    op.create_index(op.f("ix_material_licences_application_id"), "material_licences", ["application_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_material_licences_application_id"), table_name="material_licences")
    op.drop_table("material_licences")
