"""Receiving an application (收件), alone or with the desk's first review (初审): every check
first (nothing is written on bad input), idempotent on (desk, source_ref)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import text
from hub.applications import licence_refs
from hub.applications.batch import Received, application_fields, insert_received, part_fields
from hub.applications.events import add_event
from hub.applications.materials import add_material, check_complete, check_materials, store_material
from hub.applications.models import Actor, FirstReview, NewApplication, identity_key
from hub.applications.numbers import claim_number, next_numbers
from hub.applications.scope import read
from hub.catalog.forms import validate_form
from hub.catalog.models import MODE_ZH, Bundle, Desk, Item
from hub.context import Hub
from hub.errors import FieldError, Forbidden, InvalidInput, Reason
from hub.events import GENESIS
from hub.ids import check_id_number, check_uscc
from hub.lifecycle import ACTIONS, COLLECTORS, Role, State
from hub.materials import Stored
from hub.partner_outbox import mode_of
from hub.storage import bulk as bulk_rows
from hub.storage.tables import Application, Part


def check_new(
    hub: Hub, new: NewApplication, files: dict[str, Reason | None] | None = None, today: date | None = None
) -> tuple[Item | Bundle | None, dict[str, Any], list[FieldError]]:
    """Everything `create` checks about the content of a new application, without writing.
    `files` remembers the verdict on each material file by path, for callers (a batch) whose
    files cannot change while they check many records that share them; `today` is the county's
    date if the caller knows it already."""
    cat = hub.catalog
    today = today or hub.today()
    errors: list[FieldError] = []
    subject = cat.subject(new.subject)
    desk = cat.desks.get(new.desk)
    if subject is None:
        errors.append(unknown_subject(hub, new.subject))
    if desk is None:
        errors.append(FieldError.of("desk", f"窗口 {new.desk} 不存在", "unknown desk"))
    if subject is not None and desk is not None:
        if desk.channel not in subject.channels:
            errors.append(
                FieldError.of(
                    "subject",
                    f"{subject.title} 未下放到{desk.name}所在渠道 ({desk.channel.value})",
                    f"not delegated to the {desk.channel.value} channel",
                )
            )
        errors.extend(_who_decides(hub, subject, desk))
    errors.extend(text_problems(new))
    a = new.applicant
    reason = check_id_number(a.id, today=today) if a.type == "person" else check_uscc(a.id)
    if reason:
        errors.append(FieldError("applicant.id", reason))
    elif subject is not None:
        errors.extend(eligibility_problems(cat.items_of(subject), a.type, a.id, today))
    if new.agent and (reason := check_id_number(new.agent.id_number, today=today)):
        errors.append(FieldError("agent.id_number", reason))
    clean: dict[str, Any] = {}
    if subject is not None:
        clean, form_errors = validate_form(cat.form_of(subject), new.form)
        errors.extend(form_errors)
        errors.extend(check_materials(hub, subject, new.materials, files))
    return subject, clean, errors


def eligibility_problems(items: list[Item], applicant_type: str, applicant_id: str, today: date) -> list[FieldError]:
    """Who may apply (`Item.eligibility`), from the ID number: age on the day of intake and the
    division it was issued in. One rule for the web, the API, the CLI and a batch: all of them
    come through `check_new`."""
    errors: list[FieldError] = []
    for item in items:
        rule = item.eligibility
        if rule is None:
            continue
        if applicant_type != "person":
            errors.append(FieldError.of("applicant.type", f"{item.title}仅限个人申请", "persons only"))
            continue
        born = date(int(applicant_id[6:10]), int(applicant_id[10:12]), int(applicant_id[12:14]))
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        says = f"（{rule.message}）" if rule.message else ""
        if rule.min_age is not None and age < rule.min_age:
            errors.append(
                FieldError.of(
                    "applicant.id",
                    f"申请人{age}周岁，{item.title}须年满{rule.min_age}周岁{says}",
                    f"the applicant is {age}; {item.code} needs {rule.min_age} or older",
                )
            )
        if rule.max_age is not None and age > rule.max_age:
            errors.append(
                FieldError.of(
                    "applicant.id",
                    f"申请人{age}周岁，{item.title}限{rule.max_age}周岁以下{says}",
                    f"the applicant is {age}; {item.code} is for {rule.max_age} or younger",
                )
            )
        if rule.divisions and not any(applicant_id.startswith(_prefix(d)) for d in rule.divisions):
            errors.append(
                FieldError.of(
                    "applicant.id",
                    f"{item.title}限户籍在 {'、'.join(rule.divisions)} 的申请人{says}",
                    "the applicant is not registered in the divisions this item serves",
                )
            )
    return errors


def _prefix(division: str) -> str:
    """The ID-number prefix a division covers: 330329 a county, 330300 its city, 330000 its province."""
    while division.endswith("00") and len(division) > 2:
        division = division[:-2]
    return division


def unknown_subject(hub: Hub, code: str) -> FieldError:
    """Why a code is not one a desk can collect now: unknown, or a partner's item (or a 多地联办
    bundle needing one) that its region does not currently accept."""
    if why := hub.catalog.unavailable.get(code):
        return FieldError.of("subject", f"事项 {code} 暂不能收件：{why[0]}", f"not available now: {why[1]}")
    partner, _, item = code.partition(":")
    if item and partner in hub.partners.by_name:
        region = hub.partners.by_name[partner].display
        return FieldError.of(
            "subject",
            f"{region}当前不受理事项 {item}（已撤回，或跨域通办目录尚未同步）",
            f"{partner} does not currently accept {item} (withdrawn, or its list is not synced)",
        )
    return FieldError.of("subject", f"事项编码 {code} 不在事项目录中", "unknown item or bundle code")


def _who_decides(hub: Hub, subject: Item | Bundle, desk: Desk) -> list[FieldError]:
    """收受分离: a desk collects for the division it acts for and — 跨省通办 — for the partners
    whose agreement names it, in the modes their list allows (all parts theirs: 异地代收代办;
    mixed with ours: 多地联办)."""
    cat = hub.catalog
    items = cat.items_of(subject)
    mode = mode_of(desk.channel.value, [i.code for i in items])
    errors = []
    for item in items:
        if item.partner is None:
            division = cat.departments[item.department].division
            if division != desk.acts_for:
                errors.append(
                    FieldError.of(
                        "desk",
                        f"{desk.name} 不代办行政区划 {division} 的事项",
                        "desk does not act for the deciding division",
                    )
                )
            continue
        partner = hub.partners.by_name.get(item.partner)
        region = item.region or item.partner
        if partner is None or not partner.desk_allowed(desk.code) or desk.channel.value == "partner":
            errors.append(
                FieldError.of("desk", f"{desk.name} 不为{region}代收事项", f"desk does not collect for {item.partner}")
            )
        elif mode not in item.cross_region:
            errors.append(
                FieldError.of(
                    "subject",
                    f"{region}的事项 {item.title} 不接受{MODE_ZH[mode]}",
                    f"{item.partner} does not take {item.code} as {mode}",
                )
            )
    if len({i.partner for i in items if i.partner}) > 1 or sum(1 for i in items if i.partner) > 1:
        errors.append(
            FieldError.of("subject", "一个办件只能有一个对方地区事项", "at most one partner item per application")
        )
    return errors


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


def create(hub: Hub, new: NewApplication, actor: Actor, *, first_review: FirstReview | None = None) -> Application:
    """Receive an application (or save a draft). Idempotent on (desk, source_ref): the same
    request again returns the application it created; a different one under that key is refused.
    With `first_review` the desk's 初审 is recorded in the same transaction (state pre_reviewed):
    the file must then be complete, or miss only deferrable materials under a commitment."""
    return receive(hub, new, actor, first_review=first_review)[0]


def receive(
    hub: Hub,
    new: NewApplication,
    actor: Actor,
    *,
    first_review: FirstReview | None = None,
    brief: bool = False,
    origin: dict[str, str] | None = None,
) -> tuple[Application, bool]:
    """`create`, also saying whether this call made the application (False: the same request
    came before, and this is the application it made). `brief`: the application returned has
    its row and parts loaded, no more (enough for a summary; a busy intake API saves the rest).
    `origin`: where a partner hub collected it (the exchange's receiving side only, with a
    first review; never from a request)."""
    submit = ACTIONS["submit"]
    if origin is not None and (first_review is None or actor.role is not Role.system):
        raise Forbidden("只有跨省通办交换可以标注来源 (only the exchange marks an origin)")
    if actor.role not in submit.roles:
        raise Forbidden(f"角色 {actor.role.value} 不能收件 (role cannot receive applications)")
    if actor.role is Role.applicant and new.applicant.id.strip().upper() != (actor.applicant_id or "").upper():
        raise Forbidden("申请人只能为本人申请 (applicants apply for themselves)")
    if actor.role is Role.agent and (new.agent is None or new.agent.id_number.upper() != (actor.agent_id or "\0")):
        raise Forbidden("代办员收件须以本人为代办人 (an agent receives as the applicant's agent, itself)")
    if actor.role in COLLECTORS and actor.desk != new.desk:  # before the replay lookup: no peeking at other desks
        raise Forbidden(f"{actor.name} 不在窗口 {new.desk} (actor does not work at this desk)")
    # the same request again (a double click, a retry) is answered before anything is checked:
    # a file moved since, a date gone past, must not turn an accepted request into an error
    if (replay := replayed(hub, new, actor)) is not None:
        return replay, False
    hub.partner_lists_current()  # a partner's newer item list, stored by another process
    subject, form, errors = check_new(hub, new)
    licences: list[dict[str, Any]] = []
    if new.licences and not errors:  # 电子证照 by reference: asked of the libraries only for a sound request
        licences, wrong = licence_refs.resolve(
            hub, subject, new.licences, new.applicant.id, new.applicant.name, form, actor.name
        )
        errors += wrong
    if first_review is not None:
        errors += review_text_problems(first_review)
    if first_review is not None and not errors:
        if new.draft or actor.role not in ACTIONS["pre_review"].roles:
            raise Forbidden(f"角色 {actor.role.value} 不能初审 (role cannot first-review)")
        have = {m.name for m in new.materials} | set(first_review.verified) | {r["material"] for r in licences}
        errors = check_complete(hub, subject, have, first_review.commitment_due, hub.today())[1]
    if errors:
        raise InvalidInput(errors)
    desk = hub.catalog.desks[new.desk]
    number = claim_number(hub, desk)
    now = hub.now()
    stored = [store_material(hub, m) for m in new.materials]  # before the write: file I/O holds no lock
    try:
        if first_review is None:
            with hub.transaction() as session:
                number = number or next_numbers(session, desk.acts_for, hub.today(), 1)[0]
                app = _build(hub, session, new, subject, form, number, stored, actor, now, licences)
                session.flush()
                licence_refs.write(session, app.id, licences)
        else:
            # a window's receipt with its first review, as a batch record of one: plain rows, the
            # same rows and chain the ORM path writes, at a fraction of its cost
            entry = Received(new, subject, form, stored, _review_data(first_review), origin, licences)
            with hub.write_connection() as conn:
                number = number or next_numbers(conn, desk.acts_for, hub.today(), 1)[0]
                [(row, parts)] = insert_received(hub, conn, [entry], actor, now, [number])
            app = Application(  # as written, without reading it back
                **row,
                **bulk_rows.missing_defaults(Application.__table__, row),
                parts=[Part(**p, **bulk_rows.missing_defaults(Part.__table__, p)) for p in parts],
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
    if review.queue_ticket:
        data["queue_ticket"] = review.queue_ticket
    return data


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
    if (existing.subject_code, existing.applicant_id) != identity_key(subject, applicant_id):
        raise InvalidInput(
            [
                FieldError.of(
                    "source_ref",
                    f"编号 {source_ref} 已用于另一件申请 {existing.number}",
                    "source_ref already used for a different application",
                )
            ]
        )
    return read(hub, existing.number, actor)


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
    licences: list[dict[str, Any]] | None = None,
) -> Application:
    """A new application with its parts, materials and first events, added to the session."""
    app = Application(
        **application_fields(hub, new, subject, form, number, now),
        chain_head=GENESIS,
        parts=[Part(id=str(uuid.uuid4()), **p) for p in part_fields(hub, subject)],
    )
    session.add(app)
    for m, st in zip(new.materials, stored, strict=True):
        add_material(session, app, m, st, actor, now)
    materials = [{"name": m.name, "sha256": m.sha256} for m in app.materials]
    add_event(
        app,
        "create",
        actor,
        now,
        from_state=None,
        to_state=State.draft.value,
        data={"channel": app.channel, "materials": materials}
        | ({"licences": licence_refs.event_data(licences)} if licences else {}),
    )
    if not new.draft:
        app.state = State.received.value
        add_event(app, "submit", actor, now, from_state=State.draft.value, to_state=State.received.value)
    return app
