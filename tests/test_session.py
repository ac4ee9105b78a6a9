"""What conftest.py makes of a pytest session, run for real in a scratch copy of the project under
pytest-xdist: the slow tier is decided by the verdict over seeds, not by its seed tests alone, and
each worker keeps to its share of the cores. (CI's `.ci/run` runs both tiers without xdist.)"""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from mnist_gate.paths import ROOT

from .conftest import auto_workers

QUICK = """
[tool.gate]
regression = false  # a third profile would need more ci seeds, which no session here trains

[tool.gate.profiles.quick]
model = "Net"
max_params = 8000
max_epochs = 1
min_accuracy = 0.994
train = { epochs = 1, limit = 512, small_epochs = 0 }
"""

THREADS = """
import os

import torch


def test_this_worker_keeps_to_its_share_of_the_cores():
    share = str(max(1, os.cpu_count() // 2))
    assert (str(torch.get_num_threads()), os.environ.get("OMP_NUM_THREADS")) == (share, share)
"""


def scratch_project(root: Path, tests: dict[str, str]) -> Path:
    """The project's code, conftest.py and data, a profile `quick` that one quick epoch cannot
    meet, and these test files."""
    for name in ("train.py", "model.py"):
        shutil.copy(ROOT / name, root / name)
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + QUICK)
    shutil.copytree(
        ROOT / "mnist_gate", root / "mnist_gate", ignore=shutil.ignore_patterns("*.pyc")
    )
    (root / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "gate_runs.py", "helpers.py"):
        shutil.copy(ROOT / "tests" / name, root / "tests" / name)
    for name, text in tests.items():
        (root / "tests" / name).write_text(text)
    (root / "data").symlink_to(ROOT / "data")
    return root


def pytest_in(root: Path, *args: str, workers: str = "2", **env) -> subprocess.CompletedProcess:
    # The outer session's own settings (its xdist workers, GATE_SEEDS, ...) stay out of this one.
    outer = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GATE_", "OMP_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-n", workers, "-p", "no:cacheprovider", *args],
        cwd=root, env={**outer, **env}, capture_output=True, text=True, timeout=110,
    )  # fmt: skip


def test_a_failing_verdict_fails_the_session_whose_seeds_passed_in_two_workers(tmp_path):
    slow = (ROOT / "tests" / "test_gate_slow.py").read_text()
    root = scratch_project(tmp_path, {"test_gate_slow.py": slow})

    result = pytest_in(root, "-m", "slow", "--profile", "quick", "--seeds", "0,1")

    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "profile quick, 2 seed(s): FAIL" in out
    assert "mean of 2 seeds: final-epoch test accuracy" in out
    assert "2 passed, 1 failed (gate verdict)" in out.splitlines()[-1]
    assert "**FAIL**" in (root / "runs" / "gate-quick.md").read_text()


def test_each_xdist_worker_keeps_to_its_share_of_the_cores(tmp_path):
    root = scratch_project(tmp_path, {"test_threads.py": THREADS})
    result = pytest_in(root, "tests/test_threads.py")
    assert result.returncode == 0, result.stdout + result.stderr


SLOW_STUB = """
import pytest


@pytest.mark.slow
def test_nothing_trains():
    pass
"""


def test_n_auto_starts_a_worker_per_run_as_far_as_the_machine_allows(tmp_path):
    root = scratch_project(tmp_path, {"test_stub.py": SLOW_STUB})
    cores = os.cpu_count() or 1
    for profiles, seeds in (("quick", "0"), ("quick,8k", "0,1,2,3,4,5,6,7")):
        runs = len(profiles.split(",")) * len(seeds.split(","))
        args = ("-m", "slow", "--profile", profiles, "--seeds", seeds, "tests/test_stub.py")
        result = pytest_in(root, *args, workers="auto")
        expected = auto_workers(runs, cores, None)  # this machine has no GPU for the tests
        assert f"created: {expected}/{expected} worker" in result.stdout, result.stdout
    # xdist's own setting overrides the rule, and the fast tier keeps xdist's rule.
    result = pytest_in(root, *args, workers="auto", PYTEST_XDIST_AUTO_NUM_WORKERS="1")
    assert "created: 1/1 worker" in result.stdout, result.stdout
    result = pytest_in(root, "--profile", profiles, "tests/test_stub.py", workers="auto")
    assert f"created: {cores}/{cores} worker" in result.stdout, result.stdout


def test_the_auto_rule_on_a_gpu_takes_a_worker_per_run_up_to_memory_and_mps():
    assert auto_workers(runs=24, cores=16, gpu_gib=139) == 24  # an H200: cores do not limit
    assert auto_workers(runs=24, cores=16, gpu_gib=16) == 8  # 2 GiB a worker
    assert auto_workers(runs=100, cores=16, gpu_gib=139) == 48  # MPS's clients per GPU
    assert auto_workers(runs=24, cores=16, gpu_gib=1) == 1
    assert auto_workers(runs=24, cores=2, gpu_gib=None) == 2  # CPUs: a worker per core


def test_a_seed_left_out_of_the_session_fails_it_by_name(tmp_path):
    # -k trains seed 0 only: no verdict over both seeds, so the session cannot pass on seed 0.
    slow = (ROOT / "tests" / "test_gate_slow.py").read_text()
    root = scratch_project(tmp_path, {"test_gate_slow.py": slow})
    for env in ({}, {"GATE_DEFER_VERDICT": "1"}):
        args = ("-m", "slow", "--profile", "quick", "--seeds", "0,1", "-k", "seed0")
        result = pytest_in(root, *args, **env)
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert "profile quick seed 1: not trained and judged in this session" in out
        assert "1 passed, 1 failed (gate verdict)" in out.splitlines()[-1], out


def test_a_selection_that_judges_nothing_or_a_run_twice_is_refused_before_training(tmp_path):
    root = scratch_project(tmp_path, {"test_stub.py": SLOW_STUB})
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    cases = [
        (("--profile", "quick,quick"), text, "--profile names quick twice"),
        (("--seeds", "3,1,3"), text, "--seeds '3,1,3' names seed 3 twice"),
        ((), text.replace("local = [0]", "local = []"), "local in pyproject.toml names no seed"),
        ((), text.replace("local = [0]", "local = [0, 0]"), "local in pyproject.toml names seed 0"),
    ]
    for args, toml, message in cases:
        pyproject.write_text(toml)
        result = pytest_in(root, "-m", "slow", *args, "tests/test_stub.py", workers="0")
        assert result.returncode == 4 and message in result.stderr, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and not (root / "runs").exists()
    pyproject.write_text(text)
    environments = [({"GATE_PROFILE": "quick,quick"}, "--profile names quick twice"),
                    ({"GATE_SEEDS": ""}, "--seeds takes integers separated by commas")]  # fmt: skip
    for env, message in environments:
        result = pytest_in(root, "-m", "slow", "tests/test_stub.py", workers="0", **env)
        assert result.returncode == 4 and message in result.stderr, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and not (root / "runs").exists()


def test_a_second_slow_session_in_the_checkout_is_refused_while_the_first_runs(tmp_path):
    root = scratch_project(tmp_path, {"test_stub.py": SLOW_STUB})
    finished = root / "runs" / "gate-quick-seed0"
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text("{}")
    with open(root / "runs" / ".gate-session.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first session, still running
        busy = pytest_in(root, "-m", "slow", "--profile", "quick", workers="0")
        fast = pytest_in(root, "--profile", "quick", "tests/test_stub.py", workers="0")
    assert busy.returncode == 4, busy.stdout + busy.stderr
    assert "another pytest -m slow in this checkout owns its gate folders" in busy.stderr
    assert (finished / "metrics.json").read_text() == "{}"
    assert fast.returncode == 5, fast.stdout + fast.stderr  # the fast tier takes no lock
    after = pytest_in(root, "-m", "slow", "--profile", "quick", "tests/test_stub.py", workers="0")
    assert after.returncode == 0, after.stdout + after.stderr


def default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_slow_session_exits_130_after_saying_so(tmp_path):
    slow = (ROOT / "tests" / "test_gate_slow.py").read_text()
    root = scratch_project(tmp_path, {"test_gate_slow.py": slow})
    outer = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GATE_", "OMP_"))}
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, and a cancelled CI job
        args = ["-m", "slow", "--profile", "quick", "--seeds", "0", "-p", "no:cacheprovider"]
        shutil.rmtree(root / "runs", ignore_errors=True)  # the last try's unfinished run
        marker = root / "runs" / "gate-quick-seed0" / "INCOMPLETE"  # training has started
        # Ctrl-C as a terminal delivers it: a suite started in the background (as CI may start
        # it) hands its children SIGINT ignored, and an ignored Ctrl-C interrupts nothing.
        with subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=root, env=outer,
                              stdout=subprocess.PIPE, text=True,
                              preexec_fn=default_ctrl_c) as proc:  # fmt: skip
            while not marker.exists() and proc.poll() is None:
                time.sleep(0.05)
            proc.send_signal(sig)
            out = proc.stdout.read()
            proc.wait(timeout=60)
        assert proc.returncode == 130, out
        assert "KeyboardInterrupt" in out and "Traceback" not in out, out


FAILING_STUB = """
import pytest


@pytest.mark.slow
def test_a_seed_trains_within_its_budget(profile, seed):
    pytest.fail("did not train")
"""


def test_a_failed_session_leaves_no_earlier_verdict_reading_pass(tmp_path):
    root = scratch_project(tmp_path, {"test_gate_slow.py": FAILING_STUB})
    (root / "runs").mkdir()
    stale = {name: root / "runs" / f"gate-{name}.md" for name in ("quick", "8k", "25k")}
    for path in stale.values():
        path.write_text("### Net (profile quick), seed 0\n\nresult: pass\n")
    result = pytest_in(root, "-m", "slow", "--profile", "quick,8k", "--seeds", "0", workers="0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert not stale["quick"].exists() and not stale["8k"].exists()
    assert stale["25k"].exists()  # a profile this session does not gate is not its to remove
