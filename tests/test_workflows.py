"""The GitHub workflows keep their promises: checked offline, on every run of the fast tier."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from ruamel.yaml import YAML

from mnist_gate.paths import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
FAST_COMMAND, SLOW_COMMAND = "pytest", "pytest -m slow"


def load(name: str) -> dict:
    return YAML(typ="safe").load((WORKFLOWS / name).read_text())


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def runs(job: dict) -> list[str]:
    return [step["run"].strip() for step in steps(job) if "run" in step]


def all_jobs():
    for path in FILES:
        for name, job in load(path.name)["jobs"].items():
            yield f"{path.name}:{name}", job


def tool(name: str) -> str:
    """An installed tool: beside the Python running the tests first (a virtual environment used
    without activating it), then on PATH."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent),
                                                     os.environ.get("PATH", "")]))  # fmt: skip
    if found is None:
        pytest.fail(f"{name} is not installed; pip install -r requirements.txt")
    return found


def test_every_workflow_matches_the_github_workflow_schema():
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependabot_configuration_matches_its_schema_and_moves_the_action_pins():
    path = ROOT / ".github" / "dependabot.yml"
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    updates = YAML(typ="safe").load(path.read_text())["updates"]
    assert any(u["package-ecosystem"] == "github-actions" for u in updates)


@pytest.mark.parametrize("name", ["check-jsonschema", "zizmor"])
def test_a_tool_the_project_installs_is_found_without_activating_its_environment(name, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `.venv/bin/python -m pytest`, not activated
    assert Path(tool(name)).parent == Path(sys.executable).parent


def test_zizmor_pedantic_finds_nothing():
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", str(ROOT / ".github")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "No findings" in result.stdout + result.stderr, (
        result.stdout + result.stderr
    )


def test_the_readme_and_ci_name_the_same_commands():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    for command in (FAST_COMMAND, SLOW_COMMAND):
        assert re.search(rf"^{command}( && \\)?$", readme, re.M), f"README never runs `{command}`"
        assert re.search(rf"^(\S+=\S+ )*{command}$", ci, re.M), f".ci/run never runs `{command}`"


def test_the_fast_job_lints_and_runs_the_fast_tier_once_per_change():
    fast = load("fast.yml")
    # Pushes to main, pull requests and the merge queue: a branch's push is covered by its pull
    # request.
    assert fast["on"]["push"] == {"branches": ["main"]}
    assert "pull_request" in fast["on"] and "merge_group" in fast["on"]
    job = fast["jobs"]["checks"]
    assert FAST_COMMAND in runs(job) and "ruff check . && ruff format --check ." in runs(job)


def evaluate(value, **github):
    """A workflow value with its ${{ }} expressions worked out for one run, as GitHub would for
    the few operators used here (==, &&, ||, parentheses, quoted strings)."""
    context = {"github": SimpleNamespace(**github)}

    def one(match):
        expr = match.group(1).replace("&&", " and ").replace("||", " or ")
        return str(eval(expr, {}, context))  # our own workflow files, not untrusted input

    text = re.sub(r"\$\{\{(.*?)\}\}", one, str(value))
    return {"True": True, "False": False}.get(text, text)


EVENTS = {
    "pull_request": {"event_name": "pull_request", "ref": "refs/pull/7/merge"},
    "push": {"event_name": "push", "ref": "refs/heads/main"},
    "schedule": {"event_name": "schedule", "ref": "refs/heads/main"},
    "workflow_dispatch": {"event_name": "workflow_dispatch", "ref": "refs/heads/main"},
}


@pytest.mark.parametrize("name", ["fast.yml", "gate.yml"])
def test_only_a_newer_pull_request_run_cancels_an_older_one(name):
    concurrency = load(name)["concurrency"]

    def run(event: str, run_id: int):
        github = {**EVENTS[event], "run_id": run_id}
        return (
            evaluate(concurrency["group"], **github),
            evaluate(concurrency["cancel-in-progress"], **github),
        )

    group, cancel = run("pull_request", 1)
    assert run("pull_request", 2) == (group, True) and cancel is True
    # Runs on main never share a group (a group holds one pending run and drops the one before
    # it) and never cancel: a weekly CPU run or a second merge leaves the GPU gate on main alone.
    main_runs = [run(event, run_id) for run_id, event in enumerate(EVENTS, start=10)]
    main_runs = [r for r, event in zip(main_runs, EVENTS, strict=True) if event != "pull_request"]
    assert len({g for g, _ in main_runs}) == len(main_runs)
    assert all(c is False for _, c in main_runs)


def upload_step(job: dict) -> dict:
    return next(s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact"))


def test_the_gpu_job_shares_the_gpu_between_its_processes_and_stops_sharing_after():
    job = load("gate-run.yml")["jobs"]["gate"]
    named = {s.get("name", ""): s for s in steps(job)}
    start = next(s for name, s in named.items() if "MPS" in name and "Stop" not in name)
    stop = named["Stop MPS"]
    gate = next(s for s in steps(job) if s.get("run") == f"{SLOW_COMMAND} -n auto")
    assert start["if"] == "inputs.kind == 'gpu'" and "nvidia-cuda-mps-control -d" in start["run"]
    assert stop["if"] == "always() && inputs.kind == 'gpu'" and "quit" in stop["run"]
    # The daemon, the gate's processes and the stop meet at one pipe directory.
    pipes = {s["env"]["CUDA_MPS_PIPE_DIRECTORY"] for s in (start, gate, stop)}
    assert pipes == {"${{ runner.temp }}/mps"}
    order = steps(job)
    assert (
        order.index(start) < order.index(gate) < order.index(stop) < order.index(upload_step(job))
    )
    # Without MPS the gate still runs, slower, and says so.
    assert "::warning::" in start["run"]


def test_the_torch_pins_are_read_from_requirements():
    for path in FILES:
        assert not re.search(r"torch(vision)?==\d", path.read_text()), path.name


def test_the_verdict_imports_no_torch():
    code = "import sys; sys.modules['torch'] = None; import mnist_gate.verdict"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_gate_environment_lives_outside_the_workspace():
    job = load("gate-run.yml")["jobs"]["gate"]
    assert any(run.startswith("scripts/gate-env.sh") for run in runs(job))
    assert not any("python3 -m venv .venv" in run for run in runs(job))


def test_the_badges_show_main_pushes_only():
    readme = (ROOT / "README.md").read_text()
    for name in ("fast", "gate"):
        badge = re.search(rf"actions/workflows/{name}\.yml/badge\.svg(\S*?)\)", readme)
        assert badge and badge.group(1) == "?branch=main&event=push", f"{name} badge: {badge}"


def jobs_that_run(event: str, fork: bool = False) -> set[str]:
    """The gate.yml jobs whose `if:` holds for an event, worked out as GitHub would."""
    repository = "owner/mnist-gate"
    head = SimpleNamespace(repo=SimpleNamespace(full_name="someone/mnist-gate" if fork else
                                                repository))  # fmt: skip
    github = {
        **EVENTS.get(event, {"event_name": event, "ref": "refs/heads/main"}),
        "repository": repository, "event": SimpleNamespace(pull_request=SimpleNamespace(head=head)),
    }  # fmt: skip
    found = set()
    for name, job in load("gate.yml")["jobs"].items():
        condition = " ".join(job.get("if", "true").split()).replace("always()", "True")
        if evaluate("${{ " + condition + " }}", **github) is True:
            found.add(name)
    return found


@pytest.mark.parametrize(
    "event, fork, expected",
    [
        ("push", False, {"gpu", "gate"}),
        ("pull_request", False, {"gpu", "gate"}),
        ("pull_request", True, {"cpu", "gate"}),  # never the self-hosted runner
        ("merge_group", False, {"gpu", "gate"}),
        ("workflow_dispatch", False, {"gpu", "cpu", "gate"}),
        ("schedule", False, {"gpu", "cpu", "gate"}),  # keeps main's result fresh
    ],
)
def test_each_event_runs_the_gate_it_needs(event, fork, expected):
    assert jobs_that_run(event, fork) == expected


def test_the_gpu_gate_runs_on_a_self_hosted_gpu_runner_and_the_cpu_gate_on_hosted_ones():
    gate = load("gate.yml")
    gpu, cpu = gate["jobs"]["gpu"]["with"], gate["jobs"]["cpu"]["with"]
    assert gpu["runner"].startswith('["self-hosted"') and '"gpu"' in gpu["runner"]
    assert cpu["runner"] == '"ubuntu-24.04"' and "cpu" in cpu["torch-index"]
    assert {"push", "pull_request", "merge_group", "workflow_dispatch", "schedule"} <= set(
        gate["on"]
    )
    assert gate["on"]["push"]["branches"] == ["main"]
    for path in FILES:
        assert "pull_request_target" not in path.read_text(), path.name


def test_hosted_gates_run_the_pinned_python():
    job = load("gate-run.yml")["jobs"]["gate"]
    setup = next(s for s in steps(job) if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["if"] == "inputs.kind != 'gpu'" and setup["with"]["python-version"] == "3.11"


REQUIRED = ROOT / "scripts" / "required_gate.py"


@pytest.mark.parametrize(
    "event, fork, gpu, cpu, passes",
    [
        ("push", "false", "success", "skipped", True),
        ("push", "false", "failure", "skipped", False),
        ("push", "false", "cancelled", "skipped", False),
        ("pull_request", "false", "skipped", "skipped", False),  # the gpu gate never ran
        ("pull_request", "true", "skipped", "success", True),
        ("pull_request", "true", "skipped", "failure", False),
        ("merge_group", "false", "success", "skipped", True),
        ("workflow_dispatch", "false", "success", "failure", True),  # the CPU run informs
        ("schedule", "false", "failure", "success", False),
    ],
)  # fmt: skip
def test_the_one_required_check_passes_only_when_the_gate_its_event_needs_passed(
    event, fork, gpu, cpu, passes
):
    job = load("gate.yml")["jobs"]["gate"]
    assert job["needs"] == ["gpu", "cpu"] and job["if"].startswith("always()")
    assert "python3 -I scripts/required_gate.py" in runs(job)
    jobs = json.dumps({"gpu": {"result": gpu}, "cpu": {"result": cpu}})
    result = subprocess.run(
        [sys.executable, str(REQUIRED)], capture_output=True, text=True,
        env={"EVENT": event, "FORK": fork, "JOBS": jobs, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert (result.returncode == 0) is passes, result.stdout + result.stderr
    assert len((result.stdout + result.stderr).strip().splitlines()) == 1


@pytest.mark.parametrize("name, job", list(all_jobs()), ids=[name for name, _ in all_jobs()])
def test_every_job_is_least_privilege_and_time_limited(name, job):
    assert "permissions" in job, f"{name} has no permissions block"
    if "steps" in job:
        assert "timeout-minutes" in job, f"{name} has no timeout-minutes"
    for step in steps(job):
        if step.get("uses", "").startswith("actions/checkout"):
            assert step["with"]["persist-credentials"] is False, f"{name} keeps git credentials"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_workflows_start_with_no_permissions_and_pin_actions_to_commits(path):
    assert load(path.name)["permissions"] == {}, f"{path.name}: top-level permissions not empty"
    for line in path.read_text().splitlines():
        match = re.search(r"uses: ([\w./-]+)@(\S+)(.*)", line)
        if match:
            action, ref, comment = match.groups()
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action} pinned to {ref}, not a commit"
            assert re.search(r"# v\d", comment), f"{action}@{ref} has no version comment"


def every_uses():
    for path in FILES:
        for name, job in load(path.name)["jobs"].items():
            if "uses" in job:
                yield f"{path.name}:{name}", "job", job["uses"]
            for step in steps(job):
                if "uses" in step:
                    yield f"{path.name}:{name}", "step", step["uses"]


def test_every_uses_is_in_a_form_github_documents():
    # The schema check takes any string. A reusable workflow of this repository is called as
    # ./.github/workflows/NAME.yml, the form every runner and GitHub Enterprise Server take; an
    # action as OWNER/REPO[/PATH]@COMMIT.
    found = list(every_uses())
    assert any(kind == "job" for _, kind, _ in found)
    for where, kind, uses in found:
        if kind == "job":
            assert re.fullmatch(r"\./\.github/workflows/[\w.-]+\.ya?ml", uses), (where, uses)
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", uses), (where, uses)


@pytest.mark.parametrize("event", ["push", "schedule", "workflow_dispatch", "merge_group"])
def test_the_required_checks_message_names_a_fork_only_for_a_fork(event):
    step = next(s for s in steps(load("gate.yml")["jobs"]["gate"]) if "FORK" in s.get("env", {}))
    github = {"event_name": event, "repository": "owner/mnist-gate",
              "event": SimpleNamespace(pull_request=None)}  # fmt: skip
    fork = evaluate(step["env"]["FORK"].replace("github.event.pull_request.head.repo.full_name",
                                                "None"), **github)  # fmt: skip
    assert fork is False
    jobs = json.dumps({"gpu": {"result": "failure"}, "cpu": {"result": "skipped"}})
    result = subprocess.run(
        [sys.executable, str(REQUIRED)], capture_output=True, text=True,
        env={"EVENT": event, "FORK": "true", "JOBS": jobs, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1 and "fork" not in result.stderr, result.stderr


HOOK = ROOT / "scripts" / "runner-job-started.sh"
REPO = {"full_name": "owner/mnist-gate"}


def pull_request(head: str | None) -> dict:
    head_repo = {"full_name": head} if head else None
    return {
        "number": 7,
        "pull_request": {"number": 7, "head": {"repo": head_repo}},
        "repository": REPO,
    }


def hook(tmp_path, name: str | None, event: dict | None, path: str = "/usr/bin:/bin", runner=()):
    """The hook as the runner starts it: GITHUB_EVENT_NAME, the event file, the job's PATH; under
    `runner` (a command that runs it), else on its own."""
    env = {"PATH": path}
    if name is not None:
        env["GITHUB_EVENT_NAME"] = name
    if event is not None:
        (tmp_path / "event.json").write_text(json.dumps(event))
        env["GITHUB_EVENT_PATH"] = str(tmp_path / "event.json")
    command = [*runner, f"bash {HOOK} && echo the job goes on"] if runner else ["bash", str(HOOK)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "name, event, allowed",
    [
        ("pull_request", pull_request("owner/mnist-gate"), True),
        ("pull_request", pull_request("someone/mnist-gate"), False),
        ("pull_request", pull_request(None), False),  # the fork was deleted
        ("push", {"ref": "refs/heads/main", "repository": REPO}, True),
        ("schedule", {"schedule": "17 4 * * 1", "repository": REPO}, True),
        ("workflow_dispatch", {"inputs": {}, "ref": "refs/heads/main", "repository": REPO}, True),
        ("merge_group", {"merge_group": {}, "repository": REPO}, True),
        ("pull_request_target", pull_request("someone/mnist-gate"), False),
        ("issue_comment", {"repository": REPO}, False),
        ("some_future_event", {"repository": REPO}, False),
        (None, {"repository": REPO}, False),
    ],
    ids=["same-repo pull request", "fork pull request", "deleted fork", "push", "schedule",
         "dispatch", "merge queue", "pull_request_target", "comment", "unknown", "no name"],
)  # fmt: skip
def test_the_runner_hook_admits_only_the_events_the_workflows_use(tmp_path, name, event, allowed):
    result = hook(tmp_path, name, event)
    if allowed:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("::error::runner hook: "), result.stdout


def test_the_runner_hook_refuses_when_it_cannot_read_the_event(tmp_path):
    for event_path in (None, str(tmp_path / "missing.json")):
        env = {"PATH": "/usr/bin:/bin", "GITHUB_EVENT_NAME": "push"}
        if event_path:
            env["GITHUB_EVENT_PATH"] = event_path
        result = subprocess.run(["bash", str(HOOK)], env=env, capture_output=True, text=True)
        assert result.returncode != 0 and "runner hook:" in result.stdout


def test_the_runner_hook_ends_the_jobs_worker_process_after_its_refusal_is_written(tmp_path):
    # A process named Runner.Worker that runs the hook, then would go on to the job's steps. It
    # forwards output every 250 to 500 ms: a line written as it dies would never be seen.
    worker = tmp_path / "Runner.Worker"
    worker.symlink_to("/bin/bash")
    (tmp_path / "event.json").write_text(json.dumps(pull_request("someone/mnist-gate")))
    env = {"PATH": "/usr/bin:/bin", "GITHUB_EVENT_NAME": "pull_request",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}  # fmt: skip
    with subprocess.Popen([str(worker), "-c", f"bash {HOOK} && echo the job goes on"], env=env,
                          text=True, stdout=subprocess.PIPE) as process:  # fmt: skip
        line = process.stdout.readline()
        written = time.monotonic()
        rest = process.communicate(timeout=60)[0]
        ended = time.monotonic()
    assert process.returncode == -signal.SIGKILL, line + rest
    assert line.startswith("::error::runner hook: ") and "ended Runner.Worker (process" in line
    assert "the job goes on" not in rest
    assert ended - written >= 0.5, f"the worker ended {ended - written:.2f} s after the line"
    admitted = hook(tmp_path, "push", {"repository": REPO}, runner=(str(worker), "-c"))
    assert admitted.returncode == 0 and admitted.stdout == "the job goes on\n"


def test_the_runner_hook_runs_nothing_from_the_jobs_path(tmp_path):
    # A python3 (and an env) early on PATH that would admit anything.
    for name in ("python3", "python", "env"):
        fake = tmp_path / "bin" / name
        fake.parent.mkdir(exist_ok=True)
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    result = hook(tmp_path, "pull_request", pull_request("someone/mnist-gate"),
                  path=f"{tmp_path / 'bin'}:/usr/bin:/bin")  # fmt: skip
    assert result.returncode != 0 and "comes from someone/mnist-gate" in result.stdout


GATE_ENV = ROOT / "scripts" / "gate-env.sh"
STUB_PYTHON = """#!/bin/bash
# python3 as gate-env.sh uses it: --version, and -m venv DIR, whose pip logs what it installs and
# whose python imports when $STUB_IMPORTS says so.
if [ "$1" = --version ]; then echo "Python 3.11.0"; exit 0; fi
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/bash\\necho "pip $*" >> "$STUB_LOG"\\n' > "$3/bin/pip"
    printf '#!/bin/bash\\n[ "$STUB_IMPORTS" = yes ]\\n' > "$3/bin/python"
    chmod +x "$3/bin/pip" "$3/bin/python"
    exit 0
fi
exit 2
"""


def gate_env(tmp_path, index: str, imports: str = "yes", root: str = "envs"):
    stub = tmp_path / "stub" / "python3"
    if not stub.exists():
        stub.parent.mkdir()
        stub.write_text(STUB_PYTHON)
        stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "GATE_ENV_ROOT": str(tmp_path / root), "GATE_ENV_IMAGE": str(tmp_path / "image"),
           "STUB_LOG": str(tmp_path / "pip.log"), "STUB_IMPORTS": imports}  # fmt: skip
    return subprocess.run(["bash", str(GATE_ENV), index], env=env, capture_output=True, text=True)


def pip_calls(tmp_path) -> list[str]:
    log = tmp_path / "pip.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_the_gate_environment_is_built_once_read_only_and_reused(tmp_path):
    first = gate_env(tmp_path, "https://index/a")
    assert first.returncode == 0, first.stderr
    env = first.stdout.strip().removesuffix("/bin")
    calls = pip_calls(tmp_path)
    assert len(calls) == 2 and "torch==" in calls[0] and "--index-url https://index/a" in calls[0]
    # By its mode bits, which hold for root too (root could write anyway, but no job runs as it).
    writable = [p for p in [Path(env), *Path(env).rglob("*")]
                if not p.is_symlink() and p.stat().st_mode & 0o222]  # fmt: skip
    assert not writable, f"a job could change what the next one reuses: {writable[:3]}"
    again = gate_env(tmp_path, "https://index/a")
    assert again.stdout == first.stdout and pip_calls(tmp_path) == []
    assert "reusing" in again.stderr


def test_an_environment_that_no_longer_imports_is_rebuilt(tmp_path):
    gate_env(tmp_path, "https://index/a")
    pip_calls(tmp_path)
    broken = gate_env(tmp_path, "https://index/a", imports="no")
    assert broken.returncode != 0  # rebuilt, and the rebuilt one still does not import
    assert "building" in broken.stderr and len(pip_calls(tmp_path)) == 2


def test_the_gate_environments_disk_is_bounded(tmp_path):
    for index in ("a", "b", "c", "d", "e"):
        assert gate_env(tmp_path, f"https://index/{index}").returncode == 0
        time.sleep(0.01)  # distinct modification times
    envs = sorted((tmp_path / "envs").glob("venv-*"))
    assert len(envs) == 3
    latest = gate_env(tmp_path, "https://index/e").stdout.strip().removesuffix("/bin")
    assert latest in map(str, envs)
    assert "PIP_NO_CACHE_DIR=1" in GATE_ENV.read_text()  # pip's own cache never grows


def test_an_environment_baked_into_the_runner_image_is_used_as_it_is(tmp_path):
    # Made when the image is built (as root, so no job can change it), for this requirements.txt.
    assert gate_env(tmp_path, "https://index/a", root="image").returncode == 0
    pip_calls(tmp_path)
    used = gate_env(tmp_path, "https://index/a")
    assert used.returncode == 0 and used.stdout.startswith(str(tmp_path / "image")), used.stderr
    assert (
        pip_calls(tmp_path) == [] and not (tmp_path / "envs").exists()
    )  # nothing built, nor written
    # Requirements the image was not built for: built for the job, and the job says so.
    other = gate_env(tmp_path, "https://index/b")
    assert other.stdout.startswith(str(tmp_path / "envs")) and len(pip_calls(tmp_path)) == 2
    assert "::warning::the runner image's" in other.stderr and "rebuild the image" in other.stderr


def owners(path: str) -> list[str]:
    """The owners .github/CODEOWNERS gives a file (its last matching rule wins), for the three
    kinds of pattern it uses: `*`, `/folder/` and `/file`."""
    found = []
    for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pattern, *names = line.split()
        if pattern == "*" or ("/" + path).startswith(pattern) or "/" + path == pattern:
            found = names
    return found


def test_every_file_needs_a_code_owners_review():
    rules = [line for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
             if line.strip() and not line.startswith("#")]  # fmt: skip
    assert rules[0].split()[0] == "*", "a catch-all first, more specific owners after"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    # Files a pull request could add at the root, which pytest or the verdict would pick up: a
    # conftest.py or pytest.ini changes what `pytest` runs, so review is what stops them.
    for path in [*tracked.stdout.split(), "conftest.py", "pytest.ini", "numpy.py", "new/file"]:
        assert owners(path), f"{path} needs no review"


def test_the_required_check_warns_while_codeowners_names_the_placeholder(tmp_path):
    jobs = json.dumps({"gpu": {"result": "success"}, "cpu": {"result": "skipped"}})
    for owner, warned in (("@OWNER", True), ("@someone", False)):
        (tmp_path / "scripts").mkdir(exist_ok=True)
        (tmp_path / ".github").mkdir(exist_ok=True)
        shutil.copy(REQUIRED, tmp_path / "scripts")
        (tmp_path / ".github" / "CODEOWNERS").write_text(f"# owners\n* {owner}\n")
        summary = tmp_path / "summary.md"
        summary.write_text("")
        result = subprocess.run(
            [sys.executable, "-I", str(tmp_path / "scripts" / REQUIRED.name)],
            capture_output=True, text=True,
            env={"EVENT": "push", "FORK": "false", "JOBS": jobs, "PATH": "/usr/bin:/bin",
                 "GITHUB_STEP_SUMMARY": str(summary)},
        )  # fmt: skip
        assert result.returncode == 0 and len(result.stdout.splitlines()) == 1, result.stderr
        assert ("still names @OWNER" in summary.read_text()) is warned, summary.read_text()


@pytest.mark.parametrize("jobs", ["null", "[]", "{}", '{"gpu": "success"}', '{"gpu": {}}', "{x"])
def test_the_required_check_refuses_a_needs_context_of_another_shape_in_one_line(jobs):
    result = subprocess.run(
        [sys.executable, str(REQUIRED)], capture_output=True, text=True,
        env={"EVENT": "push", "FORK": "false", "JOBS": jobs, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "is not GitHub's needs context" in (
        result.stderr
    ), result.stderr
