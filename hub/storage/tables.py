"""The tables. Applications own parts (one per item), events (a hash chain), materials and
deficiencies (容缺 commitments). Timestamps are naive UTC; dates are Asia/Shanghai calendar dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Index, MetaData, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def naive_utc(at: datetime) -> datetime:
    """A time as the tables store it: UTC without a zone (an aware time is converted first)."""
    return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)


# The clocked states (hub.lifecycle.CLOCKED) as a partial index's predicate; tests/test_query_plans.py
# checks the two agree.
CLOCKED_SQL = "state IN ('accepted', 'in_review', 'supplement_requested')"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JSON}


class Application(Base):
    """办件. `state` is the life-cycle state; the event chain is the history that proves it."""

    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("desk_code", "source_ref", name="uq_applications_desk_source_ref"),
        Index("ix_applications_desk_state", "desk_code", "state"),
        # the to-do and list pages (hub/worklists.py, hub/applications/search.py): a desk's
        # intake of a day, the received-date filter, the search by an applicant's name
        Index("ix_applications_desk_created", "desk_code", "created_at"),
        Index("ix_applications_created_at", "created_at"),
        # open work whose clock runs or stands, by due date: the dashboard's and /metrics' red and
        # yellow counts read this small partial index alone (index-only on PostgreSQL)
        Index(
            "ix_applications_clocked_due",
            "due_date",
            postgresql_include=["state", "accepted_on", "paused_since", "paused_workdays", "channel", "desk_code"],
            postgresql_where=text("state IN ('accepted', 'in_review', 'supplement_requested')"),
            sqlite_where=text("state IN ('accepted', 'in_review', 'supplement_requested')"),
        ),
        # The hourly sweep and the warnings walk the clocked applications by id (keyset pages):
        # a small share of the hub, found without reading the decided ones (migration 0009).
        Index(
            "ix_applications_clocked",
            "id",
            postgresql_where=text(CLOCKED_SQL),
            sqlite_where=text(CLOCKED_SQL),
        ),
        # provisional due dates, for the warnings: rarer still (SQLite keeps booleans as 0/1 and
        # matches a partial index's predicate as the query writes it)
        Index(
            "ix_applications_provisional",
            "id",
            postgresql_where=text("due_provisional"),
            sqlite_where=text("due_provisional = 1"),
        ),
        Index("ix_applications_applicant_name", "applicant_name"),  # the list's name filter
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # item | bundle
    subject_code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    desk_code: Mapped[str] = mapped_column(String(64))
    collecting_division: Mapped[str] = mapped_column(String(6))
    deciding_division: Mapped[str] = mapped_column(String(6))
    applicant_type: Mapped[str] = mapped_column(String(8))  # person | company
    applicant_name: Mapped[str] = mapped_column(String(200))
    applicant_id: Mapped[str] = mapped_column(String(18), index=True)
    agent_name: Mapped[str | None] = mapped_column(String(100))  # 帮代办: who acted for the applicant
    agent_id: Mapped[str | None] = mapped_column(String(18))
    form: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(32), index=True)
    resume_state: Mapped[str | None] = mapped_column(String(32))  # where 补正 returns to
    source_ref: Mapped[str | None] = mapped_column(String(128))  # caller's idempotency key
    signal: Mapped[str | None] = mapped_column(String(8))  # last time-limit card the sweep saw
    accepted_on: Mapped[date | None]
    due_date: Mapped[date | None] = mapped_column(index=True)
    due_provisional: Mapped[bool] = mapped_column(default=False)
    paused_since: Mapped[date | None]  # clock stopped (补正) since this date
    paused_workdays: Mapped[int] = mapped_column(default=0)
    chain_head: Mapped[str] = mapped_column(String(64))  # hash of the newest event: truncation shows
    # the event chain's hash algorithm (sha256 | sm3), fixed when the application is made
    # (server default only: writers name it when it is not sha256, so older schemas still take rows)
    hash_alg: Mapped[str] = mapped_column(String(16), server_default="sha256")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # 跨省通办: an application a partner hub collected for us (its name, its number, its desk);
    # None for our own desks' applications
    origin_partner: Mapped[str | None] = mapped_column(String(64), index=True)
    origin_number: Mapped[str | None] = mapped_column(String(32))
    origin_desk: Mapped[str | None] = mapped_column(String(200))

    parts: Mapped[list[Part]] = relationship(back_populates="application", order_by="Part.position")
    events: Mapped[list[Event]] = relationship(back_populates="application", order_by="Event.seq")
    materials: Mapped[list[AttachedMaterial]] = relationship(order_by="AttachedMaterial.id")
    deficiencies: Mapped[list[Deficiency]] = relationship(order_by="Deficiency.id")


class Part(Base):
    """One item of an application, decided by one department. Its id is the idempotency key
    every delivery to the department carries."""

    __tablename__ = "application_parts"
    __table_args__ = (
        Index("ix_parts_department_state", "department_code", "state"),
        # the parts still to be decided, by application: open work per department and item
        Index(
            "ix_parts_open_by_application",
            "application_id",
            postgresql_include=["department_code", "item_code"],
            postgresql_where=text("state IN ('pending', 'in_review')"),
            sqlite_where=text("state IN ('pending', 'in_review')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # indexed: every load of an application reads its parts (a full scan of all parts without)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    position: Mapped[int]
    item_code: Mapped[str] = mapped_column(String(48))  # a partner's item: "PARTNER:CODE"
    title: Mapped[str] = mapped_column(String(200))
    department_code: Mapped[str] = mapped_column(String(64))
    connection: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32))
    promised_days: Mapped[int]
    due_date: Mapped[date | None]
    decided_at: Mapped[datetime | None]

    application: Mapped[Application] = relationship(back_populates="parts")


class Event(Base):
    """One step in an application's history. `hash` covers every field and `prev_hash`, so an
    edited or removed event breaks the chain."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("application_id", "seq", name="uq_events_application_seq"),
        Index("ix_events_action_at", "action", "at"),  # the dashboard's and daily report's periods
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    seq: Mapped[int]
    part_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    desk: Mapped[str | None] = mapped_column(String(64))  # the actor's desk, or department for officers
    at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(1000))
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    application: Mapped[Application] = relationship(back_populates="events")


class Blob(Base):
    """A stored file, addressed by its sha256; the bytes live in the materials folder."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class AttachedMaterial(Base):
    __tablename__ = "application_materials"
    __table_args__ = (UniqueConstraint("application_id", "name", "sha256", name="uq_application_materials"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    name: Mapped[str] = mapped_column(String(200))  # the catalogue's material name, or the result's
    kind: Mapped[str] = mapped_column(String(16), default="material", server_default="material")  # or "result"
    part_id: Mapped[str | None] = mapped_column(String(36))  # for results: the part they decide
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(100))

    blob: Mapped[Blob] = relationship(lazy="joined")


class Deficiency(Base):
    """容缺: a material accepted as missing against the applicant's commitment to supply it."""

    __tablename__ = "deficiencies"
    __table_args__ = (
        # a desk's 容缺 commitments still owed, by due date (the desk's to-do page), and by
        # application (the warnings); closed ones are most of the table and stay out of both
        Index(
            "ix_deficiencies_open_due",
            "due_date",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
        Index(
            "ix_deficiencies_open",
            "application_id",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    material: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date]
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by_sha256: Mapped[str | None] = mapped_column(String(64))


class Counter(Base):
    """Per-day sequence for application numbers, bumped inside the creating transaction."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int]


class OutboxRow(Base):
    """A delivery owed to a department system, written in the same transaction as the change
    that owes it (受理). The part id is the idempotency key the department dedupes on, so a
    delivery repeated after a crash is still one case on their side."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("part_id", "kind", name="uq_outbox_part_kind"),
        Index("ix_outbox_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[str] = mapped_column(ForeignKey("application_parts.id"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    connection: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="submit")
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead | cancelled
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]  # a dispatcher holds it until then; expired = crashed
    claim_token: Mapped[str | None] = mapped_column(String(32))  # whose claim it is (outcomes check it)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    remote_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    remote_status: Mapped[str | None] = mapped_column(String(32))  # last status the department reported
    synced_at: Mapped[datetime | None]  # the department's decision has been brought back


class IntakeBatch(Base):
    """An intake batch seen on a source, with what became of it (for ops and the daily report).
    Correctness does not rest on it: records are idempotent on (desk, record id) by themselves."""

    __tablename__ = "intake_batches"
    __table_args__ = (UniqueConstraint("source", "batch_id", name="uq_intake_batches_source_batch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(64))
    desk_code: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # received | quarantined
    records: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    bad: Mapped[int] = mapped_column(default=0)
    runs: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    problem: Mapped[str | None] = mapped_column(String(1000))  # why it was quarantined


# ---------------------------------------------------------------- people and systems using the hub


class User(Base):
    """A person who logs in to the web UI, bound to the desk or department they work for."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    desk_code: Mapped[str | None] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(200))  # Argon2id, PHC string
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)  # since the last success (throttling)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    # a temporary password (set by ops on creation or reset): the next login must replace it
    # before anything else, so ops never keeps a working password of someone else's
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())


class WebSession(Base):
    """A logged-in browser. Only the hash of the cookie value is kept, so a database dump
    cannot be replayed as a login."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for a system (a bank's intake service, a report puller): hashed at rest,
    acting as one role at one desk or department, limited to scopes, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so ops can tell tokens apart
    role: Mapped[str] = mapped_column(String(16))
    desk_code: Mapped[str | None] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who looked at or changed what outside the application event chains: logins, detail views
    (full ID numbers), material downloads, users and tokens. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    place: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))  # remote address
    data: Mapped[dict[str, Any]]


class Rating(Base):
    """好差评: the applicant's rating of one application (1 very bad … 5 very good). A bad rating
    (1 or 2) opens a follow-up that must be answered within 15 working days."""

    __tablename__ = "ratings"
    __table_args__ = (
        Index("ix_ratings_rated_at", "rated_at"),  # the dashboard's periods
        Index("ix_ratings_follow_up_due", "follow_up_due", "id"),  # the follow-ups page, in due order
        # the dashboard's follow-up figures: the period's bad ratings only
        Index(
            "ix_ratings_bad_rated_at",
            "rated_at",
            postgresql_where=text("follow_up_due IS NOT NULL"),
            sqlite_where=text("follow_up_due IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    level: Mapped[int]
    comment: Mapped[str | None] = mapped_column(String(500))
    rated_at: Mapped[datetime]
    follow_up_due: Mapped[date | None]  # set for bad ratings
    follow_up_closed_at: Mapped[datetime | None]
    follow_up_by: Mapped[str | None] = mapped_column(String(100))
    follow_up_response: Mapped[str | None] = mapped_column(String(1000))
    # 整改 flow (hub.ratings): the step an open follow-up waits at (verify, rectify, revisit,
    # review; None once closed or for a good rating) and who owns that step
    follow_up_step: Mapped[str | None] = mapped_column(String(16))
    follow_up_owner: Mapped[str | None] = mapped_column(String(100))

    steps: Mapped[list[FollowUpStep]] = relationship(order_by="FollowUpStep.id")


class FollowUpStep(Base):
    """One step of a bad rating's follow-up done: 核实 (verify), 整改 (rectify), 回访 (revisit),
    审核 (review; outcome closed or returned to 整改). Who owned it, who did it, when, the note."""

    __tablename__ = "follow_up_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(1000))
    done_by: Mapped[str] = mapped_column(String(100))
    done_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # done | closed | returned


class FigureRollup(Base):
    """The dashboard's counts per local day, kept as events commit (hub.rollups): per
    application (`department_code` "") by channel and desk, and per part by department. The
    dashboard, its CSV and the daily report sum a period's rows instead of scanning events."""

    __tablename__ = "figure_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    desk_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_code: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" per application
    received: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    accepted_completed: Mapped[int] = mapped_column(default=0)  # on the day of acceptance
    on_time: Mapped[int] = mapped_column(default=0)
    instant: Mapped[int] = mapped_column(default=0)
    trips_desk: Mapped[int] = mapped_column(default=0)
    trips_tolerant: Mapped[int] = mapped_column(default=0)
    trips_mail: Mapped[int] = mapped_column(default=0)
    ratings: Mapped[int] = mapped_column(default=0)  # on the day of the rating
    rating_sum: Mapped[int] = mapped_column(default=0)
    bad_ratings: Mapped[int] = mapped_column(default=0)


class JobRun(Base):
    """One run of a `hub run` job (by the CLI or an Airflow task), for the ops page."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started", "job", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(64))  # the source or connection it ran for
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool | None]
    summary: Mapped[str | None] = mapped_column(String(1000))


class SigningSession(Base):
    """A remote face-to-face signing session (远程面签) for one part of an application: the
    desk's applicant and the county officer on audio/video through the hub, recorded. The
    evidence (recordings, signature, event log, signed manifest) is the folder `folder` in the
    recordings directory; this row says where the session stands and how long it is kept."""

    __tablename__ = "signing_sessions"
    __table_args__ = (Index("ix_signing_sessions_state", "state"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID, also the folder's name
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    part_id: Mapped[str] = mapped_column(String(36))
    item_code: Mapped[str] = mapped_column(String(32))
    desk_code: Mapped[str] = mapped_column(String(64))
    department_code: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # open | sealed | aborted
    step: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(500))
    readback_shown: Mapped[bool] = mapped_column(default=False)
    otp_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the code shown at the desk
    otp_attempts: Mapped[int] = mapped_column(default=0)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    retain_until: Mapped[date | None]
    purged_at: Mapped[datetime | None]


# ---------------------------------------------------------------- partner hubs (跨省通办)


class PartnerMessage(Base):
    """A message owed to a partner hub (an application collected for it, a status update, a
    result document …), written in the transaction of the change that owes it. The payload is
    built from the database when the message is sent, so a retry always carries the truth of
    that moment; `message_id` stays the same across retries, and the partner dedupes on it."""

    __tablename__ = "partner_outbox"
    __table_args__ = (Index("ix_partner_outbox_due", "partner", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    partner: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # application | status | result | withdraw
    conversation: Mapped[str] = mapped_column(String(32), index=True)  # the application number it is about
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    data: Mapped[dict[str, Any]]  # what the payload is built from (part ids, a result's id)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead | cancelled
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class PartnerLink(Base):
    """One of our applications' parts that a partner decides (异地代收代办, 多地联办): its number
    there and how far its history has been brought back into our event chain."""

    __tablename__ = "partner_links"
    __table_args__ = (UniqueConstraint("part_id", name="uq_partner_links_part_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    part_id: Mapped[str] = mapped_column(String(36))
    partner: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))  # proxy (异地代收代办) | joint (多地联办)
    remote_number: Mapped[str | None] = mapped_column(String(32))
    remote_state: Mapped[str | None] = mapped_column(String(32))
    applied_seq: Mapped[int] = mapped_column(default=0)  # the partner's events up to this one are in our chain
    updated_at: Mapped[datetime]


class PartnerInbox(Base):
    """A message a partner sent us and we took: its id (a retry is answered, never applied
    twice) and the answer we gave, kept to be given again."""

    __tablename__ = "partner_inbox"
    __table_args__ = (UniqueConstraint("partner", "message_id", name="uq_partner_inbox_partner_message"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    answer: Mapped[str] = mapped_column(Text)  # the signed answer's body, as sent
    answer_signature: Mapped[str] = mapped_column(String(200))


class PartnerCatalogue(Base):
    """The cross-region item list (跨域通办目录清单) a partner last gave us: what our desks may
    collect for it. The signed message is kept as received."""

    __tablename__ = "partner_catalogues"

    partner: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    fetched_at: Mapped[datetime]
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))


class MessageLogEntry(Base):
    """The message log: every message sent to and received from a partner, byte for byte with
    its signature, hash-chained (an edited or removed entry breaks the chain) and checkable
    offline with the partners' public keys (`hub partners verify-log`)."""

    __tablename__ = "partner_message_log"
    __table_args__ = (Index("ix_partner_message_log_partner_at", "partner", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime]
    direction: Mapped[str] = mapped_column(String(8))  # out | in
    partner: Mapped[str] = mapped_column(String(64))  # who sent it or whom it went to ("?" unknown)
    message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str | None] = mapped_column(String(24))
    signer: Mapped[str | None] = mapped_column(String(64))  # whose key signed it: our hub id or the partner's
    key_id: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(48))  # sent, accepted, duplicate, refused:CODE …
    body: Mapped[str] = mapped_column(Text)  # the body as sent, if kept (see body_kept)
    body_sha256: Mapped[str] = mapped_column(String(64))
    body_kept: Mapped[bool]  # False: too large, or unsigned junk — only its sha256 is kept
    signature: Mapped[str | None] = mapped_column(String(600))  # base64; RSA-3072 takes 512
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    hash_alg: Mapped[str] = mapped_column(String(16), server_default="sha256")  # of `hash`


class Licence(Base):
    """电子证照: a licence the hub issued (hub.licences), with its metadata (GB/T 36901–36906:
    type, number, holder, issuer, validity, status). The sealed PDF is a blob; `code` is the
    unguessable verification code its QR carries to the public page."""

    __tablename__ = "licences"
    __table_args__ = (
        Index("ix_licences_holder", "holder_id", "type_code"),
        # one licence per approved part, whoever issues it first (migration 0020)
        UniqueConstraint("part_id", name="uq_licences_part_id"),
        Index("ix_licences_issuer", "issuer", "issued_on"),  # a department's library page
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)  # 证照编号, by the type's identifier rule
    code: Mapped[str] = mapped_column(String(64), unique=True)  # verification code (QR, public page)
    type_code: Mapped[str] = mapped_column(String(32))
    type_name: Mapped[str] = mapped_column(String(100))
    holder_name: Mapped[str] = mapped_column(String(200))
    holder_id: Mapped[str] = mapped_column(String(64))  # full; masked wherever shown
    holder_id_type: Mapped[str] = mapped_column(String(16))  # "resident_id" or "credit_code"
    issuer: Mapped[str] = mapped_column(String(40))  # department code
    issuer_name: Mapped[str] = mapped_column(String(100))
    issued_on: Mapped[date]
    valid_from: Mapped[date]
    valid_until: Mapped[date | None]  # None: 长期有效
    status: Mapped[str] = mapped_column(String(16), default="valid", server_default="valid")  # valid|revoked
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    revocation_reason: Mapped[str | None] = mapped_column(String(500))
    application_number: Mapped[str | None] = mapped_column(String(40), index=True)
    part_id: Mapped[str | None] = mapped_column(String(36))
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))  # the sealed PDF
    # the PDF's digest in the hub's configured algorithm (crypto.hash: sha256 or sm3), with its name
    # (migration 0020); the file is checked against both on every read
    digest_algorithm: Mapped[str] = mapped_column(String(16), default="sha256", server_default="sha256")
    digest: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the fields printed on it
    created_at: Mapped[datetime]


class Document(Base):
    """A notice or decision the hub owes or issued for an application (hub.documents): 收件凭证,
    受理通知书, 补正告知书, 决定书 … `data` is what it says, taken in the transaction of the event
    that made it owed, so it is rendered later as things were then. Issued once: the sealed PDF
    is a blob and never changes; `code` is the unguessable verification code its QR carries."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("application_id", "event_seq", "kind", name="uq_documents_event_kind"),
        Index("ix_documents_pending", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # hub.documents.kinds
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    part_id: Mapped[str | None] = mapped_column(String(36))
    event_seq: Mapped[int]
    authority: Mapped[str] = mapped_column(String(64))  # whose seal: a department code, or "hub"
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")  # or issued
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))  # the sealed PDF
    # the file's digest in the hub's configured algorithm (crypto.hash: sha256 or sm3), with its name
    digest_algorithm: Mapped[str] = mapped_column(String(16), default="sha256", server_default="sha256")
    digest: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    issued_at: Mapped[datetime | None]


class MaterialLicence(Base):
    """电子证照 instead of paper: a material of an application satisfied by a licence, taken BY
    REFERENCE at intake (no file) after the hub checked it — valid on the day, of the material's
    type, held by the applicant. `source` is "library" (the hub's own, `licence_id` set) or the
    connection of the department's licence library it was found in."""

    __tablename__ = "material_licences"
    __table_args__ = (UniqueConstraint("application_id", "material", name="uq_material_licences"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    material: Mapped[str] = mapped_column(String(200))  # the catalogue's material name
    source: Mapped[str] = mapped_column(String(64))
    type_code: Mapped[str] = mapped_column(String(32))
    type_name: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(64))
    holder_name: Mapped[str] = mapped_column(String(200))
    holder_id: Mapped[str] = mapped_column(String(64))  # full; masked wherever shown
    issuer: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[date | None]
    valid_until: Mapped[date | None]  # None: 长期有效
    status_at_check: Mapped[str] = mapped_column(String(16))
    checked_at: Mapped[datetime]
    checked_by: Mapped[str] = mapped_column(String(100))
    licence_id: Mapped[int | None] = mapped_column(ForeignKey("licences.id"))  # ours only


# ---------------------------------------------------------------- service channels (issue 20)
# Each section below belongs to one module family; add a table to your own section only.


class AgentProfile(Base):
    """帮代办: a 代办员 on the roster — a person who logs in (users, role `agent`, bound to a home
    desk) with the desks and townships they serve and the ID number they sign 委托书 with."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # full; masked wherever shown. Unique: an agent's scope is what it collected under this number
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    desks: Mapped[list[str]] = mapped_column(JSON, default=list)  # desk codes served
    townships: Mapped[list[str]] = mapped_column(JSON, default=list)  # GB/T 2260 codes (乡镇, 9 digits)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class ResidentSession(Base):
    """A resident signed in through an identity provider (网办). Like staff sessions only the hash
    of the cookie is kept. The resident is who the provider said: `id_number` comes from the
    provider's verified claims, never from a form."""

    __tablename__ = "resident_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))  # the provider's `sub`
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


# ---------------------------------------------------------------- agency (帮代办, issue 20 part B: hub.agency)


class AgencyTask(Base):
    """帮代办: a resident's request for help (from the resident online, or entered by a desk for
    someone who cannot travel), taken by an agent (抢单: the first conditional UPDATE on
    state='open' wins) or assigned. open → taken → visiting → done | cancelled."""

    __tablename__ = "agency_tasks"
    __table_args__ = (Index("ix_agency_tasks_state_created", "state", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))  # resident | desk
    subject_code: Mapped[str] = mapped_column(String(32))  # the item the resident needs
    desk_code: Mapped[str | None] = mapped_column(String(64), index=True)  # the desk it is served from
    township: Mapped[str | None] = mapped_column(String(9))  # GB/T 2260 乡镇 code where the resident is
    resident_name: Mapped[str] = mapped_column(String(100))
    resident_id: Mapped[str | None] = mapped_column(String(18), index=True)  # full; masked wherever listed
    phone: Mapped[str] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(200))
    preferred_time: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(100))
    created_role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    consent_sha256: Mapped[str | None] = mapped_column(String(64))  # the signed 委托书 (PDF) in the store
    consent_signed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    taken_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class AgencyTaskEvent(Base):
    """A task's history: who did what, when, and the state after it."""

    __tablename__ = "agency_task_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("agency_tasks.id"), index=True)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]]


class AgencyVisit(Base):
    """A door-to-door visit (上门服务) an agent made for a task."""

    __tablename__ = "agency_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("agency_tasks.id"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    visited_at: Mapped[datetime] = mapped_column(index=True)
    place: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime]


class AgencyMaterial(Base):
    """A material an agent collected for a task (content-addressed in the store)."""

    __tablename__ = "agency_materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("agency_tasks.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # the catalogue's material name
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    media_type: Mapped[str] = mapped_column(String(100))
    collected_by: Mapped[str] = mapped_column(String(100))
    collected_at: Mapped[datetime]


class AgencyTaskApplication(Base):
    """An application a task produced (one task, several applications; an application, one task)."""

    __tablename__ = "agency_task_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("agency_tasks.id"), index=True)
    application_number: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Project(Base):
    """重大项目代办库: a major project followed in the 项目台账 by its agent in charge."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company_name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18))
    investment_wan: Mapped[int]  # 万元
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class ProjectApplication(Base):
    """An application (any department's) that belongs to a project."""

    __tablename__ = "project_applications"
    __table_args__ = (UniqueConstraint("project_id", "application_number", name="uq_project_applications_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    application_number: Mapped[str] = mapped_column(String(32))
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime]


class ProjectMilestone(Base):
    """A step of a project with its due date; past due and not done = overdue."""

    __tablename__ = "project_milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date]
    done_date: Mapped[date | None]
    created_at: Mapped[datetime]


# ---------------------------------------------------------------- C: the offline kit (政务背包)


class KitDevice(Base):
    """A laptop or tablet an agent enrolled as an offline kit (hub.kit.devices). Only the hash of
    its device token is kept; a revoked device's sync is refused and the kit wipes itself."""

    __tablename__ = "kit_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)  # the agent
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_sync_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(100))


class KitRecord(Base):
    """One record a kit synced: exactly once per (device, record id). `content_sha256` tells the
    same record sent again (the same answer) from a record id reused with other content (a
    conflict); `application_number` is None while the record is being received."""

    __tablename__ = "kit_records"
    __table_args__ = (UniqueConstraint("device_id", "record_id", name="uq_kit_records"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("kit_devices.id"))
    record_id: Mapped[str] = mapped_column(String(36))
    content_sha256: Mapped[str] = mapped_column(String(64))
    application_number: Mapped[str | None] = mapped_column(String(40))
    # the resident's signature drawn on the kit (a PNG in the material store, by its sha256)
    signature_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    synced_at: Mapped[datetime | None]


# ---------------------------------------------------------------- appointments and the queue (part A, hub.appointments)


class QueueSlot(Base):
    """预约时段: a desk's time slot for one item group on a working day, with its capacity.
    `booked` is taken with one conditional UPDATE (… WHERE booked < capacity), so two residents
    can never both have the last place. Times are the county's local wall-clock times."""

    __tablename__ = "queue_slots"
    __table_args__ = (UniqueConstraint("desk_code", "group_code", "day", "starts", name="uq_queue_slots_place"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    desk_code: Mapped[str] = mapped_column(String(64))
    group_code: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(index=True)
    starts: Mapped[str] = mapped_column(String(5))  # "09:00", local
    ends: Mapped[str] = mapped_column(String(5))
    capacity: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)
    closed: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class QueueBooking(Base):
    """预约: a place in a slot. `active_key` (ID number|group|day) is set while the booking holds
    its place and cleared when it is cancelled or moved: its unique constraint is the rule "one
    active booking per person per item group per day", even for two requests at once."""

    __tablename__ = "queue_bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)  # 预约码, told to the resident
    slot_id: Mapped[int] = mapped_column(ForeignKey("queue_slots.id"), index=True)
    desk_code: Mapped[str] = mapped_column(String(64))
    group_code: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)  # full; masked wherever shown
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20))
    application_number: Mapped[str | None] = mapped_column(String(32))  # booked from its status page
    channel: Mapped[str] = mapped_column(String(16))  # status, online, desk
    state: Mapped[str] = mapped_column(String(16), default="booked")  # booked, checked_in, cancelled, moved, no_show
    active_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    changed_at: Mapped[datetime | None]


class QueueTicket(Base):
    """取号: a ticket at a desk on a day (A001, B014 … per desk, day and item group), from a walk-in
    or a booking's check-in, called to a counter, served, and linked to the application it becomes."""

    __tablename__ = "queue_tickets"
    __table_args__ = (
        UniqueConstraint("desk_code", "day", "number", name="uq_queue_tickets_number"),
        Index("ix_queue_tickets_waiting", "desk_code", "day", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    desk_code: Mapped[str] = mapped_column(String(64))
    day: Mapped[date]
    group_code: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(default=0)  # higher is called first
    priority_reason: Mapped[str | None] = mapped_column(String(16))  # elderly, enclave, appointment
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("queue_bookings.id"), unique=True)
    id_number: Mapped[str | None] = mapped_column(String(18))  # full; masked wherever shown
    state: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting, called, serving, done, no_show
    counter: Mapped[str | None] = mapped_column(String(16))
    recalls: Mapped[int] = mapped_column(default=0)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    created_at: Mapped[datetime]
    called_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    called_by: Mapped[str | None] = mapped_column(String(100))


class QueueCall(Base):
    """What the 叫号屏 shows: one row per call, recall or no-show, followed by id (the event id
    of the display's stream) by every API process's broadcaster."""

    __tablename__ = "queue_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    desk_code: Mapped[str] = mapped_column(String(64), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("queue_tickets.id"))
    number: Mapped[str] = mapped_column(String(8))
    counter: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # call, recall, no_show
    at: Mapped[datetime]


class QueueReminder(Base):
    """A booking's reminder, recorded exactly once per slot it was booked for (moved to another
    slot, it is a new appointment and is reminded again)."""

    __tablename__ = "queue_reminders"
    __table_args__ = (UniqueConstraint("booking_id", "slot_id", name="uq_queue_reminders"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("queue_bookings.id"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("queue_slots.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))  # "record": kept and shown, no SMS gateway
    sent_at: Mapped[datetime]
