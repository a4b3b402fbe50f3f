"""`hub queue` and `hub run reminders` (the same core as the pages), and `hub catalog check`
reporting a broken appointments.yaml with its file and line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from typer.testing import CliRunner

from hub.cli import app as cli_app
from hub.errors import InvalidInput
from tests.conftest import CST, make_id


def _run(hub, db_url, *args: str, catch: bool = False):
    return CliRunner().invoke(
        cli_app, ["--home", str(hub.settings.home), *args], env={"HUB_DATABASE_URL": db_url}, catch_exceptions=catch
    )


def test_publish_book_ticket_call_and_remind(hub, db_url):
    real_today = datetime.now(CST).date()  # the CLI runs on the wall clock, in the county's zone
    day = real_today + timedelta(days=1)
    while not hub.calendar.is_workday(day):
        day += timedelta(days=1)
    groups = json.loads(_run(hub, db_url, "queue", "groups", "--json").output)
    assert [g["letter"] for g in groups] == ["A", "B", "C", "D", "E"]
    out = _run(
        hub,
        db_url,
        "queue",
        "slots",
        "publish",
        "--desk",
        "hall-county",
        "--group",
        "zonghe",
        "--day",
        day.isoformat(),
        "--from",
        "09:00",
        "--to",
        "10:00",
        "--every",
        "30",
        "--capacity",
        "2",
    )
    assert out.exit_code == 0 and "published 2 slot(s)" in out.output, out.output
    listed = json.loads(_run(hub, db_url, "queue", "slots", "list", "--desk", "hall-county", "--json").output)
    slot = listed[0]["id"]
    booked = _run(
        hub,
        db_url,
        "queue",
        "book",
        str(slot),
        "--name",
        "林阿婆",
        "--id",
        make_id(),
        "--desk",
        "hall-county",
        "--phone",
        "13905770001",
    )
    assert booked.exit_code == 0 and booked.output.startswith("booked ") and "林*" in booked.output, booked.output
    bad = _run(
        hub, db_url, "queue", "book", str(slot), "--name", "x", "--id", "123", "--desk", "hall-county", catch=True
    )
    assert isinstance(bad.exception, InvalidInput) and bad.exception.errors[0].field == "id_number"
    took = _run(hub, db_url, "queue", "ticket", "--desk", "hall-county", "--group", "zonghe")
    assert took.output.strip() == "ticket E001"
    called = _run(hub, db_url, "queue", "call", "--desk", "hall-county", "--counter", "2")
    assert called.output.strip() == "E001 → counter 2"
    reminded = _run(hub, db_url, "run", "reminders")  # `day` is the next working day: its booking
    assert "1 booking(s)" in reminded.output, reminded.output
    assert "0 booking(s)" in _run(hub, db_url, "run", "reminders").output


def test_catalog_check_reports_the_groups_file_with_line(home):
    path = home / "appointments.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("GG00101001", "GG09999999"), encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["--home", str(home), "catalog", "check"])
    assert result.exit_code == 1
    assert "appointments.yaml:10: 未知事项 (unknown item): GG09999999" in result.output + result.stderr
