"""What the suite gates, each setting resolved once a session (profiles.SESSION: the flag, else its
environment variable, else pyproject.toml): --profile NAME[,NAME] or all, and the seeds the slow
tier trains, --seeds 0,1,2 (else [tool.gate.seeds] local). --defer-verdict leaves the verdict over
seeds to the CI job that gathers every seed's runs."""

import contextlib
import os
import re
import signal
from dataclasses import dataclass

import pytest

from mnist_gate import profiles


@dataclass(frozen=True)
class Selection:
    """What a session gates, resolved once: the profiles, the seeds, and whether the verdict over
    seeds is left to CI."""

    profiles: list[profiles.Profile]
    seeds: list[int]
    defer_verdict: bool


SELECTION = pytest.StashKey[Selection]()


def pytest_addoption(parser):
    for option in profiles.SESSION:
        kind = {"action": "store_const", "const": "1"} if option.switch else {}
        parser.addoption(
            option.flag,
            **kind,
            help=f"{option.help} (default: ${option.env}, else {option.default})",
        )


def given(config, option: profiles.Option) -> str | None:
    """An option's value: its flag's, else its environment variable's, else None."""
    value = config.getoption(option.flag)
    return os.environ.get(option.env) if value is None else value


def selection(config) -> Selection:
    """The session's Selection, resolved on first use and kept on the config; a bad value is a
    UsageError in one line, before anything trains."""
    if SELECTION not in config.stash:
        config.stash[SELECTION] = resolve(config)
    return config.stash[SELECTION]


def resolve(config) -> Selection:
    profile, seeds, defer = (given(config, option) for option in profiles.SESSION)
    try:
        gate = profiles.load()
        if seeds is None:
            chosen = gate.seeds("local")
        else:
            try:
                chosen = [int(s) for s in seeds.split(",")]
            except ValueError:
                raise profiles.ConfigError(
                    f"--seeds takes integers separated by commas, got {seeds!r}"
                ) from None
            chosen = profiles.check_seeds(chosen, f"--seeds {seeds!r}")
    except profiles.ConfigError as err:
        raise pytest.UsageError(str(err)) from None
    names = list(gate.profiles) if profile in (None, "all") else profile.split(",")
    unknown = [name for name in names if name not in gate.profiles]
    if unknown:
        defined = ", ".join(gate.profiles)
        raise pytest.UsageError(
            f"unknown profile {', '.join(unknown)}; pyproject.toml defines {defined}"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise pytest.UsageError(f"--profile names {twice[0]} twice; each profile is judged once")
    return Selection([gate.profiles[name] for name in names], chosen, defer == "1")


def pytest_configure(config):
    """A bad --profile or --seeds, or a profile that cannot train as pyproject.toml sets it,
    stops the run before any test: before the slow tier removes or trains anything."""
    from mnist_gate.settings import ConfigError

    from . import gate_runs

    chosen = selection(config)
    try:
        for profile in chosen.profiles:
            for seed in chosen.seeds:
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

    for profile in selection(config).profiles:  # an earlier session's verdict is not this one's
        verdict_file(profile.name).unlink(missing_ok=True)


def pytest_report_header(config):
    names = ", ".join(p.name for p in selection(config).profiles)
    seeds = ", ".join(map(str, selection(config).seeds))
    return f"gated profiles: {names}; slow-tier seeds: {seeds}"


def pytest_generate_tests(metafunc):
    if "profile" in metafunc.fixturenames:
        gated = selection(metafunc.config).profiles
        metafunc.parametrize("profile", gated, ids=[p.name for p in gated], scope="session")
    if "seed" in metafunc.fixturenames:
        seeds = selection(metafunc.config).seeds
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

    try:
        chosen = selection(config)
    except pytest.UsageError:
        return None  # pytest_configure says what is wrong, in one line
    runs = len(chosen.profiles) * len(chosen.seeds)
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
        if not selection(self.config).defer_verdict:  # else CI's verdict job judges them all
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

    chosen = selection(config)
    return [
        judge_seeds(profile, chosen.seeds)
        for profile in chosen.profiles
        if sorted(ran.get(profile.name, [])) == sorted(chosen.seeds)
    ]


def not_judged(config, ran: dict[str, list[int]]) -> list[str]:
    """Each profile x seed asked for whose run did not train and keep its budget in this session:
    its test failed, was deselected (-k) or never ran. A verdict over fewer seeds than asked for
    is no verdict."""
    return [
        f"profile {profile.name} seed {seed}: not trained and judged in this session"
        for profile in selection(config).profiles
        for seed in selection(config).seeds
        if seed not in ran.get(profile.name, [])
    ]
