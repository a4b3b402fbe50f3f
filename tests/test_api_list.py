"""The REST list's filters work, in the database and within the caller's scope — desk, number,
applicant name, whole ID number, the search box — and `hub apps list` answers the same; an
unknown query parameter is refused naming it, a partial ID number is refused, never matched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub import applications as svc
from hub.applications.search import ListFilter
from hub.cli import app as cli
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.tokens import create_token
from hub.web.app import create_app
from tests.conftest import make_id
from tests.support.samples import ELDER_ID, HZ_CLERK, TELLER, elderly_card, fund_rent

OTHER_ELDER = make_id("330329", date(1955, 6, 1), "047")
TELLER_BZ = svc.Actor(name="柜员", role=Role.teller, desk="bank-baizhang")
WIDE = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")  # as typed on a Chinese keyboard


@pytest.fixture
def cases(hub: Hub) -> dict[str, str]:
    def elder(actor, ref, name="林阿婆", id_=ELDER_ID):
        new = elderly_card(desk=actor.desk, source_ref=ref).model_copy(
            update={"applicant": svc.Applicant(name=name, id=id_)}
        )
        return svc.create(hub, new, actor).number

    return {
        "lin": elder(TELLER, "1"),
        "zhou": elder(TELLER, "2", "周老伯", OTHER_ELDER),
        "lin_bz": elder(TELLER_BZ, "3"),
        "chen": svc.create(hub, fund_rent(), HZ_CLERK).number,
    }


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def tokens(hub: Hub) -> dict[str, dict[str, str]]:
    out = {}
    for who, role, desk, department in (
        ("supervisor", Role.supervisor, None, None),
        ("teller", Role.teller, "bank-xiahong", None),
        ("officer", Role.officer, None, "ts-gjj"),
    ):
        secret, _ = create_token(
            hub, who, role=role, desk=desk, department=department, scopes=["applications:read"], created_by="t"
        )
        out[who] = {"authorization": f"Bearer {secret}"}
    return out


def test_each_filter_works_within_the_callers_scope(web, tokens, cases):
    def numbers(who: str, **params) -> set[str]:
        r = web.get("/api/v1/applications", params=params, headers=tokens[who])
        assert r.status_code == 200, r.text
        return {a["number"] for a in r.json()}

    lin, zhou, lin_bz, chen = cases["lin"], cases["zhou"], cases["lin_bz"], cases["chen"]
    assert numbers("supervisor") == {lin, zhou, lin_bz, chen}
    assert numbers("supervisor", desk="bank-xiahong") == {lin, zhou}
    assert numbers("supervisor", number=lin_bz) == {lin_bz}
    assert numbers("supervisor", applicant_name="林阿婆") == {lin, lin_bz}
    assert numbers("supervisor", applicant_name="林阿婆", desk="bank-xiahong") == {lin}
    assert numbers("supervisor", applicant_id=ELDER_ID) == {lin, lin_bz}
    assert numbers("supervisor", applicant_id=ELDER_ID.translate(WIDE)) == {lin, lin_bz}  # 全角 folded
    assert numbers("supervisor", q=zhou) == {zhou}
    assert numbers("supervisor", q="周老伯") == {zhou}
    assert numbers("supervisor", q=OTHER_ELDER.translate(WIDE)) == {zhou}
    assert numbers("supervisor", q=ELDER_ID[:14]) == set()  # never a part of an ID number
    assert numbers("supervisor", state="received", desk="enclave-hangzhou") == {chen}
    # scope stays: the teller sees its desk only, the 公积金 officer only its part
    assert numbers("teller", applicant_name="林阿婆") == {lin}
    assert numbers("teller", number=lin_bz) == set()
    assert numbers("teller", desk="bank-baizhang") == set()
    assert numbers("officer") == {chen} and numbers("officer", q="林阿婆") == set()
    assert len(web.get("/api/v1/applications", params={"limit": 1}, headers=tokens["supervisor"]).json()) == 1


def test_unknown_parameters_and_bad_values_are_refused_naming_them(web, tokens, cases):
    h = tokens["supervisor"]
    r = web.get("/api/v1/applications", params={"applicant": "林阿婆", "desk": "bank-xiahong"}, headers=h)
    assert r.status_code == 400 and [e["field"] for e in r.json()["errors"]] == ["applicant"]
    assert "applicant_name" in r.json()["errors"][0]["zh"]  # it says which are known
    r = web.get("/api/v1/applications", params={"applicant_id": ELDER_ID[:14]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "applicant_id"
    assert "完整" in r.json()["errors"][0]["zh"]
    r = web.get("/api/v1/applications", params={"state": "done"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "state"
    # the caller first: nobody logged in is 401 whatever the parameters
    assert web.get("/api/v1/applications", params={"nonsense": "1"}).status_code == 401


def test_the_openapi_document_lists_the_filters_and_the_400(web):
    operation = web.get("/openapi.json").json()["paths"]["/api/v1/applications"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    # every shared list filter (the web list's too) is a REST parameter, and nothing else but the limit
    assert names == set(ListFilter.model_fields) | {"limit"}
    assert "400" in operation["responses"]


def test_hub_apps_list_answers_the_same(hub, cases):
    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False)}

    def listed(*args: str):
        return CliRunner().invoke(cli, ["--home", str(hub.settings.home), "apps", "list", "--json", *args], env=env)

    def numbers(*args: str) -> set[str]:
        done = listed(*args)
        assert done.exit_code == 0, done.output
        return {a["number"] for a in json.loads(done.stdout)}

    assert numbers("--q", "周老伯") == {cases["zhou"]}
    assert numbers("--id-number", ELDER_ID.translate(WIDE)) == {cases["lin"], cases["lin_bz"]}
    assert numbers("--name", "林阿婆", "--role", "teller", "--desk", "bank-xiahong") == {cases["lin"]}
    refused = listed("--id-number", ELDER_ID[:14])
    assert isinstance(refused.exception, InvalidInput)
    assert [e.field for e in refused.exception.errors] == ["applicant_id"]


def test_the_rest_list_takes_the_web_lists_filters_too(web, tokens, cases):
    """One rule for every surface (hub.applications.search): the web list's item, channel, origin
    and date filters work on the REST list too, and a bad value is named the same way."""

    def get(**params):
        return web.get("/api/v1/applications", params=params, headers=tokens["supervisor"])

    everything = {a["number"] for a in get().json()}
    assert {a["number"] for a in get(item="GG00401001").json()} == {cases["chen"]}
    assert {a["number"] for a in get(channel="enclave").json()} == {cases["chen"]}
    assert {a["number"] for a in get(origin="local").json()} == everything
    assert get(origin="fuding").json() == []  # no partner hub's cases here
    assert {a["number"] for a in get(received_from="2026-01-01", received_to="2099-12-31").json()} == everything
    assert get(received_to="2000-01-01").json() == []
    for field, value in (("received_from", "2026-13-01"), ("channel", "pigeon")):
        bad = get(**{field: value})
        assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == [field], bad.text
