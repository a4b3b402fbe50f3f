"""notices as sealed documents (hub.documents): owed by events, issued once

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.String(length=36), nullable=True),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("authority", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("digest_algorithm", sa.String(length=16), server_default="sha256", nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_documents_application_id_applications")
        ),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"], name=op.f("fk_documents_sha256_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("application_id", "event_seq", "kind", name="uq_documents_event_kind"),
        sa.UniqueConstraint("code", name=op.f("uq_documents_code")),
    )
    op.create_index("ix_documents_pending", "documents", ["state", "id"], unique=False)
    op.create_index(op.f("ix_documents_application_id"), "documents", ["application_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_documents_application_id"), table_name="documents")
    op.drop_index("ix_documents_pending", table_name="documents")
    op.drop_table("documents")
