"""The slow tier's session is decided by the verdict over seeds, not by its seed tests alone: a
scratch copy of the project gains a profile that one quick epoch cannot meet, and `pytest -m slow
-n 2` on it trains two seeds that keep their run budget in two workers, then fails on the verdict
over both, and says so. (CI's `.ci/run` runs the slow tier without xdist, and passes.)"""

import os
import shutil
import subprocess
import sys

from mnist_gate.paths import ROOT

QUICK = """
[tool.gate.profiles.quick]
model = "Net"
max_params = 8000
max_epochs = 1
min_accuracy = 0.994
train = { epochs = 1, limit = 512, small_epochs = 0 }
"""


def test_a_failing_verdict_fails_the_session_whose_seeds_passed_in_two_workers(tmp_path):
    for name in ("train.py", "model.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + QUICK)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "mnist_gate", tmp_path / "mnist_gate", ignore=skip)
    (tmp_path / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "helpers.py", "test_gate_slow.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / "tests" / name)
    (tmp_path / "data").symlink_to(ROOT / "data")
    # The outer session's own settings (xdist workers, GATE_SEEDS, ...) stay out of this one.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GATE_"))}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "slow", "--profile", "quick", "--seeds", "0,1",
         "-n", "2", "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110,
    )  # fmt: skip

    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "profile quick, 2 seed(s): FAIL" in out
    assert "mean of 2 seeds: final-epoch test accuracy" in out
    assert "2 passed, 1 failed (gate verdict)" in out.splitlines()[-1]
    assert "**FAIL**" in (tmp_path / "runs" / "gate-quick.md").read_text()
