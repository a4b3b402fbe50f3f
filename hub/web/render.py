"""Templates: Jinja2, autoescaped, Simplified Chinese first with English on request (?lang=en,
remembered in a cookie). Templates write both texts inline: {{ _("办件", "Applications") }}."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hub.catalog.models import CHANNEL_ZH
from hub.errors import field_name, in_language
from hub.ids import mask_id
from hub.lifecycle import ACTIONS, STATE_ZH
from hub.users import ROLE_ZH

TEMPLATES = Path(__file__).parent / "templates"
BEIJING = ZoneInfo("Asia/Shanghai")
_loader = FileSystemLoader([TEMPLATES])
env = Environment(loader=_loader, autoescape=select_autoescape(["html"]), trim_blocks=True)
env.globals |= {"STATE_ZH": STATE_ZH, "ROLE_ZH": ROLE_ZH, "CHANNEL_ZH": CHANNEL_ZH, "ACTIONS": ACTIONS}
env.filters["mask"] = mask_id

ACTION_ZH = {a.name: a.zh for a in ACTIONS.values()} | {
    "create": "收件登记",
    "start": "进入审查",
    "decide": "办结",
    "attach": "补充材料",
    "correct": "补正：更正表单",
    "dispatch": "推送部门",
    "dispatch_dead": "推送失败（待运维处理）",
    "dispatch_after_withdrawal": "撤回后推送",
    "result": "部门回传结果文书",
    "result_refused": "结果文书被拒收",
    "licence_issued": "颁发电子证照",
    "licence_revoked": "电子证照已注销",
    "decision_unreadable": "部门决定无法识别（请人工处理）",
    "decision_not_applied": "部门决定未能适用",
    "warning": "时限预警",
    "rate": "好差评",
    "follow_up_closed": "差评整改审核办结",
    "follow_up_step": "差评整改步骤",
    "signing_started": "发起远程面签",
    "signing_sealed": "远程面签完成，证据已封存",
    "signing_aborted": "远程面签终止",
    # 跨省通办 (hub.exchange): what the partner hub did, as our chain records it
    "partner_received": "跨省通办：审批地已接收申请",
    "partner_refused": "跨省通办：审批地拒收（未送达）",
    "partner_accept": "审批地受理",
    "partner_reject": "审批地不予受理",
    "partner_start_review": "审批地进入审查",
    "partner_approve": "审批地准予",
    "partner_deny": "审批地不予许可",
    "partner_supplement": "审批地要求补正",
    "partner_resume": "审批地补正后继续办理",
    "partner_issue": "审批地已发证",
    "partner_withdraw": "审批地办件已撤回",
}
env.globals["ACTION_ZH"] = ACTION_ZH


ROLE_EN = {
    "teller": "Bank teller",
    "enclave_clerk": "Enclave desk",
    "clerk": "Counter clerk",
    "agent": "Agent",
    "officer": "County officer",
    "supervisor": "Supervisor",
    "ops": "Operations",
    "system": "System",
    "applicant": "Applicant",
}
env.globals["ROLE_EN"] = ROLE_EN


def _helpers(request: Request) -> dict[str, Any]:
    """Names for codes and local times, from the hub the app serves."""
    hub = request.app.state.hub
    cat = hub.catalog

    def place_name(code: str | None) -> str:
        if not code:
            return ""
        place = cat.desks.get(code) or cat.departments.get(code)
        return place.name if place else code

    def local(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A stored (naive UTC) time or an ISO text in the county's time zone."""
        if not value:
            return ""
        at = datetime.fromisoformat(value.removesuffix("Z")) if isinstance(value, str) else value
        return at.replace(tzinfo=at.tzinfo or UTC).astimezone(hub.settings.tz).strftime(fmt)

    def beijing(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A stored (naive UTC) time or an ISO text in Beijing time, whatever the county's zone
        (the exchange pages: both hubs and their logs speak Beijing time)."""
        if not value:
            return ""
        at = datetime.fromisoformat(value.removesuffix("Z")) if isinstance(value, str) else value
        return at.replace(tzinfo=at.tzinfo or UTC).astimezone(BEIJING).strftime(fmt)

    def actor_name(name: str) -> str:
        return "系统" if name == "hub" else name

    def lang_href(lang: str) -> str:
        """This page in the other language, its other query parameters kept (a status link's key)."""
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        return "?" + urlencode([*kept, ("lang", lang)])

    return {
        "place_name": place_name,
        "local": local,
        "beijing": beijing,
        "actor_name": actor_name,
        "lang_href": lang_href,
    }


def add_template_dir(path: Path) -> None:
    """A plugin's own templates (they may extend base.html); the hub's own names win."""
    if str(path) not in _loader.searchpath:
        _loader.searchpath.append(str(path))


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in ("zh", "en"):
        return asked
    return "en" if request.cookies.get("lang") == "en" else "zh"


def wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
        return False
    return "text/html" in request.headers.get("accept", "") or request.method == "POST"


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = lang_of(request)

    def _(zh: str, en: str | None = None) -> str:
        return en if lang == "en" and en else zh

    def said(message: str | None) -> str:
        return in_language(message, lang) if message else ""

    principal = getattr(request.state, "principal", None)
    html = env.get_template(template).render(
        request=request,
        _=_,
        said=said,
        field_name=lambda path: field_name(path, lang),
        lang=lang,
        me=principal,
        csrf=principal.csrf if principal else None,
        **_helpers(request),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in ("zh", "en"):
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


def render_error(request: Request, status: int, message: str, errors: list[dict[str, str]]) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message, errors=errors)
