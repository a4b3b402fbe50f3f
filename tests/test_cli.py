"""The `hub` command as ops and scripts use it: a real process, real exit codes, a fresh home."""

import json
import os
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.support.samples import ELDER_ID, ELDERLY_CARD


def hub(*args: str, home: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_DATABASE_URL")}
    cmd = [sys.executable, "-m", "hub", *(["--home", str(home)] if home else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("cli") / "home"
    out = hub("init", str(target)).stdout
    assert "hub home written" in out and (target / "hub.db").is_file()
    assert hub("db", "status", home=target).stdout.startswith("current: ")
    return target


def test_init_refuses_to_overwrite_without_force(home):
    result = hub("init", str(home), check=False)
    assert result.returncode == 1 and "--force" in result.stderr


def test_create_transition_show_json(home, tmp_path):
    scan = tmp_path / "身份证.pdf"
    scan.write_bytes(b"%PDF-1.4\n%%EOF\n")
    created = hub(
        "apps",
        "create",
        "--item",
        ELDERLY_CARD,
        "--desk",
        "bank-xiahong",
        "--name",
        "林阿婆",
        "--id",
        ELDER_ID,
        "-f",
        "delivery_method=窗口领取",
        "-f",
        "contact_phone=13905770001",
        "-m",
        f"居民身份证={scan}",
        "--actor",
        "王芳",
        "--role",
        "teller",
        "--json",
        home=home,
    )
    number = json.loads(created.stdout)["number"]
    hub("apps", "transition", number, "pre_review", "--role", "teller", "--desk", "bank-xiahong", home=home)
    hub(
        "apps",
        "transition",
        number,
        "accept",
        "--role",
        "officer",
        "--department",
        "ts-mzj",
        "--commit-due",
        str(date.today() + timedelta(days=14)),  # within the item's 容缺 horizon (tolerance_days)
        home=home,
    )  # the photo is owed under 容缺
    view = json.loads(hub("apps", "show", number, "--json", home=home).stdout)
    assert view["state"] == "accepted"
    assert view["due_date"] == view["accepted_on"]  # an instant item is due the day it is accepted
    assert [e["action"] for e in view["events"]] == ["create", "submit", "pre_review", "accept"]
    assert view["events"][0]["actor"] == "王芳" and view["chain"]["ok"]
    assert view["applicant"]["id"] == "3303**********" + ELDER_ID[-4:]
    revealed = hub(
        "apps", "show", number, "--json", "--reveal-id", "--role", "officer", "--department", "ts-mzj", home=home
    )
    assert json.loads(revealed.stdout)["applicant"]["id"] == ELDER_ID
    refused = hub("apps", "show", number, "--reveal-id", home=home, check=False)  # default role ops: figures, not IDs
    assert refused.returncode == 1 and "full ID" in refused.stderr
    assert view["materials"][0]["sha256"] and view["materials"][0]["media_type"] == "application/pdf"

    listed = hub("apps", "list", "--json", home=home).stdout
    assert ELDER_ID not in listed and number in listed
    other_desk = json.loads(
        hub("apps", "list", "--json", "--role", "teller", "--desk", "bank-baizhang", home=home).stdout
    )
    assert other_desk == []

    refused = hub("apps", "transition", number, "deliver", "--role", "system", home=home, check=False)
    assert refused.returncode == 1 and "cannot deliver from accepted" in refused.stderr


def test_bad_input_exits_2_naming_the_field(home):
    result = hub(
        "apps",
        "create",
        "--item",
        ELDERLY_CARD,
        "--desk",
        "bank-xiahong",
        "--name",
        "张三",
        "--id",
        ELDER_ID[:-1] + "0",
        "-f",
        "delivery_method=窗口领取",
        "-f",
        "contact_phone=123",
        "--role",
        "system",
        home=home,
        check=False,
    )
    assert result.returncode == 2
    assert "error: applicant.id:" in result.stderr and "error: form.contact_phone:" in result.stderr


def test_writes_need_an_explicit_role_and_long_values_are_refused(home):
    no_role = hub("apps", "transition", "330329-20260101-00001", "accept", home=home, check=False)
    assert no_role.returncode == 2 and "--role" in no_role.stderr
    number = json.loads(hub("apps", "list", "--json", home=home).stdout)[0]["number"]
    long_reason = hub(
        "apps",
        "transition",
        number,
        "request_supplement",
        "--role",
        "system",
        "--reason",
        "很" * 1001,
        home=home,
        check=False,
    )
    assert long_reason.returncode == 2 and "error: reason:" in long_reason.stderr


def test_verify_detects_a_tampered_event(home):
    assert hub("apps", "verify", home=home).returncode == 0
    with sqlite3.connect(home / "hub.db") as db:
        db.execute("UPDATE events SET reason = 'edited' WHERE seq = 2")
    result = hub("apps", "verify", home=home, check=False)
    assert result.returncode == 1 and "BROKEN event #2" in result.stderr


def test_calendar_add_workdays():
    assert hub("calendar", "add-workdays", "2026-02-13", "1").stdout.strip() == "2026-02-14"  # make-up Saturday
    explained = hub("calendar", "add-workdays", "2026-09-30", "1", "--explain")
    assert explained.stdout.strip() == "2026-10-08"
    assert "2026-10-01 国庆节 (package)" in explained.stderr and "2026-10-04 周末" not in explained.stderr
    future = hub("calendar", "add-workdays", "2027-02-04", "1")
    assert future.stdout.strip() == "2027-02-09" and "provisional" in future.stderr
    bad = hub("calendar", "add-workdays", "2027-02-30", "1", check=False)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_help_everywhere():
    for args in (["--help"], ["apps", "--help"], ["apps", "create", "--help"], ["catalog", "check", "--help"]):
        assert "Usage" in hub(*args).stdout


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["2099-12-31", "1"], "N"),
        (["2026-10-08", "100000"], "N"),
        (["1899-12-27", "1"], "START"),
        (["9999-12-31", "1", "--explain"], "START"),
    ],
)
def test_calendar_refuses_dates_outside_its_range(args, argument):
    result = hub("calendar", "add-workdays", *args, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: {argument}: ") and "1900-01-01..2099-12-31" in result.stderr
    assert result.stdout == ""


def test_calendar_sources_are_bounded_to_the_range():
    result = hub("calendar", "sources", "1", "100000000000", check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: FIRST: ") and "1900..2099" in result.stderr
