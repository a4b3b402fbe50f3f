"""补正 as a loop: the officer (or desk) says exactly what is wrong — form fields and materials,
each with a note — where to bring them and by when; the desk corrects those fields (checked by
the catalogue's form rules, the same as at intake) and brings those materials, each change an
event; then it hands the case back (`resume`).

The request is recorded on its `request_supplement` event (`data.ask`); corrections are
`correct` events (`data.field`, `old`, `new`); what is still open is read back from the events,
so there is no second copy to drift."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field, field_validator

from hub import text
from hub.applications.events import add_event
from hub.applications.models import Actor
from hub.applications.scope import get, read
from hub.catalog.forms import validate_form
from hub.context import Hub
from hub.errors import FieldError, Forbidden, IllegalTransition, InvalidInput, Reason
from hub.lifecycle import FRONT, Role, State
from hub.storage.tables import Application, Event

# who corrects form fields during 补正: the desks that took the case, and officers (a desk's
# officer reading a corrected paper form aloud on the phone is how it is done today)
CORRECT_ROLES = FRONT | {Role.officer, Role.system}


class Wanted(BaseModel):
    """One thing asked for: a form field's name or a material's catalogue name, and why."""

    name: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=300)

    @field_validator("note")
    @classmethod
    def _note(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None  # as written: full-width punctuation kept
        if value and (reason := text.problem(value)):
            raise ValueError(str(reason))
        return value


class SupplementAsk(BaseModel):
    """What a 补正 request names (all optional: a reason alone is still a request)."""

    fields: list[Wanted] = Field(default_factory=list, max_length=50)
    materials: list[Wanted] = Field(default_factory=list, max_length=50)
    place: str | None = Field(default=None, max_length=200)  # where to bring them; default: the desk
    due_date: date | None = None  # by when; default: the item's supplement_days from today

    @field_validator("place")
    @classmethod
    def _place(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value and (reason := text.problem(value)):
            raise ValueError(str(reason))
        return value


def supplement_days(hub: Hub, app: Application) -> int:
    """Working days to bring what is asked: the strictest item's, else the hub's default."""
    subject = hub.catalog.subject(app.subject_code)
    items = hub.catalog.items_of(subject) if subject else []
    days = [i.supplement_days for i in items if i.supplement_days]
    return min(days) if days else hub.settings.supplement_days


def check_ask(hub: Hub, app: Application, ask: SupplementAsk, today: date) -> dict[str, Any]:
    """The request as its event records it, or InvalidInput naming what is wrong (unknown field
    or material, a date in the past)."""
    subject = hub.catalog.subject(app.subject_code)
    fields = {f.name: f for f in hub.catalog.form_of(subject)} if subject else {}
    materials = {m.name for m in hub.catalog.materials_of(subject)} if subject else set()
    errors: list[FieldError] = []
    for i, f in enumerate(ask.fields):
        if f.name not in fields:
            errors.append(FieldError.of(f"supplement.fields[{i}]", f"表单中没有字段“{f.name}”", "no such form field"))
    for i, m in enumerate(ask.materials):
        if m.name not in materials:
            errors.append(
                FieldError.of(f"supplement.materials[{i}]", f"本事项没有材料“{m.name}”", "not a material of this item")
            )
    if ask.due_date is not None and ask.due_date < today:
        errors.append(FieldError.of("supplement.due_date", "补正期限不能早于今天", "the due date is in the past"))
    if errors:
        raise InvalidInput(errors)
    desk = hub.catalog.desks.get(app.desk_code)
    due = ask.due_date or hub.calendar.add_workdays(today, supplement_days(hub, app))[0]
    return {
        "fields": [{"name": f.name, "label": fields[f.name].label, "note": f.note} for f in ask.fields],
        "materials": [{"name": m.name, "note": m.note} for m in ask.materials],
        "place": ask.place
        or (f"{desk.name}（{desk.address}）" if desk and desk.address else desk.name if desk else None),
        "due_date": due.isoformat(),
    }


def open_request(app: Application) -> Event | None:
    """The `request_supplement` event of the 补正 now open, if the application waits for one."""
    if app.state != State.supplement_requested:
        return None
    return next((e for e in reversed(app.events) if e.action == "request_supplement"), None)


def correct_fields(hub: Hub, number: str, values: dict[str, Any], actor: Actor) -> Application:
    """Correct form fields during 补正: only those the request names (when it names any), checked
    with the whole form by the catalogue's rules (the same as at intake); one `correct` event per
    changed field, with the old and the new value. Bad input changes nothing."""
    if actor.role not in CORRECT_ROLES:
        raise Forbidden(f"角色 {actor.role.value} 不能更正表单 (role cannot correct the form)")
    if not values:
        raise InvalidInput.field("fields", "请填写要更正的字段", "name at least one field to correct")
    now = hub.now()
    with hub.transaction() as session:
        app = get(session, number, actor, for_update=True)
        asked = open_request(app)
        if asked is None:
            raise IllegalTransition(f"办件 {number} 不在待补正状态，不能更正表单 (not waiting for a supplement)")
        wanted = {f["name"] for f in (asked.data.get("ask") or {}).get("fields", [])}
        subject = hub.catalog.subject(app.subject_code)
        form_fields = hub.catalog.form_of(subject) if subject else ()
        known = {f.name for f in form_fields}
        errors = [
            FieldError(f"form.{name}", Reason("补正通知未要求更正此字段", "the 补正 request does not name this field"))
            for name in values
            if name in known and wanted and name not in wanted
        ]
        merged = dict(app.form) | values
        clean, form_errors = validate_form(form_fields, merged)
        # every error about the form as it would be after the correction stands: a rule may tie
        # an untouched field to a corrected one (邮寄地址 once 送达方式 becomes 邮寄送达)
        errors += form_errors
        if errors:
            raise InvalidInput(errors)
        changed = {k: clean.get(k) for k in values if clean.get(k) != app.form.get(k)}
        if not changed:
            raise InvalidInput.field("fields", "填写的内容与原值相同，未作更正", "nothing changed")
        for name, new in changed.items():
            add_event(
                app,
                "correct",
                actor,
                now,
                from_state=None,
                to_state=None,
                data={"field": name, "old": app.form.get(name), "new": new},
            )
        app.form = {k: v for k, v in clean.items()}  # a new dict: the JSON column sees the change
        app.updated_at = now.replace(tzinfo=None)
    return read(hub, number, actor)


def supplement_request(app: Application) -> dict[str, Any] | None:
    """The open 补正: what was asked, what has been done since (fields corrected, materials
    brought), where and by when, and since when the clock stands. None when none is open."""
    asked = open_request(app)
    if asked is None:
        return None
    ask = asked.data.get("ask") or {}
    since = app.events[app.events.index(asked) + 1 :]
    corrected = {e.data.get("field") for e in since if e.action == "correct"}
    brought = {e.data.get("material") for e in since if e.action == "attach"}
    fields = [f | {"done": f["name"] in corrected} for f in ask.get("fields", [])]
    materials = [m | {"done": m["name"] in brought} for m in ask.get("materials", [])]
    return {
        "reason": asked.reason,
        "asked_at": asked.at.isoformat() + "Z",
        "asked_by": asked.actor,
        "fields": fields,
        "materials": materials,
        "place": ask.get("place"),
        "due_date": ask.get("due_date"),
        "clock_stopped_since": app.paused_since.isoformat() if app.paused_since else None,
        "complete": all(x["done"] for x in fields + materials),
    }


def check_resumable(app: Application, actor: Actor) -> None:
    """A desk hands a 补正 back only when everything asked is done (an officer may resume as is:
    they asked, they may accept less)."""
    if actor.role not in FRONT:
        return
    left = supplement_request(app)
    if left and not left["complete"]:
        names = [f["label"] for f in left["fields"] if not f["done"]] + [
            m["name"] for m in left["materials"] if not m["done"]
        ]
        raise InvalidInput.field("supplement", f"补正尚未完成：{'、'.join(names)}", "not everything asked is done")
