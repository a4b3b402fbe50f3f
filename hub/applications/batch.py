"""Receiving checked records of a desk's intake batch as plain rows, table by table (COPY on
PostgreSQL): the same rows and event chain the ORM path writes, at a fraction of its cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hub import rollups
from hub.applications import licence_refs
from hub.applications.events import event_fields
from hub.applications.materials import keep_blobs
from hub.applications.models import Actor, NewApplication, identity_key
from hub.applications.numbers import reserve_numbers
from hub.catalog.models import Bundle, Item
from hub.context import Hub
from hub.errors import FieldError
from hub.events import canonical_json, chain
from hub.ids import uuid4_texts
from hub.lifecycle import PartState, State
from hub.materials import Stored
from hub.partner_outbox import application_rows, is_proxy, mode_of, owe_rows
from hub.storage import bulk as bulk_rows
from hub.storage.tables import Application, AttachedMaterial, Event, MaterialLicence, Part


def application_fields(
    hub: Hub, new: NewApplication, subject: Item | Bundle, form: dict[str, Any], number: str, now: datetime
) -> dict[str, Any]:
    """A new application's columns (a draft), from a checked request."""
    desk = hub.catalog.desks[new.desk]
    lead = hub.catalog.items_of(subject)[0]  # who decides (the lead department of a bundle)
    return {
        "number": number,
        "kind": "item" if isinstance(subject, Item) else "bundle",
        "subject_code": subject.code,
        "title": subject.title,
        "channel": desk.channel.value,
        "desk_code": desk.code,
        "collecting_division": desk.division,
        "deciding_division": hub.catalog.departments[lead.department].division,
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
        # the event chain's hash algorithm, for life (hub.events.chain_algorithm); sha256 is the
        # column's default, left unnamed so the bulk path still writes into schemas before 0017
        **({"hash_alg": hub.settings.crypto.hash} if hub.settings.crypto.hash != "sha256" else {}),
    }


def part_fields(hub: Hub, subject: Item | Bundle) -> list[dict[str, Any]]:
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


@dataclass
class Received:
    """One record of an intake batch, checked and ready: see `receive_batch`."""

    new: NewApplication
    subject: Item | Bundle
    form: dict[str, Any]
    stored: list[Stored]
    pre_review: dict[str, Any]  # who did the desk's first review, when, note
    # 跨省通办: the partner that collected it, its number and desk (origin_partner, origin_number,
    # origin_desk), written with the application so it is never without them
    origin: dict[str, str] | None = None
    # 电子证照 taken by reference, as hub.applications.licence_refs resolved them
    licences: list[dict[str, Any]] = field(default_factory=list)


def received_refs(session: Session, desk: str, refs: list[str]) -> dict[str, tuple[str, str]]:
    """source_ref -> (item, applicant id) of those of `refs` the desk has sent before."""
    if not refs:
        return {}
    rows = session.execute(
        select(Application.source_ref, Application.subject_code, Application.applicant_id).where(
            Application.desk_code == desk, bulk_rows.among(session.bind.dialect.name, Application.source_ref, refs)
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
            key = identity_key(e.new.subject, e.new.applicant.id)
            if e.new.source_ref in seen:
                same = seen[e.new.source_ref] == key
                outcome.append(
                    "duplicate"
                    if same
                    else FieldError.of(
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
            numbers = reserve_numbers(hub, session, desk, len(fresh))
            insert_received(hub, session.connection(), fresh, actor, now, numbers)
    return outcome


def insert_received(
    hub: Hub, conn: Connection, fresh: list[Received], actor: Actor, now: datetime, numbers: list[str]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The chunk's applications as plain rows, written table by table (COPY on PostgreSQL): the
    same rows and event chain `create` + pre-review would write one ORM object at a time, at a
    small fraction of the cost (see BENCHMARKS.md, intake batch ingest). Returns each entry's
    application row and part rows, in the order of `fresh`."""
    keep_blobs(conn, [st for e in fresh for st in e.stored], now)  # the chunk's files, one statement
    at = now.replace(tzinfo=None)
    # what the three intake events of every record share; each record adds its own data
    create = event_fields(actor, "create", at, from_state=None, to_state=State.draft.value)
    submit = event_fields(actor, "submit", at, from_state=State.draft.value, to_state=State.received.value)
    pre_review = event_fields(
        actor, "pre_review", at, from_state=State.received.value, to_state=State.pre_reviewed.value
    )
    parts_of: dict[str, list[dict[str, Any]]] = {}  # subject code -> its parts' columns but ids
    empty = canonical_json({})
    apps, parts, events, materials = [], [], [], []
    licence_rows: list[dict[str, Any]] = []
    made, owed = [], []
    ids = bulk_rows.allocate_ids(conn, Application.__table__, len(fresh))
    part_ids = iter(uuid4_texts(sum(len(hub.catalog.items_of(e.subject)) for e in fresh)))
    for e, number, app_id in zip(fresh, numbers, ids, strict=True):
        app = application_fields(hub, e.new, e.subject, e.form, number, now) | (e.origin or {})
        app["id"], app["state"] = app_id, State.pre_reviewed.value
        if e.new.subject not in parts_of:
            parts_of[e.new.subject] = part_fields(hub, e.subject)
        own_parts = [p | {"id": next(part_ids), "application_id": app_id} for p in parts_of[e.new.subject]]
        parts += own_parts
        made.append((app, own_parts))
        codes = [p["item_code"] for p in own_parts]
        if is_proxy(codes):  # 异地代收代办 / 全程网办: first-reviewed here, decided there, so it goes now
            owed += application_rows(number, app_id, own_parts, now, mode=mode_of(app["channel"], codes))
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
        created: dict[str, Any] = {"channel": app["channel"], "materials": listed}
        if e.licences:
            created["licences"] = licence_refs.event_data(e.licences)
            licence_rows += licence_refs.rows(app_id, e.licences)
        steps = [  # each event's data encoded once, for its hash and its column
            create | {"application_id": app_id, "data": canonical_json(created)},
            submit | {"application_id": app_id, "data": empty},
            pre_review
            | {
                "application_id": app_id,
                "reason": e.pre_review.get("note"),
                "data": canonical_json({k: v for k, v in e.pre_review.items() if k != "note"}),
            },
        ]
        app["chain_head"] = chain(number, steps, algorithm=app.get("hash_alg", "sha256"))
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
        (MaterialLicence.__table__, licence_rows),
    ):
        bulk_rows.insert_rows(conn, table, rows)
    owe_rows(conn, owed)
    # the dashboard's rollups, in this transaction as the ORM's flushes do (hub.rollups)
    rollups.count_submissions(conn, hub.settings.tz, ((app, own, at) for app, own in made))
    return made
