"""Finding applications: ONE set of list filters for every surface that lists them — the web list
(/applications), the officer's inbox, and the REST list (GET /api/v1/applications). Each surface
turns its query parameters into a `ListFilter` (`ListFilter.parse`: unknown names and bad values
refused with an error naming the field) and hands it to `apply_filter`, which adds WHERE clauses
over `applications` to a select already scoped to the caller (`hub.applications.scoped`).

Search (`q`) matches an application number, an applicant's name exactly, or an ID number / credit
code in FULL only: the typed code is folded as `Applicant.id` folds it (全角 digits and Ｘ alike)
and compared for equality with the stored one (indexed). A partial ID number finds nothing: a
list must not become a way to enumerate residents by a few digits of their number."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from hub.applications.models import Actor
from hub.applications.scope import scoped
from hub.catalog.models import Channel
from hub.errors import FieldError, InvalidInput, Reason
from hub.lifecycle import State
from hub.storage.tables import Application, Part
from hub.text import fold_code

LOCAL = "local"  # `origin=local`: collected by our own desks (not a partner hub)
# a whole resident ID number or unified social credit code, as stored (folded, upper case)
_FULL_CODE = re.compile(r"[0-9A-Z]{18}")


class ListFilter(BaseModel):
    """What a list may be narrowed by. Every field optional; all given ones must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    state: State | None = None
    item: str | None = Field(default=None, max_length=48)  # an item or bundle code (any part's item)
    desk: str | None = Field(default=None, max_length=64)  # the collecting desk's code
    channel: Channel | None = None
    origin: str | None = Field(default=None, max_length=64)  # "local", or a partner hub's name
    number: str | None = Field(default=None, max_length=32)  # 办件号, exactly
    applicant_name: str | None = Field(default=None, max_length=200)  # exactly, as written
    applicant_id: str | None = Field(default=None, max_length=40)  # a WHOLE ID number / credit code
    q: str | None = Field(default=None, max_length=200)  # 办件号, name, or a full ID number
    received_from: date | None = None  # Beijing (the county's) calendar dates, inclusive
    received_to: date | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any], *, ignore: frozenset[str] | set[str] = frozenset()) -> ListFilter:
        """From query parameters (empty ones dropped; `ignore`: the surface's own parameters such
        as paging and sort). Unknown names and bad values: InvalidInput naming each field."""
        data = {k: v for k, v in params.items() if k not in ignore and v not in (None, "")}
        try:
            found = cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput([_field_error(e) for e in exc.errors()]) from None
        if found.applicant_id is not None and search_terms(found.applicant_id)[1] is None:
            raise InvalidInput.field(
                "applicant_id",
                "请填写完整的 18 位证件号码或统一社会信用代码（不支持部分号码查询）",
                "a whole 18-character ID number or credit code (no partial search)",
            )
        if found.received_from and found.received_to and found.received_from > found.received_to:
            raise InvalidInput.field("received_from", "开始日期不能晚于结束日期", "start date after end date")
        return found

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


_KNOWN = {
    "extra_forbidden": ("不支持的查询参数", "unknown query parameter"),
    "enum": ("取值无效", "not one of the allowed values"),
    "date_from_datetime_parsing": ("日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD"),
    "date_parsing": ("日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD"),
    "string_too_long": ("内容过长", "too long"),
}


def _field_error(e: dict[str, Any]) -> FieldError:
    name = ".".join(str(p) for p in e["loc"]) or "query"
    zh, en = _KNOWN.get(e["type"], ("取值无效", e["msg"]))
    return FieldError(name, Reason(zh, en))


def utc_start(day: date, tz: tzinfo) -> datetime:
    """The stored (naive UTC) time at which `day` begins in the county's zone."""
    return datetime.combine(day, time(), tz).astimezone(UTC).replace(tzinfo=None)


def search_terms(q: str) -> tuple[str, str | None]:
    """(the text as typed, for names) and the folded full code, or None when `q` is not a whole
    ID number or credit code (a partial number is never matched)."""
    code = fold_code(q).upper()
    return q.strip(), code if _FULL_CODE.fullmatch(code) else None


def apply_filter(stmt: Select, f: ListFilter, tz: tzinfo) -> Select:
    """`stmt` (a select over Application, scoped to the caller) narrowed by `f`."""
    if f.state is not None:
        stmt = stmt.where(Application.state == f.state.value)
    if f.item:
        stmt = stmt.where(
            or_(
                Application.subject_code == f.item,
                exists().where(Part.application_id == Application.id, Part.item_code == f.item),
            )
        )
    if f.desk:
        stmt = stmt.where(Application.desk_code == f.desk)
    if f.channel is not None:
        stmt = stmt.where(Application.channel == f.channel.value)
    if f.origin == LOCAL:
        stmt = stmt.where(Application.origin_partner.is_(None))
    elif f.origin:
        stmt = stmt.where(Application.origin_partner == f.origin)
    if f.number:
        stmt = stmt.where(Application.number == fold_code(f.number).upper())
    if f.applicant_name:
        stmt = stmt.where(Application.applicant_name == f.applicant_name)
    if f.applicant_id:
        stmt = stmt.where(Application.applicant_id == search_terms(f.applicant_id)[1])
    if f.q:
        name, code = search_terms(f.q)
        matches = [Application.number == fold_code(name).upper(), Application.applicant_name == name]
        if code is not None:
            matches.append(Application.applicant_id == code)
        stmt = stmt.where(or_(*matches))
    if f.received_from:
        stmt = stmt.where(Application.created_at >= utc_start(f.received_from, tz))
    if f.received_to:
        stmt = stmt.where(Application.created_at < utc_start(f.received_to + timedelta(days=1), tz))
    return stmt


def filtered(actor: Actor, f: ListFilter, tz: tzinfo) -> Select:
    """A select over Application: what `actor` may see, narrowed by `f` (no order, no limit)."""
    return apply_filter(scoped(select(Application), actor), f, tz)


# a deterministic order for lists and pages: newest first, the id breaking ties (ids only grow)
NEWEST_FIRST = (Application.id.desc(),)


def find(
    session: Session, actor: Actor, f: ListFilter, tz: tzinfo, *, limit: int = 100, offset: int = 0
) -> list[Application]:
    """One page of the applications `actor` may see matching `f`, newest first, parts loaded."""
    stmt = filtered(actor, f, tz).options(selectinload(Application.parts)).order_by(*NEWEST_FIRST)
    return list(session.scalars(stmt.limit(limit).offset(offset)))
