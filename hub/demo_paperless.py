"""The demo's paperless application (无纸化): 发票领用 for 陈志强's 个体工商户 at the county hall,
with no uploaded paper at all — the tax officer's ID card by 网上核验 (公安), the business
licence (营业执照) by reference from the province's 电子证照 platform — received, first-reviewed,
decided, issued and delivered through the same core functions the desk page and the API use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape

from hub import applications as svc
from hub.applications import Actor
from hub.context import Hub
from hub.errors import HubError
from hub.lifecycle import STATE_ZH, Role
from hub.web.desk_intake import CHECKLIST, lookup_licences, verify_online

CLERK = Actor(name="张敏", role=Role.clerk, desk="hall-county")
SWJ = Actor(name="税务局 郑洁", role=Role.officer, department="ts-swj")
INVOICE = "QT00901000"  # 发票领用
OWNER, OWNER_ID = "陈志强", "330329199007010137"
USCC = "92330329MA2K7Q8L1T"  # 泰顺县志强农家乐 (个体工商户), in the sandbox 电子证照 platform
FORM = {
    "enterprise_name": "泰顺县志强农家乐",
    "uscc": USCC,
    "taxpayer_type": "小规模纳税人",
    "invoice_type": "数电发票（普通发票）",
    "tax_agent_name": OWNER,
    "tax_agent_id_number": OWNER_ID,
    "tax_agent_phone": "13857712345",
    "contact_phone": "13857712345",
}


def run(hub: Hub, say: Callable[[str], None]) -> str | None:
    """The application's number, or None (said why) when the sandbox systems are not running."""
    subject = hub.catalog.subject(INVOICE)
    assert subject is not None
    materials = {m.name: m for m in hub.catalog.materials_of(subject)}
    verified: dict[str, dict[str, Any]] = {}
    refs: list[svc.LicenceRef] = []
    try:
        for name, m in materials.items():
            if m.supplied_by == "agency":
                continue  # 免提交: the department obtains it itself
            if m.licence:
                found = lookup_licences(hub, subject, name, (OWNER_ID, OWNER), FORM, CLERK)
                usable = [c for c in found["licences"] if c["usable"]]
                if not usable:
                    say(f"  [yellow]电子证照库无可用{name}（{'；'.join(found['problems'])}）[/]")
                    return None
                pick = usable[0]
                say(
                    f"  查询电子证照 {name}: {len(found['licences'])} 个，选用 {pick['number']}（{pick['issuer']}，"
                    f"{pick['status_zh']}，来源 {pick['source_zh']}）"
                )
                refs.append(svc.LicenceRef(material=name, number=pick["number"], source=pick["source"]))
            elif m.verify:
                answer = verify_online(hub, subject, name, OWNER_ID, OWNER)
                if not answer["ok"]:
                    say(f"  [yellow]网上核验 {name} 不一致[/]")
                    return None
                verified[name] = answer
                say(f"  网上核验 {name} ({answer['connection']}): 一致")
    except HubError as exc:
        say(f"  [yellow]沙箱系统未运行（hub sandbox run），跳过无纸化办件: {escape(str(exc))}[/]")
        return None
    app, _ = svc.receive(
        hub,
        svc.NewApplication(
            subject=INVOICE,
            desk=CLERK.desk or "",
            applicant=svc.Applicant(name=OWNER, id=OWNER_ID),
            form=FORM,
            licences=refs,
        ),
        CLERK,
        first_review=svc.FirstReview(checklist=[key for key, _zh, _en in CHECKLIST], verified=verified),
    )
    say(f"  {CLERK.name} 收件并初审 {app.number}：未收取任何纸质材料（无纸化）")
    for action, who in (("accept", SWJ), ("start_review", SWJ), ("approve", SWJ), ("issue", SWJ), ("deliver", CLERK)):
        app = svc.transition(hub, app.number, action, who)
        say(f"  {who.name} → {action}: [bold]{STATE_ZH[app.state]}[/]")
    return app.number
