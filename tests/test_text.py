"""One rule for the characters the hub takes (hub.text): controls, bidi overrides, lone
surrogates and noncharacters are refused everywhere; line breaks and tabs in single-line
fields. Refused on every surface with the field named, before an application number is taken
(on PostgreSQL too, where a NUL used to be a 500 after the number was burned)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import applications as svc
from hub import text
from hub.catalog.forms import validate_form
from hub.catalog.models import FormField
from hub.errors import InvalidInput
from hub.storage.tables import Application, Event
from hub.tokens import create_token
from hub.web.app import create_app
from tests.conftest import JPEG, PDF, make_id
from tests.support.samples import TELLER, elderly_card, officer

NUL, BEL, RLO = "\x00", "\x07", "\u202e"
BAD_SINGLE_LINE = [NUL, BEL, RLO, "\r\n", "\n", "\t", "\x85", "\u2066", "\ufdd0", "\U0010ffff", "\ud800"]


@pytest.mark.parametrize("ch", BAD_SINGLE_LINE)
def test_the_rule_single_line(ch):
    reason = text.problem(f"林{ch}阿婆")
    assert reason is not None and f"U+{ord(ch[0]):04X}" in reason.en and "第2个字符" in reason.zh


def test_the_rule_multi_line_keeps_line_breaks_and_tabs_only():
    assert text.problem("第一行\r\n第二行\t缩进", multiline=True) is None
    for ch in (NUL, BEL, RLO, "\x1b", "\x7f", "\x9b", "\u2069", "\ufffe"):
        assert text.problem(f"地址{ch}", multiline=True) is not None, repr(ch)
    assert text.problem("杭州市拱墅区 88号 (A-1) «ok» 😀 é") is None  # ordinary text, emoji, accents


def _state(hub) -> tuple[int, int]:
    with hub.sessions() as s:
        return s.scalar(select(func.count()).select_from(Application)), s.scalar(
            select(func.count()).select_from(Event)
        )


def _agent(name: str) -> svc.Agent:
    return svc.Agent(name=name, id_number=make_id(seq="077"))


CASES = [
    ("applicant.name", lambda ch: {"applicant": svc.Applicant(name=f"林{ch}阿婆", id=make_id())}),
    ("agent.name", lambda ch: {"agent": _agent(f"张{ch}三")}),
    ("source_ref", lambda ch: {"source_ref": f"ref{ch}1"}),
    ("form.emergency_contact_name", lambda ch: {"form": _form(emergency_contact_name=f"李{ch}四")}),
    (
        "materials[0].filename",
        lambda ch: {"materials": [svc.MaterialIn(name="居民身份证", filename=f"id{ch}.pdf", content=PDF)]},
    ),
]


def _form(**extra: str) -> dict[str, str]:
    return {"delivery_method": "窗口领取", "contact_phone": "13905770001"} | extra


@pytest.mark.parametrize("ch", [NUL, BEL, RLO, "\r\n"], ids=["NUL", "BEL", "RLO", "CRLF"])
@pytest.mark.parametrize(("field", "change"), CASES, ids=[c[0] for c in CASES])
def test_core_refuses_with_the_field_named_and_burns_no_number(hub, field, change, ch):
    before = _state(hub)
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, elderly_card().model_copy(update=change(ch)), TELLER)
    assert field in [e.field for e in exc.value.errors], exc.value.errors
    assert _state(hub) == before
    assert svc.create(hub, elderly_card(), TELLER).number.endswith("-00001")  # no number was taken


def test_multi_line_form_field_keeps_line_breaks_but_not_nul(hub):
    good = svc.create(
        hub, elderly_card().model_copy(update={"form": _form(mailing_address="泰顺县罗阳镇\n新城大道1号")}), TELLER
    )
    assert good.form["mailing_address"] == "泰顺县罗阳镇\n新城大道1号"
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, elderly_card().model_copy(update={"form": _form(mailing_address=f"泰顺县{NUL}罗阳镇")}), TELLER)
    assert [e.field for e in exc.value.errors] == ["form.mailing_address"]
    assert "邮寄地址" in exc.value.errors[0].reason.zh


def test_form_rule_is_the_same_for_every_text_type():
    form = [
        FormField(name="a", label="单行", type="string"),
        FormField(name="b", label="多行", type="text"),
        FormField(name="c", label="选项", type="choice", options=[f"x{RLO}"]),
    ]
    _, errors = validate_form(form, {"a": "1\n2", "b": "1\n2", "c": f"x{RLO}"})
    assert [e.field for e in errors] == ["form.a", "form.c"]


def test_first_review_note_and_transition_reason(hub):
    review = svc.FirstReview(checklist=["identity"], note=f"已核对{BEL}")
    before = _state(hub)
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, elderly_card(), TELLER, first_review=review)
    assert [e.field for e in exc.value.errors] == ["note"]
    assert _state(hub) == before
    app = svc.create(hub, elderly_card(), TELLER)
    with pytest.raises(InvalidInput) as exc:
        svc.transition(hub, app.number, "reject", officer("ts-mzj"), reason=f"材料不全{NUL}")
    assert [e.field for e in exc.value.errors] == ["reason"]
    assert svc.read(hub, app.number, TELLER).state == "received"
    app = svc.transition(hub, app.number, "reject", officer("ts-mzj"), reason="材料不全\n请补正")  # multi-line
    assert app.state == "rejected"


# ---------------------------------------------------------------- the API


@pytest.fixture
def web(hub):
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def teller(hub) -> dict[str, str]:
    secret, _ = create_token(
        hub,
        "teller",
        role=TELLER.role,
        desk=TELLER.desk,
        scopes=["applications:read", "applications:write"],
        created_by="test",
    )
    return {"authorization": f"Bearer {secret}"}


def _submit(web, headers, **changes):
    data = {
        "subject": "GG00501000",
        "applicant": {"name": "林阿婆", "id": make_id(seq="101")},
        "form": _form(),
        "materials": ["居民身份证", "近期免冠彩色证件照"],
        "checklist": ["identity", "materials", "signature", "informed"],
    }
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            data[outer] = dict(data.get(outer) or {}) | {inner: value}
        else:
            data[key] = value
    files = [("files", ("id.pdf", PDF, "application/pdf")), ("files", ("photo.jpg", JPEG, "image/jpeg"))]
    return web.post(
        "/api/v1/applications", data={"data": json.dumps(data, ensure_ascii=False)}, files=files, headers=headers
    )


API_CASES = [
    ("applicant.name", {"applicant.name": f"林{NUL}阿婆"}),
    ("applicant.name", {"applicant.name": f"林{RLO}阿婆"}),
    ("agent.name", {"agent": {"name": f"张{BEL}三", "id_number": make_id(seq="077")}}),
    ("source_ref", {"source_ref": f"ref{NUL}"}),
    ("note", {"note": f"已核对{NUL}"}),
    ("form.mailing_address", {"form.mailing_address": f"泰顺县{NUL}"}),
    ("form.emergency_contact_name", {"form.emergency_contact_name": "李\r\n四"}),
]


@pytest.mark.parametrize(("field", "changes"), API_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(API_CASES)])
def test_api_answers_422_naming_the_field(web, teller, hub, field, changes):
    before = _state(hub)
    response = _submit(web, teller, **changes)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert _state(hub) == before
    ok = _submit(web, teller)
    assert ok.status_code == 201 and ok.json()["number"].endswith("-00001"), ok.text


def test_people_tokens_ratings_and_signing_take_the_same_rule(hub):
    """The rule outside applications: a user's name, a token's name, a resident's rating
    comment, a follow-up's response and a signing abort reason."""
    from hub import ratings, signing
    from hub.lifecycle import Role
    from hub.users import add_user

    with pytest.raises(InvalidInput) as exc:
        add_user(hub, "wangfang", "a-long-passphrase-1", display_name=f"王{RLO}芳", role=Role.ops)
    assert [e.field for e in exc.value.errors] == ["display_name"]
    with pytest.raises(InvalidInput) as exc:
        create_token(hub, f"bank{BEL}", role=Role.ops, scopes=["ops"], created_by="t")
    assert [e.field for e in exc.value.errors] == ["name"]
    with pytest.raises(InvalidInput) as exc:
        ratings.rate(hub, "no-such-number", 1, f"太慢{NUL}")  # refused before the application is looked up
    assert [e.field for e in exc.value.errors] == ["comment"]
    with pytest.raises(InvalidInput) as exc:
        ratings.close_follow_up(hub, 1, f"已整改{BEL}", svc.SYSTEM)
    assert [e.field for e in exc.value.errors] == ["response"]
    with pytest.raises(InvalidInput) as exc:
        signing.abort(hub, "no-such-session", svc.SYSTEM, f"网络中断{NUL}")
    assert [e.field for e in exc.value.errors] == ["reason"]


# ---------------------------------------------------------------- one normalisation of input

FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


def test_full_width_codes_are_folded_the_same_in_the_core_the_api_and_a_batch_record(hub, web, teller):
    """An ID number and a phone typed with 全角 digits on a Chinese keyboard: the core (what the
    CLI and a batch build) and the API take them alike, stored as ASCII — one rule, in the core."""
    ident = make_id(seq="103")
    wide = ident.translate(FULL_WIDTH)
    assert wide != ident
    app = svc.create(
        hub,
        elderly_card().model_copy(
            update={
                "applicant": svc.Applicant(name="林阿婆", id=wide),
                "form": _form(contact_phone="１３９０５７７０００１"),
            }
        ),
        TELLER,
    )
    assert app.applicant_id == ident and app.form["contact_phone"] == "13905770001"
    answer = _submit(web, teller, **{"applicant.id": make_id(seq="104").translate(FULL_WIDTH)})
    assert answer.status_code == 201, answer.text
    stored = svc.read(hub, answer.json()["number"], TELLER)
    assert stored.applicant_id == make_id(seq="104")  # folded to ASCII, as the core does
    # a sender's retry with the same number typed either way is the same application
    again = svc.create(
        hub,
        elderly_card(source_ref="r-105").model_copy(update={"applicant": svc.Applicant(name="林阿婆", id=ident)}),
        TELLER,
    )
    retry = svc.create(
        hub,
        elderly_card(source_ref="r-105").model_copy(update={"applicant": svc.Applicant(name="林阿婆", id=wide)}),
        TELLER,
    )
    assert retry.number == again.number


def test_free_text_keeps_full_width_punctuation_as_written(hub):
    """Reasons, notes and names are not folded: “周岁，不符合” must not become “周岁,不符合”."""
    applicant = svc.Applicant(name="林阿婆", id=make_id(seq="105"))
    number = svc.create(hub, elderly_card().model_copy(update={"applicant": applicant}), TELLER).number
    svc.transition(hub, number, "pre_review", TELLER)
    reason = "申请人未满60周岁，不符合办理条件（见《老年人权益保障法》）"
    app = svc.transition(hub, number, "reject", officer("ts-mzj"), reason=reason)
    assert app.events[-1].reason == reason


@pytest.mark.parametrize(
    "phone",
    ["13٧٠٥٧٧٠١٢٣", "१३७०५७७०१२३", "0577-６７５８１２３４\u0663"],  # Arabic-Indic, Devanagari, a stray one
)
def test_a_phone_number_is_ascii_digits_on_every_surface(phone: str) -> None:
    """Python's \\d takes any script's digits: the phone rule (forms, bookings, the kit's schema)
    takes 0-9 only, so a number no telephone system dials is refused where it is typed."""
    import jsonschema

    from hub.appointments.bookings import PHONE as BOOKING_PHONE
    from hub.catalog.forms import PHONE
    from hub.catalog.jsonschema import PHONE_PATTERN

    field = FormField(name="tel", label="联系电话", type="phone")
    _, errors = validate_form([field], {"tel": phone})
    assert [e.field for e in errors] == ["form.tel"]
    assert BOOKING_PHONE is PHONE and not PHONE.match(phone)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(phone, {"type": "string", "pattern": PHONE_PATTERN})
    assert validate_form([field], {"tel": "13705770123"})[1] == []
