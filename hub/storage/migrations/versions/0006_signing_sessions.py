"""remote face-to-face signing sessions (远程面签)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("part_id", sa.String(length=36), nullable=False),
        sa.Column("item_code", sa.String(length=32), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=False),
        sa.Column("department_code", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=500), nullable=True),
        sa.Column("readback_shown", sa.Boolean(), nullable=False),
        sa.Column("otp_hash", sa.String(length=64), nullable=True),
        sa.Column("otp_attempts", sa.Integer(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=True),
        sa.Column("retain_until", sa.Date(), nullable=True),
        sa.Column("purged_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_signing_sessions_application_id_applications")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_sessions")),
    )
    op.create_index(op.f("ix_signing_sessions_application_id"), "signing_sessions", ["application_id"], unique=False)
    op.create_index("ix_signing_sessions_state", "signing_sessions", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_signing_sessions_state", table_name="signing_sessions")
    op.drop_index(op.f("ix_signing_sessions_application_id"), table_name="signing_sessions")
    op.drop_table("signing_sessions")
