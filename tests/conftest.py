"""What the suite gates: --profile NAME[,NAME] or all (else $GATE_PROFILE, else all), and the seeds
the slow tier trains: --seeds 0,1,2 (else $GATE_SEEDS, else [tool.gate.seeds] local in
pyproject.toml). --defer-verdict (or GATE_DEFER_VERDICT=1) leaves the verdict over seeds to the CI
job that gathers every seed's runs."""

import contextlib
import os
import re
import signal

import pytest

from mnist_gate import profiles

GATE = pytest.StashKey[profiles.Gate]()


def gate(config) -> profiles.Gate:
    """[tool.gate] of pyproject.toml, read once a session."""
    if GATE not in config.stash:
        config.stash[GATE] = profiles.load()
    return config.stash[GATE]


def pytest_addoption(parser):
    parser.addoption(
        "--profile",
        default=os.environ.get("GATE_PROFILE", "all"),
        help="budget profile(s) to gate: a name from pyproject.toml, a comma list, or 'all' "
        "(default: $GATE_PROFILE, else all)",
    )
    parser.addoption(
        "--seeds",
        default=os.environ.get("GATE_SEEDS"),
        help="comma list of seeds the slow tier trains; with several, the verdict is on the mean "
        "(default: $GATE_SEEDS, else [tool.gate.seeds] local in pyproject.toml)",
    )
    parser.addoption(
        "--defer-verdict",
        action="store_true",
        default=os.environ.get("GATE_DEFER_VERDICT") == "1",
        help="slow tier: train and check each run, and leave the verdict over seeds to the CI "
        "job that gathers them all (default: $GATE_DEFER_VERDICT=1)",
    )


def selected_seeds(config) -> list[int]:
    """--seeds, else $GATE_SEEDS, else [tool.gate.seeds] local: one seed at least, each once."""
    wanted = config.getoption("--seeds")
    if wanted is None:
        return gate(config).seeds("local")
    try:
        seeds = [int(s) for s in wanted.split(",")]
    except ValueError:
        raise pytest.UsageError(
            f"--seeds takes integers separated by commas, got {wanted!r}"
        ) from None
    return profiles.check_seeds(seeds, f"--seeds {wanted!r}")


def selected_profiles(config) -> list[profiles.Profile]:
    gated = gate(config).profiles
    wanted = config.getoption("--profile")
    names = list(gated) if wanted == "all" else wanted.split(",")
    unknown = [name for name in names if name not in gated]
    if unknown:
        raise pytest.UsageError(
            f"unknown profile {', '.join(unknown)}; pyproject.toml defines {', '.join(gated)}"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise pytest.UsageError(f"--profile names {twice[0]} twice; each profile is judged once")
    return [gated[name] for name in names]


def pytest_configure(config):
    """A bad --profile or --seeds, or a profile that cannot train as pyproject.toml sets it,
    stops the run before any test: before the slow tier removes or trains anything."""
    from mnist_gate.settings import ConfigError

    from . import gate_runs

    try:
        seeds = selected_seeds(config)
        for profile in selected_profiles(config):
            for seed in seeds:
                gate_runs.config(profile, seed)
    except ConfigError as err:
        raise pytest.UsageError(str(err)) from None
    if selects_slow(config) and not hasattr(config, "workerinput"):
        own_the_gate_folders(config)
        # SIGTERM (a cancelled CI job) stops the session as Ctrl-C does: reported, then exit 130.
        signal.signal(signal.SIGTERM, interrupted)
        config.pluginmanager.register(SlowTierVerdict(config), "gate-verdict")


def interrupted(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def selects_slow(config) -> bool:
    """Whether -m selects a test marked slow and nothing else (the slow tier's tests)."""
    expression = config.getoption("markexpr") or ""
    python = re.sub(
        r"[A-Za-z_]\w*",
        lambda m: m[0] if m[0] in ("and", "or", "not") else str(m[0] == "slow"),
        expression,
    )
    try:
        return bool(eval(python, {"__builtins__": {}})) if expression else True
    except SyntaxError:  # pytest itself says what is wrong with the expression
        return False


def own_the_gate_folders(config) -> None:
    """One slow-tier session at a time in a checkout, from its start to its end (the seed locks
    alone let a second session replace a seed the first had finished): the second is refused."""
    from mnist_gate import paths

    lock = paths.RUNS / ".gate-session.lock"
    busy = f"another pytest -m slow in this checkout owns its gate folders until it ends ({lock})"
    held = contextlib.ExitStack()
    try:
        held.enter_context(paths.locked(lock, busy))
    except paths.RunFolderError as err:
        raise pytest.UsageError(str(err)) from None
    config.add_cleanup(held.close)
    from mnist_gate.gate import verdict_file

    for profile in selected_profiles(config):  # an earlier session's verdict is not this one's
        verdict_file(profile.name).unlink(missing_ok=True)


def pytest_report_header(config):
    names = ", ".join(p.name for p in selected_profiles(config))
    seeds = ", ".join(map(str, selected_seeds(config)))
    return f"gated profiles: {names}; slow-tier seeds: {seeds}"


def pytest_generate_tests(metafunc):
    if "profile" in metafunc.fixturenames:
        profiles = selected_profiles(metafunc.config)
        metafunc.parametrize("profile", profiles, ids=[p.name for p in profiles], scope="session")
    if "seed" in metafunc.fixturenames:
        seeds = selected_seeds(metafunc.config)
        metafunc.parametrize("seed", seeds, ids=[f"seed{s}" for s in seeds])


# `pytest -m slow -n auto`: a worker per profile x seed, as many as the machine takes. On a GPU the
# workers share the device: one per 2 GiB of its memory (24 workers held 34 GB of an H200), at
# most the 48 processes that MPS serves on one GPU; CPU cores do not limit them, as the steps
# replay CUDA graphs. On CPUs, one per core.
GIB_PER_GPU_WORKER = 2
MPS_CLIENTS = 48


def auto_workers(runs: int, cores: int, gpu_gib: int | None) -> int:
    """How many xdist workers `-n auto` starts for the slow tier: gpu_gib is the GPU's memory,
    None without one."""
    limit = cores if gpu_gib is None else min(MPS_CLIENTS, gpu_gib // GIB_PER_GPU_WORKER)
    return max(1, min(runs, limit))


def pytest_xdist_auto_num_workers(config):
    """`-n auto` for the slow tier (auto_workers above). xdist's PYTEST_XDIST_AUTO_NUM_WORKERS
    overrides it, and the fast tier keeps xdist's own rule (a worker per core)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    if "not slow" in (config.getoption("markexpr") or "not slow"):
        return None
    import torch

    from mnist_gate.settings import ConfigError

    try:
        runs = len(selected_profiles(config)) * len(selected_seeds(config))
    except ConfigError:
        return None  # pytest_configure says what is wrong, in one line
    gpu_gib = None
    if torch.cuda.is_available():
        gpu_gib = torch.cuda.get_device_properties(0).total_memory // 2**30
    return auto_workers(runs, os.cpu_count() or 1, gpu_gib)


def worker_threads() -> int:
    """The cores split between pytest-xdist workers; 0 (PyTorch's default) without xdist."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0


def pytest_sessionstart(session):
    """Each xdist worker on its share of the cores, and so are the train.py processes its tests
    start: PyTorch's default, every core in every worker, made `pytest -n 2` six times slower."""
    share = worker_threads()
    if share:
        import torch

        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


@pytest.fixture(scope="session")
def threads() -> int:
    """CPU threads for each training run: `-n 2` trains two seeds at once on two cores."""
    return worker_threads()


class SlowTierVerdict:
    """The verdict over seeds, once every seed's test has run (in xdist's controller, with -n):
    which seeds passed, the verdict on each profile whose every seed did, and what was not
    judged, held by this session's plugin rather than the module."""

    def __init__(self, config):
        self.config = config
        self.ran: dict[str, list[int]] = {}  # profile -> seeds whose slow-tier test passed
        self.verdicts: list = []
        self.not_judged: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.passed:
            for key, value in report.user_properties:
                if key == "gate_run":
                    name, seed = value
                    self.ran.setdefault(name, []).append(seed)

    def pytest_sessionfinish(self, session):
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            session.exitstatus = 130  # as a shell and train.py report Ctrl-C; pytest's own is 2
            return
        if not self.ran:
            return  # no slow-tier run
        self.not_judged = not_judged(self.config, self.ran)
        if not self.config.getoption("--defer-verdict"):  # else CI's verdict job judges them all
            self.verdicts = session_verdicts(self.config, self.ran)
        if self.not_judged or not all(v.passed for v in self.verdicts):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if self.verdicts or self.not_judged:
            terminalreporter.ensure_newline()  # else the first line below starts with a blank one
            terminalreporter.section("gate verdict")
        # The closing line counts what failed the session: "2 passed, 1 failed (gate verdict)".
        failed = [judged for judged in self.verdicts if not judged.passed] + self.not_judged
        if failed:
            terminalreporter.stats.setdefault("failed (gate verdict)", []).extend(failed)
        for judged in self.verdicts:
            seeds = len(judged.records)
            status = "pass" if judged.passed else "FAIL"
            terminalreporter.write_line(f"profile {judged.profile.name}, {seeds} seed(s): {status}")
            for line in judged.failures:
                terminalreporter.write_line(f"  {line}", red=True)
        for line in self.not_judged:
            terminalreporter.write_line(line, red=True)


def session_verdicts(config, ran: dict[str, list[int]]) -> list:
    """judge() on each profile whose every selected seed trained and kept its budget."""
    from mnist_gate.gate import judge_seeds

    seeds = selected_seeds(config)
    return [
        judge_seeds(profile, seeds)
        for profile in selected_profiles(config)
        if sorted(ran.get(profile.name, [])) == sorted(seeds)
    ]


def not_judged(config, ran: dict[str, list[int]]) -> list[str]:
    """Each profile x seed asked for whose run did not train and keep its budget in this session:
    its test failed, was deselected (-k) or never ran. A verdict over fewer seeds than asked for
    is no verdict."""
    return [
        f"profile {profile.name} seed {seed}: not trained and judged in this session"
        for profile in selected_profiles(config)
        for seed in selected_seeds(config)
        if seed not in ran.get(profile.name, [])
    ]
