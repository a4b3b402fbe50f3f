"""The import layering, as import-linter contracts in pyproject.toml (`[tool.importlinter]`; run them
by hand with `lint-imports` from the repository root):

- the core `hub` never imports `plugins`, `video` or a DAG module (plugins come in through the
  `hub` entry points, never by name);
- `plugins` and `video` import the core, never each other;
- the DAGs (`dags/`, Airflow's DAG folder) import the core, not `plugins` or `video`;
- no import cycle among the core's modules and packages (`acyclic_siblings`, at every depth).

The contracts are also run against a small tree that breaks each of them, so that a contract that
no longer matches anything (a renamed package, a contract type import-linter dropped) fails here
instead of passing forever. The last test imports `video.cli` first thing in a fresh interpreter,
as `hub` does when it loads the video plugin's commands: the static graph does not see the cycle
through the plugin host's entry points, that import does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from importlinter import api

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
CONTRACT_IDS = {"core-stands-alone", "plugins-independent", "dags-on-the-core", "core-acyclic"}


# Only the analysed tree may be seen: an editable install of another checkout (its .pth file puts
# that checkout on sys.path) would add its `dags/` to the `dags` namespace package, and the graph
# would mix both trees.
LINT = """
import sys
from pathlib import Path

root = Path.cwd().resolve()
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() == root or not (Path(p or ".") / "dags").is_dir()]
from importlinter.cli import lint_imports_command

sys.exit(lint_imports_command())
"""


def _lint(config: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` (the library's own command) on the packages under `root`, in a subprocess
    with a wide console, so that no line of its report is wrapped."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    env |= {"COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(config), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_are_the_ones_this_file_describes() -> None:
    options = api.read_configuration(str(PYPROJECT))
    assert {c["id"] for c in options["contracts_options"]} == CONTRACT_IDS
    assert set(options["session_options"]["root_packages"]) == {"hub", "plugins", "video", "dags"}


def test_the_import_layering_holds() -> None:
    run = _lint(PYPROJECT, REPO)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert f"Contracts: {len(CONTRACT_IDS)} kept, 0 broken." in run.stdout, run.stdout[-3000:]


# A tree with the same package names that breaks every contract once.
BROKEN_TREE = {
    "hub/__init__.py": "",
    "hub/a.py": "import hub.b\n",
    "hub/b.py": "import hub.a\n",  # a cycle in the core
    "hub/c.py": "import plugins.rest\n",  # the core imports a plugin
    "hub/d.py": "import tongban_config\n",  # the core imports a DAG module
    "plugins/__init__.py": "",
    "plugins/rest.py": "import hub.c\nimport video.web\n",  # a plugin imports the video plugin
    "video/__init__.py": "",
    "video/web.py": "import hub.a\n",
    "dags/tongban_dags.py": "import hub.a\nimport plugins.rest\n",  # a DAG imports a plugin
    "dags/tongban_config.py": "",
}


def test_each_contract_fails_on_a_tree_that_breaks_it(tmp_path: Path) -> None:
    for name, body in BROKEN_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(body), encoding="utf-8")
    run = _lint(PYPROJECT, tmp_path)
    assert run.returncode == 1, run.stdout[-6000:] + run.stderr[-3000:]
    assert f"Contracts: 0 kept, {len(CONTRACT_IDS)} broken." in run.stdout, run.stdout[-6000:]
    for line in (
        "hub.c -> plugins.rest",
        "hub.d -> tongban_config",
        "plugins.rest -> video.web",
        "dags.tongban_dags -> plugins.rest",
        "No cycles are allowed in hub.",
    ):
        assert line in run.stdout, run.stdout[-6000:]


def test_video_cli_imports_first_in_a_fresh_interpreter() -> None:
    """`python -c "import video.cli"`: no import cycle through the plugin host at run time."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", "import video.cli"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    if run.returncode != 0:
        pytest.fail(f"import video.cli failed:\n{run.stderr[-3000:]}", pytrace=False)
