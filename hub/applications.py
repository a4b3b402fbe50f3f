"""Applications (办件): create, move through the life cycle, attach materials, read — every write
validated in full first (nothing is written on bad input) and recorded as a chained event.

Every read and write takes an `Actor` and is scoped: a desk sees its own applications, a
department its own parts; anything else is "not found", never data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Select, exists, select
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, object_session, selectinload

from hub import lifecycle, outbox, text
from hub.catalog.forms import validate_form
from hub.catalog.models import Bundle, Desk, Item
from hub.context import Hub
from hub.errors import FieldError, Forbidden, HubError, IllegalTransition, InvalidInput, NotFound, Reason
from hub.events import GENESIS, canonical_json, chain
from hub.ids import check_id_number, check_uscc, uuid4_texts
from hub.lifecycle import ACTIONS, FRONT, PartState, Role, State
from hub.materials import Staged, Stored
from hub.storage import bulk
from hub.storage.tables import Application, AttachedMaterial, Deficiency, Event, OutboxRow, Part
from hub.timelimits import Signal, recompute_due, restart_clock, signal, stop_clock

# ---------------------------------------------------------------------------- inputs (the edge)


class Actor(BaseModel):
    """Who is acting, in which role, from which desk or department."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1, max_length=100)
    role: Role
    desk: str | None = None
    department: str | None = None
    applicant_id: str | None = None  # for role applicant

    @property
    def place(self) -> str | None:
        return self.desk or self.department


SYSTEM = Actor(name="hub", role=Role.system)


class Applicant(BaseModel):
    type: Literal["person", "company"] = "person"
    name: str = Field(min_length=1, max_length=200)
    id: str  # resident ID number (person) or unified social credit code (company)


class Agent(BaseModel):
    """帮代办: the person who acts for the applicant."""

    name: str = Field(min_length=1, max_length=100)
    id_number: str


class MaterialIn(BaseModel):
    """A material's file: a path, bytes, or an upload already received into the store's staging
    area (`staged`, from the web API, which streams uploads to disk as they arrive)."""

    name: str  # the catalogue's material name
    filename: str = Field(min_length=1, max_length=255)
    path: Path | None = None
    content: bytes | None = None
    staged: Staged | None = None

    @property
    def source(self) -> Path | bytes | Staged:
        if self.staged is not None:
            return self.staged
        return self.path if self.path is not None else (self.content or b"")


def _store(hub: Hub, m: MaterialIn) -> Stored:
    return hub.store.adopt(m.staged) if m.staged is not None else hub.store.put(m.source)  # type: ignore[arg-type]


class NewApplication(BaseModel):
    subject: str  # item code or bundle code
    desk: str
    applicant: Applicant
    agent: Agent | None = None
    form: dict[str, Any] = Field(default_factory=dict)
    materials: list[MaterialIn] = Field(default_factory=list)
    source_ref: str | None = Field(default=None, max_length=128)  # idempotency key of the sender
    draft: bool = False


def _err(field: str, zh: str, en: str) -> FieldError:
    return FieldError(field, Reason(zh, en))


# ---------------------------------------------------------------------------- scoping


def scoped(stmt: Select, actor: Actor) -> Select:
    """Limit a select over Application to what `actor` may see."""
    if actor.role in FRONT:
        return stmt.where(Application.desk_code == (actor.desk or "\0"))
    if actor.role is Role.officer:
        return stmt.where(
            exists().where(Part.application_id == Application.id, Part.department_code == (actor.department or "\0"))
        )
    if actor.role is Role.applicant:
        return stmt.where(Application.applicant_id == (actor.applicant_id or "\0"))
    return stmt  # supervisor, ops, system see everything


def get(session: Session, number: str, actor: Actor, *, for_update: bool = False, brief: bool = False) -> Application:
    """The application with everything it holds loaded (`brief`: only its row and parts)."""
    stmt = scoped(select(Application).where(Application.number == number), actor)
    if brief:
        stmt = stmt.options(selectinload(Application.parts))
    else:
        stmt = stmt.options(
            selectinload(Application.parts),
            selectinload(Application.events),
            selectinload(Application.materials),
            selectinload(Application.deficiencies),
        )
    if for_update:
        stmt = stmt.with_for_update(of=Application)
    app = session.scalars(stmt).one_or_none()
    if app is None:
        raise NotFound(f"办件 {number} 不存在 (no such application)")
    return app


def may_reveal_ids(actor: Actor) -> bool:
    """Who may see full ID numbers on a detail view (lists always mask): those handling the
    case, within their scope. Supervisors and ops work with figures, not identities."""
    return actor.role not in (Role.supervisor, Role.ops)


def list_applications(
    session: Session, actor: Actor, *, state: str | None = None, desk: str | None = None, limit: int = 100
) -> list[Application]:
    stmt = scoped(select(Application), actor).options(selectinload(Application.parts))
    if state:
        stmt = stmt.where(Application.state == state)
    if desk:
        stmt = stmt.where(Application.desk_code == desk)
    return list(session.scalars(stmt.order_by(Application.id.desc()).limit(limit)))


# ---------------------------------------------------------------------------- events


def _event_fields(
    actor: Actor,
    action: str,
    at: datetime,
    *,
    from_state: str | None,
    to_state: str | None,
    part_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event's content, before it is numbered and chained."""
    return {
        "part_id": part_id,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "actor": actor.name,
        "role": actor.role.value,
        "desk": actor.place,
        "at": at.replace(tzinfo=None),
        "reason": reason,
        "data": data or {},
    }


def _record(
    app: Application,
    action: str,
    actor: Actor,
    at: datetime,
    *,
    from_state: str | None,
    to_state: str | None,
    part: Part | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    fields = _event_fields(
        actor,
        action,
        at,
        from_state=from_state,
        to_state=to_state,
        part_id=part.id if part else None,
        reason=reason,
        data=data,
    )
    prev = app.events[-1].hash if app.events else GENESIS
    app.chain_head = chain(app.number, [fields], prev, len(app.events))
    ev = Event(**fields)
    app.events.append(ev)
    return ev


# ---------------------------------------------------------------------------- create


# Plain SQL that both databases speak (SQLite >= 3.35): SQLAlchemy cannot cache the compiled form
# of its ON CONFLICT constructs, and compiling them afresh cost more than running them.
_BUMP_COUNTER = sql(
    "INSERT INTO counters (name, value) VALUES (:name, :n) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + :n RETURNING value"
)
_KEEP_BLOB = sql(
    "INSERT INTO blobs (sha256, size, media_type, created_at) VALUES (:sha256, :size, :media_type, :created_at) "
    "ON CONFLICT (sha256) DO NOTHING"
)


def _next_numbers(conn: Connection | Session, division: str, today: date, n: int) -> list[str]:
    """`n` consecutive application numbers (受理编号) for the division and day, in one statement."""
    day = today.strftime("%Y%m%d")
    last = conn.execute(_BUMP_COUNTER, {"name": f"application:{division}:{day}", "n": n}).scalar_one()
    return [f"{division}-{day}-{seq:05d}" for seq in range(last - n + 1, last + 1)]


def _check_new(
    hub: Hub, new: NewApplication, files: dict[str, Reason | None] | None = None, today: date | None = None
) -> tuple[Item | Bundle, dict[str, Any], list[FieldError]]:
    cat = hub.catalog
    today = today or hub.today()
    errors: list[FieldError] = []
    subject = cat.subject(new.subject)
    desk = cat.desks.get(new.desk)
    if subject is None:
        errors.append(_err("subject", f"事项编码 {new.subject} 不在事项目录中", "unknown item or bundle code"))
    if desk is None:
        errors.append(_err("desk", f"窗口 {new.desk} 不存在", "unknown desk"))
    if subject is not None and desk is not None:
        if desk.channel not in subject.channels:
            errors.append(
                _err(
                    "subject",
                    f"{subject.title} 未下放到{desk.name}所在渠道 ({desk.channel.value})",
                    f"not delegated to the {desk.channel.value} channel",
                )
            )
        divisions = {cat.departments[i.department].division for i in cat.items_of(subject)}
        if divisions != {desk.acts_for}:
            errors.append(
                _err(
                    "desk",
                    f"{desk.name} 不代办行政区划 {', '.join(sorted(divisions))} 的事项",
                    "desk does not act for the deciding division",
                )
            )
    errors.extend(text_problems(new))
    a = new.applicant
    reason = check_id_number(a.id, today=today) if a.type == "person" else check_uscc(a.id)
    if reason:
        errors.append(FieldError("applicant.id", reason))
    if new.agent and (reason := check_id_number(new.agent.id_number, today=today)):
        errors.append(FieldError("agent.id_number", reason))
    clean: dict[str, Any] = {}
    if subject is not None:
        clean, form_errors = validate_form(cat.form_of(subject), new.form)
        errors.extend(form_errors)
        errors.extend(_check_materials(hub, subject, new.materials, files))
    return subject, clean, errors  # type: ignore[return-value]


def text_problems(new: NewApplication) -> list[FieldError]:
    """The request's own text under the hub's one rule for characters (hub.text); form fields
    are checked with the form, materials' file names with the materials."""
    return text.check_all(
        {
            "applicant.name": new.applicant.name,
            "agent.name": new.agent.name if new.agent else None,
            "source_ref": new.source_ref,
        }
    )


def review_text_problems(review: FirstReview) -> list[FieldError]:
    """The first review's text under the same rule: its note may run over several lines."""
    return text.check_all({f"checklist[{i}]": c for i, c in enumerate(review.checklist)}) + text.check_all(
        {"note": review.note}, multiline=True
    )


class FirstReview(BaseModel):
    """The desk's 初审 done with the receipt (a teller or enclave clerk at the window): the
    checklist they ticked and, for deferrable materials missing (容缺), the applicant's promise."""

    checklist: list[str] = Field(default_factory=list, max_length=20)
    commitment_due: date | None = None
    # materials replaced by 网上核验 (online verification with the owning department): name -> result
    verified: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=20)
    note: str | None = Field(default=None, max_length=1000)


def create(hub: Hub, new: NewApplication, actor: Actor, *, first_review: FirstReview | None = None) -> Application:
    """Receive an application (or save a draft). Idempotent on (desk, source_ref): the same
    request again returns the application it created; a different one under that key is refused.
    With `first_review` the desk's 初审 is recorded in the same transaction (state pre_reviewed):
    the file must then be complete, or miss only deferrable materials under a commitment."""
    return receive(hub, new, actor, first_review=first_review)[0]


def receive(
    hub: Hub, new: NewApplication, actor: Actor, *, first_review: FirstReview | None = None, brief: bool = False
) -> tuple[Application, bool]:
    """`create`, also saying whether this call made the application (False: the same request
    came before, and this is the application it made). `brief`: the application returned has
    its row and parts loaded, no more (enough for a summary; a busy intake API saves the rest)."""
    submit = ACTIONS["submit"]
    if actor.role not in submit.roles:
        raise Forbidden(f"角色 {actor.role.value} 不能收件 (role cannot receive applications)")
    if actor.role is Role.applicant and new.applicant.id.strip().upper() != (actor.applicant_id or "").upper():
        raise Forbidden("申请人只能为本人申请 (applicants apply for themselves)")
    if actor.role in FRONT and actor.desk != new.desk:  # before the replay lookup: no peeking at other desks
        raise Forbidden(f"{actor.name} 不在窗口 {new.desk} (actor does not work at this desk)")
    # the same request again (a double click, a retry) is answered before anything is checked:
    # a file moved since, a date gone past, must not turn an accepted request into an error
    if (replay := replayed(hub, new, actor)) is not None:
        return replay, False
    subject, form, errors = _check_new(hub, new)
    if first_review is not None:
        errors += review_text_problems(first_review)
    if first_review is not None and not errors:
        if new.draft or actor.role not in ACTIONS["pre_review"].roles:
            raise Forbidden(f"角色 {actor.role.value} 不能初审 (role cannot first-review)")
        have = {m.name for m in new.materials} | set(first_review.verified)
        errors = check_complete(hub, subject, have, first_review.commitment_due, hub.today())[1]
    if errors:
        raise InvalidInput(errors)
    desk = hub.catalog.desks[new.desk]
    number = _claim(hub, desk)
    now = hub.now()
    stored = [_store(hub, m) for m in new.materials]  # before the write: file I/O holds no lock
    try:
        if first_review is None:
            with hub.transaction() as session:
                number = number or _next_numbers(session, desk.acts_for, hub.today(), 1)[0]
                app = _build(hub, session, new, subject, form, number, stored, actor, now)
                session.flush()
        else:
            # a window's receipt with its first review, as a batch record of one: plain rows, the
            # same rows and chain the ORM path writes, at a fraction of its cost
            entry = Received(new, subject, form, stored, _review_data(first_review))
            with hub.write_connection() as conn:
                number = number or _next_numbers(conn, desk.acts_for, hub.today(), 1)[0]
                [(row, parts)] = _insert_received(hub, conn, [entry], actor, now, [number])
            app = Application(  # as written, without reading it back
                **row,
                **bulk.missing_defaults(Application.__table__, row),
                parts=[Part(**p, **bulk.missing_defaults(Part.__table__, p)) for p in parts],
            )
    except IntegrityError as exc:
        if new.source_ref and "source_ref" in str(exc.orig) and (replay := replayed(hub, new, actor)) is not None:
            return replay, False  # a concurrent sender won the race with the same key: theirs is ours
        raise
    return (app if brief else read(hub, number, actor)), True


def _review_data(review: FirstReview) -> dict[str, Any]:
    """The desk's first review as the pre_review event records it (the note is its reason)."""
    data: dict[str, Any] = {"checklist": review.checklist, "note": review.note}
    if review.verified:
        data["verified"] = review.verified
    if review.commitment_due:
        data["commitment_due"] = review.commitment_due.isoformat()
    return data


def _claim(hub: Hub, desk: Desk) -> str | None:
    """On PostgreSQL the next application number of the division, taken by a statement that
    commits at once: the day's counter row would otherwise stay locked until the application's
    own transaction commits, and every desk of the division would queue on it. (A write that
    then fails leaves a gap in the day's numbers, as a sequence would.) On SQLite the number is
    taken inside the write transaction, which holds the only write lock anyway: None here."""
    if hub.engine.dialect.name != "postgresql":
        return None
    with hub.engine.connect() as conn:  # one statement, its own transaction: no BEGIN/COMMIT round trips
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return _next_numbers(conn, desk.acts_for, hub.today(), 1)[0]


def replayed(hub: Hub, new: NewApplication, actor: Actor) -> Application | None:
    """The application the desk made from this request before (same source_ref), if any."""
    return replayed_ref(hub, actor, new.desk, new.source_ref, new.subject, new.applicant.id)


def replayed_ref(
    hub: Hub, actor: Actor, desk: str, source_ref: str | None, subject: str, applicant_id: str
) -> Application | None:
    """The application `desk` made under `source_ref` before, if any; the same key for another
    applicant or item is refused. The caller has checked the desk is the actor's."""
    if not source_ref:
        return None
    if bad := text.check("source_ref", source_ref):  # before a query: PostgreSQL cannot even compare a NUL
        raise InvalidInput([bad])
    with hub.engine.connect() as conn:  # released before the read below takes a connection of its own
        existing = conn.execute(
            select(Application.number, Application.subject_code, Application.applicant_id).where(
                Application.desk_code == desk, Application.source_ref == source_ref
            )
        ).one_or_none()
    if existing is None:
        return None
    if (existing.subject_code, existing.applicant_id) != (subject, applicant_id.strip().upper()):
        raise InvalidInput(
            [
                _err(
                    "source_ref",
                    f"编号 {source_ref} 已用于另一件申请 {existing.number}",
                    "source_ref already used for a different application",
                )
            ]
        )
    return read(hub, existing.number, actor)


def _application_fields(
    hub: Hub, new: NewApplication, subject: Item | Bundle, form: dict[str, Any], number: str, now: datetime
) -> dict[str, Any]:
    """A new application's columns (a draft), from a checked request."""
    desk = hub.catalog.desks[new.desk]
    return {
        "number": number,
        "kind": "item" if isinstance(subject, Item) else "bundle",
        "subject_code": subject.code,
        "title": subject.title,
        "channel": desk.channel.value,
        "desk_code": desk.code,
        "collecting_division": desk.division,
        "deciding_division": desk.acts_for,
        "applicant_type": new.applicant.type,
        "applicant_name": new.applicant.name.strip(),
        "applicant_id": new.applicant.id.strip().upper(),
        "agent_name": new.agent.name if new.agent else None,
        "agent_id": new.agent.id_number.strip().upper() if new.agent else None,
        "form": form,
        "state": State.draft.value,
        "source_ref": new.source_ref,
        "created_at": now.replace(tzinfo=None),
        "updated_at": now.replace(tzinfo=None),
    }


def _part_fields(hub: Hub, subject: Item | Bundle) -> list[dict[str, Any]]:
    """One part per item of the subject; the caller gives each a fresh id (the departments'
    idempotency key)."""
    return [
        {
            "position": i,
            "item_code": item.code,
            "title": item.title,
            "department_code": item.department,
            "connection": item.connection,
            "state": PartState.pending.value,
            "promised_days": item.promised_days,
        }
        for i, item in enumerate(hub.catalog.items_of(subject))
    ]


def _build(
    hub: Hub,
    session: Session,
    new: NewApplication,
    subject: Item | Bundle,
    form: dict[str, Any],
    number: str,
    stored: list[Stored],
    actor: Actor,
    now: datetime,
) -> Application:
    """A new application with its parts, materials and first events, added to the session."""
    app = Application(
        **_application_fields(hub, new, subject, form, number, now),
        chain_head=GENESIS,
        parts=[Part(id=str(uuid.uuid4()), **p) for p in _part_fields(hub, subject)],
    )
    session.add(app)
    for m, st in zip(new.materials, stored, strict=True):
        _attach(session, app, m, st, actor, now)
    materials = [{"name": m.name, "sha256": m.sha256} for m in app.materials]
    _record(
        app,
        "create",
        actor,
        now,
        from_state=None,
        to_state=State.draft.value,
        data={"channel": app.channel, "materials": materials},
    )
    if not new.draft:
        app.state = State.received.value
        _record(app, "submit", actor, now, from_state=State.draft.value, to_state=State.received.value)
    return app


@dataclass
class Received:
    """One record of an intake batch, checked and ready: see `receive_batch`."""

    new: NewApplication
    subject: Item | Bundle
    form: dict[str, Any]
    stored: list[Stored]
    pre_review: dict[str, Any]  # who did the desk's first review, when, note


def check_new(
    hub: Hub, new: NewApplication, files: dict[str, Reason | None] | None = None, today: date | None = None
) -> tuple[Item | Bundle | None, dict[str, Any], list[FieldError]]:
    """Everything `create` checks about the content of a new application, without writing.
    `files` remembers the verdict on each material file by path, for callers (a batch) whose
    files cannot change while they check many records that share them; `today` is the county's
    date if the caller knows it already."""
    return _check_new(hub, new, files, today)


def received_refs(session: Session, desk: str, refs: list[str]) -> dict[str, tuple[str, str]]:
    """source_ref -> (item, applicant id) of those of `refs` the desk has sent before."""
    if not refs:
        return {}
    rows = session.execute(
        select(Application.source_ref, Application.subject_code, Application.applicant_id).where(
            Application.desk_code == desk, bulk.among(session.bind.dialect.name, Application.source_ref, refs)
        )
    )
    return {ref: (subject, applicant) for ref, subject, applicant in rows}


def receive_batch(hub: Hub, entries: list[Received], actor: Actor) -> list[str | FieldError]:
    """Receive checked records of one desk's batch in one transaction, each as an application in
    state `pre_reviewed` (the desk's 初审 done). Idempotent on (desk, source_ref): a record seen
    before (in this batch or another) is "duplicate"; the same source_ref for a different
    application is an error. Returns, per entry, "created", "duplicate" or the error.

    Safe beside other writers receiving the same desk's records at the same moment (worker
    processes of one ingest): if one of them commits a record of ours first, we start again
    and find it a duplicate."""
    if not entries:
        return []
    for attempt in range(1, 4):
        try:
            return _receive_batch(hub, entries, actor)
        except (IntegrityError, OperationalError) as exc:
            clash = "uq_applications_desk_source_ref" in str(exc.orig)
            deadlock = getattr(exc.orig, "sqlstate", None) == "40P01"  # PostgreSQL's deadlock_detected
            if attempt == 3 or not (clash or deadlock):
                raise
            # another writer committed (clash) or went on (deadlock) first: ours now sees its records
    raise AssertionError("unreachable")


def _receive_batch(hub: Hub, entries: list[Received], actor: Actor) -> list[str | FieldError]:
    desk = hub.catalog.desks[entries[0].new.desk]
    now = hub.now()
    outcome: list[str | FieldError] = []
    with hub.transaction() as session:
        seen = received_refs(session, desk.code, [e.new.source_ref for e in entries if e.new.source_ref])
        fresh = []
        for e in entries:
            key = (e.new.subject, e.new.applicant.id.strip().upper())
            if e.new.source_ref in seen:
                same = seen[e.new.source_ref] == key
                outcome.append(
                    "duplicate"
                    if same
                    else _err(
                        "record_id",
                        f"编号 {e.new.source_ref} 已用于另一件申请",
                        "record_id already used for a different application",
                    )
                )
                continue
            seen[e.new.source_ref] = key
            fresh.append(e)
            outcome.append("created")
        if fresh:
            numbers = _reserve_numbers(hub, session, desk, len(fresh))
            _insert_received(hub, session.connection(), fresh, actor, now, numbers)
    return outcome


def _reserve_numbers(hub: Hub, session: Session, desk: Desk, n: int) -> list[str]:
    """Numbers for a chunk of a batch. On PostgreSQL in a short transaction of their own: the
    day's counter row stays locked until its transaction ends, and tellers at the windows and
    other batch workers number applications for the same division all the time. (A chunk that
    then fails leaves a gap in the day's numbers, as a database sequence would.) On SQLite the
    chunk's transaction holds the only write lock already."""
    if session.bind.dialect.name != "postgresql":
        return _next_numbers(session, desk.acts_for, hub.today(), n)
    with hub.transaction() as own:
        return _next_numbers(own, desk.acts_for, hub.today(), n)


def _insert_received(
    hub: Hub, conn: Connection, fresh: list[Received], actor: Actor, now: datetime, numbers: list[str]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The chunk's applications as plain rows, written table by table (COPY on PostgreSQL): the
    same rows and event chain `create` + pre-review would write one ORM object at a time, at a
    small fraction of the cost (see BENCHMARKS.md, intake batch ingest). Returns each entry's
    application row and part rows, in the order of `fresh`."""
    _keep_blobs(conn, [st for e in fresh for st in e.stored], now)  # the chunk's files, one statement
    at = now.replace(tzinfo=None)
    # what the three intake events of every record share; each record adds its own data
    create = _event_fields(actor, "create", at, from_state=None, to_state=State.draft.value)
    submit = _event_fields(actor, "submit", at, from_state=State.draft.value, to_state=State.received.value)
    pre_review = _event_fields(
        actor, "pre_review", at, from_state=State.received.value, to_state=State.pre_reviewed.value
    )
    parts_of: dict[str, list[dict[str, Any]]] = {}  # subject code -> its parts' columns but ids
    empty = canonical_json({})
    apps, parts, events, materials = [], [], [], []
    made = []
    ids = bulk.allocate_ids(conn, Application.__table__, len(fresh))
    part_ids = iter(uuid4_texts(sum(len(hub.catalog.items_of(e.subject)) for e in fresh)))
    for e, number, app_id in zip(fresh, numbers, ids, strict=True):
        app = _application_fields(hub, e.new, e.subject, e.form, number, now)
        app["id"], app["state"] = app_id, State.pre_reviewed.value
        if e.new.subject not in parts_of:
            parts_of[e.new.subject] = _part_fields(hub, e.subject)
        own_parts = [p | {"id": next(part_ids), "application_id": app_id} for p in parts_of[e.new.subject]]
        parts += own_parts
        made.append((app, own_parts))
        attached: dict[tuple[str, str], dict[str, Any]] = {}
        for m, st in zip(e.new.materials, e.stored, strict=True):  # the same file twice is kept once
            attached.setdefault(
                (m.name, st.sha256),
                {
                    "application_id": app_id,
                    "name": m.name,
                    "kind": "material",
                    "part_id": None,
                    "filename": m.filename,
                    "sha256": st.sha256,
                    "added_at": at,
                    "added_by": actor.name,
                },
            )
        materials += attached.values()
        listed = [{"name": name, "sha256": sha} for name, sha in attached]
        steps = [  # each event's data encoded once, for its hash and its column
            create
            | {"application_id": app_id, "data": canonical_json({"channel": app["channel"], "materials": listed})},
            submit | {"application_id": app_id, "data": empty},
            pre_review
            | {
                "application_id": app_id,
                "reason": e.pre_review.get("note"),
                "data": canonical_json({k: v for k, v in e.pre_review.items() if k != "note"}),
            },
        ]
        app["chain_head"] = chain(number, steps)
        events += steps
        apps.append(app)
    # rows in record-id order: writers inserting the same records in two chunks at once take the
    # unique index's locks in the same order, so one waits for the other instead of a deadlock
    apps.sort(key=lambda row: row["source_ref"] or "")
    for table, rows in (
        (Application.__table__, apps),
        (Part.__table__, parts),
        (AttachedMaterial.__table__, materials),
        (Event.__table__, events),
    ):
        bulk.insert_rows(conn, table, rows)
    return made


# ---------------------------------------------------------------------------- materials


def _keep_blob(session: Session, s: Stored, now: datetime) -> None:
    _keep_blobs(session.connection(), [s], now)


def _keep_blobs(conn: Connection, stored: list[Stored], now: datetime) -> None:
    """One statement for many files; the same bytes may be arriving for another application at
    this moment, so each is inserted once whoever is first."""
    rows = {
        s.sha256: {
            "sha256": s.sha256,
            "size": s.size,
            "media_type": s.media_type,
            "created_at": now.replace(tzinfo=None),
        }
        for s in stored
    }
    if rows:  # in a fixed order: two writers never wait on each other in a cycle
        conn.execute(_KEEP_BLOB, [rows[k] for k in sorted(rows)])


def _attach(
    session: Session,
    app: Application,
    m: MaterialIn,
    s: Stored,
    actor: Actor,
    now: datetime,
) -> None:
    _keep_blob(session, s, now)
    if any(x.kind == "material" and x.name == m.name and x.sha256 == s.sha256 for x in app.materials):
        return  # the same file for the same material: already there
    app.materials.append(
        AttachedMaterial(
            name=m.name, filename=m.filename, sha256=s.sha256, added_at=now.replace(tzinfo=None), added_by=actor.name
        )
    )
    closed = [d for d in app.deficiencies if d.material == m.name and d.closed_at is None]
    for d in closed:
        d.closed_at = now.replace(tzinfo=None)
        d.closed_by_sha256 = s.sha256
    if app.events:  # materials given at creation are listed on the "create" event instead
        _record(
            app,
            "attach",
            actor,
            now,
            from_state=None,
            to_state=None,
            data={
                "material": m.name,
                "sha256": s.sha256,
                "size": s.size,
                "media_type": s.media_type,
                "closes_deficiency": bool(closed),
            },
        )


ATTACH_ROLES = FRONT | {Role.officer, Role.applicant, Role.system}


def _check_attachable(app: Application) -> None:
    if app.state not in lifecycle.OPEN and app.state not in (State.decided, State.issued):
        raise IllegalTransition(
            f"办件 {app.number} 已{lifecycle.STATE_ZH[app.state]}，不能再补充材料 (application is closed)"
        )


def _check_materials(
    hub: Hub, subject: Item | Bundle, materials: list[MaterialIn], files: dict[str, Reason | None] | None = None
) -> list[FieldError]:
    known = {m.name for m in hub.catalog.materials_of(subject)}
    errors: list[FieldError] = []
    for i, m in enumerate(materials):
        if bad := text.check(f"materials[{i}].filename", m.filename):
            errors.append(bad)
            continue  # a name that cannot be stored is not looked for in the store either
        if m.name not in known:
            errors.append(
                _err(f"materials[{i}].name", f"{subject.title} 不需要材料“{m.name}”", "not a material of this item")
            )
        if files is not None and m.path is not None:
            key = str(m.path)  # str keys: a Path hashes slowly, and this runs per record in a batch
            if key not in files:
                files[key] = hub.store.check(m.path)
            problem = files[key]
        else:
            problem = hub.store.check(m.source)
        if problem:
            errors.append(FieldError(f"materials[{i}] ({m.filename})", problem))
    return errors


def attach(hub: Hub, number: str, materials: list[MaterialIn], actor: Actor) -> Application:
    """Add materials to an open application; a material owed under 容缺 closes its commitment."""
    if actor.role not in ATTACH_ROLES:
        raise Forbidden(f"角色 {actor.role.value} 不能补充材料 (role cannot attach materials)")
    with hub.sessions() as session:
        app = get(session, number, actor)
        _check_attachable(app)
        subject = hub.catalog.subject(app.subject_code)
    errors = _check_materials(hub, subject, materials) if subject else []
    if errors:
        raise InvalidInput(errors)
    stored = [_store(hub, m) for m in materials]
    now = hub.now()
    with hub.transaction() as session:
        app = get(session, number, actor, for_update=True)
        _check_attachable(app)  # again under the lock: it may have been withdrawn meanwhile
        for m, s in zip(materials, stored, strict=True):
            _attach(session, app, m, s, actor, now)
        app.updated_at = now.replace(tzinfo=None)
    return read(hub, number, actor)


def record_event(
    session: Session,
    number: str,
    action: str,
    actor: Actor,
    *,
    part_id: str | None = None,
    data: dict[str, Any] | None = None,
    reason: str | None = None,
    now: datetime,
) -> Application:
    """An event that changes no state (a delivery, a result arriving), on the locked application."""
    app = get(session, number, actor, for_update=True)
    part = next((p for p in app.parts if p.id == part_id), None)
    _record(app, action, actor, now, from_state=None, to_state=None, part=part, reason=reason, data=data)
    app.updated_at = now.replace(tzinfo=None)
    return app


def attach_result(
    hub: Hub, number: str, part_id: str, name: str, content: bytes, actor: Actor, *, session: Session | None = None
) -> None:
    """A result document from the department (e.g. a decision PDF), kept with its part. Given a
    session, it joins that transaction (e.g. the one recording the decision it came with)."""
    if problem := hub.store.check(content):
        raise InvalidInput([FieldError(f"result ({name})", problem)])
    stored = hub.store.put(content)  # content-addressed: a rollback leaves at most an unreferenced file
    if session is not None:
        return _attach_result(session, number, part_id, name, stored, actor, hub.now())
    with hub.transaction() as session:
        _attach_result(session, number, part_id, name, stored, actor, hub.now())


def _attach_result(
    session: Session, number: str, part_id: str, name: str, stored: Stored, actor: Actor, now: datetime
) -> None:
    app = get(session, number, actor, for_update=True)
    if any(m.kind == "result" and m.part_id == part_id and m.sha256 == stored.sha256 for m in app.materials):
        return  # polled twice: already kept
    _keep_blob(session, stored, now)
    app.materials.append(
        AttachedMaterial(
            name=name,
            kind="result",
            part_id=part_id,
            filename=name,
            sha256=stored.sha256,
            added_at=now.replace(tzinfo=None),
            added_by=actor.name,
        )
    )
    part = next(p for p in app.parts if p.id == part_id)
    _record(
        app,
        "result",
        actor,
        now,
        from_state=None,
        to_state=None,
        part=part,
        data={"name": name, "sha256": stored.sha256, "size": stored.size},
    )


# ---------------------------------------------------------------------------- transitions


def _check_actor(app: Application, action: lifecycle.Action, actor: Actor, part: Part | None) -> None:
    if actor.role not in action.roles:
        allowed = ", ".join(sorted(r.value for r in action.roles))
        raise Forbidden(f"角色 {actor.role.value} 不能执行“{action.zh}” ({action.name} needs one of: {allowed})")
    if actor.role is Role.officer and part is not None and part.department_code != actor.department:
        raise Forbidden(f"事项 {part.item_code} 不属于部门 {actor.department} (not your department's part)")


def _pick_part(app: Application, part_code: str | None, actor: Actor, action: lifecycle.Action) -> Part:
    candidates = app.parts
    if part_code:
        candidates = [p for p in app.parts if part_code in (p.item_code, p.id)]
    elif actor.role is Role.officer:
        candidates = [p for p in app.parts if p.department_code == actor.department]
    candidates = [p for p in candidates if p.state in action.sources] or candidates
    if len(candidates) != 1:
        codes = ", ".join(p.item_code for p in app.parts)
        raise InvalidInput([_err("part", f"请指定事项（{codes}）", "name the part (item code) to act on")])
    return candidates[0]


MAX_REASON = 1000
LEAD_ACTIONS = frozenset({"accept", "reject", "issue", "deliver", "withdraw"})


def transition(
    hub: Hub,
    number: str,
    action_name: str,
    actor: Actor,
    *,
    reason: str | None = None,
    part: str | None = None,
    commitment_due: date | None = None,
    session: Session | None = None,
) -> Application:
    """Take one life-cycle action. Illegal actions raise and write nothing. Given a session, the
    action joins that transaction (the caller commits it, with whatever else it wrote)."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise InvalidInput([_err("action", f"未知操作 {action_name}，可选: {', '.join(ACTIONS)}", "unknown action")])
    if action.needs_reason and not (reason and reason.strip()):
        raise InvalidInput([_err("reason", f"“{action.zh}”必须填写理由", f"{action.name} needs a reason")])
    if reason and len(reason) > MAX_REASON:
        raise InvalidInput([_err("reason", f"理由不超过{MAX_REASON}字", f"at most {MAX_REASON} characters")])
    if bad := text.check("reason", reason, multiline=True):
        raise InvalidInput([bad])
    if session is not None:
        return _transition(hub, session, number, action, actor, reason, part, commitment_due)
    with hub.transaction() as session:
        _transition(hub, session, number, action, actor, reason, part, commitment_due)
    return read(hub, number, actor)


def _transition(
    hub: Hub,
    session: Session,
    number: str,
    action: lifecycle.Action,
    actor: Actor,
    reason: str | None,
    part: str | None,
    commitment_due: date | None,
) -> Application:
    now, today = hub.now(), hub.today()
    app = get(session, number, actor, for_update=True)
    if action.part_level:
        target_part = _pick_part(app, part, actor, action)
        _check_actor(app, action, actor, target_part)
        _part_action(hub, app, target_part, action, actor, now, reason)
    else:
        _check_actor(app, action, actor, None)
        if (
            actor.role is Role.officer
            and action.name in LEAD_ACTIONS
            and app.parts[0].department_code != actor.department
        ):
            # a bundle is accepted, refused and issued once, by its lead (first item's) department;
            # any department reviewing a part may ask for 补正
            raise Forbidden(
                f"“{action.zh}”由牵头部门 {app.parts[0].department_code} 办理 (only the lead department acts on the whole)"
            )
        if app.state not in action.sources:
            raise IllegalTransition(
                f"办件 {number} 当前状态为“{lifecycle.STATE_ZH[app.state]}”，不能“{action.zh}” "
                f"(cannot {action.name} from {app.state})"
            )
        _app_action(hub, app, action, actor, now, today, reason, commitment_due)
    app.updated_at = now.replace(tzinfo=None)
    return app


def _app_action(
    hub: Hub,
    app: Application,
    action: lifecycle.Action,
    actor: Actor,
    now: datetime,
    today: date,
    reason: str | None,
    commitment_due: date | None,
) -> None:
    source = app.state
    data: dict[str, Any] = {}
    target = action.target
    if action.name == "accept":
        data = _accept(hub, app, now, today, commitment_due)
    elif action.name == "request_supplement":
        app.resume_state = source
        stop_clock(app, today)
        data = {"clock_stopped": app.paused_since is not None}
    elif action.name == "resume":
        target = app.resume_state or State.received.value
        app.resume_state = None
        stood = restart_clock(app, today, hub.calendar)
        data = {"clock_stood_workdays": stood, "due_date": app.due_date.isoformat() if app.due_date else None}
    elif action.name == "withdraw":
        app.paused_since = None  # no clock runs for a withdrawn application
        withdrawn = [p for p in app.parts if p.state in (PartState.pending, PartState.in_review)]
        for p in withdrawn:
            p.state = PartState.withdrawn.value
        data = {"parts_withdrawn": [p.item_code for p in withdrawn]}
        session = object_session(app)
        if cancelled := outbox.cancel(session, [p.id for p in withdrawn]):
            data["deliveries_cancelled"] = cancelled
        # a department that already holds the case has to be told by its own channel (for now)
        delivered = session.scalars(
            select(OutboxRow.connection).where(
                OutboxRow.part_id.in_([p.id for p in withdrawn]), OutboxRow.state == "delivered"
            )
        ).all()
        if delivered:
            data["held_by_departments"] = sorted(delivered)
    app.state = target
    _record(app, action.name, actor, now, from_state=source, to_state=target, reason=reason, data=data)


def check_complete(
    hub: Hub, subject: Item | Bundle, have: set[str], commitment_due: date | None, today: date
) -> tuple[list[str], list[FieldError]]:
    """受理 needs every required material, or — for deferrable ones — a commitment to bring it by a
    date not past and within the item's 容缺 horizon (`tolerance_days` working days from today).
    Returns the deferred materials' names and what is wrong."""
    missing = [m for m in hub.catalog.materials_of(subject) if m.required and m.name not in have]
    blocking = [m.name for m in missing if not m.deferrable]
    deferred = [m.name for m in missing if m.deferrable]
    errors = []
    if blocking:
        errors.append(_err("materials", f"缺少不可容缺的材料: {'、'.join(blocking)}", "required materials missing"))
    if deferred and commitment_due is None:
        errors.append(
            _err(
                "commitment_due",
                f"缺少材料 {'、'.join(deferred)} 可容缺受理，须填写承诺补交日期",
                "deferrable materials missing: give a commitment due date for tolerant acceptance",
            )
        )
    if deferred and commitment_due is not None:
        if commitment_due < today:
            errors.append(_err("commitment_due", "承诺补交日期不能早于今天", "commitment due date is in the past"))
        elif (commitment_due - today).days > (days := hub.catalog.tolerance_days(subject)) and commitment_due > (
            latest := commitment_limit(hub, subject, today)
        ):  # n working days span at least n calendar days: most promises need no walk over the calendar
            errors.append(
                _err(
                    "commitment_due",
                    f"承诺补交日期不能晚于 {latest}（{subject.title}容缺材料须在{days}个工作日内补交）",
                    f"commitment due date is after {latest}: at most {days} working days ahead for this item",
                )
            )
    return deferred, errors


def commitment_limit(hub: Hub, subject: Item | Bundle, today: date) -> date:
    """The latest date a 容缺 promise taken today may name, by the item's `tolerance_days`."""
    return hub.calendar.add_workdays(today, hub.catalog.tolerance_days(subject))[0]


def verified_materials(app: Application) -> set[str]:
    """Materials the desk verified online (网上核验) instead of taking a paper copy."""
    return {
        name
        for e in app.events
        if e.action in ("pre_review", "verify")
        for name, result in (e.data.get("verified") or {}).items()
        if result.get("ok")
    }


def _accept(hub: Hub, app: Application, now: datetime, today: date, commitment_due: date | None) -> dict[str, Any]:
    """受理: every required material present, or — for deferrable ones — owed under a commitment."""
    subject = hub.catalog.subject(app.subject_code)
    if subject is None:
        raise HubError(f"事项 {app.subject_code} 已不在事项目录中 (item no longer in the catalogue)")
    if commitment_due is None:  # the applicant's promise as the desk recorded it at first review
        promised = next((e.data.get("commitment_due") for e in app.events if e.action == "pre_review"), None)
        commitment_due = date.fromisoformat(promised) if promised else None
    have = {m.name for m in app.materials if m.kind == "material"} | verified_materials(app)
    deferred, errors = check_complete(hub, subject, have, commitment_due, today)
    if errors:
        raise InvalidInput(errors)
    for name in deferred:
        app.deficiencies.append(Deficiency(material=name, due_date=commitment_due, created_at=now.replace(tzinfo=None)))
    app.accepted_on = today
    recompute_due(app, hub.calendar)
    # Parts routed to a connected department system are owed a delivery, in this transaction:
    # accepted and queued commit together or not at all. Others are decided in the hub itself.
    session = object_session(app)
    queued = [p for p in app.parts if p.connection in hub.connections]
    for p in queued:
        outbox.enqueue(session, p, now)
    data: dict[str, Any] = {"due_date": app.due_date.isoformat(), "due_provisional": app.due_provisional}
    if queued:
        data["dispatch"] = {p.item_code: p.connection for p in queued}
    if deferred:
        data |= {"tolerant": True, "missing": deferred, "commitment_due": commitment_due.isoformat()}
    return data


def _part_action(
    hub: Hub, app: Application, part: Part, action: lifecycle.Action, actor: Actor, now: datetime, reason: str | None
) -> None:
    if app.state not in (State.accepted, State.in_review):
        raise IllegalTransition(
            f"办件 {app.number} 当前状态为“{lifecycle.STATE_ZH[app.state]}”，不能“{action.zh}” "
            f"(parts move only while the application is accepted or in review)"
        )
    if part.state not in action.sources:
        raise IllegalTransition(
            f"事项 {part.item_code} 当前为“{lifecycle.STATE_ZH[part.state]}”，不能“{action.zh}” "
            f"(cannot {action.name} a part in state {part.state})"
        )
    source = part.state
    part.state = action.target
    if action.name in ("approve", "deny"):
        part.decided_at = now.replace(tzinfo=None)
    _record(
        app,
        action.name,
        actor,
        now,
        from_state=source,
        to_state=part.state,
        part=part,
        reason=reason,
        data={"item": part.item_code, "department": part.department_code},
    )
    if app.state == State.accepted and action.name == "start_review":
        app.state = State.in_review.value
        _record(app, "start", SYSTEM, now, from_state=State.accepted.value, to_state=State.in_review.value)
    if all(p.state in (PartState.approved, PartState.denied) for p in app.parts):
        result = lifecycle.outcome([p.state for p in app.parts])
        source = app.state
        app.state = State.decided.value
        _record(
            app,
            "decide",
            SYSTEM,
            now,
            from_state=source,
            to_state=State.decided.value,
            data={
                "outcome": result,
                "parts": {p.item_code: p.state for p in app.parts},
                "on_time": app.due_date is None or hub.today() <= app.due_date,
            },
        )


# ---------------------------------------------------------------------------- reading


def read(hub: Hub, number: str, actor: Actor) -> Application:
    with hub.sessions() as session:
        return get(session, number, actor)


def outcome_of(app: Application) -> str | None:
    if app.state in (State.decided, State.issued, State.delivered):
        return lifecycle.outcome([p.state for p in app.parts])
    return None


@dataclass(frozen=True)
class Alert:
    number: str
    kind: Literal["red", "yellow", "commitment_overdue", "provisional_due_date"]
    message: str
    due_date: date | None


def warnings(hub: Hub, actor: Actor) -> list[Alert]:
    """What supervisors chase: red and yellow cards, overdue 容缺 commitments, provisional dates."""
    today = hub.today()
    out: list[Alert] = []
    with hub.sessions() as session:
        stmt = scoped(select(Application), actor).where(
            Application.state.in_([s.value for s in lifecycle.OPEN] + ["decided", "issued"])
        )
        for app in session.scalars(
            stmt.options(selectinload(Application.deficiencies), selectinload(Application.parts))
        ):
            sig = signal(app, today, hub.calendar, hub.settings.yellow_days)
            if sig is Signal.red:
                out.append(Alert(app.number, "red", f"已超期 (overdue since {app.due_date})", app.due_date))
            elif sig is Signal.yellow:
                out.append(Alert(app.number, "yellow", f"即将到期 (due {app.due_date})", app.due_date))
            for d in app.deficiencies:
                if d.closed_at is None and d.due_date < today:
                    out.append(
                        Alert(
                            app.number,
                            "commitment_overdue",
                            f"容缺材料“{d.material}”承诺 {d.due_date} 补交，已逾期 (commitment overdue)",
                            d.due_date,
                        )
                    )
            if app.due_provisional and app.state in lifecycle.OPEN:
                out.append(
                    Alert(
                        app.number,
                        "provisional_due_date",
                        "办结期限按法定节假日推算，待官方放假安排确认 (due date provisional)",
                        app.due_date,
                    )
                )
    return out
