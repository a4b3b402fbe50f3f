"""Eligibility and consistency rules in the catalogue (issue 21): who may apply (age from the ID
number), fields required in a case (邮寄地址 when 邮寄送达), materials the department obtains
itself (免提交) never asked of the applicant. One implementation (`check_new`, the form check),
so the core, the CLI, the API and a batch refuse the same input with the same field and words."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import applications as svc
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.storage.tables import Application
from hub.tokens import create_token
from hub.users import add_user
from hub.web.app import create_app
from tests.conftest import JPEG, PDF, make_id
from tests.support.samples import AGE_WORDS, ELDERLY_CARD, POST_WORDS, TELLER, YOUNG, elderly_card

# the same two wrong inputs on every surface: (what changes, the field refused, the words)
CASES = [
    ("too young", {"id": YOUNG}, {}, "applicant.id", AGE_WORDS),
    ("post without an address", {}, {"delivery_method": "邮寄送达"}, "form.mailing_address", POST_WORDS),
]


def _count(hub) -> int:
    with hub.sessions() as s:
        return s.scalar(select(func.count()).select_from(Application))


@pytest.mark.parametrize(("case", "applicant", "form", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_the_core_refuses_by_the_catalogues_rules(hub, case, applicant, form, field, words):
    new = elderly_card()
    new = new.model_copy(
        update={
            "applicant": svc.Applicant(name="林阿婆", id=applicant.get("id", new.applicant.id)),
            "form": new.form | form,
        }
    )
    before = _count(hub)
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, new, TELLER)
    (error,) = [e for e in exc.value.errors if e.field == field]
    assert words in error.reason.zh
    assert _count(hub) == before  # nothing written


def test_the_rule_passes_what_it_should(hub):
    """60 today, and 邮寄送达 with an address: taken."""
    new = elderly_card()
    new = new.model_copy(update={"form": new.form | {"delivery_method": "邮寄送达", "mailing_address": "泰顺县罗阳镇"}})
    assert svc.create(hub, new, TELLER).form["mailing_address"] == "泰顺县罗阳镇"


@pytest.mark.parametrize(("case", "applicant", "form", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_the_api_refuses_the_same(hub, case, applicant, form, field, words):
    secret, _ = create_token(
        hub, "teller", role=TELLER.role, desk=TELLER.desk, scopes=["applications:write"], created_by="t"
    )
    data = {
        "subject": ELDERLY_CARD,
        "applicant": {"name": "林阿婆", "id": applicant.get("id", make_id(seq="131"))},
        "form": {"delivery_method": "窗口领取", "contact_phone": "13905770001"} | form,
        "materials": ["居民身份证", "近期免冠彩色证件照"],
        "checklist": ["identity", "materials", "signature", "informed"],
    }
    files = [("files", ("id.pdf", PDF, "application/pdf")), ("files", ("photo.jpg", JPEG, "image/jpeg"))]
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        answer = web.post(
            "/api/v1/applications",
            data={"data": json.dumps(data, ensure_ascii=False)},
            files=files,
            headers={"authorization": f"Bearer {secret}"},
        )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    matching = [e for e in errors if e["field"] == field]
    assert len(matching) == 1, errors
    assert words in matching[0]["zh"]


@pytest.mark.parametrize(("case", "applicant", "form", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_the_cli_refuses_the_same(tmp_path_factory, case, applicant, form, field, words):
    home = _cli_home(tmp_path_factory)
    (home / "id.pdf").write_bytes(PDF)
    fields = {"delivery_method": "窗口领取", "contact_phone": "13905770001"} | form
    args = ["apps", "create", "--item", ELDERLY_CARD, "--desk", TELLER.desk, "--name", "林阿婆"]
    args += ["--id", applicant.get("id", make_id(seq="132")), "--actor", "王芳", "--role", "teller"]
    args += [arg for k, v in fields.items() for arg in ("-f", f"{k}={v}")]
    args += ["-m", f"居民身份证={home / 'id.pdf'}"]
    result = _hub(home, *args)
    assert result.returncode != 0
    assert field in result.stderr and words in result.stderr, result.stderr


_HOMES: dict[str, Path] = {}


def _cli_home(factory) -> Path:
    if "home" not in _HOMES:
        home = factory.mktemp("rules") / "home"
        assert _hub(None, "init", str(home)).returncode == 0
        _HOMES["home"] = home
    return _HOMES["home"]


def _hub(home: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_DATABASE_URL")}
    cmd = [sys.executable, "-m", "hub", *(["--home", str(home)] if home else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)


@pytest.mark.parametrize(("case", "applicant", "form", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_the_web_form_refuses_the_same(hub, case, applicant, form, field, words):
    """The desk's own page (a logged-in teller's form post) says the same, beside the field."""
    add_user(hub, "wangfang", "xiahong-柜台-2026", display_name="王芳", role=Role.teller, desk=TELLER.desk)
    fields = {"delivery_method": "窗口领取", "contact_phone": "13905770001"} | form
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        page = web.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        login = {"username": "wangfang", "password": "xiahong-柜台-2026", "csrf_token": token}
        assert web.post("/login", data=login, follow_redirects=False).status_code == 303
        page = web.get(f"/intake/{ELDERLY_CARD}", headers={"accept": "text/html"})
        assert words not in html.unescape(page.text)  # so the answer's words are its error's
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        data = {
            "csrf_token": token,
            "applicant_name": "林阿婆",
            "applicant_id": applicant.get("id", make_id(seq="133")),
            "checklist": ["identity", "materials", "signature", "informed"],
            "source_ref": f"web:rules-{case}",
        } | {f"f_{k}": v for k, v in fields.items()}
        files = [("file_0", ("id.pdf", PDF, "application/pdf")), ("file_1", ("photo.jpg", JPEG, "image/jpeg"))]
        before = _count(hub)
        answer = web.post(f"/intake/{ELDERLY_CARD}", data=data, files=files, headers={"accept": "text/html"})
    assert answer.status_code == 422, answer.text[:500]
    assert words in html.unescape(answer.text)
    assert _count(hub) == before
