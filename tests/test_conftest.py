"""The suite's own rules in tests/conftest.py, each run on a copy of that conftest with a small test
file in a pytest subprocess: which tests run on PostgreSQL (those using the `backend` fixture),
what the `postgres` marker selects, that a hand-written `postgres` marker is refused, and that
CI=true neither runs without PostgreSQL nor passes with skipped tests — the last two also when the
tests run in pytest-xdist workers, as the suite does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFTEST = Path(__file__).with_name("conftest.py")
# a URL is all the parametrization reads; these sample tests never open a database
SOME_PG_URL = "postgresql://nobody@127.0.0.1:9/none"

SAMPLE = """
import pytest

def test_on_both(backend):
    assert backend in ("sqlite", "postgresql")

def test_plain():
    pass
"""


def _pytest(tmp_path: Path, body: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_sample.py").write_text(body, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\nmarkers =\n    postgres: see conftest\n",
        encoding="utf-8",
    )
    run_env = {k: v for k, v in os.environ.items() if k not in ("CI", "HUB_TEST_DATABASE_URL")}
    run_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    run_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _collected(run: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("::", 1)[1] for line in run.stdout.splitlines() if line.startswith("test_sample.py::")}


def test_backend_tests_get_a_postgresql_variant_marked_postgres(tmp_path: Path) -> None:
    url = {"HUB_TEST_DATABASE_URL": SOME_PG_URL}
    only_pg = _pytest(tmp_path, SAMPLE, "--collect-only", "-m", "postgres", **url)
    assert _collected(only_pg) == {"test_on_both[postgresql]"}, only_pg.stdout
    no_pg = _pytest(tmp_path, SAMPLE, "--collect-only", "-m", "not postgres", **url)
    assert _collected(no_pg) == {"test_on_both[sqlite]", "test_plain"}, no_pg.stdout


def test_without_a_server_backend_tests_run_on_sqlite_only(tmp_path: Path) -> None:
    run = _pytest(tmp_path, SAMPLE, "--collect-only")
    assert _collected(run) == {"test_on_both[sqlite]", "test_plain"}, run.stdout


# The suite runs in pytest-xdist workers (`make test`): each rule must also hold when the
# test runs in a worker and only its report reaches the controller. `-p no:xdist` is the plain run.
IN_PROCESS, IN_WORKER = ("-p", "no:xdist"), ("-n", "1")
SKIPPING = "import pytest\n\ndef test_plain():\n    pass\n\ndef test_skipped():\n    pytest.skip('no tool')\n"
BOTH_WAYS = pytest.mark.parametrize("how", [IN_PROCESS, IN_WORKER], ids=["in-process", "xdist-worker"])


@BOTH_WAYS
def test_a_hand_written_postgres_marker_is_refused(tmp_path: Path, how: tuple[str, ...]) -> None:
    body = SAMPLE.replace("def test_plain", "@pytest.mark.postgres\ndef test_plain")
    run = _pytest(tmp_path, body, *how, HUB_TEST_DATABASE_URL=SOME_PG_URL)
    assert run.returncode in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED), run.stdout + run.stderr
    assert "test_sample.py::test_plain: @pytest.mark.postgres" in run.stdout
    assert "do not write it by hand" in run.stdout


def test_ci_refuses_to_run_without_postgresql(tmp_path: Path) -> None:
    run = _pytest(tmp_path, SAMPLE, CI="true")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "HUB_TEST_DATABASE_URL is not set" in run.stderr


def test_ci_fails_a_run_with_a_skipped_test(tmp_path: Path) -> None:
    local = _pytest(tmp_path, SKIPPING)
    assert local.returncode == pytest.ExitCode.OK, local.stdout
    ci = _pytest(tmp_path, SKIPPING, CI="true", HUB_TEST_DATABASE_URL=SOME_PG_URL)
    assert ci.returncode == pytest.ExitCode.TESTS_FAILED, ci.stdout
    assert "1 test(s) skipped" in ci.stdout


def test_ci_fails_a_run_whose_skip_happened_in_an_xdist_worker(tmp_path: Path) -> None:
    # the skip is reported by the worker; the controller's pytest_sessionfinish must count it
    ci = _pytest(tmp_path, SKIPPING, *IN_WORKER, CI="true", HUB_TEST_DATABASE_URL=SOME_PG_URL)
    assert ci.returncode == pytest.ExitCode.TESTS_FAILED, ci.stdout
    assert "1 test(s) skipped" in ci.stdout


def test_the_longest_files_are_collected_first(tmp_path: Path) -> None:
    # `make test` hands whole files to its workers in collection order (--no-loadscope-reorder)
    for name in ("test_aaa.py", "test_demo.py"):  # test_aaa would come first by name
        (tmp_path / name).write_text("def test_it():\n    pass\n", encoding="utf-8")
    run = _pytest(tmp_path, SAMPLE, "--collect-only")
    files = [line.split("::", 1)[0] for line in run.stdout.splitlines() if "::" in line]
    assert files == ["test_demo.py", "test_aaa.py", "test_sample.py", "test_sample.py"], run.stdout
