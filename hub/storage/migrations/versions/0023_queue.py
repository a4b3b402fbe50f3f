"""appointments and the queue (预约 / 取号 / 叫号): slots, bookings, tickets, calls, reminders

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=False),
        sa.Column("group_code", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("starts", sa.String(length=5), nullable=False),
        sa.Column("ends", sa.String(length=5), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_slots")),
        sa.UniqueConstraint("desk_code", "group_code", "day", "starts", name="uq_queue_slots_place"),
    )
    op.create_index(op.f("ix_queue_slots_day"), "queue_slots", ["day"], unique=False)
    op.create_table(
        "queue_bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=False),
        sa.Column("group_code", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("application_number", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("active_key", sa.String(length=80), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["slot_id"], ["queue_slots.id"], name=op.f("fk_queue_bookings_slot_id_queue_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_bookings")),
        sa.UniqueConstraint("active_key", name=op.f("uq_queue_bookings_active_key")),
        sa.UniqueConstraint("code", name=op.f("uq_queue_bookings_code")),
    )
    op.create_index(op.f("ix_queue_bookings_day"), "queue_bookings", ["day"], unique=False)
    op.create_index(op.f("ix_queue_bookings_id_number"), "queue_bookings", ["id_number"], unique=False)
    op.create_index(op.f("ix_queue_bookings_slot_id"), "queue_bookings", ["slot_id"], unique=False)
    op.create_table(
        "queue_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["queue_bookings.id"], name=op.f("fk_queue_reminders_booking_id_queue_bookings")
        ),
        sa.ForeignKeyConstraint(["slot_id"], ["queue_slots.id"], name=op.f("fk_queue_reminders_slot_id_queue_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_reminders")),
        sa.UniqueConstraint("booking_id", "slot_id", name="uq_queue_reminders"),
    )
    op.create_index(op.f("ix_queue_reminders_booking_id"), "queue_reminders", ["booking_id"])
    op.create_table(
        "queue_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("group_code", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=8), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("priority_reason", sa.String(length=16), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("id_number", sa.String(length=18), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("counter", sa.String(length=16), nullable=True),
        sa.Column("recalls", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("called_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("called_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_queue_tickets_application_id_applications")
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["queue_bookings.id"], name=op.f("fk_queue_tickets_booking_id_queue_bookings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_tickets")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_queue_tickets_booking_id")),
        sa.UniqueConstraint("desk_code", "day", "number", name="uq_queue_tickets_number"),
    )
    op.create_index("ix_queue_tickets_waiting", "queue_tickets", ["desk_code", "day", "state"], unique=False)
    op.create_table(
        "queue_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=8), nullable=False),
        sa.Column("counter", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["queue_tickets.id"], name=op.f("fk_queue_calls_ticket_id_queue_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_calls")),
    )
    op.create_index(op.f("ix_queue_calls_desk_code"), "queue_calls", ["desk_code"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_queue_calls_desk_code"), table_name="queue_calls")
    op.drop_table("queue_calls")
    op.drop_index("ix_queue_tickets_waiting", table_name="queue_tickets")
    op.drop_table("queue_tickets")
    op.drop_index(op.f("ix_queue_reminders_booking_id"), table_name="queue_reminders")
    op.drop_table("queue_reminders")
    op.drop_index(op.f("ix_queue_bookings_slot_id"), table_name="queue_bookings")
    op.drop_index(op.f("ix_queue_bookings_id_number"), table_name="queue_bookings")
    op.drop_index(op.f("ix_queue_bookings_day"), table_name="queue_bookings")
    op.drop_table("queue_bookings")
    op.drop_index(op.f("ix_queue_slots_day"), table_name="queue_slots")
    op.drop_table("queue_slots")
