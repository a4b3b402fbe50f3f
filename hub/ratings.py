"""好差评: the applicant rates an application once service has been given (1 非常不满意 … 5
非常满意). A bad rating (1 or 2) opens a follow-up (整改回访) that must be closed within 15
working days, in four steps, each with an owner and a record of who did it, when and what:
核实 (verify the complaint) → 整改 (put it right) → 回访 (call the applicant back) → 审核 (a
supervisor, not the one who did 整改, closes it or sends it back to 整改). The rating and every
step are events on the application's hash chain. Rules in docs/dashboard.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload

from hub import applications as svc
from hub import text as characters
from hub.applications import Actor, scoped
from hub.context import Hub
from hub.errors import FieldError, Forbidden, IllegalTransition, InvalidInput, NotFound
from hub.lifecycle import STATE_ZH, Role, State
from hub.storage.tables import Application, FollowUpStep, Rating
from hub.timelimits import remaining_workdays

LEVEL_ZH: dict[int, str] = {1: "非常不满意", 2: "不满意", 3: "基本满意", 4: "满意", 5: "非常满意"}
BAD_LEVEL = 2  # this level or lower is a bad rating (差评) and opens a follow-up
FOLLOW_UP_WORKDAYS = 15  # the default of `follow_up_workdays` in hub.yaml
MAX_COMMENT = 500
MAX_RESPONSE = 1000
# service has been given: decided (and on), or ended without a decision (refused, withdrawn)
RATEABLE = frozenset({State.decided, State.issued, State.delivered, State.rejected, State.withdrawn})
# The rating is the applicant's own word, recorded by the hub on their behalf: as `system` it
# reaches the application whatever desk or department it belongs to.
APPLICANT = Actor(name="申请人", role=Role.system)
CLOSERS = frozenset({Role.supervisor, Role.officer, Role.system})
# the 整改 flow's steps, in order; 审核 is the supervisor's (REVIEWERS)
STEPS = ("verify", "rectify", "revisit", "review")
STEP_ZH: dict[str, str] = {"verify": "核实", "rectify": "整改", "revisit": "回访", "review": "审核"}
OUTCOME_ZH: dict[str, str] = {"done": "完成", "closed": "审核通过，办结", "returned": "退回整改"}
REVIEWERS = frozenset({Role.supervisor, Role.system})
REVIEW_OWNER = "督查室"  # the default owner of 审核: the supervisors
MAX_OWNER = 100


@dataclass(frozen=True)
class RatingView:
    """A rating as callers see it. Times are aware UTC datetimes; dates are local dates."""

    id: int
    number: str
    level: int
    comment: str | None
    rated_at: datetime
    follow_up_due: date | None
    follow_up_closed_at: datetime | None
    follow_up_by: str | None
    follow_up_response: str | None

    @property
    def level_zh(self) -> str:
        return LEVEL_ZH[self.level]

    @property
    def bad(self) -> bool:
        return self.level <= BAD_LEVEL

    @property
    def follow_up_open(self) -> bool:
        return self.follow_up_due is not None and self.follow_up_closed_at is None


@dataclass(frozen=True)
class StepView:
    """One step of a follow-up done: who owned it, who did it and when (aware UTC), the note."""

    step: str
    owner: str | None
    note: str
    done_by: str
    done_at: datetime
    outcome: str

    @property
    def step_zh(self) -> str:
        return STEP_ZH[self.step]

    @property
    def outcome_zh(self) -> str:
        return OUTCOME_ZH[self.outcome]


@dataclass(frozen=True)
class FollowUp:
    """A bad rating's follow-up (整改回访). `days_left`: working days from today (open) or from
    the day it was closed (closed) to the due date — 0 on the due date, negative when late."""

    rating_id: int
    number: str
    title: str
    desk: str
    desk_name: str
    level: int
    comment: str | None
    rated_at: datetime
    due: date
    closed_at: datetime | None
    closed_by: str | None
    response: str | None
    late: bool
    days_left: int
    step: str | None = None  # the step it waits at (None once closed)
    owner: str | None = None  # who owns that step
    steps: tuple[StepView, ...] = ()  # the steps done, oldest first

    @property
    def step_zh(self) -> str | None:
        return STEP_ZH.get(self.step or "")

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def level_zh(self) -> str:
        return LEVEL_ZH[self.level]


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None else None


def _local_day(hub: Hub, at: datetime) -> date:
    return at.replace(tzinfo=UTC).astimezone(hub.settings.tz).date()


def is_late(due: date | None, closed_on: date | None, today: date) -> bool:
    """A follow-up is late when still open after its due date, or closed after it."""
    if due is None:
        return False
    return (closed_on or today) > due


def _view(number: str, r: Rating) -> RatingView:
    return RatingView(
        id=r.id,
        number=number,
        level=r.level,
        comment=r.comment,
        rated_at=_aware(r.rated_at),
        follow_up_due=r.follow_up_due,
        follow_up_closed_at=_aware(r.follow_up_closed_at),
        follow_up_by=r.follow_up_by,
        follow_up_response=r.follow_up_response,
    )


# ---------------------------------------------------------------------------- rating


def _check_rating(level: object, comment: str | None) -> tuple[str | None, list[FieldError]]:
    errors = []
    if not isinstance(level, int) or isinstance(level, bool) or level not in LEVEL_ZH:
        choices = "、".join(f"{k} {v}" for k, v in LEVEL_ZH.items())
        errors.append(FieldError.of("level", f"评价等级应为 {choices}", "level must be 1 to 5"))
    text = (comment or "").strip() or None
    if text and len(text) > MAX_COMMENT:
        errors.append(FieldError.of("comment", f"评价内容不超过{MAX_COMMENT}字", f"at most {MAX_COMMENT} characters"))
    elif bad := characters.check("comment", text, multiline=True):
        errors.append(bad)
    return text, errors


def _check_rateable(app: Application, rated: bool) -> None:
    if rated:
        raise InvalidInput(
            [
                FieldError.of(
                    "level", f"办件 {app.number} 已评价，每件只能评价一次", "this application has been rated already"
                )
            ]
        )
    if app.state not in RATEABLE:
        raise InvalidInput(
            [
                FieldError.of(
                    "level",
                    f"办件 {app.number} 当前为“{STATE_ZH[app.state]}”，办结后才能评价",
                    "an application can be rated only once it is closed",
                )
            ]
        )


def _rated(session: Session, app_id: int) -> bool:
    return session.scalar(select(Rating.id).where(Rating.application_id == app_id)) is not None


def rate(hub: Hub, number: str, level: int, comment: str | None, *, actor: Actor | None = None) -> RatingView:
    """The applicant's rating of one application, once, after service was given. A bad one
    (level <= 2) is due a follow-up in 15 working days. `actor`, if given, is who hands the
    rating in (the applicant, a desk's rating pad): the application must be in their scope."""
    text, errors = _check_rating(level, comment)
    if errors:
        raise InvalidInput(errors)
    with hub.sessions() as session:  # checked before the transaction, as every write is
        app = svc.get(session, number, actor or APPLICANT)
        _check_rateable(app, _rated(session, app.id))
    now, today = hub.now(), hub.today()
    # the contact promised on the status page: hub.yaml `follow_up_workdays` (FOLLOW_UP_WORKDAYS by default)
    workdays = hub.settings.follow_up_workdays
    due, provisional = hub.calendar.add_workdays(today, workdays) if level <= BAD_LEVEL else (None, False)
    data = {"level": level, "level_zh": LEVEL_ZH[level], "comment": text}
    if due is not None:  # the promise made to the resident, kept with the rating
        data |= {
            "follow_up_due": due.isoformat(),
            "follow_up_due_provisional": provisional,
            "contact_workdays": workdays,
        }
    try:
        with hub.transaction() as session:
            app = svc.get(session, number, APPLICANT, for_update=True)
            _check_rateable(app, _rated(session, app.id))  # again under the lock: a second tap meanwhile
            rating = Rating(
                application_id=app.id, level=level, comment=text, rated_at=now.replace(tzinfo=None), follow_up_due=due
            )
            if due is not None:  # the 整改 flow starts at 核实, owned by the department concerned
                rating.follow_up_step, rating.follow_up_owner = STEPS[0], _default_owner(hub, app, STEPS[0])
            session.add(rating)
            svc.record_event(session, number, "rate", APPLICANT, data=data, now=now)
            session.flush()
            view = _view(number, rating)
    except IntegrityError as exc:  # the unique application_id: a concurrent rating won
        if "ratings" not in str(exc.orig):
            raise
        raise InvalidInput(
            [FieldError.of("level", f"办件 {number} 已评价，每件只能评价一次", "already rated")]
        ) from exc
    return view


def rating_of(hub: Hub, number: str, actor: Actor) -> RatingView | None:
    """The application's rating, or None if not rated yet. An application outside the actor's
    scope is NotFound, as everywhere."""
    with hub.sessions() as session:
        app = svc.get(session, number, actor)
        rating = session.scalars(select(Rating).where(Rating.application_id == app.id)).one_or_none()
        return _view(number, rating) if rating else None


# ---------------------------------------------------------------------------- follow-ups


def _follow_up(hub: Hub, app: Application, r: Rating, today: date) -> FollowUp:
    desk = hub.catalog.desks.get(app.desk_code)
    closed_on = _local_day(hub, r.follow_up_closed_at) if r.follow_up_closed_at else None
    return FollowUp(
        rating_id=r.id,
        number=app.number,
        title=app.title,
        desk=app.desk_code,
        desk_name=desk.name if desk else app.desk_code,
        level=r.level,
        comment=r.comment,
        rated_at=_aware(r.rated_at),
        due=r.follow_up_due,
        closed_at=_aware(r.follow_up_closed_at),
        closed_by=r.follow_up_by,
        response=r.follow_up_response,
        late=is_late(r.follow_up_due, closed_on, today),
        days_left=remaining_workdays(r.follow_up_due, closed_on or today, hub.calendar),
        step=r.follow_up_step,
        owner=r.follow_up_owner,
        steps=tuple(StepView(st.step, st.owner, st.note, st.done_by, _aware(st.done_at), st.outcome) for st in r.steps),
    )


def follow_ups(
    hub: Hub, actor: Actor, open_only: bool = True, *, limit: int | None = None, offset: int = 0
) -> list[FollowUp]:
    """Bad ratings' follow-ups the actor may see (a desk its own, a department those with its
    part, supervisors all), the soonest due first; a page of `limit` from `offset`, cut in the
    database on the stable (due, id) order (the ratings' follow_up_due index)."""
    today = hub.today()
    stmt = scoped(select(Application, Rating).join(Rating, Rating.application_id == Application.id), actor).where(
        Rating.follow_up_due.is_not(None)
    )
    if open_only:
        stmt = stmt.where(Rating.follow_up_closed_at.is_(None))
    with hub.sessions() as session:
        stmt = stmt.options(selectinload(Rating.steps)).order_by(Rating.follow_up_due, Rating.id)
        if limit is not None:
            stmt = stmt.limit(limit).offset(max(offset, 0))
        rows = session.execute(stmt).all()
        return [_follow_up(hub, app, r, today) for app, r in rows]


def _default_owner(hub: Hub, app: Application, step: str) -> str:
    """审核 is the supervisors'; the other steps belong to the department of the application's
    first item (the one that answers for the service)."""
    if step == "review":
        return REVIEW_OWNER
    code = app.parts[0].department_code if app.parts else app.desk_code
    dept = hub.catalog.departments.get(code)
    return dept.name if dept else code


def _check_text(name: str, value: str | None, limit: int, zh: str, *, required: bool = True) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidInput([FieldError.of(name, f"请填写{zh}", f"{name} is required")])
        return None
    if len(text) > limit:
        raise InvalidInput([FieldError.of(name, f"{zh}不超过{limit}字", f"at most {limit} characters")])
    if bad := characters.check(name, text, multiline=name != "owner"):
        raise InvalidInput([bad])
    return text


def _check_response(response: str | None) -> str:
    return _check_text("response", response, MAX_RESPONSE, "整改回访情况") or ""


def advance_follow_up(
    hub: Hub,
    rating_id: int,
    note: str,
    actor: Actor,
    *,
    outcome: str = "done",
    next_owner: str | None = None,
    field: str = "note",
) -> FollowUp:
    """Do the step a follow-up waits at: 核实, 整改 and 回访 by a supervisor or an officer of a
    department with a part in the application (outcome "done", then the next step, owned by
    `next_owner` or its default); 审核 by a supervisor other than whoever did the last 整改
    (outcome "closed": the follow-up is closed; "returned": back to 整改). Each step is a row
    in follow_up_steps and an event on the application's chain."""
    text = _check_text(field, note, MAX_RESPONSE, "办理情况") or ""
    owner = _check_text("owner", next_owner, MAX_OWNER, "下一步承办人", required=False)
    if actor.role not in CLOSERS:
        raise Forbidden(f"角色 {actor.role.value} 不能办理差评整改 (only supervisors and officers handle follow-ups)")
    now, today = hub.now(), hub.today()
    with hub.transaction() as session:
        rating = session.get(Rating, rating_id)
        if rating is None:
            raise NotFound(f"评价 {rating_id} 不存在 (no such rating)")
        app = session.get(Application, rating.application_id)
        if actor.role is Role.officer and actor.department not in {p.department_code for p in app.parts}:
            # outside the caller's scope a rating does not exist (no probing numbers by rating id)
            raise NotFound(f"评价 {rating_id} 不存在 (no such rating)")
        app = svc.get(session, app.number, actor, for_update=True)
        session.refresh(rating)  # under the application's lock: moved by someone else meanwhile?
        if rating.follow_up_due is None:
            raise InvalidInput([FieldError.of("rating", "该评价不是差评，无需整改", "not a bad rating: no follow-up")])
        if rating.follow_up_closed_at is not None:
            raise IllegalTransition(
                f"评价 {rating_id} 的整改已于 {_local_day(hub, rating.follow_up_closed_at)} 办结 "
                "(follow-up already closed)"
            )
        step = rating.follow_up_step or STEPS[0]
        if step == "review":
            _check_review(rating, actor, outcome)
        elif outcome != "done":
            raise InvalidInput(
                [
                    FieldError.of(
                        "outcome",
                        f"当前步骤为“{STEP_ZH[step]}”，只能提交办理情况，审核时才能办结或退回",
                        "only the review closes a follow-up or sends it back",
                    )
                ]
            )
        session.add(
            FollowUpStep(
                rating_id=rating.id,
                step=step,
                owner=rating.follow_up_owner,
                note=text,
                done_by=actor.name,
                done_at=now.replace(tzinfo=None),
                outcome=outcome,
            )
        )
        data: dict[str, object] = {"rating_id": rating.id, "level": rating.level, "step": step, "outcome": outcome}
        if outcome == "closed":
            rectified = _last(session, rating.id, "rectify")
            rating.follow_up_closed_at = now.replace(tzinfo=None)
            rating.follow_up_by = actor.name
            rating.follow_up_response = rectified.note if rectified else text
            rating.follow_up_step = rating.follow_up_owner = None
            late = is_late(rating.follow_up_due, today, today)
            data |= {"due": rating.follow_up_due.isoformat(), "late": late}
            action = "follow_up_closed"
        else:
            following = "rectify" if outcome == "returned" else STEPS[STEPS.index(step) + 1]
            rating.follow_up_step = following
            rating.follow_up_owner = owner or _default_owner(hub, app, following)
            data |= {"next_step": following, "next_owner": rating.follow_up_owner}
            action = "follow_up_step"
        svc.record_event(session, app.number, action, actor, reason=text, data=data, now=now)
        session.flush()
        session.refresh(rating, ["steps"])
        return _follow_up(hub, app, rating, today)


def _last(session: Session, rating_id: int, step: str) -> FollowUpStep | None:
    return session.scalars(
        select(FollowUpStep)
        .where(FollowUpStep.rating_id == rating_id, FollowUpStep.step == step)
        .order_by(FollowUpStep.id.desc())
        .limit(1)
    ).first()


def _check_review(rating: Rating, actor: Actor, outcome: str) -> None:
    """审核: a supervisor's, never by whoever did the last 整改 (no one signs off their own work)."""
    if actor.role not in REVIEWERS:
        raise Forbidden("只有督查人员可以审核差评整改 (only a supervisor reviews a follow-up)")
    if outcome not in ("closed", "returned"):
        raise InvalidInput(
            [FieldError.of("outcome", "审核结果应为“办结”或“退回整改”", "review outcome must be closed or returned")]
        )
    session = object_session(rating)
    rectified = _last(session, rating.id, "rectify") if session is not None else None
    if rectified is not None and rectified.done_by == actor.name:
        raise Forbidden("审核人不能是整改人 (the reviewer must not be the one who did the rectification)")


def close_follow_up(hub: Hub, rating_id: int, response: str, actor: Actor) -> FollowUp:
    """审核通过: close a follow-up that waits at 审核 (see `advance_follow_up`)."""
    _check_response(response)
    return advance_follow_up(hub, rating_id, response, actor, outcome="closed", field="response")
