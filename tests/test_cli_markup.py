"""Data is never markup: names, reasons and department error texts that look like Rich markup
(`[/x]`, `[link=…]`, `[bold]`) or carry terminal control characters are printed as they are, by a
real `hub` process, and the command succeeds."""

import io
import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.samples import ELDER_ID, ELDERLY_CARD
from tests.test_cli import hub

NASTY = ["张[/x]三", "[link=http://127.0.0.1/]x[/link]", "[bold]李四", "王:smile:五"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("markup") / "home"
    hub("init", str(target))
    return target


@pytest.fixture(scope="module")
def numbers(home) -> list[str]:
    out = []
    for i, name in enumerate(NASTY):
        created = hub(
            "apps",
            "create",
            "--item",
            ELDERLY_CARD,
            "--desk",
            "bank-xiahong",
            "--name",
            name,
            "--id",
            ELDER_ID,
            "-f",
            "delivery_method=窗口领取",
            "-f",
            "contact_phone=13905770001",
            "--draft",
            "--ref",
            f"markup-{i}",
            "--actor",
            "[red]王芳[/x]",
            "--role",
            "teller",
            "--json",
            home=home,
        )
        out.append(json.loads(created.stdout)["number"])
    return out


def test_apps_list_prints_names_literally(home, numbers):
    result = hub("apps", "list", home=home)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    for name in NASTY:
        assert name in result.stdout


def test_apps_show_prints_name_actor_and_reason_literally(home, numbers):
    hub(
        "apps",
        "transition",
        numbers[0],
        "withdraw",
        "--role",
        "system",
        "--reason",
        "[/x] [link=http://127.0.0.1/]原因[/link]",
        home=home,
    )
    result = hub("apps", "show", numbers[0], home=home)
    assert result.returncode == 0
    assert "张[/x]三" in result.stdout and "[red]王芳[/x]" in result.stdout
    assert "[/x] [link=http://127.0.0.1/]原因[/link]" in result.stdout
    assert "[ts-mzj]" in result.stdout  # a part's department in brackets was taken for a style tag
    link = hub("apps", "show", numbers[1], home=home)
    assert "[link=http://127.0.0.1/]x[/link]" in link.stdout


def test_terminal_control_characters_in_data_are_shown_as_escapes(home, numbers):
    created = hub(
        "apps",
        "create",
        "--item",
        ELDERLY_CARD,
        "--desk",
        "bank-xiahong",
        "--name",
        "赵\x1b]8;;http://127.0.0.1/\x1b\\六\u202e",
        "--id",
        ELDER_ID,
        "-f",
        "delivery_method=窗口领取",
        "-f",
        "contact_phone=13905770001",
        "--draft",
        "--ref",
        "markup-esc",
        "--role",
        "teller",
        "--json",
        home=home,
        check=False,
    )
    if created.returncode:  # the core refused control characters in a name: nothing to print
        assert created.returncode == 2 and "applicant.name" in created.stderr
        return
    number = json.loads(created.stdout)["number"]
    for args in (["apps", "list"], ["apps", "show", number]):
        out = hub(*args, home=home).stdout
        assert "\x1b" not in out and "\u202e" not in out
        assert "赵\\x1b]8;;http://127.0.0.1/\\x1b\\六\\u202e" in out


def test_outbox_dead_letters_print_department_errors_literally(home, numbers):
    error = "部门系统返回 [/x] [link=http://127.0.0.1/]点此[/link] [bold]\x1b]8;;http://127.0.0.1/\x1b\\x"
    with sqlite3.connect(home / "hub.db") as db:
        app_id, part_id = db.execute(
            "SELECT a.id, p.id FROM applications a JOIN application_parts p ON p.application_id = a.id"
            " WHERE a.number = ?",
            (numbers[1],),
        ).fetchone()
        db.execute(
            "INSERT INTO outbox (part_id, application_id, connection, kind, state, attempts, next_attempt_at,"
            " created_at, last_error) VALUES (?, ?, 'mzj-rest', 'submit', 'dead', 8, '2026-01-01 00:00:00',"
            " '2026-01-01 00:00:00', ?)",
            (part_id, app_id, error),
        )
    result = hub("outbox", "list", "--state", "dead", home=home)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    flat = "".join(line.strip("│ ") for line in result.stdout.splitlines())  # the cell may wrap
    assert "[/x][link=http://127.0.0.1/]点此[/link][bold]" in flat.replace(" ", "")
    assert "\x1b" not in result.stdout and "\\x1b]8;;http://127.0.0.1/\\x1b" in flat


def test_the_cli_console_never_renders_markup_emoji_or_controls():
    from hub.cli.common import console, printable, styled

    out = console()
    out.file = io.StringIO()
    out.print("[bold]a[/] [/x] :smile: \x1b[2J\u202eb", markup=True, emoji=True)
    out.print(styled("fixed", "bold"), "[link=http://127.0.0.1/]c[/link]")
    text = out.file.getvalue()
    assert "[bold]a[/] [/x] :smile: \\x1b[2J\\u202eb" in text
    assert "fixed [link=http://127.0.0.1/]c[/link]" in text
    assert printable("tab\tnewline\n") == "tab\tnewline\n"
