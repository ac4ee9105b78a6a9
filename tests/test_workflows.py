"""The GitHub workflows keep their promises: checked offline, on every run of the fast tier."""

import re
import shutil
import subprocess

import pytest
from conftest import ROOT
from ruamel.yaml import YAML

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


def test_zizmor_pedantic_finds_nothing():
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", str(WORKFLOWS)],
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


def test_the_fast_job_lints_and_runs_the_fast_tier_on_push_and_pull_request():
    fast = load("fast.yml")
    assert {"push", "pull_request"} <= set(fast["on"])
    job = fast["jobs"]["checks"]
    assert FAST_COMMAND in runs(job) and "ruff check ." in runs(job)
    assert fast["concurrency"]["cancel-in-progress"] is True


def test_the_gate_job_runs_the_slow_tier_and_reports():
    job = load("gate-run.yml")["jobs"]["gate"]
    assert SLOW_COMMAND in runs(job)
    summary = next(run for run in runs(job) if "$GITHUB_STEP_SUMMARY" in run)
    assert "python report.py summary runs" in summary and "--compare runs/main" in summary
    upload = next(s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact"))
    assert (
        "${{ github.run_id }}" in upload["with"]["name"] and upload["with"]["retention-days"] <= 30
    )


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
