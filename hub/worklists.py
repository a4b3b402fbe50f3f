"""To-do lists (待办): what each role has to act on, chosen, counted, ordered and paged in the
database — never loaded whole and sorted in Python — so they are right at any size (issue 21:
a LIMIT without an order showed a department year-old cases and hid its 1,113 overdue ones).

- the officer's inbox: tabs by stage with counts, the time-limit card computed in SQL (the same
  rule as `hub.timelimits.signal`), urgency / received / due orders, the shared list filters
  (`hub.applications.search`), pages cut by a deterministic order;
- the desk's home (teller, enclave clerk, clerk): 待补正, 容缺 commitments due soon or overdue,
  results to hand over (待领取 / 待送达), today's intake;
- the supervisor's home: open work by card colour per department.

Every query starts from `scoped`: a desk sees its applications, a department its parts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from hub.applications import Actor, scoped
from hub.applications.search import ListFilter, apply_filter, utc_start
from hub.context import Hub
from hub.lifecycle import CLOCKED, PartState, State, part_state_zh
from hub.presenters import application_summary
from hub.storage.tables import Application, AttachedMaterial, Deficiency, Event, Part
from hub.supervision.alerts import WATCHED_STATES
from hub.timelimits import remaining_workdays

PAGE = 50


@dataclass(frozen=True)
class Tab:
    key: str
    zh: str
    en: str
    states: tuple[str, ...]


TABS: tuple[Tab, ...] = (
    Tab("to_accept", "待受理", "To accept", (State.received, State.pre_reviewed)),
    Tab("in_review", "审查中", "In review", (State.accepted, State.in_review)),
    Tab("supplement", "待补正", "Awaiting supplement", (State.supplement_requested,)),
    Tab("to_issue", "待出件", "To issue", (State.decided,)),
)
ALL = Tab("all", "全部待办", "All", tuple(s for t in TABS for s in t.states))
TAB_BY_KEY = {t.key: t for t in (ALL, *TABS)}
INBOX_STATES = ALL.states
SORTS = {"urgency": ("按紧急程度", "most urgent"), "received": ("按收件时间", "received"), "due": ("按办结期限", "due")}


# ---------------------------------------------------------------- the card, in SQL


@dataclass(frozen=True)
class CardRule:
    """What `hub.timelimits.signal` needs to know, fixed for one request: today, the last date
    that is still yellow, and — for the rule "yellow only for items promised in more than
    `yellow_days`" — the subjects promised in that few days or fewer, by promised days (from the
    catalogue, so the card needs no look-up of each application's parts)."""

    today: date
    yellow_until: date
    yellow_days: int
    short: dict[int, tuple[str, ...]]  # promised working days (<= yellow_days) -> subject codes

    @classmethod
    def of(cls, hub: Hub, today: date) -> CardRule:
        days = hub.settings.yellow_days
        short: dict[int, list[str]] = {}
        for code, subject in (hub.catalog.items | hub.catalog.bundles).items():
            try:
                promised = max(i.promised_days for i in hub.catalog.items_of(subject))
            except KeyError:  # a bundle naming a partner's item: its promise is theirs
                continue
            if promised <= days:
                short.setdefault(promised, []).append(code)
        yellow_until = hub.calendar.add_workdays(today, days)[0]
        return cls(today, yellow_until, days, {p: tuple(sorted(c)) for p, c in sorted(short.items())})

    def classify(self, red: Any, yellow: Any, none: Any, paused: Any, green: Any) -> ColumnElement[Any]:
        """One CASE over Application giving the value for its card (one expression: a CASE
        nested in another would be evaluated again for each comparison)."""
        # promised + paused_workdays <= yellow_days: the item is too short for a yellow card
        too_short = [
            and_(Application.subject_code.in_(codes), Application.paused_workdays <= self.yellow_days - promised)
            for promised, codes in self.short.items()
        ]
        return case(
            (
                Application.accepted_on.is_(None) | Application.due_date.is_(None) | Application.state.not_in(CLOCKED),
                none,
            ),
            (func.coalesce(Application.paused_since, self.today) > Application.due_date, red),
            (Application.paused_since.is_not(None), paused),
            (and_(Application.due_date <= self.yellow_until, ~or_(false(), *too_short)), yellow),
            else_=green,
        )

    def card(self) -> ColumnElement[str | None]:
        """`hub.timelimits.signal` as SQL: None while no clock runs (before 受理, after 办结), red
        once overdue (also while 补正 stops the clock), paused during 补正, yellow near the due
        date for items promised in more than `yellow_days`, else green."""
        return self.classify("red", "yellow", None, "paused", "green")

    def urgency(self) -> ColumnElement[int]:
        """Red, yellow, then what has no running clock (to accept, to issue), 补正, the rest."""
        return self.classify(0, 1, 2, 3, 4)


# ---------------------------------------------------------------- the officer's inbox


@dataclass
class Inbox:
    tab: Tab
    counts: dict[str, int]  # tab key -> cases
    rows: list[dict[str, Any]]
    total: int  # in this tab with these filters
    offset: int
    limit: int


def _row(hub: Hub, app: Application, actor: Actor, today: date) -> dict[str, Any]:
    view = application_summary(hub, app, today)
    mine = [p for p in app.parts if actor.department in (None, p.department_code)]
    view["my_parts"] = [
        {"item_code": p.item_code, "title": p.title, "state": p.state, "state_zh": part_state_zh(app.state, p.state)}
        for p in mine
    ]
    view["lead"] = bool(app.parts) and app.parts[0].department_code == actor.department
    view["received_at"] = app.created_at.isoformat() + "Z"
    view["days_left"] = (
        remaining_workdays(app.due_date, app.paused_since or today, hub.calendar)
        if app.due_date and app.state in CLOCKED
        else None
    )
    view["paused_since"] = app.paused_since.isoformat() if app.paused_since else None
    return view


def inbox(
    hub: Hub,
    actor: Actor,
    *,
    tab: str = "all",
    sort: str = "urgency",
    filters: ListFilter | None = None,
    limit: int = PAGE,
    offset: int = 0,
) -> Inbox:
    """One page of what `actor`'s department (or desk) has to act on, and each tab's count."""
    today = hub.today()
    chosen = TAB_BY_KEY.get(tab, ALL)
    filters = filters or ListFilter()
    tz = hub.settings.tz
    base = apply_filter(scoped(select(Application), actor), filters, tz)
    rule = CardRule.of(hub, today)
    orders = {
        # the most urgent first in the database itself, so the page holds them however many
        # cases the department has; the id makes the order total, so pages never overlap
        "urgency": (rule.urgency(), Application.due_date.asc().nulls_last(), Application.created_at, Application.id),
        "received": (Application.created_at, Application.id),
        "due": (Application.due_date.asc().nulls_last(), Application.created_at, Application.id),
    }
    with hub.sessions() as session:
        by_state = dict(
            session.execute(
                base.where(Application.state.in_(INBOX_STATES))
                .with_only_columns(Application.state, func.count())
                .group_by(Application.state)
            ).all()
        )
        counts = {t.key: sum(by_state.get(s, 0) for s in t.states) for t in (ALL, *TABS)}
        stmt = (
            base.where(Application.state.in_(chosen.states))
            .options(selectinload(Application.parts))
            .order_by(*orders.get(sort, orders["urgency"]))
            .limit(limit)
            .offset(offset)
        )
        rows = [_row(hub, app, actor, today) for app in session.scalars(stmt)]
    return Inbox(chosen, counts, rows, counts[chosen.key], offset, limit)


def inbox_rows(hub: Hub, actor: Actor, limit: int = 200) -> list[dict[str, Any]]:
    """The inbox's first `limit` cases, most urgent first (GET /api/v1/inbox)."""
    return inbox(hub, actor, limit=limit).rows


# ---------------------------------------------------------------- the desk's home


SOON_DAYS = 3  # 容缺 commitments due within this many calendar days are listed as "due soon"
HOME_ROWS = 20


@dataclass
class DeskHome:
    supplement: list[dict[str, Any]]
    supplement_count: int
    commitments: list[dict[str, Any]]
    commitments_overdue: int
    commitments_soon: int
    handover: list[dict[str, Any]]
    handover_count: int
    today: list[dict[str, Any]]
    today_count: int


def _count(session: Session, stmt) -> int:
    return session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0


def desk_home(hub: Hub, actor: Actor) -> DeskHome:
    """The desk's to-do: each list its first rows (most pressing first) and its full count."""
    today = hub.today()
    mine = scoped(select(Application), actor)
    with hub.sessions() as session:

        def page(stmt, *order) -> list[dict[str, Any]]:
            apps = session.scalars(stmt.options(selectinload(Application.parts)).order_by(*order).limit(HOME_ROWS))
            return [_row(hub, a, actor, today) | {"delivery": a.form.get("delivery_method")} for a in apps]

        supplement = mine.where(Application.state == State.supplement_requested)
        handover = mine.where(Application.state == State.issued)
        start = utc_start(today, hub.settings.tz)
        todays = mine.where(Application.created_at >= start, Application.created_at < start + timedelta(days=1))
        owed = (
            scoped(select(Deficiency, Application), actor)
            .join(Application, Application.id == Deficiency.application_id)
            .where(
                Deficiency.closed_at.is_(None),
                Deficiency.due_date <= today + timedelta(days=SOON_DAYS),
                # where a commitment can still be owed (the supervisors' warnings' rule): not
                # on a case withdrawn, refused or already delivered
                Application.state.in_(WATCHED_STATES),
            )
        )
        commitments = [
            {
                "number": app.number,
                "title": app.title,
                "applicant_name": app.applicant_name,
                "material": d.material,
                "due_date": d.due_date.isoformat(),
                "overdue": d.due_date < today,
                "days": (d.due_date - today).days,
                "accepted": True,
            }
            for d, app in session.execute(owed.order_by(Deficiency.due_date, Deficiency.id).limit(HOME_ROWS))
        ]
        promised = _promised_before_acceptance(hub, session, actor, today + timedelta(days=SOON_DAYS))
        overdue = _count(session, owed.where(Deficiency.due_date < today))
        soon = _count(session, owed) - overdue
        late = sum(1 for c in promised if c["overdue"])
        commitments = sorted(commitments + promised, key=lambda c: (c["due_date"], c["number"]))[:HOME_ROWS]
        return DeskHome(
            supplement=page(supplement, Application.paused_since.asc().nulls_first(), Application.id),
            supplement_count=_count(session, supplement),
            commitments=commitments,
            commitments_overdue=overdue + late,
            commitments_soon=soon + len(promised) - late,
            handover=page(handover, Application.updated_at, Application.id),
            handover_count=_count(session, handover),
            today=page(todays, Application.id.desc()),
            today_count=_count(session, todays),
        )


PROMISES_READ = 500  # a desk's cases waiting for 受理: a handful, never the hub's history


def _promised_before_acceptance(hub: Hub, session: Session, actor: Actor, until: date) -> list[dict[str, Any]]:
    """容缺 promises taken at first review on cases the county has not accepted yet (deficiency
    rows are written at 受理): the desk chases them too. Read from the desk's `pre_reviewed`
    cases only (indexed by desk and state), with the materials still missing."""
    today = hub.today()
    rows = session.execute(
        scoped(select(Application.id, Application.number, Application.title, Application.applicant_name), actor)
        .add_columns(Application.subject_code, Event.data)
        .join(Event, and_(Event.application_id == Application.id, Event.action == "pre_review"))
        .where(Application.state == State.pre_reviewed)
        .order_by(Application.id)
        .limit(PROMISES_READ)
    ).all()
    due = {
        r.id: r for r in rows if (r.data or {}).get("commitment_due") and r.data["commitment_due"] <= until.isoformat()
    }
    if not due:
        return []
    have: dict[int, set[str]] = {}
    for app_id, name in session.execute(
        select(AttachedMaterial.application_id, AttachedMaterial.name).where(
            AttachedMaterial.application_id.in_(due), AttachedMaterial.kind == "material"
        )
    ):
        have.setdefault(app_id, set()).add(name)
    out = []
    for app_id, r in due.items():
        subject = hub.catalog.subject(r.subject_code)
        verified = {n for n, v in (r.data.get("verified") or {}).items() if (v or {}).get("ok")}
        present = have.get(app_id, set()) | verified
        owed = [
            m.name
            for m in (hub.catalog.materials_of(subject) if subject else ())
            if m.required and m.supplied_by == "applicant" and m.deferrable and m.name not in present
        ]
        if not owed:
            continue
        promised = date.fromisoformat(r.data["commitment_due"])
        out.append(
            {
                "number": r.number,
                "title": r.title,
                "applicant_name": r.applicant_name,
                "material": "、".join(owed),
                "due_date": promised.isoformat(),
                "overdue": promised < today,
                "days": (promised - today).days,
                "accepted": False,
            }
        )
    return out


# ---------------------------------------------------------------- the supervisor's home

CARDS = ("red", "yellow", "paused", "green")


def open_by_department(hub: Hub, actor: Actor) -> list[dict[str, Any]]:
    """Open work whose clock runs, by department and card: applications with an open part of
    the department (one application with parts in two departments counts for each)."""
    today = hub.today()
    # one row per (department, application) first, then counted: PostgreSQL cannot match a
    # GROUP BY expression holding bound parameters to the same expression in the select list
    per_app = (
        scoped(select(Part.department_code.label("dept"), CardRule.of(hub, today).card().label("card")), actor)
        .join(Part, Part.application_id == Application.id)
        .where(
            Application.state.in_(CLOCKED),
            Part.state.in_((PartState.pending, PartState.in_review)),
        )
        .distinct()
        .add_columns(Application.id)
        .subquery()
    )
    stmt = select(per_app.c.dept, per_app.c.card, func.count()).group_by(per_app.c.dept, per_app.c.card)
    found: dict[str, dict[str, int]] = {}
    with hub.sessions() as session:
        for dept, colour, n in session.execute(stmt):
            found.setdefault(dept, dict.fromkeys(CARDS, 0))[colour or "green"] += n
    departments = hub.catalog.departments
    rows = [
        {"code": code, "name": departments[code].name if code in departments else code, **n, "open": sum(n.values())}
        for code, n in found.items()
    ]
    rows.sort(key=lambda r: (-r["red"], -r["yellow"], r["code"]))  # a handful of departments, not cases
    return rows
