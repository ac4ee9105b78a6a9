"""The GitHub workflows keep their promises: checked offline, on every run of the fast tier."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ruamel.yaml import YAML

from mnist_gate import budgets
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
    # Pushes to main, and pull requests: a branch's push is covered by its pull request.
    assert fast["on"]["push"] == {"branches": ["main"]} and "pull_request" in fast["on"]
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


def test_the_gate_job_runs_the_slow_tier_and_uploads_each_seed():
    job = load("gate-run.yml")["jobs"]["gate"]
    assert SLOW_COMMAND in runs(job)
    # Failing checks become error annotations on GitHub (the plugin is idle elsewhere).
    assert "pytest-github-actions-annotate-failures==" in (ROOT / "requirements.txt").read_text()
    upload = next(s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "${{ matrix.seed }}" in upload["with"]["name"]
    assert (
        "${{ github.run_id }}" in upload["with"]["name"] and upload["with"]["retention-days"] <= 30
    )


def test_seeds_become_a_job_matrix_read_from_pyproject():
    jobs = load("gate-run.yml")["jobs"]
    gate = jobs["gate"]
    assert gate["needs"] == "seeds"
    assert gate["strategy"]["matrix"]["seed"] == "${{ fromJSON(needs.seeds.outputs.list) }}"
    assert gate["strategy"]["fail-fast"] is False  # one seed's failure must not cancel the others
    assert gate["env"]["GATE_SEEDS"] == "${{ matrix.seed }}"
    assert gate["env"]["GATE_DEFER_VERDICT"] == "1"
    # The seeds job's own command, run here with Python alone (no torch, no numpy), reads
    # [tool.gate.seeds] ci.
    (read,) = runs(jobs["seeds"])
    command = read.split(">>")[0].strip()
    env = {"PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"}
    out = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert out.stdout.strip() == "list=" + json.dumps(budgets.seeds("ci")), out.stderr


def test_the_torch_pins_are_read_from_requirements():
    for path in FILES:
        assert not re.search(r"torch(vision)?==\d", path.read_text()), path.name


def test_one_hosted_job_gathers_every_seed_and_gives_the_verdict():
    jobs = load("gate-run.yml")["jobs"]
    verdict = jobs["verdict"]
    assert verdict["needs"] == "gate" and "always()" in verdict["if"]
    assert verdict["runs-on"].startswith("ubuntu")  # GitHub-hosted: no GPU runner held for it
    commands = runs(verdict)
    assert not any("torch" in run for run in commands), "the verdict needs no torch"
    assert any(run.startswith("pip install") and "numpy==" in run for run in commands)
    final = next(run for run in commands if "$GITHUB_STEP_SUMMARY" in run)
    assert "python -m mnist_gate.verdict runs/this" in final and "--main runs/main" in final
    # It downloads exactly the artifacts the matrix uploaded, from this run and attempt.
    upload = next(
        s for s in steps(jobs["gate"]) if s.get("uses", "").startswith("actions/upload-artifact")
    )
    download = next(
        s for s in steps(verdict) if s.get("uses", "").startswith("actions/download-artifact")
    )
    pattern = download["with"]["pattern"].replace("*", "")
    assert upload["with"]["name"].startswith(pattern) and "${{ matrix.seed }}" not in pattern


def test_the_verdict_imports_no_torch():
    code = "import sys; sys.modules['torch'] = None; import mnist_gate.verdict"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_each_gate_kind_uploads_under_its_own_artifact_name():
    # A manual run starts the gpu and the cpu job in one workflow run; upload-artifact refuses a
    # name that the run already has.
    upload = next(
        s
        for s in steps(load("gate-run.yml")["jobs"]["gate"])
        if s.get("uses", "").startswith("actions/upload-artifact")
    )
    callers = load("gate.yml")["jobs"]
    names = {
        evaluate(upload["with"]["name"].replace("inputs.kind", f"'{job['with']['kind']}'")
                 .replace("matrix.seed", "0"), run_id=5, run_attempt=1)
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


def test_the_gpu_gate_runs_on_a_self_hosted_gpu_runner_and_never_for_forks():
    gate = load("gate.yml")
    gpu = gate["jobs"]["gpu"]
    assert gpu["with"]["runner"].startswith('["self-hosted"') and '"gpu"' in gpu["with"]["runner"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in gpu["if"]
    assert {"push", "pull_request", "workflow_dispatch"} <= set(gate["on"])
    assert gate["on"]["push"]["branches"] == ["main"]
    for path in FILES:
        assert "pull_request_target" not in path.read_text(), path.name


def test_a_cpu_gate_exists_for_those_without_a_gpu_runner():
    cpu = load("gate.yml")["jobs"]["cpu"]
    assert "ubuntu" in cpu["with"]["runner"] and "workflow_dispatch" in cpu["if"]


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


HOOK = ROOT / "scripts" / "runner-job-started.sh"
REPO = {"full_name": "owner/mnist-gate"}


def pull_request(head: str | None) -> dict:
    head_repo = {"full_name": head} if head else None
    return {
        "number": 7,
        "pull_request": {"number": 7, "head": {"repo": head_repo}},
        "repository": REPO,
    }


@pytest.mark.parametrize(
    "event, allowed",
    [
        (pull_request("owner/mnist-gate"), True),
        (pull_request("someone/mnist-gate"), False),
        (pull_request(None), False),  # the fork was deleted
        ({"ref": "refs/heads/main", "repository": REPO}, True),  # push
        ({"schedule": "17 4 * * 1", "repository": REPO}, True),
        ({"inputs": {}, "ref": "refs/heads/main", "repository": REPO}, True),  # workflow_dispatch
    ],
    ids=["same-repo pull request", "fork pull request", "deleted fork", "push", "schedule",
         "dispatch"],
)  # fmt: skip
def test_the_runner_hook_refuses_pull_requests_from_forks(tmp_path, event, allowed):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    result = subprocess.run(
        ["bash", str(HOOK)], env={"GITHUB_EVENT_PATH": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip
    if allowed:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 and "pull request #7 comes from" in lines[0], result.stdout


def test_the_runner_hook_refuses_when_it_cannot_read_the_event(tmp_path):
    for env in ({}, {"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}):
        result = subprocess.run(
            ["bash", str(HOOK)], env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode != 0 and "runner hook:" in result.stdout
