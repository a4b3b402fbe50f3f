"""agency (帮代办): agency tasks, their history, visits, collected materials and applications; the
project ledger (项目台账): projects, their applications and milestones

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agency_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("subject_code", sa.String(length=32), nullable=False),
        sa.Column("desk_code", sa.String(length=64), nullable=True),
        sa.Column("township", sa.String(length=9), nullable=True),
        sa.Column("resident_name", sa.String(length=100), nullable=False),
        sa.Column("resident_id", sa.String(length=18), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("preferred_time", sa.String(length=100), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_role", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("consent_sha256", sa.String(length=64), nullable=True),
        sa.Column("consent_signed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agency_tasks_agent_id_agents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_tasks")),
    )
    op.create_index(op.f("ix_agency_tasks_agent_id"), "agency_tasks", ["agent_id"], unique=False)
    op.create_index(op.f("ix_agency_tasks_desk_code"), "agency_tasks", ["desk_code"], unique=False)
    op.create_index(op.f("ix_agency_tasks_resident_id"), "agency_tasks", ["resident_id"], unique=False)
    op.create_index("ix_agency_tasks_state_created", "agency_tasks", ["state", "created_at"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("company_name", sa.String(length=200), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("investment_wan", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_projects_agent_id_agents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(op.f("ix_projects_agent_id"), "projects", ["agent_id"], unique=False)
    op.create_table(
        "agency_materials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("collected_by", sa.String(length=100), nullable=False),
        sa.Column("collected_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["agency_tasks.id"], name=op.f("fk_agency_materials_task_id_agency_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_materials")),
    )
    op.create_index(op.f("ix_agency_materials_task_id"), "agency_materials", ["task_id"], unique=False)
    op.create_table(
        "agency_task_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("application_number", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["agency_tasks.id"], name=op.f("fk_agency_task_applications_task_id_agency_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_task_applications")),
        sa.UniqueConstraint("application_number", name=op.f("uq_agency_task_applications_application_number")),
    )
    op.create_index(
        op.f("ix_agency_task_applications_created_at"), "agency_task_applications", ["created_at"], unique=False
    )
    op.create_index(op.f("ix_agency_task_applications_task_id"), "agency_task_applications", ["task_id"], unique=False)
    op.create_table(
        "agency_task_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["agency_tasks.id"], name=op.f("fk_agency_task_events_task_id_agency_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_task_events")),
    )
    op.create_index(op.f("ix_agency_task_events_task_id"), "agency_task_events", ["task_id"], unique=False)
    op.create_table(
        "agency_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("visited_at", sa.DateTime(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agency_visits_agent_id_agents")),
        sa.ForeignKeyConstraint(["task_id"], ["agency_tasks.id"], name=op.f("fk_agency_visits_task_id_agency_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_visits")),
    )
    op.create_index(op.f("ix_agency_visits_task_id"), "agency_visits", ["task_id"], unique=False)
    op.create_index(op.f("ix_agency_visits_visited_at"), "agency_visits", ["visited_at"], unique=False)
    op.create_table(
        "project_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("application_number", sa.String(length=32), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_applications_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_applications")),
        sa.UniqueConstraint("project_id", "application_number", name="uq_project_applications_number"),
    )
    op.create_index(op.f("ix_project_applications_project_id"), "project_applications", ["project_id"], unique=False)
    op.create_table(
        "project_milestones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("done_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_milestones_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_milestones")),
    )
    op.create_index(op.f("ix_project_milestones_project_id"), "project_milestones", ["project_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_project_milestones_project_id"), table_name="project_milestones")
    op.drop_table("project_milestones")
    op.drop_index(op.f("ix_project_applications_project_id"), table_name="project_applications")
    op.drop_table("project_applications")
    op.drop_index(op.f("ix_agency_visits_visited_at"), table_name="agency_visits")
    op.drop_index(op.f("ix_agency_visits_task_id"), table_name="agency_visits")
    op.drop_table("agency_visits")
    op.drop_index(op.f("ix_agency_task_events_task_id"), table_name="agency_task_events")
    op.drop_table("agency_task_events")
    op.drop_index(op.f("ix_agency_task_applications_task_id"), table_name="agency_task_applications")
    op.drop_index(op.f("ix_agency_task_applications_created_at"), table_name="agency_task_applications")
    op.drop_table("agency_task_applications")
    op.drop_index(op.f("ix_agency_materials_task_id"), table_name="agency_materials")
    op.drop_table("agency_materials")
    op.drop_index(op.f("ix_projects_agent_id"), table_name="projects")
    op.drop_table("projects")
    op.drop_index("ix_agency_tasks_state_created", table_name="agency_tasks")
    op.drop_index(op.f("ix_agency_tasks_resident_id"), table_name="agency_tasks")
    op.drop_index(op.f("ix_agency_tasks_desk_code"), table_name="agency_tasks")
    op.drop_index(op.f("ix_agency_tasks_agent_id"), table_name="agency_tasks")
    op.drop_table("agency_tasks")
