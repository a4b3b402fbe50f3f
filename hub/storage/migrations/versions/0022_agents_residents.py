"""service channels: the agent roster (帮代办) and residents' sessions (网办)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("desks", sa.JSON(), nullable=False),
        sa.Column("townships", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_agents_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("user_id", name=op.f("uq_agents_user_id")),
        sa.UniqueConstraint("id_number", name=op.f("uq_agents_id_number")),
    )
    op.create_table(
        "resident_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_resident_sessions")),
    )
    op.create_index(op.f("ix_resident_sessions_id_number"), "resident_sessions", ["id_number"])


def downgrade() -> None:
    op.drop_index(op.f("ix_resident_sessions_id_number"), table_name="resident_sessions")
    op.drop_table("resident_sessions")
    op.drop_table("agents")
