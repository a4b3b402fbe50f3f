"""Ops pages for people and tokens (issue 21, Deliver 7): the rules behind /ops/users and
/ops/tokens — the same functions as `hub users` / `hub tokens` and the API, 双人授权 kept, a
temporary password that must be changed before anything else, lockouts lifted without a new
password, last login and last use recorded, every change audited, CSRF on every form — and the
ops pages speaking Chinese in the county's time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub import audit
from hub.applications import Actor
from hub.cli import accounts
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.ops import recorded_run
from hub.storage.tables import ApiToken, JobRun, User
from hub.tokens import HostOnly, issue_token
from hub.users import (
    MAX_FAILURES,
    Approval,
    ApprovalRefused,
    LoginRefused,
    accounts_page,
    add_user,
    authenticate,
    issue_user,
    reset_password,
)
from hub.web.app import create_app
from tests.test_web_api import PASSWORD, csrf_of, login

OPS = ("ops1", "运维老周")
BOSS = ("boss", "陈静")
HTML = {"accept": "text/html"}


@pytest.fixture
def web(hub: Hub):
    add_user(hub, OPS[0], PASSWORD, display_name=OPS[1], role=Role.ops)
    add_user(hub, BOSS[0], PASSWORD, display_name=BOSS[1], role=Role.supervisor)
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


def _as_ops(web: TestClient) -> str:
    assert login(web, OPS[0]).status_code == 303
    return csrf_of(web, "/ops/users")


def _audit(hub: Hub, action: str) -> list:
    return [e for e in audit.entries(hub) if e.action == action]


def _new_teller(web: TestClient, csrf: str, **extra: str):
    data = {
        "csrf_token": csrf,
        "username": "wangfang",
        "display_name": "王芳",
        "role": "teller",
        "desk": "bank-xiahong",
        "department": "",
    } | extra
    return web.post("/ops/users", data=data, headers=HTML)


def test_ops_creates_a_desk_login_only_with_a_second_persons_approval(web: TestClient, hub: Hub):
    csrf = _as_ops(web)
    refused = _new_teller(web, csrf)
    assert refused.status_code == 403 and 'data-field="approver"' in refused.text
    assert "王芳" in refused.text  # what was typed is kept for the second try
    # ops cannot approve its own request, nor a wrong password count as one
    assert _new_teller(web, csrf, approver=OPS[0], approver_password=PASSWORD).status_code == 403
    assert _new_teller(web, csrf, approver=BOSS[0], approver_password="not-her-password").status_code == 403
    assert accounts_page(hub, q="wangfang")[1] == 0  # nothing written
    # a bad field is named before the approver is asked (no password attempt spent on a typo)
    bad = _new_teller(web, csrf, username="Wang Fang", approver=BOSS[0], approver_password="wrong-wrong-wrong")
    assert bad.status_code == 422 and 'data-field="username"' in bad.text
    with hub.sessions() as session:
        assert session.scalar(select(User.failed_logins).where(User.username == BOSS[0])) == 1  # only the one above
    made = _new_teller(web, csrf, approver=BOSS[0], approver_password=PASSWORD)
    assert made.status_code == 200, made.text
    temporary = re.search(r'id="temp-password">([^<]+)<', made.text).group(1)
    [entry] = _audit(hub, "user_add")
    assert entry.target == "wangfang" and entry.data["approved_by"] == BOSS[0] and entry.actor == OPS[1]
    assert temporary not in str(entry.data)
    # the same rule, the same refusal on the CLI's path (one implementation)
    with pytest.raises(ApprovalRefused) as cli_refusal:
        issue_user(
            hub,
            Actor(name="cli:root", role=Role.system),
            username="lixia",
            display_name="李霞",
            role=Role.teller,
            desk="bank-xiahong",
        )
    assert cli_refusal.value.errors[0].field == "approver"
    # a new ops login needs nobody: ops may make ops, no more than it has
    other_ops = web.post(
        "/ops/users",
        data={"csrf_token": csrf, "username": "ops2", "display_name": "运维小吴", "role": "ops"},
        headers=HTML,
    )
    assert other_ops.status_code == 200 and 'id="temp-password"' in other_ops.text


def test_ops_cannot_make_the_first_supervisor_from_the_web(hub: Hub):
    """The first supervisor needs no approver (someone must start), but only at the host: from
    the ops page, ops would make a supervisor, log in with the password it was shown, and then
    approve desk and department logins (双人授权) alone."""
    add_user(hub, OPS[0], PASSWORD, display_name=OPS[1], role=Role.ops)
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        csrf = _as_ops(web)
        made = web.post(
            "/ops/users",
            data={"csrf_token": csrf, "username": "boss1", "display_name": "陈静", "role": "supervisor"},
            headers=HTML,
        )
        assert made.status_code == 403 and 'id="temp-password"' not in made.text
        assert "hub users add" in made.text
    with hub.sessions() as session:
        assert session.scalar(select(User).where(User.username == "boss1")) is None


def test_a_temporary_password_must_be_changed_before_anything_else(web: TestClient, hub: Hub):
    person, temporary = issue_user(
        hub, Actor(name="cli:root", role=Role.system), username="ops2", display_name="运维小吴", role=Role.ops
    )
    assert temporary and person.must_change_password
    first = login(web, "ops2", temporary)
    assert first.status_code == 303 and first.headers["location"] == "/account/password"
    assert web.get("/ops", headers=HTML, follow_redirects=False).headers["location"] == "/account/password"
    assert web.get("/api/v1/ops/jobs").status_code == 403  # the API too, with the cookie
    csrf = csrf_of(web, "/account/password")
    same = {"csrf_token": csrf, "current": temporary, "new": temporary, "again": temporary}
    assert web.post("/account/password", data=same, headers=HTML).status_code == 422
    differ = {"csrf_token": csrf, "current": temporary, "new": "my-own-pass-2026", "again": "my-own-pass-2027"}
    mismatch = web.post("/account/password", data=differ, headers=HTML)
    assert mismatch.status_code == 422 and "两次输入的新密码不一致" in mismatch.text
    ok = {"csrf_token": csrf, "current": temporary, "new": "my-own-pass-2026", "again": "my-own-pass-2026"}
    done = web.post("/account/password", data=ok, headers=HTML, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/ops"
    assert web.get("/ops", headers=HTML).status_code == 200
    with pytest.raises(LoginRefused):
        authenticate(hub, "ops2", temporary)
    assert authenticate(hub, "ops2", "my-own-pass-2026").must_change_password is False
    assert [e.target for e in _audit(hub, "password_changed")] == ["ops2"]


@pytest.mark.parametrize(
    ("username", "role", "desk"), [("wangfang", Role.teller, "bank-xiahong"), ("zhaoli", Role.supervisor, None)]
)
def test_a_temporary_password_opens_no_to_do_page(web: TestClient, hub: Hub, username, role, desk):
    """The home page ("/", the desk's to-do and the supervisor's open work) is behind the same
    rule as every other page: a temporary password is changed first."""
    add_user(hub, username, PASSWORD, display_name="临时", role=role, desk=desk)
    reset_password(hub, username, "temporary-pass-2026", temporary=True)
    login(web, username, "temporary-pass-2026")
    home = web.get("/", headers=HTML, follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/account/password"


def test_changing_a_temporary_password_ends_every_other_session(hub: Hub):
    """Whoever also knew the temporary password (ops set it and was shown it) and logged in with
    it holds a session that waits at the password page; once the user changes the password,
    that session must not become the user's."""
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    reset_password(hub, "wangfang", "temporary-pass-2026", temporary=True)
    app = create_app(hub)
    with (
        TestClient(app, base_url="http://127.0.0.1") as other,
        TestClient(app, base_url="http://127.0.0.1") as own,
    ):
        login(other, "wangfang", "temporary-pass-2026")
        assert other.get("/", headers=HTML, follow_redirects=False).headers["location"] == "/account/password"
        login(own, "wangfang", "temporary-pass-2026")
        ok = {
            "csrf_token": csrf_of(own, "/account/password"),
            "current": "temporary-pass-2026",
            "new": "her-own-pass-2026",
            "again": "her-own-pass-2026",
        }
        done = own.post("/account/password", data=ok, headers=HTML, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert own.get("/", headers=HTML).status_code == 200  # the one who changed it goes on
        stale = other.get("/", headers=HTML, follow_redirects=False)
        assert stale.status_code == 303 and stale.headers["location"].startswith("/login")


def test_password_change_errors_name_their_field(web: TestClient, hub: Hub):
    _as_ops(web)
    csrf = csrf_of(web, "/account/password")
    wrong = web.post(
        "/account/password",
        data={"csrf_token": csrf, "current": "nope-nope-nope", "new": "fresh-pass-2026", "again": "fresh-pass-2026"},
        headers=HTML,
    )
    assert wrong.status_code == 422 and "当前密码不正确" in wrong.text
    differ = web.post(
        "/account/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": "fresh-pass-2026", "again": "fresh-pass-2027"},
        headers=HTML,
    )
    assert differ.status_code == 422 and "两次输入的新密码不一致" in differ.text
    assert authenticate(hub, OPS[0], PASSWORD)  # unchanged


def test_lockout_is_shown_and_lifted_without_a_new_password(web: TestClient, hub: Hub, clock):
    add_user(hub, "linxiao", PASSWORD, display_name="林晓", role=Role.officer, department="ts-mzj")
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginRefused):
            authenticate(hub, "linxiao", "wrong-password-x")
    with pytest.raises(LoginRefused):
        authenticate(hub, "linxiao", PASSWORD)  # locked: the right password is refused too
    csrf = _as_ops(web)
    listing = web.get("/ops/users", headers=HTML).text
    row = re.search(r'<tr class="user" data-username="linxiao">.*?</tr>', listing, re.S).group(0)
    # locked until 15 minutes after "now" (10:00 Beijing time), shown in Beijing time
    assert "已锁定至 2026-09-21 10:15" in row
    detail = web.get("/ops/users/linxiao", headers=HTML).text
    assert 'id="unlock"' in detail
    unlocked = web.post("/ops/users/linxiao/unlock", data={"csrf_token": csrf}, headers=HTML)
    assert unlocked.status_code == 200 and "已解除锁定" in unlocked.text
    assert authenticate(hub, "linxiao", PASSWORD).username == "linxiao"
    [entry] = _audit(hub, "user_unlocked")
    assert entry.target == "linxiao" and entry.data["was_locked"] is True


def test_last_login_is_recorded_by_logins_not_by_approvals(web: TestClient, hub: Hub, clock):
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    issue_token(
        hub,
        Actor(name="cli:root", role=Role.system),
        "bank",
        role=Role.teller,
        desk="bank-xiahong",
        scopes=["applications:read"],
        approval=Approval("wangfang", PASSWORD),
        remote=False,
    )
    [row] = [a for a in accounts_page(hub, q="wangfang")[0]]
    assert row.last_login_at is None
    login(web, "wangfang")
    [row] = accounts_page(hub, q="wangfang")[0]
    assert row.last_login_at == clock().astimezone(UTC).replace(tzinfo=None)


def test_disable_needs_a_confirmation_and_ends_the_login(web: TestClient, hub: Hub):
    add_user(hub, "ops2", PASSWORD, display_name="运维小吴", role=Role.ops)
    csrf = _as_ops(web)
    unconfirmed = web.post("/ops/users/ops2/disable", data={"csrf_token": csrf}, headers=HTML)
    assert unconfirmed.status_code == 422 and authenticate(hub, "ops2", PASSWORD)
    myself = web.post(f"/ops/users/{OPS[0]}/disable", data={"csrf_token": csrf, "confirm": "yes"}, headers=HTML)
    assert myself.status_code == 422  # nobody locks themselves out by a slip
    done = web.post("/ops/users/ops2/disable", data={"csrf_token": csrf, "confirm": "yes"}, headers=HTML)
    assert done.status_code == 200 and "账号已停用" in done.text
    with pytest.raises(LoginRefused):
        authenticate(hub, "ops2", PASSWORD)
    assert [e.target for e in _audit(hub, "user_disabled")] == ["ops2"]
    # an ops login comes back without an approval (ops may make ops)
    assert web.post("/ops/users/ops2/enable", data={"csrf_token": csrf}, headers=HTML).status_code == 200
    assert authenticate(hub, "ops2", PASSWORD)


def test_reset_gives_a_temporary_password_only_with_approval_for_a_desk(web: TestClient, hub: Hub):
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    csrf = _as_ops(web)
    refused = web.post("/ops/users/wangfang/reset", data={"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 403 and authenticate(hub, "wangfang", PASSWORD)
    # the user herself is no second person
    herself = {"csrf_token": csrf, "approver": "wangfang", "approver_password": PASSWORD}
    assert web.post("/ops/users/wangfang/reset", data=herself, headers=HTML).status_code == 403
    approved = {"csrf_token": csrf, "approver": BOSS[0], "approver_password": PASSWORD}
    reset = web.post("/ops/users/wangfang/reset", data=approved, headers=HTML)
    assert reset.status_code == 200
    temporary = re.search(r'id="temp-password">([^<]+)<', reset.text).group(1)
    assert authenticate(hub, "wangfang", temporary).must_change_password
    [entry] = _audit(hub, "password_reset")
    assert entry.data == {"temporary": True, "approved_by": BOSS[0]}
    page = web.get("/ops/users/wangfang", headers=HTML).text
    history = page[page.index('id="history"') : page.index("</section>", page.index('id="history"'))]
    assert "重置密码" in history and f"<td>{BOSS[0]}</td>" in history and OPS[1] in history


def test_tokens_page_creates_a_desk_token_once_records_use_and_revokes(web: TestClient, hub: Hub, clock):
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    csrf = _as_ops(web)
    form = {
        "csrf_token": csrf,
        "name": "夏红网点系统",
        "role": "teller",
        "desk": "bank-xiahong",
        "scopes": ["applications:read"],
        "days": "",
    }
    assert web.post("/ops/tokens", data=form, headers=HTML).status_code == 403  # no approver
    bad_days = web.post("/ops/tokens", data=form | {"days": "三十"}, headers=HTML)
    assert bad_days.status_code == 422 and 'data-field="days"' in bad_days.text
    made = web.post("/ops/tokens", data=form | {"approver": "wangfang", "approver_password": PASSWORD}, headers=HTML)
    assert made.status_code == 200, made.text
    secret = re.search(r'id="token-secret">([^<]+)<', made.text).group(1)
    assert secret.startswith("tbh_")
    assert secret not in web.get("/ops/tokens", headers=HTML).text  # shown once
    with hub.sessions() as session:
        token = session.scalars(select(ApiToken)).one()
    auth = {"authorization": f"Bearer {secret}"}
    assert web.get("/api/v1/applications", headers=auth).status_code == 200
    assert web.get("/api/v1/ops/tokens").json()[0]["last_used_at"] == "2026-09-21T02:00:00Z"  # the API: UTC
    page = web.get("/ops/tokens", headers=HTML).text
    assert "2026-09-21 10:00" in re.search(r'<td class="last-used">([^<]*)</td>', page).group(1)
    # revoking needs the tick, then the API refuses the token at once
    assert web.post(f"/ops/tokens/{token.id}/revoke", data={"csrf_token": csrf}, headers=HTML).status_code == 422
    assert web.get("/api/v1/applications", headers=auth).status_code == 200
    revoked = web.post(f"/ops/tokens/{token.id}/revoke", data={"csrf_token": csrf, "confirm": "yes"}, headers=HTML)
    assert revoked.status_code == 200 and "令牌已吊销" in revoked.text
    assert web.get("/api/v1/applications", headers=auth).status_code == 401
    assert [e.action for e in audit.entries(hub) if e.action.startswith("token_")] == ["token_revoke", "token_create"]


def test_over_the_network_ops_mints_desk_system_tokens_only(hub: Hub):
    ops = Actor(name=OPS[1], role=Role.ops)
    for role, place in ((Role.officer, {"department": "ts-mzj"}), (Role.ops, {}), (Role.system, {})):
        with pytest.raises(HostOnly):
            issue_token(hub, ops, "x", role=role, scopes=["applications:read"], **place)
    with hub.sessions() as session:
        assert session.scalar(select(ApiToken.id)) is None


def test_last_use_is_written_at_most_once_a_minute(web: TestClient, hub: Hub, clock):
    add_user(hub, "wangfang", PASSWORD, display_name="王芳", role=Role.teller, desk="bank-xiahong")
    secret, info = issue_token(
        hub,
        Actor(name="cli:root", role=Role.system),
        "bank",
        role=Role.teller,
        desk="bank-xiahong",
        scopes=["applications:read"],
        approval=Approval("wangfang", PASSWORD),
        remote=False,
    )
    auth = {"authorization": f"Bearer {secret}"}

    def last_used():
        with hub.sessions() as session:
            return session.get(ApiToken, info.id).last_used_at

    web.get("/api/v1/applications", headers=auth)
    first = last_used()
    clock.advance(seconds=30)
    web.get("/api/v1/applications", headers=auth)
    assert last_used() == first
    clock.advance(seconds=61)
    web.get("/api/v1/applications", headers=auth)
    assert last_used() > first


POSTS = [
    ("/ops/users", {"username": "x1", "display_name": "某", "role": "ops"}),
    ("/ops/users/ops2/disable", {"confirm": "yes"}),
    ("/ops/users/ops2/enable", {}),
    ("/ops/users/ops2/reset", {}),
    ("/ops/users/ops2/unlock", {}),
    ("/ops/tokens", {"name": "t", "role": "teller", "desk": "bank-xiahong", "scopes": "applications:read"}),
    ("/ops/tokens/1/revoke", {"confirm": "yes"}),
    ("/account/password", {"current": PASSWORD, "new": "fresh-pass-2026", "again": "fresh-pass-2026"}),
]


def test_every_form_needs_the_sessions_csrf_token(web: TestClient, hub: Hub):
    add_user(hub, "ops2", PASSWORD, display_name="运维小吴", role=Role.ops)
    _as_ops(web)
    before = [(e.action, e.target) for e in audit.entries(hub)]
    for path, data in POSTS:
        for token in (None, "forged"):
            body = data | ({"csrf_token": token} if token else {})
            answer = web.post(path, data=body, headers=HTML)
            assert answer.status_code == 403 and "CSRF" in answer.text, path
    assert [(e.action, e.target) for e in audit.entries(hub)] == before  # nothing changed
    assert authenticate(hub, OPS[0], PASSWORD) and authenticate(hub, "ops2", PASSWORD)


def test_ops_pages_show_county_time_and_chinese_states(web: TestClient, hub: Hub):
    with recorded_run(hub, "deadlines") as run:
        run.summary = "0 warnings"
    with hub.transaction() as session:  # a run that started at 02:30 UTC: 10:30 in Beijing
        session.get(JobRun, 1).started_at = datetime(2026, 9, 21, 2, 30)
    _as_ops(web)
    page = web.get("/ops", headers=HTML).text
    jobs = page[page.index('id="jobs"') :]
    assert "时限巡检" in jobs and "2026-09-21 10:30:00" in jobs and "成功" in jobs
    assert "deadlines" not in jobs and ">OK<" not in jobs
    english = web.get("/ops?lang=en", headers=HTML).text
    assert "deadline sweep" in english[english.index('id="jobs"') :]
    english_pages = {"/ops/users": "Users and lockouts", "/ops/tokens": "API tokens", "/ops/users/ops1": "Reset"}
    for path, title in english_pages.items():
        answer = web.get(path + "?lang=en", headers=HTML)
        assert answer.status_code == 200 and title in answer.text and "Beijing time" in answer.text, path
    for path in ("/ops/users", "/ops/tokens", "/ops/partners", "/ops/partners/log"):
        answer = web.get(path + "?lang=zh", headers=HTML)
        assert answer.status_code == 200 and "北京时间" in answer.text, path


def test_only_ops_reaches_the_ops_pages(web: TestClient, hub: Hub):
    assert login(web, BOSS[0]).status_code == 303
    for path in ("/ops/users", "/ops/tokens", "/ops/users/ops1"):
        assert web.get(path, headers=HTML).status_code == 403, path


def test_bad_input_is_refused_with_the_field_named(hub: Hub):
    with pytest.raises(InvalidInput) as refused:
        issue_user(
            hub,
            Actor(name="cli:root", role=Role.system),
            username="a",
            display_name=" ",
            role=Role.officer,
            department="no-such",
        )
    assert {e.field for e in refused.value.errors} == {"username", "display_name", "department"}


def test_the_cli_applies_the_same_rules_and_shows_lockouts(hub: Hub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(accounts, "open_hub", lambda ctx: hub)
    add_user(hub, BOSS[0], PASSWORD, display_name=BOSS[1], role=Role.supervisor)
    teller = ["add", "wangfang", "--name", "王芳", "--role", "teller", "--desk", "bank-xiahong", "--temporary"]
    refused = CliRunner().invoke(accounts.users_app, teller)
    assert isinstance(refused.exception, ApprovalRefused)  # as the page's 403: the approver is named
    assert accounts_page(hub, q="wangfang")[1] == 0
    made = CliRunner().invoke(
        accounts.users_app, [*teller, "--approver", BOSS[0]], env={"HUB_APPROVER_PASSWORD": PASSWORD}
    )
    assert made.exit_code == 0, made.output
    temporary = re.search(r"first login\): (\S+)", made.output).group(1)
    assert authenticate(hub, "wangfang", temporary).must_change_password
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginRefused):
            authenticate(hub, "wangfang", "wrong-password-x")
    listed = CliRunner().invoke(accounts.users_app, ["list"])
    assert "locked until 2026-09-21 10:15" in listed.output and "(temporary password)" in listed.output
    assert CliRunner().invoke(accounts.users_app, ["unlock", "wangfang"]).output.strip() == "wangfang: unlocked"
    assert authenticate(hub, "wangfang", temporary)
    assert [e.actor.startswith("cli:") for e in _audit(hub, "user_unlocked")] == [True]


def test_users_page_pages_and_filters_in_the_database(hub: Hub):
    for name in ("c.ops", "a_ops", "b.ops", "axops"):
        add_user(hub, name, PASSWORD, display_name="运维", role=Role.ops)
    rows, total = accounts_page(hub, limit=2, offset=1)
    assert [a.person.username for a in rows] == ["axops", "b.ops"] and total == 4
    # LIKE's wildcards are taken as typed: "a_" is a_ops only, not axops
    assert [a.person.username for a in accounts_page(hub, q="a_")[0]] == ["a_ops"]
    assert accounts_page(hub, q="%")[1] == 0


def test_a_temporary_password_not_used_within_three_days_is_dead(hub: Hub, clock):
    _, temporary = issue_user(
        hub, Actor(name="cli:root", role=Role.system), username="ops2", display_name="运维小吴", role=Role.ops
    )
    clock.advance(days=2, hours=23)
    assert authenticate(hub, "ops2", temporary).must_change_password  # still good
    clock.advance(hours=1)
    with pytest.raises(LoginRefused):
        authenticate(hub, "ops2", temporary)  # ops resets it again
