"""Residents online (网办) in the core, on SQLite and PostgreSQL: a resident signed in through an
identity provider acts as `Resident.actor` (role applicant, bound to the verified ID number) — they
receive applications for themselves only, at the online desk, see their own and nobody else's
(another's number is "not found", as a number nobody holds), attach materials and rate; the online
desk's staff see what came in online. The catalogue's rules hold the same as at a window."""

from __future__ import annotations

from datetime import date

import pytest

from hub import applications as svc
from hub import ratings
from hub.errors import Forbidden, InvalidInput, NotFound
from hub.lifecycle import Role
from hub.web.resident_pages import online_desk
from hub.web.resident_session import open_resident_session, resident_of
from tests.conftest import JPEG, make_id
from tests.support.samples import HZ_CLERK, fund_rent

LIN = ("林阿婆", make_id("330329", date(1950, 3, 15), "021"))
CHEN = ("陈志强", make_id("330329", date(1990, 7, 1), "013"))
ONLINE_STAFF = svc.Actor(name="网办受理员周敏", role=Role.clerk, desk="online-zlb")


def resident(hub, who: tuple[str, str]):
    token = open_resident_session(hub, provider="zlb", subject=f"zlb-{who[1][-4:]}", id_number=who[1], name=who[0])
    found = resident_of(hub, token)
    assert found is not None
    return found


def online_card(who: tuple[str, str], **form) -> svc.NewApplication:
    return svc.NewApplication(
        subject="GG00501000",
        desk="online-zlb",
        applicant=svc.Applicant(name=who[0], id=who[1]),
        form={"delivery_method": "窗口领取", "contact_phone": "13705770101", **form},
        materials=[svc.MaterialIn(name="近期免冠彩色证件照", filename="photo.jpg", content=JPEG)],
        source_ref="online:test-1",
    )


def test_the_sample_catalogue_has_one_online_desk(hub):
    assert online_desk(hub) == "online-zlb"
    assert hub.catalog.desks["online-zlb"].name == "泰顺县网上办事大厅"


@pytest.mark.usefixtures("backend")
def test_residents_see_only_their_own(hub):
    lin, chen = resident(hub, LIN), resident(hub, CHEN)
    mine, made = svc.receive(hub, online_card(LIN), lin.actor)
    assert made and mine.desk_code == "online-zlb" and mine.state == "received"
    again, made = svc.receive(hub, online_card(LIN), lin.actor)  # a double tap: the same application
    assert not made and again.number == mine.number
    theirs = svc.create(
        hub, fund_rent().model_copy(update={"applicant": svc.Applicant(name=CHEN[0], id=CHEN[1])}), HZ_CLERK
    )

    with hub.sessions() as session:
        assert [a.number for a in svc.list_applications(session, lin.actor)] == [mine.number]
        assert [a.number for a in svc.list_applications(session, chen.actor)] == [theirs.number]
        staff = {a.number for a in svc.list_applications(session, ONLINE_STAFF)}
    assert staff == {mine.number}  # the online desk's list: what came in online, and only that
    with pytest.raises(NotFound) as probed:
        svc.read(hub, theirs.number, lin.actor)
    with pytest.raises(NotFound) as nobody:
        svc.read(hub, theirs.number[:-5] + "99999", lin.actor)
    assert str(probed.value).replace(theirs.number, "N") == str(nobody.value).replace(theirs.number[:-5] + "99999", "N")
    with pytest.raises(NotFound):  # attaching to another's, rating another's: the same not found
        svc.attach(
            hub, theirs.number, [svc.MaterialIn(name="居民身份证", filename="a.pdf", content=b"%PDF-1.4")], lin.actor
        )
    with pytest.raises(NotFound):
        ratings.rate(hub, theirs.number, 5, None, actor=lin.actor)


@pytest.mark.usefixtures("backend")
def test_a_resident_applies_for_themselves_only_and_by_the_catalogues_rules(hub):
    lin, chen = resident(hub, LIN), resident(hub, CHEN)
    with pytest.raises(Forbidden):
        svc.receive(hub, online_card(LIN), chen.actor)  # 陈志强 applying in 林阿婆's name
    with pytest.raises(InvalidInput) as young:
        svc.receive(hub, online_card(CHEN), chen.actor)  # the card is for those 60 and over
    assert "60" in str(young.value)
    with pytest.raises(InvalidInput) as address:
        svc.receive(hub, online_card(LIN, delivery_method="邮寄送达"), lin.actor)
    assert any(e.field == "form.mailing_address" for e in address.value.errors)
    with hub.sessions() as session:
        assert svc.list_applications(session, lin.actor) == []  # bad input changed nothing
    app, _ = svc.receive(hub, online_card(LIN), lin.actor)
    svc.attach(
        hub, app.number, [svc.MaterialIn(name="居民身份证", filename="id.pdf", content=b"%PDF-1.4\n%%EOF\n")], lin.actor
    )
    assert {m.name for m in svc.read(hub, app.number, lin.actor).materials} == {"近期免冠彩色证件照", "居民身份证"}


def test_the_demo_signs_in_through_the_sandbox_provider_and_applies_online(home, db_url, clock, tmp_path):
    from hub.context import Hub
    from hub.demo_online import run
    from plugins.sandbox.oidc_provider import SandboxIdentityProvider
    from tests.support.oidc_plugin import oidc_entry_point

    idp = SandboxIdentityProvider().start()
    settings = home / "hub.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("http://127.0.0.1:8707", idp.issuer), encoding="utf-8"
    )
    said: list[str] = []
    try:
        with oidc_entry_point(tmp_path / "site"):
            hub = Hub.open(home, database_url=db_url, clock=clock)
            try:
                number = run(hub, said.append)
                assert number is not None, said
                app = svc.read(hub, number, ONLINE_STAFF)
                assert app.applicant_name == "林阿婆" and app.desk_code == "online-zlb"
            finally:
                hub.close()
    finally:
        idp.stop()
    assert idp.logins == ["linapo"] and idp.token_requests == 1
    assert not any(LIN[1] in line for line in said)  # the demo's lines mask the ID


def test_the_sample_home_configures_the_sandbox_provider(home, db_url, clock, tmp_path):
    from hub import identity
    from hub.context import Hub
    from plugins.oidc.provider import OidcProvider
    from tests.support.oidc_plugin import oidc_entry_point

    with oidc_entry_point(tmp_path / "site"):
        hub = Hub.open(home, database_url=db_url, clock=clock)
        try:
            [zlb] = identity.configured(hub).values()
        finally:
            hub.close()
    assert zlb.name == "zlb" and zlb.label == "浙里办（沙箱）" and zlb.problem is None
    assert isinstance(zlb.provider, OidcProvider) and zlb.provider.config.issuer == "http://127.0.0.1:8707"
    assert zlb.provider.config.claims.id_number == ["id_number", "idcard", "cert_no"]
