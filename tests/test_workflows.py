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

from mnist_gate import profiles
from mnist_gate.paths import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
FAST_COMMAND, SLOW_COMMAND = "pytest", "pytest -m slow"
VERDICT = "python -I scripts/isolated.py mnist_gate.verdict"  # nothing from the root imported


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
    found = shutil.which(name)
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
    assert FAST_COMMAND in runs(job) and "ruff check ." in runs(job)


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


def test_the_gate_job_runs_the_slow_tier_and_uploads_its_seeds():
    job = load("gate-run.yml")["jobs"]["gate"]
    # Every profile x seed of the job at once, as many as -n auto's rule (conftest.py) allows.
    assert f"{SLOW_COMMAND} -n auto" in runs(job)
    # Failing checks become error annotations on GitHub (the plugin is idle elsewhere).
    assert "pytest-github-actions-annotate-failures==" in (ROOT / "requirements.txt").read_text()
    upload = upload_step(job)
    name = upload["with"]["name"]
    assert "${{ matrix.seeds }}" in name and "${{ github.run_id }}" in name
    assert upload["with"]["path"] == "runs/gate-*"  # a folder per profile and seed
    # "Re-run failed jobs" replaces the failed job's artifact and keeps the others: no attempt
    # in the name, and overwriting allowed.
    assert "run_attempt" not in name and upload["with"]["overwrite"] is True
    assert upload["with"]["retention-days"] <= 30


def gate_jobs(kind: str, event: str) -> list[str]:
    """The GATE_SEEDS of each gate job of a kind (gpu, cpu) for an event: the seeds job's own
    command, run here with Python alone (no torch, no numpy), as that kind's caller sets it up."""
    seeds_job = load("gate-run.yml")["jobs"]["seeds"]
    (step,) = [s for s in steps(seeds_job) if "run" in s]
    command = step["run"].split(">>")[0].strip()
    per_job = load("gate.yml")["jobs"][kind]["with"]["seeds-per-job"]
    context = EVENTS.get(event, {"event_name": event})
    where = evaluate(step["env"]["WHERE"], **context)
    # A pull request's seeds come from the base branch's pyproject.toml, checked out to base/.
    budgets = evaluate(step["env"]["BUDGETS"], **context)
    assert budgets == ("base/pyproject.toml" if event == "pull_request" else "pyproject.toml")
    env = {"PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin", "WHERE": where,
           "PER_JOB": str(per_job), "BUDGETS": str(ROOT / "pyproject.toml")}  # fmt: skip
    out = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("jobs="), out.stderr
    return json.loads(out.stdout.removeprefix("jobs="))


def test_the_seeds_become_the_gate_jobs_read_from_pyproject():
    jobs = load("gate-run.yml")["jobs"]
    base = next(s for s in steps(jobs["seeds"]) if s.get("with", {}).get("path") == "base")
    assert base["if"] == "github.event_name == 'pull_request'"
    assert base["with"]["ref"] == "${{ github.base_ref }}"
    assert base["with"]["sparse-checkout"] == "pyproject.toml"
    gate = jobs["gate"]
    assert gate["needs"] == "seeds"
    assert gate["strategy"]["matrix"]["seeds"] == "${{ fromJSON(needs.seeds.outputs.jobs) }}"
    assert gate["strategy"]["fail-fast"] is False  # one job's failure must not cancel the others
    assert gate["env"]["GATE_SEEDS"] == "${{ matrix.seeds }}"
    assert gate["env"]["GATE_PROFILE"] == "all"
    assert gate["env"]["GATE_DEFER_VERDICT"] == "1"
    for event, where in (("pull_request", "ci"), ("merge_group", "ci"), ("push", "reference"),
                         ("schedule", "reference")):  # fmt: skip
        wanted = profiles.load().seeds(where)
        # The GPU gate: one job trains every seed; the CPU gate: two seeds a hosted job.
        assert gate_jobs("gpu", event) == [",".join(map(str, wanted))]
        cpu = gate_jobs("cpu", event)
        assert [int(s) for job in cpu for s in job.split(",")] == wanted
        assert all(len(job.split(",")) <= 2 for job in cpu) and len(cpu) > 1


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


def test_one_hosted_job_gathers_every_seed_and_gives_the_verdict():
    jobs = load("gate-run.yml")["jobs"]
    verdict = jobs["verdict"]
    # After failed or skipped gate jobs too, told how every job it needs ended; a cancelled run
    # stops it, and gate.yml's required check reads the cancel as a failure.
    assert verdict["needs"] == ["seeds", "gate"] and verdict["if"] == "${{ !cancelled() }}"
    assert verdict["runs-on"].startswith("ubuntu")  # GitHub-hosted: no GPU runner held for it
    commands = runs(verdict)
    assert not any("torch" in run for run in commands), "the verdict needs no torch"
    assert any(run.startswith("pip install") and "numpy==" in run for run in commands)
    final = next(run for run in commands if "$GITHUB_STEP_SUMMARY" in run)
    assert f'{VERDICT} runs/this --jobs "$JOBS"' in final
    assert "--seeds-from ci --main runs/main" in final and "--budgets base/pyproject.toml" in final
    env = next(s for s in steps(verdict) if "$GITHUB_STEP_SUMMARY" in s.get("run", ""))["env"]
    assert env["JOBS"] == "${{ toJSON(needs) }}"
    base = next(s for s in steps(verdict) if s.get("with", {}).get("path") == "base")
    assert base["with"]["ref"] == "${{ github.base_ref }}"
    # It downloads exactly the artifacts the matrix uploaded, from this run and attempt.
    upload = upload_step(jobs["gate"])
    download = next(
        s for s in steps(verdict) if s.get("uses", "").startswith("actions/download-artifact")
    )
    pattern = download["with"]["pattern"].replace("*", "")
    assert upload["with"]["name"].startswith(pattern) and "${{ matrix.seeds }}" not in pattern


def test_the_verdict_imports_no_torch():
    code = "import sys; sys.modules['torch'] = None; import mnist_gate.verdict"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_each_gate_kind_uploads_under_its_own_artifact_name():
    # A manual run starts the gpu and the cpu job in one workflow run; upload-artifact refuses a
    # name that the run already has.
    upload = upload_step(load("gate-run.yml")["jobs"]["gate"])
    callers = {k: job for k, job in load("gate.yml")["jobs"].items() if "with" in job}
    names = {
        evaluate(upload["with"]["name"].replace("inputs.kind", f"'{job['with']['kind']}'")
                 .replace("matrix.seeds", "'0,1'"), run_id=5, run_attempt=1)
        for job in callers.values()
    }  # fmt: skip
    assert len(names) == len(callers), names


def test_main_is_fetched_without_the_github_cli():
    # gh is preinstalled on GitHub's hosted images only, not on a self-hosted runner.
    for job in load("gate-run.yml")["jobs"].values():
        assert not any(re.search(r"\bgh\b", run) for run in runs(job))
    download = [
        s for s in steps(load("gate-run.yml")["jobs"]["verdict"]) if "run-id" in s.get("with", {})
    ]
    assert download and "steps.main.outputs.run-id" in download[0]["with"]["run-id"]


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
    step = next(s for s in steps(load("gate.yml")["jobs"]["gate"]) if "run" in s)
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


def test_the_runner_hook_ends_the_jobs_worker_process(tmp_path):
    # A process named Runner.Worker that runs the hook, then would go on to the job's steps.
    worker = tmp_path / "Runner.Worker"
    worker.symlink_to("/bin/bash")
    refused = hook(tmp_path, "pull_request", pull_request("someone/mnist-gate"),
                   runner=(str(worker), "-c"))  # fmt: skip
    assert refused.returncode == -signal.SIGKILL, refused.stdout + refused.stderr
    assert "ended Runner.Worker (process" in refused.stdout
    assert "the job goes on" not in refused.stdout
    admitted = hook(tmp_path, "push", {"repository": REPO}, runner=(str(worker), "-c"))
    assert admitted.returncode == 0 and admitted.stdout == "the job goes on\n"


def test_the_runner_hooks_refusal_is_written_before_the_worker_ends(tmp_path):
    # The worker forwards output every 250 to 500 ms: a line written as it dies is never seen.
    worker = tmp_path / "Runner.Worker"
    worker.symlink_to("/bin/bash")
    (tmp_path / "event.json").write_text(json.dumps(pull_request("someone/mnist-gate")))
    env = {"PATH": "/usr/bin:/bin", "GITHUB_EVENT_NAME": "pull_request",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}  # fmt: skip
    with subprocess.Popen([str(worker), "-c", f"bash {HOOK}; echo the job goes on"], env=env,
                          text=True, stdout=subprocess.PIPE) as process:  # fmt: skip
        line = process.stdout.readline()
        written = time.monotonic()
        process.wait(timeout=60)
        ended = time.monotonic()
    assert line.startswith("::error::runner hook: ") and process.returncode == -signal.SIGKILL
    assert ended - written >= 0.5, f"the worker ended {ended - written:.2f} s after the line"


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


MAIN_RUN = ROOT / "scripts" / "main_gate_run.py"


def main_reference(kind: str, answers: dict[str, bytes]) -> str:
    """scripts/main_gate_run.py's output for a kind, against a fake GitHub API that answers
    each path in `answers` (anything else: 404)."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0].removeprefix("/repos/o/r/")
            body = answers.get(path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "t", "PATH": "/usr/bin:/bin", "KIND": kind,
           "GITHUB_API_URL": f"http://127.0.0.1:{server.server_address[1]}"}  # fmt: skip
    try:
        result = subprocess.run(
            [sys.executable, str(MAIN_RUN)], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result.stdout


RUNS = "actions/workflows/gate.yml/runs"


def main_runs(*runs) -> dict[str, bytes]:
    """Answers for main's successful gate runs, newest first: (id, event, kinds it holds,
    expired) each, and a compare that shows no training change since."""
    listing = [{"id": i, "event": e, "head_sha": f"{i:040x}", "created_at": "2026-12-01T04:17:00Z"}
               for i, e, _, _ in runs]  # fmt: skip
    answers = {RUNS: json.dumps({"workflow_runs": listing}).encode()}
    for i, _, kinds, expired in runs:
        artifacts = [{"name": f"gate-{k}-{i}-seeds0,1", "expired": expired} for k in kinds]
        answers[f"actions/runs/{i}/artifacts"] = json.dumps({"artifacts": artifacts}).encode()
        answers[f"compare/{i:040x}...main"] = b'{"files": [{"filename": "README.md"}]}'
    return answers


# Main's runs as gate.yml makes them: a push trains on the GPU only, the weekly run on both.
MAIN = main_runs((9, "push", ["gpu"], False), (8, "pull_request", ["gpu", "cpu"], False),
                 (7, "schedule", ["gpu", "cpu"], False))  # fmt: skip


@pytest.mark.parametrize(
    "event, fork, kind, run",
    [("pull_request", False, "gpu", 9), ("pull_request", True, "cpu", 7),
     ("merge_group", False, "gpu", 9)],
    ids=["same-repository pull request", "fork pull request", "merge queue"],
)  # fmt: skip
def test_each_kind_of_change_finds_mains_reference_of_its_own_kind(event, fork, kind, run):
    (caller,) = jobs_that_run(event, fork) - {"gate"}
    assert load("gate.yml")["jobs"][caller]["with"]["kind"] == kind
    jobs = load("gate-run.yml")["jobs"]
    for name in ("verdict", "regression"):
        condition = jobs[name]["if"].removeprefix("${{ ").removesuffix(" }}")
        condition = condition.replace("!cancelled()", "True")
        assert evaluate("${{ " + condition + " }}", **EVENTS.get(event, {"event_name": event}))
        find = next(s for s in steps(jobs[name]) if "main_gate_run.py" in s.get("run", ""))
        assert find["env"]["KIND"] == "${{ inputs.kind }}"
        if "if" in find:
            assert evaluate("${{ " + find["if"] + " }}", event_name=event) is True
        download = next(
            s for s in steps(jobs[name]) if s.get("with", {}).get("path") == "runs/main"
        )
        assert download["with"]["pattern"] == (
            "gate-${{ inputs.kind }}-${{ steps.main.outputs.run-id }}-seeds*"
        )
    out = main_reference(kind, MAIN)
    assert out.startswith(f"run-id={run}\nabout=Main's reference: gate run {run} (")
    assert "2026-12-01) of commit 0000000000" in out and "stale" not in out


def test_a_stale_or_expired_reference_is_said():
    answers = {**MAIN, "compare/0000000000000000000000000000000000000009...main":
               b'{"files": [{"filename": "train.py"}, {"filename": "README.md"}]}'}  # fmt: skip
    assert "Main has changed training since (train.py), so the reference is stale" in (
        main_reference("gpu", answers)
    )
    expired = main_runs((9, "push", ["gpu"], True), (7, "schedule", ["gpu", "cpu"], True))
    out = main_reference("cpu", expired)
    assert out == (
        "note=None of main's last 2 successful gate runs has a gate-cpu result to compare with: "
        "their artifacts expired. The weekly run, or a manual one, makes a new one.\n"
    )


@pytest.mark.parametrize(
    "body, output",
    [
        (b'{"workflow_runs": []}', "note=Main has no successful gate run to compare with yet."),
        (b'{"workflow_runs": [{"id": 4', "note=Could not ask GitHub"),
        (b"[1, 2]", "note=GitHub's answer about main's gate runs had no list of workflow_runs."),
        (b'{"workflow_runs": [{"id": "x", "event": "push"}]}', "note=Main has no successful"),
        (b'{"workflow_runs": [{"id": 5, "event": "pull_request"}]}', "note=Main has no success"),
    ],
    ids=["none yet", "truncated", "not an object", "odd id", "not main's own event"],
)  # fmt: skip
def test_mains_reference_is_a_run_or_a_sentence_never_a_failure(body, output):
    out = main_reference("gpu", {RUNS: body})
    assert out.startswith(output) and out.count("\n") == 1, out


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
    assert not os.access(env, os.W_OK) or os.geteuid() == 0  # root writes anywhere
    assert not (os.stat(env).st_mode & 0o222), "a job could change what the next one reuses"
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


def test_a_pull_request_gets_a_regression_check_of_its_own():
    job = load("gate-run.yml")["jobs"]["regression"]
    assert job["needs"] == ["seeds", "gate"] and job["if"].startswith("${{ !cancelled() && ")
    assert "pull_request" in job["if"] and job["name"] == "regression"
    (final,) = [run for run in runs(job) if "$GITHUB_STEP_SUMMARY" in run]
    assert f"{VERDICT} runs/this --check regression --main runs/main" in final
    assert '--main-about "$MAIN_ABOUT"' in final


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


def scratch_verdict(root: Path, extra: dict[str, str]) -> Path:
    """The verdict's code in a scratch checkout, with a failing 8k run and these root files."""
    from .helpers import record, save

    shutil.copytree(ROOT / "mnist_gate", root / "mnist_gate",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (root / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "isolated.py", root / "scripts")
    shutil.copy(ROOT / "pyproject.toml", root)
    (root / "data").symlink_to(ROOT / "data")
    save(root / "runs" / "this" / "gate-8k-seed0", record(accuracy=0.99))
    for name, text in extra.items():
        (root / name).write_text(text)
    return root


def test_a_module_a_pull_request_adds_at_the_root_cannot_change_the_verdict(tmp_path):
    # Imported in place of numpy, it would end the verdict with success before it judged.
    root = scratch_verdict(tmp_path, {"numpy.py": "raise SystemExit(0)\n"})
    args = ["runs/this", "--seeds", "0", "--profile", "8k"]
    env = {"PATH": os.environ["PATH"]}
    plain = subprocess.run([sys.executable, "-m", "mnist_gate.verdict", *args], cwd=root,
                           env=env, capture_output=True, text=True)  # fmt: skip
    assert plain.returncode == 0, "the plain command was expected to import the root's numpy.py"
    python, script, module = VERDICT.split()[0], *VERDICT.split()[2:]
    assert (python, script, module) == ("python", "scripts/isolated.py", "mnist_gate.verdict")
    ours = subprocess.run([sys.executable, "-I", script, module, *args], cwd=root, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert ours.returncode == 1 and "**FAIL**" in ours.stdout, ours.stderr


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
