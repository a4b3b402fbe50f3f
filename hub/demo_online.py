"""The demo's online application (网办): 林阿婆's grandson helps her sign in on her phone through
the province's identity service (the sandbox OpenID Connect provider `make demo` starts on
loopback, as hub.yaml's `identity_providers: zlb` names it), then she applies online for 老年人优待证
at the online desk — her ID number as the provider vouched for it, never typed — and sees only her
own applications. The browser's part (the provider's page) is played over HTTP here; the hub's part
runs through the same functions the /my pages call."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
from rich.markup import escape

from hub import applications as svc
from hub import identity
from hub.context import Hub
from hub.ids import mask_id
from hub.lifecycle import STATE_ZH
from hub.web.resident_session import open_resident_session, resident_of

PROVIDER = "zlb"
REDIRECT = "http://127.0.0.1:8000/my/callback"  # `hub serve`'s default address: the code comes back here
SANDBOX_RESIDENT, SANDBOX_PASSWORD = "linapo", "123456"  # the sandbox provider's sample resident


def _browser(url: str) -> str:
    """What the resident's browser does on the sandbox provider's page: pick 林阿婆, type the
    password, and follow the redirect back — the code it carries."""
    page = httpx.get(url, timeout=10)
    page.raise_for_status()
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    form |= {"resident": SANDBOX_RESIDENT, "password": SANDBOX_PASSWORD}
    action = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/authorize"
    answer = httpx.post(action, data=form, timeout=10)
    return parse_qs(urlsplit(answer.headers.get("location", "")).query)["code"][0]


def run(hub: Hub, say: Callable[[str], None]) -> str | None:
    """The online application's number, or None (said why) when no provider answers."""
    configured = identity.configured(hub).get(PROVIDER)
    if configured is None or configured.provider is None:
        say(f"  网办：未配置可用的身份认证 {PROVIDER}（{configured.problem if configured else '未配置'}），跳过")
        return None
    provider = configured.provider
    login = identity.new_login(PROVIDER, hub.now())
    try:
        url = provider.authorization_url(
            state=login.state, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT
        )
        code = _browser(url)
        who = provider.complete(
            code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=hub.today()
        )
    except (identity.IdentityRefused, httpx.HTTPError, KeyError) as exc:
        say(f"  网办：沙箱统一身份认证未响应（hub sandbox run 是否在运行？）：{escape(str(exc))}")
        return None
    say(f"  {configured.label} 登录成功：{who.name} {mask_id(who.id_number)}（PKCE、nonce、ID token 签名均已校验）")
    resident = resident_of(
        hub,
        open_resident_session(
            hub, provider=PROVIDER, subject=who.subject, id_number=who.id_number, name=who.name, phone=who.phone
        ),
    )
    assert resident is not None
    new = svc.NewApplication(
        subject="GG00501000",  # 老年人优待证办理, delegated to the online channel
        desk="online-zlb",
        applicant=svc.Applicant(name=resident.name, id=resident.id_number),
        form={
            "delivery_method": "邮寄送达",
            "mailing_address": "泰顺县罗阳镇下洪社区12号",
            "contact_phone": resident.phone,
        },
        materials=[
            svc.MaterialIn(name="近期免冠彩色证件照", filename="photo.jpg", content=b"\xff\xd8\xff\xe0" + b"\0" * 64)
        ],
        source_ref="demo:online-1",
    )
    app, _ = svc.receive(hub, new, resident.actor)
    say(f"  网上申请 {app.number}：{app.title}，{STATE_ZH[app.state]}（泰顺县网上办事大厅）")
    with hub.sessions() as session:
        mine = svc.list_applications(session, resident.actor)
    say(f"  {resident.name} 的“我的办件”：{len(mine)} 件，均为本人办件")
    return app.number
