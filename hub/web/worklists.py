"""The pages people start their day on: the home page of each role (a desk's to-do, the
supervisor's open work by card colour), the officer's inbox, and the application list with search
and filters. The queries are in hub.worklists and hub.applications.search (shared with the REST
list): this module only reads query parameters and renders."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import worklists
from hub.applications.search import LOCAL, ListFilter, find
from hub.catalog.models import CHANNEL_ZH
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import FRONT, STATE_ZH, Role
from hub.presenters import application_summary
from hub.web.deps import CHANGE_PASSWORD, get_hub, need, optional_principal
from hub.web.render import render
from hub.web.security import Principal

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
Anyone = Annotated[Principal, Depends(need("applications:read"))]
Officer = Annotated[Principal, Depends(need("applications:write", Role.officer))]
# where each role lands after logging in ("/" is the desk's and the supervisor's to-do page)
LANDING = {Role.officer: "/inbox", Role.ops: "/ops", Role.agent: "/agency"}
MAX_OFFSET = 2**31 - 1

# the filters' names as the pages show them (errors name the field the person sees)
FIELD_ZH = {
    "state": ("办件状态", "state"),
    "item": ("事项", "item"),
    "desk": ("收件窗口", "desk"),
    "channel": ("渠道", "channel"),
    "origin": ("来源", "origin"),
    "number": ("办件号", "number"),
    "applicant_name": ("申请人姓名", "applicant name"),
    "q": ("查找", "search"),
    "received_from": ("收件日期（起）", "received from"),
    "received_to": ("收件日期（止）", "received to"),
    "tab": ("办理阶段", "stage"),
    "sort": ("排序", "sort"),
}


def landing(role: Role) -> str:
    return LANDING.get(role, "/")


def _filters(request: Request, own: set[str]) -> tuple[ListFilter, list[dict[str, str]]]:
    """The shared list filters from the query string, or none and the errors naming each field."""
    try:
        return ListFilter.parse(request.query_params, ignore={"lang", *own}), []
    except InvalidInput as exc:
        errors = []
        for e in exc.errors:
            zh, en = FIELD_ZH.get(e.field, (f"查询参数 {e.field}", f"query parameter {e.field}"))
            errors.append({"field": e.field, "label_zh": zh, "label_en": en, "zh": e.reason.zh, "en": e.reason.en})
        return ListFilter(), errors


def _offset(value: int) -> int:
    return min(max(value, 0), MAX_OFFSET)


def _choices(hub: Hub, principal: Principal) -> dict[str, Any]:
    """What the filter menus offer: the items the caller handles, desks, channels, origins."""
    cat = hub.catalog
    department = principal.actor.department
    officer = principal.role is Role.officer
    items = [(i.code, i.title) for i in cat.items.values() if not officer or i.department == department]
    items += [] if officer else [(b.code, b.title) for b in cat.bundles.values()]
    return {
        "items": sorted(items),
        "desks": sorted((d.code, d.name) for d in cat.desks.values()),
        "channels": list(CHANNEL_ZH.items()),
        "origins": [(LOCAL, "本地收件"), *sorted((n, p.display) for n, p in hub.partners.by_name.items())],
        "states": list(STATE_ZH.items())[:11],
    }


# ---------------------------------------------------------------- home


@router.get("/")
def home(
    request: Request, hub: HubDep, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Response:
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if principal.must_change_password:  # as `deps.current` does for every other page
        return RedirectResponse(CHANGE_PASSWORD, status_code=303)
    if principal.role in FRONT:
        todo = worklists.desk_home(hub, principal.actor)
        desk = hub.catalog.desks.get(principal.actor.desk or "")
        return render(request, "home_desk.html", h=todo, desk=desk, today=hub.today())
    if principal.role is Role.supervisor:
        rows = worklists.open_by_department(hub, principal.actor)
        totals = {k: sum(r[k] for r in rows) for k in (*worklists.CARDS, "open")}
        return render(request, "home_supervisor.html", rows=rows, totals=totals, today=hub.today())
    # officers and ops have their own pages; anyone else (an applicant, a system) their list
    place = landing(principal.role)
    return RedirectResponse(place if place != "/" else "/applications", status_code=303)


# ---------------------------------------------------------------- the officer's inbox


@router.get("/inbox")
async def inbox_page(
    request: Request,
    hub: HubDep,
    principal: Officer,
    tab: str = "all",
    sort: str = "urgency",
    offset: int = 0,
) -> Response:
    filters, errors = _filters(request, {"tab", "sort", "offset"})
    for name, value, known in (("tab", tab, worklists.TAB_BY_KEY), ("sort", sort, worklists.SORTS)):
        if value not in known:
            zh, en = FIELD_ZH[name]
            errors.append(
                {"field": name, "label_zh": zh, "label_en": en, "zh": "取值无效", "en": "not one of the allowed values"}
            )
    box = await run_in_threadpool(
        lambda: worklists.inbox(
            hub,
            principal.actor,
            tab=tab,
            sort=sort if sort in worklists.SORTS else "urgency",
            filters=filters,
            offset=_offset(offset),
            limit=0 if errors else worklists.PAGE,  # refused filters list nothing, not everything
        )
    )
    department = hub.catalog.departments.get(principal.actor.department or "")
    return render(
        request,
        "inbox.html",
        422 if errors else 200,
        box=box,
        tabs=(worklists.ALL, *worklists.TABS),
        sorts=worklists.SORTS,
        sort=sort if sort in worklists.SORTS else "urgency",
        f=filters,
        errors=errors,
        choices=_choices(hub, principal),
        department=department,
        query=_query(request, drop={"offset"}),
        tab_query=_query(request, drop={"offset", "tab"}),
    )


def _query(request: Request, drop: set[str]) -> str:
    """The current query string without `drop` (for tab and page links that keep the filters)."""
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k not in drop and v])


# ---------------------------------------------------------------- the application list


LIST_PAGE = 50


@router.get("/applications")
async def app_list(request: Request, hub: HubDep, principal: Anyone, offset: int = 0) -> Response:
    filters, errors = _filters(request, {"offset"})
    offset = _offset(offset)

    def load() -> list[dict[str, Any]]:
        today = hub.today()
        with hub.sessions() as session:
            apps = find(session, principal.actor, filters, hub.settings.tz, limit=LIST_PAGE + 1, offset=offset)
            return [application_summary(hub, a, today) | {"received_at": a.created_at} for a in apps]

    rows = [] if errors else await run_in_threadpool(load)  # refused filters list nothing, not everything
    return render(
        request,
        "applications.html",
        422 if errors else 200,
        rows=rows[:LIST_PAGE],
        more=len(rows) > LIST_PAGE,
        offset=offset,
        page_rows=LIST_PAGE,
        f=filters,
        errors=errors,
        choices=_choices(hub, principal),
        query=_query(request, drop={"offset"}),
        state=filters.state.value if filters.state else None,
        front=principal.role in FRONT,
    )
