"""The supervisors' pages (督查): the dashboard (数据看板) with open overdue work, trends and
charts, its CSV (the same columns and figures as the page's table), and the follow-ups of bad
ratings (好差评整改) with their steps. Figures from hub.supervision.figures, the flow from
hub.ratings; the definitions are in docs/dashboard.md."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import ratings
from hub.appointments.figures import queue_figures
from hub.charts import bar_chart, column_chart, rate_bars
from hub.context import Hub
from hub.errors import FieldError, InvalidInput, Reason
from hub.lifecycle import Role
from hub.supervision import figures as dashboard
from hub.supervision import service
from hub.web.deps import get_hub, need
from hub.web.render import lang_of, render
from hub.web.security import CSRF_FIELD, Principal, check_csrf

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
Anyone = Annotated[Principal, Depends(need("applications:read"))]
Supervisor = Annotated[Principal, Depends(need("reports:read", Role.supervisor))]

DIMENSIONS = ("channel", "desk", "department")
PERIODS = ("day", "week", "month", "year")
TREND_POINTS = 12


def _figures(hub: Hub, by: str, period: str, start: str | None, end: str | None):
    """The dashboard's rows for the asked dimension and period (unknown ones fall back)."""
    by = by if by in DIMENSIONS else "channel"
    a, b, period = _period(period, start, end, hub.today())
    return by, a, b, period, dashboard.figures(hub, a, b, by)


def _period(kind: str, start: str | None, end: str | None, today: date) -> tuple[date, date, str]:
    if start and end:
        try:
            a, b = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            raise InvalidInput.field("start", "日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD") from None
        if a > b or a.year < 2000 or b.year > 2100:
            raise InvalidInput(
                [
                    FieldError(
                        "start",
                        Reason("日期范围无效（开始不晚于结束，2000—2100年）", "start after end, or outside 2000-2100"),
                    )
                ]
            )
        return a, b, "custom"
    kind = kind if kind in PERIODS else "month"
    a, b = dashboard.period_bounds(kind, today)
    return a, b, kind


def _charts(request: Request, body: list[dashboard.Row], weeks, months) -> dict[str, Any]:
    en = lang_of(request) == "en"

    def t(zh: str, english: str) -> str:
        return english if en else zh

    labels = [r.label for r in body]
    empty = t("暂无数据", "no data")
    return {
        "by_key": [
            bar_chart(labels, [r.received for r in body], title=t("收件量", "Received"), empty=empty),
            rate_bars(labels, [r.on_time_rate for r in body], title=t("按时办结率", "On-time rate"), empty=empty),
            bar_chart(
                labels, [r.overdue_open for r in body], title=t("超期在办（红牌）", "Open overdue (red)"), empty=empty
            ),
        ],
        "trends": [
            column_chart(
                [p.label for p in points],
                [
                    (t("收件量", "Received"), [p.received for p in points]),
                    (t("办结量", "Completed"), [p.completed for p in points]),
                ],
                title=title,
                empty=empty,
            )
            for points, title in (
                (weeks, t(f"近{TREND_POINTS}周收件与办结", f"Received and completed, last {TREND_POINTS} weeks")),
                (months, t(f"近{TREND_POINTS}个月收件与办结", f"Received and completed, last {TREND_POINTS} months")),
            )
        ],
    }


@router.get("/dashboard")
def dashboard_page(
    request: Request,
    hub: HubDep,
    principal: Supervisor,
    by: str = "channel",
    period: str = "month",
    start: str | None = None,
    end: str | None = None,
) -> Response:
    by, a, b, period, rows = _figures(hub, by, period, start, end)
    body = [r for r in rows if r.key != dashboard.TOTAL_KEY]
    queue = queue_figures(hub, a, b)
    weeks = dashboard.trend(hub, "week", b, TREND_POINTS)
    months = dashboard.trend(hub, "month", b, TREND_POINTS)
    return render(
        request,
        "dashboard.html",
        rows=rows,
        total=rows[-1],
        by=by,
        period=period,
        start=a,
        end=b,
        columns=dashboard.COLUMNS,
        shown=dashboard.shown,
        charts=_charts(request, body, weeks, months),
        trends=(("week", weeks), ("month", months)),
        open_work=dashboard.open_work(hub),
        queue=queue,  # 排队叫号: waiting and service times (hub.appointments.figures)
        # 服务渠道: the counts the seeds quote (hub.supervision.service), reusing the rows read above
        service=service.service_counts(hub, a, b, channel_rows=rows if by == "channel" else None, queue=queue),
        service_figures=service.FIGURES,
        service_shown=service.shown,
    )


@router.get("/dashboard.csv")
def dashboard_csv(
    hub: HubDep,
    principal: Supervisor,
    by: str = "channel",
    period: str = "month",
    start: str | None = None,
    end: str | None = None,
) -> Response:
    by, a, b, _, rows = _figures(hub, by, period, start, end)
    name = quote(f"办件统计-{by}-{a}-{b}.csv")
    return Response(
        dashboard.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f"attachment; filename*=UTF-8''{name}"},
    )


# ---------------------------------------------------------------- 好差评整改


FOLLOW_UPS_PAGE = 50


@router.get("/follow-ups")
def follow_ups_page(request: Request, hub: HubDep, principal: Anyone, all: int = 0, offset: int = 0) -> Response:
    if principal.role not in (Role.supervisor, Role.officer):
        raise HTTPException(403, "无权访问")
    offset = max(offset, 0)
    rows = ratings.follow_ups(hub, principal.actor, open_only=not all, limit=FOLLOW_UPS_PAGE + 1, offset=offset)
    return render(
        request,
        "follow_ups.html",
        rows=rows[:FOLLOW_UPS_PAGE],
        show_all=all,
        offset=offset,
        page_size=FOLLOW_UPS_PAGE,
        more=len(rows) > FOLLOW_UPS_PAGE,
        steps=[(s, ratings.STEP_ZH[s]) for s in ratings.STEPS],
        can_review=principal.role is Role.supervisor,
        my_name=principal.actor.name,
        done=request.query_params.get("done", ""),
    )


@router.post("/follow-ups/{rating_id}/step")
async def follow_up_step(rating_id: int, request: Request, hub: HubDep, principal: Anyone) -> Response:
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    outcome = str(form.get("outcome") or "done")
    await run_in_threadpool(
        lambda: ratings.advance_follow_up(
            hub,
            rating_id,
            str(form.get("note") or ""),
            principal.actor,
            outcome=outcome,
            next_owner=str(form.get("next_owner") or "") or None,
        )
    )
    return RedirectResponse(f"/follow-ups?done={quote(outcome)}#f{rating_id}", status_code=303)
