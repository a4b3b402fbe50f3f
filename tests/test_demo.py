"""The main job (`make demo`): a fresh home, sample applications walked through the life cycle."""

import subprocess
import sys


def test_demo_runs_on_a_fresh_home(tmp_path):
    home = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "hub", "init", str(home)], check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), "demo"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in (
        "下洪社区农商银行网点",
        "330105→330329",
        "310115→330329",
        "partial",
        "2027-01-05*",
        "校验码错误",
        "cannot deliver",
    ):
        assert needle in out, needle
    assert "✗" not in out  # every event chain verifies
