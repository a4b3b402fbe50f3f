"""The offline kit validates with JSON Schemas generated from the catalogue (hub.catalog.jsonschema):
they must give the hub's own verdicts. For every item of the sample catalogue, many forms built
from pools of good and bad values (full-width digits, line breaks, bidi overrides, wrong check
digits, impossible dates, numbers as text, missing and unknown fields) are judged three ways —
`validate_form` on the raw form, `validate_form` on its normal shape, the schema (Python's
`jsonschema`) on the normal shape — and the three must agree, with enough of each verdict that the
comparison means something."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from hub.catalog import jsonschema as js
from hub.catalog import load_catalog
from hub.catalog.forms import validate_form
from hub.catalog.models import FormField
from hub.ids import id_check_digit, uscc_check_char

CONFIG = Path(__file__).resolve().parent.parent / "config"
FORMS_PER_ITEM = 250


def make_id(division: str, born: date, seq: str) -> str:
    first17 = f"{division}{born:%Y%m%d}{seq}"
    return first17 + id_check_digit(first17)


def make_uscc(body: str) -> str:
    return body + uscc_check_char(body)


def _id_with_x() -> str:
    for seq in range(1000):
        v = make_id("330329", date(1960, 1, 1), f"{seq:03d}")
        if v.endswith("X"):
            return v
    raise AssertionError("no ID number ends in X")


GOOD_ID = make_id("330329", date(1958, 3, 15), "002")
X_ID = _id_with_x()
GOOD_USCC = make_uscc("92330329MA2ABCDE0")
BAD_TEXT = ["带\n换行", "反转\u202e文字", "制表\t符", "空\x00字符", "非字符\ufdd0", "行\u2028分隔"]

POOLS: dict[str, list[object]] = {
    "string": [
        "王小明",
        "  李四 ",
        "",
        "   ",
        "a",
        "泰顺县罗阳镇新城路12号",
        "x" * 31,
        "y" * 250,
        "2026-09",
        "１２３",
        "622848001234567890",
        "14:30",
        "25:00",
        "12345678",
        "2026-13",
        *BAD_TEXT,
    ],
    "text": ["泰顺县罗阳镇新城路12号", "第一行\n第二行", " 前后空格 ", "", "z" * 201, "反转\u202e", "空\x00", "\t缩进"],
    "phone": [
        "13705770123",
        "１３７０５７７０１２３",
        "0577-67590033",
        "057767590033",
        "12345",
        "1370577012",
        "abc",
        " 13705770123 ",
    ],
    "id_number": [
        GOOD_ID,
        X_ID,
        X_ID.lower(),
        GOOD_ID[:-1] + ("0" if GOOD_ID[-1] != "0" else "1"),
        "99" + GOOD_ID[2:],
        make_id("330329", date(2099, 1, 1), "001"),
        make_id("330329", date(1888, 1, 1), "001"),
        GOOD_ID[:14] + "3002"[:0] + GOOD_ID[14:17] + "X",
        "33032919580230002" + "1",
        GOOD_ID[:17],
        "".join(chr(ord(c) + 0xFEE0) for c in GOOD_ID),
        GOOD_ID + "0",
    ],
    "uscc": [
        GOOD_USCC,
        GOOD_USCC.lower(),
        GOOD_USCC[:-1] + "Z",
        "92990329MA2ABCDE0" + "1",
        GOOD_USCC[:17],
        "I" + GOOD_USCC[1:],
    ],
    "division": ["330329", "330100", "990000", "33032", "３３０３２９", "33032a"],
    "integer": ["3", 3, "-1", 0, "1.5", 1, 10, 11, "abc", "+2", "１２", 100000],
    "decimal": ["1200.50", 1200.5, "abc", "-5", 0, "1e3", "NaN", "inf", "0.005", ".5", 3],
    "date": [
        "2026-09-21",
        "2026-02-30",
        "2026/09/21",
        "2024-02-29",
        "2023-02-29",
        "２０２６-０９-２１",
        "21-09-2026",
        "2026-13-01",
    ],
    "boolean": ["是", "否", "true", True, False, "maybe", "0"],
}


def _pool(f: FormField) -> list[object]:
    if f.type == "choice":
        return [*f.options, f" {f.options[0]} ", "其他不存在的选项", "", "反转\u202e"]
    if f.type in ("integer", "decimal"):  # the bounds, just inside and just outside, as numbers and text
        edges: list[object] = []
        for bound, step in ((f.min, 1), (f.max, -1)):
            if bound is not None:
                b = int(bound) if f.type == "integer" else bound
                edges += [b, b + step, b - step, str(b + step)]
        return edges + POOLS[f.type]
    return POOLS[f.type]


def _good(f: FormField) -> object:
    """A value the hub takes for the field alone (with every other field left out)."""
    for value in _pool(f):
        if not validate_form([f.model_copy(update={"required_if": None})], {f.name: value})[1]:
            return value
    raise AssertionError(f"no good value in the pool for {f.name}")


def _verdicts(fields: list[FormField], schema_check, form: dict[str, object]) -> tuple[bool, bool, bool]:
    normal = js.normalize(fields, form)
    return (not validate_form(fields, form)[1], not validate_form(fields, normal)[1], schema_check.is_valid(normal))


def _forms(fields: list[FormField], rng: random.Random) -> list[dict[str, object]]:
    base = {f.name: _good(f) for f in fields}
    forms = [dict(base)]
    for _ in range(FORMS_PER_ITEM):
        form = dict(base)
        for f in rng.sample(fields, k=min(len(fields), rng.choice([0, 1, 1, 2, 3]))):
            if rng.random() < 0.2:
                form.pop(f.name, None)
            else:
                form[f.name] = rng.choice(_pool(f))
        if rng.random() < 0.05:
            form["nickname"] = "小明"
        forms.append(form)
    return forms


def test_schema_gives_the_hubs_verdicts_for_every_sample_item() -> None:
    catalog = load_catalog(CONFIG)
    rng = random.Random(20)
    accepted = refused = 0
    for item in catalog.items.values():
        if not item.form:
            continue
        fields = list(item.form)
        check = js.validator(js.item_schema(item))
        for form in _forms(fields, rng):
            raw, normal, schema = _verdicts(fields, check, form)
            assert raw == normal == schema, (item.code, form, js.normalize(fields, form), (raw, normal, schema))
            accepted += schema
            refused += not schema
    assert accepted > 1000 and refused > 1000, (accepted, refused)  # both verdicts exercised


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (FormField(name="n", label="姓名", type="string", max_length=3), "王小明明"),
        (FormField(name="n", label="编号", type="string", pattern=r"[0-9]{4}-[0-9]{2}"), "2026-9"),
        (FormField(name="n", label="人数", type="integer", min=1, max=10), 11),
        (FormField(name="n", label="金额", type="decimal", min=0.01), 0),
        (FormField(name="n", label="身份证", type="id_number"), GOOD_ID[:-1] + "Y"),
    ],
)
def test_each_rule_refuses_on_both_sides(field: FormField, value: object) -> None:
    check = js.validator(js.form_schema([field]))
    assert validate_form([field], {"n": value})[1]
    assert not check.is_valid({"n": value})


def test_required_if_becomes_if_then() -> None:
    fields = [
        FormField(name="delivery_method", label="领取方式", type="choice", options=["窗口领取", "邮寄送达"]),
        FormField(
            name="mailing_address",
            label="邮寄地址",
            type="text",
            required=False,
            required_if={"delivery_method": "邮寄送达"},
        ),
    ]
    check = js.validator(js.form_schema(fields))
    assert check.is_valid({"delivery_method": "窗口领取"})
    assert not check.is_valid({"delivery_method": "邮寄送达"})
    assert check.is_valid({"delivery_method": "邮寄送达", "mailing_address": "泰顺县罗阳镇"})
