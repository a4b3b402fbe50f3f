"""supervision: the dashboard's daily rollups (figure_rollups), the 整改 flow's steps
(follow_up_steps, ratings.follow_up_step/_owner), ratings by time

The rollups of an existing database are filled by `hub db upgrade` after the migrations
(hub.rollups.backfill), with the hub's own time zone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COUNTERS = (
    "received",
    "accepted",
    "completed",
    "accepted_completed",
    "on_time",
    "instant",
    "trips_desk",
    "trips_tolerant",
    "trips_mail",
    "ratings",
    "rating_sum",
    "bad_ratings",
)


def upgrade() -> None:
    op.create_table(
        "figure_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=False),
        sa.Column("department_code", sa.String(length=64), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS),
        sa.PrimaryKeyConstraint("day", "channel", "desk_code", "department_code", name=op.f("pk_figure_rollups")),
    )
    op.create_table(
        "follow_up_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("done_by", sa.String(length=100), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["rating_id"], ["ratings.id"], name=op.f("fk_follow_up_steps_rating_id_ratings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_steps")),
    )
    with op.batch_alter_table("follow_up_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_follow_up_steps_rating_id"), ["rating_id"], unique=False)
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("follow_up_step", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("follow_up_owner", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_ratings_rated_at", ["rated_at"], unique=False)
        batch_op.create_index("ix_ratings_follow_up_due", ["follow_up_due", "id"], unique=False)
    # open work by due date, and open parts by application: the red and yellow counts (figures,
    # /metrics) read these partial indexes alone
    clocked = sa.text("state IN ('accepted', 'in_review', 'supplement_requested')")
    op.create_index(
        "ix_applications_clocked_due",
        "applications",
        ["due_date"],
        postgresql_include=["state", "accepted_on", "paused_since", "paused_workdays", "channel", "desk_code"],
        postgresql_where=clocked,
        sqlite_where=clocked,
    )
    open_part = sa.text("state IN ('pending', 'in_review')")
    op.create_index(
        "ix_parts_open_by_application",
        "application_parts",
        ["application_id"],
        postgresql_include=["department_code", "item_code"],
        postgresql_where=open_part,
        sqlite_where=open_part,
    )
    bad = sa.text("follow_up_due IS NOT NULL")
    op.create_index("ix_ratings_bad_rated_at", "ratings", ["rated_at"], postgresql_where=bad, sqlite_where=bad)
    # open follow-ups of an existing database wait at the first step
    op.execute(
        "UPDATE ratings SET follow_up_step = 'verify' WHERE follow_up_due IS NOT NULL AND follow_up_closed_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_ratings_bad_rated_at", table_name="ratings")
    op.drop_index("ix_parts_open_by_application", table_name="application_parts")
    op.drop_index("ix_applications_clocked_due", table_name="applications")
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_ratings_follow_up_due")
        batch_op.drop_index("ix_ratings_rated_at")
        batch_op.drop_column("follow_up_owner")
        batch_op.drop_column("follow_up_step")
    with op.batch_alter_table("follow_up_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_up_steps_rating_id"))
    op.drop_table("follow_up_steps")
    op.drop_table("figure_rollups")
