"""What conftest.py makes of a pytest session: the slow tier is decided by the verdict over seeds,
not by its seed tests alone; a selection that judges nothing is refused; one session at a time
owns the gate folders; Ctrl-C and SIGTERM end it with 130; `-n auto` starts a worker per run as
far as the machine allows, each on its share of the cores.

Most sessions run in this process (pytester), on a scratch pyproject.toml and runs/ folder; those
that need processes of their own (xdist workers, signals) run a scratch copy of the project. (CI's
`.ci/run` runs both tiers without xdist.)"""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mnist_gate import paths
from mnist_gate.paths import ROOT

from . import conftest
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

# A seed "trained within its budget" as far as conftest.py can tell, without training.
PASSING_STUB = """
import pytest


@pytest.mark.slow
def test_a_seed_trains_within_its_budget(profile, seed, request):
    request.node.user_properties.append(("gate_run", [profile.name, seed]))
"""

SLOW_STUB = """
import pytest


@pytest.mark.slow
def test_nothing_trains():
    pass
"""

FAILING_STUB = """
import pytest


@pytest.mark.slow
def test_a_seed_trains_within_its_budget(profile, seed):
    pytest.fail("did not train")
"""


@pytest.fixture
def session(pytester, monkeypatch):
    """A pytest session in this process, with conftest.py's hooks, the budgets plus a profile
    `quick` that one quick epoch cannot meet, and a runs/ folder of its own: session(*args,
    **environment) -> pytester's RunResult."""
    pytester.makefile(".toml", pyproject=(ROOT / "pyproject.toml").read_text() + QUICK)
    monkeypatch.setattr(paths, "PYPROJECT", pytester.path / "pyproject.toml")
    monkeypatch.setattr(paths, "RUNS", pytester.path / "runs")
    for name in os.environ:  # the outer session's settings stay out of this one
        if name.startswith(("GATE_", "PYTEST_XDIST")):
            monkeypatch.delenv(name)
    (pytester.path / "tests").mkdir()
    sigterm = signal.getsignal(signal.SIGTERM)

    def run(*args: str, **env: str) -> pytest.RunResult:
        with monkeypatch.context() as inner:
            for name, value in env.items():
                inner.setenv(name, value)
            try:
                return pytester.runpytest_inprocess(
                    "-p", "tests.conftest", "-p", "no:cacheprovider", *args
                )
            finally:  # a slow session's own SIGTERM handler is not this process's
                signal.signal(signal.SIGTERM, sigterm)

    return run


def test_a_seed_left_out_of_the_session_fails_it_by_name(session, pytester):
    # -k runs seed 0 only: no verdict over both seeds, so the session cannot pass on seed 0.
    (pytester.path / "tests" / "test_gate_slow.py").write_text(PASSING_STUB)
    for env in ({}, {"GATE_DEFER_VERDICT": "1"}):
        result = session("-m", "slow", "--profile", "quick", "--seeds", "0,1", "-k", "seed0", **env)
        out = result.outlines
        assert result.ret == 1, out
        assert "profile quick seed 1: not trained and judged in this session" in out
        result.assert_outcomes(passed=1, failed=1, deselected=1)  # failed: the verdict's line


def test_a_selection_that_judges_nothing_or_a_run_twice_is_refused_before_training(
    session, pytester
):
    (pytester.path / "tests" / "test_stub.py").write_text(SLOW_STUB)
    pyproject = pytester.path / "pyproject.toml"
    text = pyproject.read_text()
    local = "local = [0]"
    cases = [
        (("--profile", "quick,quick"), {}, text, "--profile names quick twice"),
        (("--seeds", "3,1,3"), {}, text, "--seeds '3,1,3' names seed 3 twice"),
        ((), {}, text.replace(local, "local = []"), "local in pyproject.toml names no seed"),
        ((), {}, text.replace(local, "local = [0, 0]"), "local in pyproject.toml names seed 0"),
        ((), {}, text.replace("= 0.994", "= 99.4"), "min_accuracy = 99.4: a fraction of the test"),
        ((), {"GATE_PROFILE": "quick,quick"}, text, "--profile names quick twice"),
        ((), {"GATE_SEEDS": "a"}, text, "--seeds takes integers separated by commas, got 'a'"),
        ((), {"GATE_SEEDS": ""}, text, "--seeds takes integers separated by commas"),
    ]  # fmt: skip
    for args, env, toml, message in cases:
        pyproject.write_text(toml)
        result = session("-m", "slow", *args, **env)
        err = result.stderr.str()
        assert result.ret == 4 and message in err, (args, env, err)
        assert "Traceback" not in err and not (pytester.path / "runs").exists()


def test_a_second_slow_session_in_the_checkout_is_refused_while_the_first_runs(session, pytester):
    (pytester.path / "tests" / "test_stub.py").write_text(SLOW_STUB)
    finished = pytester.path / "runs" / "gate-quick-seed0"
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text("{}")
    with open(pytester.path / "runs" / ".gate-session.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first session, still running
        busy = session("-m", "slow", "--profile", "quick")
        fast = session("--profile", "quick")
    assert busy.ret == 4, busy.outlines
    assert "another pytest -m slow in this checkout owns its gate folders" in busy.stderr.str()
    assert (finished / "metrics.json").read_text() == "{}"
    assert fast.ret == 5, fast.outlines  # the fast tier takes no lock (and has no test here)
    after = session("-m", "slow", "--profile", "quick")
    assert after.ret == 0, after.outlines


def test_a_failed_session_leaves_no_earlier_verdict_reading_pass(session, pytester):
    (pytester.path / "tests" / "test_gate_slow.py").write_text(FAILING_STUB)
    (pytester.path / "runs").mkdir()
    stale = {name: pytester.path / "runs" / f"gate-{name}.md" for name in ("quick", "8k", "25k")}
    for path in stale.values():
        path.write_text("### Net (profile quick), seed 0\n\nresult: pass\n")
    result = session("-m", "slow", "--profile", "quick,8k", "--seeds", "0")
    assert result.ret == 1, result.outlines
    assert not stale["quick"].exists() and not stale["8k"].exists()
    assert stale["25k"].exists()  # a profile this session does not gate is not its to remove


def test_n_auto_starts_a_worker_per_run_as_far_as_the_machine_allows(
    session, pytester, monkeypatch
):
    def workers(*args: str, cores: int = 4, gpu_gib: int | None = None) -> int | None:
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu_gib is not None)
        memory = SimpleNamespace(total_memory=(gpu_gib or 0) * 2**30)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: memory)
        config = pytester.parseconfig("-p", "tests.conftest", *args)
        return conftest.pytest_xdist_auto_num_workers(config)

    eight = ("--seeds", "0,1,2,3,4,5,6,7")
    assert workers("-m", "slow", "--profile", "quick", "--seeds", "0") == 1  # xdist's: 4
    assert workers("-m", "slow", "--profile", "quick,8k", "--seeds", "0,1") == 4
    assert workers("-m", "slow", "--profile", "quick", *eight, cores=16) == 8
    assert workers("-m", "slow", "--profile", "quick,8k", *eight, gpu_gib=16) == 8  # 2 GiB each
    assert workers("-m", "slow", "--profile", "quick,8k", *eight, gpu_gib=139) == 16
    # The fast tier, and xdist's own setting, keep xdist's rule.
    assert workers("--profile", "quick") is None
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "1")
    assert workers("-m", "slow", "--profile", "quick", "--seeds", "0") is None


def test_the_auto_rule_on_a_gpu_takes_a_worker_per_run_up_to_memory_and_mps():
    assert auto_workers(runs=24, cores=16, gpu_gib=139) == 24  # an H200: cores do not limit
    assert auto_workers(runs=24, cores=16, gpu_gib=16) == 8  # 2 GiB a worker
    assert auto_workers(runs=100, cores=16, gpu_gib=139) == 48  # MPS's clients per GPU
    assert auto_workers(runs=24, cores=16, gpu_gib=1) == 1
    assert auto_workers(runs=24, cores=2, gpu_gib=None) == 2  # CPUs: a worker per core


# Sessions of processes of their own: a scratch copy of the project.

THREADS = """
import os

import pytest
import torch


@pytest.mark.slow
def test_this_worker_keeps_to_its_share_of_the_cores():
    share = str(max(1, os.cpu_count() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    assert (str(torch.get_num_threads()), os.environ.get("OMP_NUM_THREADS")) == (share, share)
"""

SLEEPING_STUB = """
import time
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_seed_trains_within_its_budget(profile, seed):
    Path("started").touch()
    time.sleep(60)
"""


# A network a tenth of Net's size, which the profile `quick` trains in a scratch project: what
# its processes train, evaluate and report on is theirs to do in a second.
SMALL_NET = """

class Small(TinyNet):
    def __init__(self):
        super().__init__(stem=8, stages=((8, 1),), dropout=0.05)
"""


def scratch_project(root: Path, tests: dict[str, str]) -> Path:
    """The project's code, conftest.py and data, the profile `quick` of a small network, and
    these test files."""
    root.mkdir()
    shutil.copy(ROOT / "train.py", root / "train.py")
    (root / "model.py").write_text((ROOT / "model.py").read_text() + SMALL_NET)
    quick = QUICK.replace('model = "Net"', 'model = "Small"')
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + quick)
    shutil.copytree(
        ROOT / "mnist_gate", root / "mnist_gate", ignore=shutil.ignore_patterns("*.pyc")
    )
    (root / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "gate_runs.py"):
        shutil.copy(ROOT / "tests" / name, root / "tests" / name)
    for name, text in tests.items():
        (root / "tests" / name).write_text(text)
    (root / "data").symlink_to(ROOT / "data")
    return root


def default_ctrl_c() -> None:
    """Ctrl-C as a terminal delivers it: a suite started in the background (as CI may start it)
    hands its children SIGINT ignored, and an ignored Ctrl-C interrupts nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pytest_process(root: Path, *args: str) -> subprocess.Popen:
    # The outer session's own settings (its xdist workers, GATE_SEEDS, ...) stay out of this one.
    outer = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GATE_", "OMP_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=root, env=outer,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_ctrl_c,
    )  # fmt: skip


def test_a_failing_verdict_fails_the_session_whose_seeds_passed_in_auto_workers(tmp_path):
    slow = (ROOT / "tests" / "test_gate_slow.py").read_text()
    root = scratch_project(tmp_path / "p", {"test_gate_slow.py": slow, "test_threads.py": THREADS})

    args = ("-n", "auto", "-m", "slow", "--profile", "quick", "--seeds", "0,1")
    with pytest_process(root, *args) as proc:
        out = proc.communicate(timeout=110)[0]

    workers = min(2, os.cpu_count() or 1)  # a worker per run, as far as the cores go
    assert proc.returncode == 1, out
    assert f"created: {workers}/{workers} worker" in out
    assert "profile quick, 2 seed(s): FAIL" in out
    assert "mean of 2 seeds: final-epoch test accuracy" in out
    assert "3 passed, 1 failed (gate verdict)" in out.splitlines()[-1]
    assert "**FAIL**" in (root / "runs" / "gate-quick.md").read_text()


def test_an_interrupted_slow_session_exits_130_after_saying_so(tmp_path):
    started = {}
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, and a cancelled CI job, side by side
        root = scratch_project(tmp_path / sig.name, {"test_gate_slow.py": SLEEPING_STUB})
        started[sig] = (root, pytest_process(root, "-m", "slow", "--profile", "quick"))
    for sig, (root, proc) in started.items():
        with proc:
            while not (root / "started").exists() and proc.poll() is None:
                time.sleep(0.05)
            proc.send_signal(sig)
            out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 130, (sig, out)
        assert "KeyboardInterrupt" in out and "Traceback" not in out, (sig, out)
