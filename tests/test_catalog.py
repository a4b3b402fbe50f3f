"""The shipped catalogue is complete and valid; a broken one is reported with file and line, every
error at once, by `hub catalog check`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.catalog.forms import validate_form
from hub.catalog.loader import check_catalog, load_catalog
from hub.home import sample_config_dir

CONFIG = sample_config_dir()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(CONFIG)


def test_shipped_catalogue_has_no_problems_and_covers_the_seeds(catalog):
    _, problems = check_catalog(CONFIG)
    assert problems == []
    assert len(catalog.items) >= 12 and len(catalog.bundles) >= 2
    shorts = {catalog.departments[i.department].short_name for i in catalog.items.values()}
    assert {"公安", "人社", "医保", "公积金", "民政", "市场监管", "不动产"} <= shorts
    titles = " ".join(i.title for i in catalog.items.values())
    for needle in ("老年人优待证", "户口", "参保", "异地就医备案", "公积金提取"):
        assert needle in titles, needle
    channels = {d.channel.value for d in catalog.desks.values()}
    assert {"bank", "enclave"} <= channels
    assert any(i.instant for i in catalog.items.values())
    assert any(m.deferrable for i in catalog.items.values() for m in i.materials)
    enclaves = [d for d in catalog.desks.values() if d.channel == "enclave"]
    assert all(d.division != d.acts_for for d in enclaves)  # they sit elsewhere and act for the county


def test_bundle_merged_form_requires_a_field_any_member_requires(catalog):
    bundle = catalog.bundles["YJS-XSECS"]
    fields = {f.name: f for f in catalog.form_of(bundle)}
    assert fields["contact_phone"].required
    _, errors = validate_form(list(fields.values()), {"child_name": "小明", "child_birth_date": "2026-02-30"})
    named = {e.field for e in errors}
    assert {"form.child_birth_date", "form.contact_phone", "form.child_gender"} <= named


def test_form_values_are_coerced_and_checked():
    cat = load_catalog(CONFIG)
    form = cat.form_of(cat.items["GG00401001"])
    base = {
        "rental_address": "杭州",
        "monthly_rent": "2500.50",
        "lease_start_date": "2026-01-01",
        "lease_end_date": "2026-12-31",
        "withdrawal_amount": "100",
        "marital_status": "未婚",
        "payee_bank_name": "农商银行",
        "payee_bank_account": "6230910199001234567",
        "contact_phone": "0577-67581234",
    }
    clean, errors = validate_form(form, base)
    assert errors == [] and clean["monthly_rent"] == "2500.50"
    _, errors = validate_form(
        form, base | {"monthly_rent": "很多", "withdrawal_amount": "0", "lease_end_date": "2026/12/31"}
    )
    assert {e.field for e in errors} == {"form.monthly_rent", "form.withdrawal_amount", "form.lease_end_date"}


BROKEN_EDITS = {
    # file: [(old, new)] — each introduces one error on a known line
    "catalog/minzheng.yaml": [("department: ts-mzj", "department: ts-nobody")],
    "catalog/yibao.yaml": [("promised_days: 0", "promised_days: zero")],
    "catalog/bundles.yaml": [("GG00303000, GG00401002]", "GG00303000, GG99999002]")],
}


def _broken_copy(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "config"
    shutil.copytree(CONFIG, root)
    lines: dict[str, int] = {}
    for rel, edits in BROKEN_EDITS.items():
        path = root / rel
        text = path.read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, (rel, old)
            lines[rel] = text[: text.index(old)].count("\n") + 1
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
    # a YAML syntax error and a duplicated item code in a new file
    (root / "catalog" / "zz-extra.yaml").write_text(
        "items:\n  - code: GG00501000\n    name: 重复\n    category: 公共服务\n    legal_basis: [x]\n    department: ts-mzj\n"
        "    connection: minzheng-rest\n    channels: [hall]\n    promised_days: 1\n    statutory_days: 1\n"
        "    fee: {charged: false}\n    process: [{step: 受理, by: 窗口}]\n",
        encoding="utf-8",
    )
    (root / "desks.yaml").write_text(
        (root / "desks.yaml").read_text(encoding="utf-8") + "  - code: [unclosed\n", encoding="utf-8"
    )
    return root, lines


def test_broken_catalogue_reports_every_error_with_file_and_line(tmp_path):
    root, lines = _broken_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "hub", "catalog", "check", "--dir", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stderr
    assert (
        f"config/catalog/minzheng.yaml:{lines['catalog/minzheng.yaml']}: 未知部门 (unknown department): ts-nobody"
        in out
    )
    assert f"config/catalog/yibao.yaml:{lines['catalog/yibao.yaml']}: " in out and "promised_days" in out
    assert (
        f"config/catalog/bundles.yaml:{lines['catalog/bundles.yaml']}: 一件事引用了未知事项 (unknown item): GG99999002"
        in out
    )
    assert "config/catalog/zz-extra.yaml:2: 事项编码重复 (duplicate item code) GG00501000" in out
    assert "config/desks.yaml:" in out and "YAML" in out
    assert "5 error(s)" in out


def test_shipped_catalogue_checks_clean_from_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "hub", "catalog", "check", "--dir", str(CONFIG)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")
    # 2027 has no official notice in the package or config: a warning, not an error
    assert "warning:" in result.stderr and "2027" in result.stderr


def test_merged_materials_keep_the_strictest_requirement(catalog):
    bundle = catalog.bundles["YJS-TXLX"]
    first, second = (catalog.items[c] for c in bundle.items[:2])
    optional = first.materials[0].model_copy(update={"name": "共同材料", "required": False, "deferrable": False})
    deferrable = first.materials[0].model_copy(update={"name": "共同材料", "required": True, "deferrable": True})
    strict = deferrable.model_copy(update={"deferrable": False})
    items = dict(catalog.items)
    items[first.code] = first.model_copy(update={"materials": [optional]})
    items[second.code] = second.model_copy(update={"materials": [deferrable]})
    merged = {m.name: m for m in catalog.model_copy(update={"items": items}).materials_of(bundle)}["共同材料"]
    assert merged.required and merged.deferrable  # the optional copy neither drops nor blocks it
    items[first.code] = first.model_copy(update={"materials": [strict]})
    merged = {m.name: m for m in catalog.model_copy(update={"items": items}).materials_of(bundle)}["共同材料"]
    assert merged.required and not merged.deferrable
