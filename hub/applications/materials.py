"""Materials (申请材料) and results: kept in the content-addressed store, attached to an
application, checked against the catalogue; 容缺 completeness and what was verified online."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from hub import lifecycle, text
from hub.applications import licence_refs
from hub.applications.events import add_event
from hub.applications.models import Actor, LicenceRef, MaterialIn
from hub.applications.scope import get, read
from hub.catalog.models import Bundle, Item
from hub.context import Hub
from hub.errors import FieldError, Forbidden, IllegalTransition, InvalidInput, Reason
from hub.lifecycle import FRONT, Role, State
from hub.materials import Stored
from hub.partner_outbox import owe_result
from hub.storage.tables import Application, AttachedMaterial


def store_material(hub: Hub, m: MaterialIn) -> Stored:
    return hub.store.adopt(m.staged) if m.staged is not None else hub.store.put(m.source)  # type: ignore[arg-type]


# Plain SQL that both databases speak (SQLite >= 3.35): SQLAlchemy cannot cache the compiled form
# of its ON CONFLICT constructs, and compiling them afresh cost more than running them.
_KEEP_BLOB = sql(
    "INSERT INTO blobs (sha256, size, media_type, created_at) VALUES (:sha256, :size, :media_type, :created_at) "
    "ON CONFLICT (sha256) DO NOTHING"
)


def keep_blob(session: Session, s: Stored, now: datetime) -> None:
    keep_blobs(session.connection(), [s], now)


def keep_blobs(conn: Connection, stored: list[Stored], now: datetime) -> None:
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


def add_material(
    session: Session,
    app: Application,
    m: MaterialIn,
    s: Stored,
    actor: Actor,
    now: datetime,
) -> None:
    keep_blob(session, s, now)
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
        add_event(
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


ATTACH_ROLES = FRONT | {Role.officer, Role.applicant, Role.agent, Role.system}


def _check_attachable(app: Application) -> None:
    if app.state not in lifecycle.OPEN and app.state not in (State.decided, State.issued):
        raise IllegalTransition(
            f"办件 {app.number} 已{lifecycle.STATE_ZH[app.state]}，不能再补充材料 (application is closed)"
        )


def check_materials(
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
                FieldError.of(
                    f"materials[{i}].name", f"{subject.title} 不需要材料“{m.name}”", "not a material of this item"
                )
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
    errors = check_materials(hub, subject, materials) if subject else []
    if errors:
        raise InvalidInput(errors)
    stored = [store_material(hub, m) for m in materials]
    now = hub.now()
    with hub.transaction() as session:
        app = get(session, number, actor, for_update=True)
        _check_attachable(app)  # again under the lock: it may have been withdrawn meanwhile
        for m, s in zip(materials, stored, strict=True):
            add_material(session, app, m, s, actor, now)
        app.updated_at = now.replace(tzinfo=None)
    return read(hub, number, actor)


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
    keep_blob(session, stored, now)
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
    if app.origin_partner:  # the partner that collected it hands the result over at its desk
        session.flush()
        owe_result(session, app, app.materials[-1].id, now)
    add_event(
        app,
        "result",
        actor,
        now,
        from_state=None,
        to_state=None,
        part=part,
        data={"name": name, "sha256": stored.sha256, "size": stored.size},
    )


def check_complete(
    hub: Hub, subject: Item | Bundle, have: set[str], commitment_due: date | None, today: date
) -> tuple[list[str], list[FieldError]]:
    """受理 needs every required material, or — for deferrable ones — a commitment to bring it by a
    date not past and within the item's 容缺 horizon (`tolerance_days` working days from today).
    Returns the deferred materials' names and what is wrong."""
    # 免提交: what the department obtains itself is never asked of the applicant
    missing = [
        m
        for m in hub.catalog.materials_of(subject)
        if m.required and m.supplied_by == "applicant" and m.name not in have
    ]
    blocking = [m.name for m in missing if not m.deferrable]
    deferred = [m.name for m in missing if m.deferrable]
    errors = []
    if blocking:
        errors.append(
            FieldError.of("materials", f"缺少不可容缺的材料: {'、'.join(blocking)}", "required materials missing")
        )
    if deferred and commitment_due is None:
        errors.append(
            FieldError.of(
                "commitment_due",
                f"缺少材料 {'、'.join(deferred)} 可容缺受理，须填写承诺补交日期",
                "deferrable materials missing: give a commitment due date for tolerant acceptance",
            )
        )
    if deferred and commitment_due is not None:
        if commitment_due < today:
            errors.append(
                FieldError.of("commitment_due", "承诺补交日期不能早于今天", "commitment due date is in the past")
            )
        elif (commitment_due - today).days > (days := hub.catalog.tolerance_days(subject)) and commitment_due > (
            latest := commitment_limit(hub, subject, today)
        ):  # n working days span at least n calendar days: most promises need no walk over the calendar
            errors.append(
                FieldError.of(
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
    """Materials the desk verified instead of taking a paper copy: online (网上核验), or by an
    electronic licence taken by reference (电子证照)."""
    return {
        name
        for e in app.events
        if e.action in ("pre_review", "verify")
        for name, result in (e.data.get("verified") or {}).items()
        if result.get("ok")
    } | licence_refs.referenced(app)


def attach_licences(hub: Hub, number: str, refs: list[LicenceRef], actor: Actor) -> Application:
    """电子证照 by reference on an open application (as `attach` does for files): each checked as
    at intake (valid today, the material's type, the applicant's); one owed under 容缺 closes its
    commitment. Recorded as an `attach_licence` event and `material_licences` rows."""
    if actor.role not in ATTACH_ROLES:
        raise Forbidden(f"角色 {actor.role.value} 不能补充材料 (role cannot attach materials)")
    with hub.sessions() as session:
        app = get(session, number, actor)
        _check_attachable(app)
        subject = hub.catalog.subject(app.subject_code)
        applicant_id, form, have = app.applicant_id, dict(app.form or {}), licence_refs.referenced(app)
        applicant_name = app.applicant_name
    if subject is None:
        raise InvalidInput([FieldError.of("subject", f"事项 {app.subject_code} 已不在目录中", "item no longer listed")])
    errors = [
        FieldError.of(f"licences[{i}] ({r.material})", f"材料“{r.material}”已引用电子证照", "already has a licence")
        for i, r in enumerate(refs)
        if r.material in have
    ]
    records, wrong = licence_refs.resolve(hub, subject, refs, applicant_id, applicant_name, form, actor.name)
    if errors or wrong:
        raise InvalidInput(errors + wrong)
    now = hub.now()
    with hub.transaction() as session:
        app = get(session, number, actor, for_update=True)
        _check_attachable(app)
        if clash := sorted(licence_refs.referenced(app) & {r["material"] for r in records}):
            raise InvalidInput([FieldError.of("licences", f"材料“{clash[0]}”已引用电子证照", "already has a licence")])
        names = {r["material"] for r in records}
        closed = [d for d in app.deficiencies if d.material in names and d.closed_at is None]
        for d in closed:
            d.closed_at = now.replace(tzinfo=None)
        add_event(
            app,
            "attach_licence",
            actor,
            now,
            from_state=None,
            to_state=None,
            data={
                "licences": licence_refs.event_data(records),
                "closes_deficiency": sorted(d.material for d in closed),
            },
        )
        licence_refs.write(session, app.id, records)
        app.updated_at = now.replace(tzinfo=None)
    return read(hub, number, actor)
