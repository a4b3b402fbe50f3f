"""The REST API and the pages behind it, in-process against a real database: who may do what
(the role x endpoint matrix), scoping (another desk's application is 404, never data), masking,
CSRF, sessions, tokens, throttling, bad uploads and idempotent submits."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import audit
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import Application
from hub.tokens import create_token, revoke_token
from hub.users import add_user
from hub.web.app import create_app
from tests.conftest import JPEG, PDF, make_id

PASSWORD = "correct-horse-battery"
# who: (role, desk, department)
PEOPLE = {
    "teller": (Role.teller, "bank-xiahong", None),
    "teller_bz": (Role.teller, "bank-baizhang", None),
    "hangzhou": (Role.enclave_clerk, "enclave-hangzhou", None),
    "officer": (Role.officer, None, "ts-mzj"),
    "officer_yb": (Role.officer, None, "ts-ybj"),
    "supervisor": (Role.supervisor, None, None),
    "ops": (Role.ops, None, None),
}


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def tokens(hub: Hub) -> dict[str, dict[str, str]]:
    """A bearer header per person (all scopes their role allows)."""
    out = {}
    for who, (role, desk, department) in PEOPLE.items():
        secret, _ = create_token(
            hub,
            who,
            role=role,
            desk=desk,
            department=department,
            scopes=["applications:read", "applications:write", "reports:read", "ops"],
            created_by="test",
        )
        out[who] = {"authorization": f"Bearer {secret}"}
    return out


def intake_data(seq: str = "101", **extra) -> str:
    data = {
        "subject": "GG00501000",
        "applicant": {"name": "林阿婆", "id": make_id(seq=seq)},
        "form": {"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        "materials": ["居民身份证", "近期免冠彩色证件照"],
        "checklist": ["identity", "materials", "signature", "informed"],
    } | extra
    return json.dumps(data, ensure_ascii=False)


FILES = [("files", ("id.pdf", PDF, "application/pdf")), ("files", ("photo.jpg", JPEG, "image/jpeg"))]


def submit(web: TestClient, headers: dict[str, str], seq: str = "101", files=FILES, **extra):
    return web.post("/api/v1/applications", data={"data": intake_data(seq, **extra)}, files=files, headers=headers)


def count(hub: Hub) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(Application))


@pytest.fixture
def apps(web: TestClient, tokens) -> dict[str, str]:
    """One application at each bank outlet (both for 民政, ts-mzj)."""
    a = submit(web, tokens["teller"], "101")
    b = submit(web, tokens["teller_bz"], "102")
    assert a.status_code == 201 and b.status_code == 201, (a.text, b.text)
    return {"xiahong": a.json()["number"], "baizhang": b.json()["number"]}


# ---------------------------------------------------------------- the matrix


def test_role_endpoint_matrix(web: TestClient, tokens, apps, hub: Hub):
    own, other = apps["xiahong"], apps["baizhang"]
    expect = {
        # (method, path): {who: status}
        ("GET", "/api/v1/me"): dict.fromkeys(PEOPLE, 200),
        ("GET", "/api/v1/applications"): dict.fromkeys(PEOPLE, 200),
        ("GET", f"/api/v1/applications/{own}"): {
            "teller": 200,
            "teller_bz": 404,
            "hangzhou": 404,
            "officer": 200,
            "officer_yb": 404,
            "supervisor": 200,
            "ops": 200,
        },
        # the receipt carries the applicant's status key: for the desk only
        ("GET", f"/api/v1/applications/{own}/receipt"): {"teller": 200, "teller_bz": 404, "officer": 403, "ops": 403},
        ("GET", "/api/v1/inbox"): {"officer": 200, "officer_yb": 200, "teller": 403, "supervisor": 403, "ops": 403},
        ("GET", "/api/v1/ops/connections"): {"ops": 200, "teller": 403, "officer": 403, "supervisor": 403},
        ("GET", "/api/v1/ops/outbox"): {"ops": 200, "teller": 403, "officer": 403},
        ("GET", "/api/v1/ops/plugins"): {"ops": 200, "supervisor": 403},
        ("GET", "/api/v1/ops/jobs"): {"ops": 200, "hangzhou": 403},
        ("GET", "/api/v1/ops/tokens"): {"ops": 200, "teller": 403},
        ("GET", "/api/v1/catalog/items"): dict.fromkeys(PEOPLE, 200),
    }
    for (method, path), by_who in expect.items():
        for who, status in by_who.items():
            r = web.request(method, path, headers=tokens[who])
            assert r.status_code == status, (method, path, who, r.text)
            if status == 404:
                assert "林阿婆" not in r.text and "applicant" not in r.text  # never another desk's data
    # nobody logged in: 401 everywhere but the schema
    for method, path in expect:
        assert web.request(method, path).status_code == 401, path
    assert web.get("/openapi.json").status_code == 200
    # the lists are scoped too
    listed = {a["number"] for a in web.get("/api/v1/applications", headers=tokens["teller"]).json()}
    assert listed == {own}
    assert {a["number"] for a in web.get("/api/v1/applications", headers=tokens["officer_yb"]).json()} == set()
    assert {a["number"] for a in web.get("/api/v1/applications", headers=tokens["supervisor"]).json()} == {own, other}


def test_writes_are_scoped_and_checked_by_role(web: TestClient, tokens, apps):
    own = apps["xiahong"]

    def act(who: str, action: str, number: str = own, **body):
        return web.post(f"/api/v1/applications/{number}/actions", json={"action": action} | body, headers=tokens[who])

    assert act("teller", "accept").status_code == 403  # a bank does not accept for the county
    assert act("teller_bz", "withdraw", reason="x").status_code == 404  # not theirs: not even its existence
    assert act("officer_yb", "accept").status_code == 404
    assert act("supervisor", "accept").status_code == 403
    assert act("ops", "accept").status_code == 403
    r = act("officer", "accept")
    assert r.status_code == 200 and r.json()["state"] == "accepted"
    assert act("officer", "accept").status_code == 409  # twice: illegal now, nothing changes
    assert act("officer", "fly").status_code == 422
    assert act("officer", "reject").status_code == 422  # a refusal needs its reason
    assert act("officer", "reject", reason="材料不全").status_code == 409
    # intake: only desk roles, at their own desk
    for who in ("officer", "supervisor", "ops"):
        assert submit(web, tokens[who], "109").status_code == 403, who


def test_ids_masked_in_lists_full_in_audited_detail(web: TestClient, tokens, apps, hub: Hub):
    own = apps["xiahong"]
    full = make_id(seq="101")
    listing = web.get("/api/v1/applications", headers=tokens["teller"]).text
    assert full not in listing and f"{full[:4]}**********{full[-4:]}" in listing
    assert web.get(f"/api/v1/applications/{own}", headers=tokens["teller"]).json()["applicant"]["id"] == full
    # supervisors and ops work with figures: masked even on the detail view
    assert full not in web.get(f"/api/v1/applications/{own}", headers=tokens["supervisor"]).text
    views = [e for e in audit.entries(hub, target=own) if e.action == "view_detail"]
    assert [(e.actor, e.data["full_ids"]) for e in reversed(views)] == [
        ("token:teller", True),
        ("token:supervisor", False),
    ]


# ---------------------------------------------------------------- intake edge cases


def test_intake_idempotent_and_bad_input_saves_nothing(web: TestClient, tokens, hub: Hub):
    t = tokens["teller"]
    first = submit(web, t, "111", source_ref="web:abc")
    again = submit(web, t, "111", source_ref="web:abc")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["number"] == again.json()["number"]
    before = count(hub)
    # mistyped upload: a text file named .pdf
    r = submit(web, t, "112", files=[("files", ("id.pdf", b"hello", "application/pdf")), FILES[1]])
    assert r.status_code == 422 and "id.pdf" in r.text and "不接受的文件类型" in r.text
    # a material name per file
    r = submit(web, t, "113", files=FILES[:1])
    assert r.status_code == 422 and "materials" in r.text
    # a wrong check digit, a missing required field: both named
    bad = json.loads(intake_data("114"))
    bad["applicant"]["id"] = bad["applicant"]["id"][:-1] + ("0" if bad["applicant"]["id"][-1] != "0" else "1")
    bad["form"].pop("contact_phone")
    r = web.post("/api/v1/applications", data={"data": json.dumps(bad)}, files=FILES, headers=t)
    fields = {e["field"] for e in r.json()["errors"]}
    assert r.status_code == 422 and {"applicant.id", "form.contact_phone"} <= fields, r.text
    # missing deferrable photo without a commitment date: refused; with one: accepted as 容缺
    r = submit(web, t, "115", files=FILES[:1], materials=["居民身份证"])
    assert r.status_code == 422 and "commitment_due" in r.text
    assert web.post("/api/v1/applications", data={"data": "{not json"}, headers=t).status_code == 422
    assert count(hub) == before
    ok = submit(web, t, "115", files=FILES[:1], materials=["居民身份证"], commitment_due="2026-10-09")
    assert ok.status_code == 201
    receipt = web.get(f"/api/v1/applications/{ok.json()['number']}/receipt", headers=t).json()
    assert receipt["missing"] == ["近期免冠彩色证件照"] and receipt["commitment_due"] == "2026-10-09"
    assert "/s/" in receipt["status_url"] and "?k=" in receipt["status_url"]


def test_full_width_input_is_normalised(web: TestClient, tokens):
    ident = make_id(seq="121")
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in ident)  # what a Chinese IME types
    data = json.loads(intake_data("121"))
    data["applicant"]["id"] = wide
    r = web.post("/api/v1/applications", data={"data": json.dumps(data)}, files=FILES, headers=tokens["teller"])
    assert r.status_code == 201, r.text
    assert r.json()["applicant_id"].endswith(ident[-4:])


def test_oversized_body_is_413_before_parsing(hub: Hub, tokens):
    hub.settings.max_material_bytes = hub.store.max_bytes = 1024  # the body may hold ten, plus 1 MB of form
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        big = b"%PDF-1.4\n" + b"0" * (12 * 1024 * 1024)
        r = web.post(
            "/api/v1/applications",
            data={"data": intake_data()},
            files=[("files", ("x.pdf", big))],
            headers=tokens["teller"],
        )
        assert r.status_code == 413 and "上限" in r.json()["detail"]
        small_but_over = b"%PDF-1.4\n" + b"0" * 4096
        r = web.post(
            "/api/v1/applications",
            data={"data": intake_data(materials=["居民身份证"])},
            files=[("files", ("x.pdf", small_but_over))],
            headers=tokens["teller"],
        )
        assert r.status_code == 422 and "大小上限" in r.text
    assert count(hub) == 0


# ---------------------------------------------------------------- sessions, CSRF, tokens, throttling


def login(web: TestClient, username: str, password: str = PASSWORD):
    page = web.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return web.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, follow_redirects=False
    )


def csrf_of(web: TestClient, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', web.get(path, headers={"accept": "text/html"}).text).group(1)


def test_session_cookie_csrf_and_expiry(web: TestClient, hub: Hub, clock, apps):
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    r = login(web, "wangfang")
    assert r.status_code == 303 and r.headers["location"] == "/"  # the desk's to-do page
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    own = apps["xiahong"]
    # a cookie-borne write needs the CSRF token: a forged form on another site has only the cookie
    r = web.post(f"/api/v1/applications/{own}/actions", json={"action": "withdraw", "reason": "x"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = web.post(f"/applications/{own}/action", data={"action": "withdraw", "reason": "x", "csrf_token": "forged"})
    assert r.status_code == 403
    assert web.get(f"/api/v1/applications/{own}").json()["state"] == "pre_reviewed"  # nothing changed
    token = csrf_of(web, "/intake")
    r = web.post(
        f"/api/v1/applications/{own}/actions",
        json={"action": "withdraw", "reason": "申请人撤回"},
        headers={"x-csrf-token": token},
    )
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    # idle too long: the session is over, the page says so
    clock.advance(hours=1)
    assert web.get("/api/v1/me").status_code == 401
    r = web.get("/intake", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and "expired=1" in r.headers["location"]


def test_login_lockout_and_disabled_user(web: TestClient, hub: Hub, clock):
    from hub.users import set_disabled

    add_user(hub, "linxiao", PASSWORD, display_name="林晓", role=Role.officer, department="ts-mzj")
    for _ in range(5):
        assert login(web, "linxiao", "wrong-password-x").status_code == 401
    r = login(web, "linxiao")  # the right password, but locked now: the same answer as a wrong one
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    clock.advance(seconds=16 * 60)
    assert login(web, "linxiao").status_code == 303
    set_disabled(hub, "linxiao")
    assert web.get("/api/v1/me").status_code == 401  # the live session ended with the account
    assert login(web, "linxiao").status_code == 401
    assert login(web, "nobody").status_code == 401  # same answer as a wrong password
    actions = [e.action for e in audit.entries(hub)]
    assert actions.count("login_failed") == 8 and "login" in actions


def test_tokens_hashed_scoped_revocable(web: TestClient, hub: Hub, apps):
    secret, info = create_token(
        hub, "bank-reader", role=Role.teller, desk="bank-xiahong", scopes=["applications:read"], created_by="t"
    )
    h = {"authorization": f"Bearer {secret}"}
    assert web.get("/api/v1/applications", headers=h).status_code == 200
    assert submit(web, h, "131").status_code == 403  # read-only token
    with hub.sessions() as session:
        from hub.storage.tables import ApiToken

        stored = session.get(ApiToken, info.id)
        assert secret not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    revoke_token(hub, info.id)
    assert web.get("/api/v1/applications", headers=h).status_code == 401
    assert web.get("/api/v1/me", headers={"authorization": "Bearer tbh_nonsense"}).status_code == 401


# ---------------------------------------------------------------- the applicant's status page and rating


def test_status_link_needs_its_key_and_takes_one_rating(web: TestClient, tokens, apps, hub: Hub):
    own = apps["xiahong"]
    url = web.get(f"/api/v1/applications/{own}/receipt", headers=tokens["teller"]).json()["status_url"]
    assert url.startswith("http://127.0.0.1/s/")  # the address the request came to (public_url unset)
    path = url.removeprefix("http://127.0.0.1")
    key = path.split("k=")[1]
    assert web.get(f"/api/v1/status/{own}", params={"k": key}).json()["state"] == "pre_reviewed"
    assert web.get(f"/api/v1/status/{own}", params={"k": "0" * 20}).status_code == 404
    assert web.get(f"/api/v1/status/{apps['baizhang']}", params={"k": key}).status_code == 404
    page = web.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200 and "林*" in page.text and make_id(seq="101") not in page.text
    r = web.post(f"/api/v1/status/{own}/rating", params={"k": key}, json={"level": 1})
    assert r.status_code == 422  # still open: rate once it is done
    for action in ("accept", "start_review", "approve"):
        web.post(f"/api/v1/applications/{own}/actions", json={"action": action}, headers=tokens["officer"])
    r = web.post(f"/api/v1/status/{own}/rating", params={"k": key}, json={"level": 2, "comment": "等太久"})
    assert r.status_code == 201 and r.json()["follow_up_due"] is not None
    assert web.post(f"/api/v1/status/{own}/rating", params={"k": key}, json={"level": 5}).status_code == 422


def test_pages_render_for_each_role(web: TestClient, hub: Hub, apps):
    for who, (role, desk, department) in PEOPLE.items():
        add_user(hub, who.replace("_", "-"), PASSWORD, display_name=who, role=role, desk=desk, department=department)
    home = {"teller": "/", "officer": "/inbox", "supervisor": "/", "ops": "/ops"}
    for who, start in home.items():
        web.cookies.clear()
        r = login(web, who)
        assert r.headers["location"] == start
        page = web.get(start, headers={"accept": "text/html"})
        assert page.status_code == 200 and "通办枢纽" in page.text, (who, page.text[:500])
        assert web.get(start + "?lang=en", headers={"accept": "text/html"}).text.count("Tongban Hub") >= 1
        for other, path in home.items():
            if other != who and path != "/":  # "/" is everyone's own home
                assert web.get(path, headers={"accept": "text/html"}).status_code == 403, (who, path)
    web.cookies.clear()
    login(web, "officer")
    inbox = web.get("/inbox", headers={"accept": "text/html"}).text
    assert apps["xiahong"] in inbox and apps["baizhang"] in inbox
    detail = web.get(f"/applications/{apps['xiahong']}", headers={"accept": "text/html"}).text
    assert 'data-action="accept"' in detail and 'data-action="reject"' in detail
    assert web.get("/dashboard.csv").status_code == 403  # figures are for supervisors


def test_review_findings_stay_fixed(web: TestClient, tokens, apps, hub: Hub):
    """Holes an independent review found: each answered with a 4xx now, never a 500 or data."""
    t = tokens["teller"]
    # ops cannot mint a token wider than a desk system's (a system token would unmask everything)
    for role in ("system", "officer", "supervisor"):
        body = {"name": "x", "role": role, "scopes": ["applications:read"]}
        assert web.post("/api/v1/ops/tokens", json=body, headers=tokens["ops"]).status_code == 403, role
    # … nor a desk's token on its own: a person of that desk approves it (test_websec.py)
    desk_token = {"name": "bank", "role": "teller", "desk": "bank-xiahong", "scopes": ["applications:write"]}
    assert web.post("/api/v1/ops/tokens", json=desk_token, headers=tokens["ops"]).status_code == 403
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    approved = desk_token | {"approver": "wangfang", "approver_password": PASSWORD}
    assert web.post("/api/v1/ops/tokens", json=approved, headers=tokens["ops"]).status_code == 201
    assert audit.entries(hub)[0].data | {"role": "teller", "approved_by": "wangfang"} == audit.entries(hub)[0].data
    # values the core's models refuse are 422 naming the field
    r = web.post(
        "/api/v1/applications",
        data={"data": intake_data("142")},
        files=FILES,
        headers=t | {"idempotency-key": "k" * 200},
    )
    assert r.status_code == 422 and "Idempotency-Key" in r.text
    odd = json.loads(intake_data("143"))
    odd["applicant"]["type"] = "alien"
    r = web.post("/api/v1/applications", data={"data": json.dumps(odd)}, files=FILES, headers=t)
    assert r.status_code == 422
    odd["applicant"] = {"id": make_id(seq="143")}  # no name
    r = web.post("/api/v1/applications", data={"data": json.dumps(odd)}, files=FILES, headers=t)
    assert r.status_code == 422 and "applicant.name" in r.text
    r = submit(web, t, "144", checklist=["identity"])  # the first review must be complete
    assert r.status_code == 422 and "初审核对" in r.text
    # row ids beyond any table: 422, not a database overflow
    assert web.post(f"/api/v1/ops/outbox/{2**63}/retry", headers=tokens["ops"]).status_code == 422
    assert web.get(f"/api/v1/applications/{apps['xiahong']}/materials/{2**63}", headers=t).status_code == 422
