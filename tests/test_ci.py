"""The gate workflow's decisions, each step's own command run as CI runs it, on a scratch repository
with a base and a change: the base's code decides, a reference always exists or the check fails,
a change outside the key trains nothing, and re-run attempts are gathered."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_gate import key, profiles

from .helpers import git, passing_record, project_repo, save
from .test_workflows import evaluate, load, steps

GATE_RUN = load("gate-run.yml")
SEEDS, GATE, VERDICT = (GATE_RUN["jobs"][name] for name in ("seeds", "gate", "verdict"))
STDLIB_PYTHON = f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"  # no numpy, no torch
WITH_NUMPY = f"{Path(sys.executable).parent}:/usr/bin:/bin"  # the verdict installs numpy alone
COMPARED = {"pull_request", "merge_group"}


def step(job: dict, name: str) -> dict:
    return next(s for s in steps(job) if name in s.get("name", ""))


def run_step(job: dict, name: str, workspace: Path, env: dict, path: str = STDLIB_PYTHON):
    """A step's `run` script as a GitHub runner runs it (bash -e -o pipefail, in its
    working-directory), with env; its exit status, stdout and stderr, and what it wrote to
    GITHUB_OUTPUT."""
    found = step(job, name)
    output = workspace.parent / f"{workspace.name}-output"
    output.write_text("")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", found["run"]],
        cwd=workspace / found.get("working-directory", "."),
        env={"PATH": path, "GITHUB_OUTPUT": str(output), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = output.read_text().splitlines()
    return result, dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """The repository on GitHub: this project committed on main."""
    return project_repo(tmp_path_factory.mktemp("origin"))


def change(origin: Path, files: dict[str, str | None], merge: bool = True) -> tuple[str, str]:
    """A pull request changing files (None deletes one): main's commit and the merge commit
    GitHub builds for the pull request (or the change's own commit, merge=False)."""
    git(origin, "checkout", "-q", "-B", "change", "main")
    for name, text in files.items():
        if text is None:
            (origin / name).unlink()
        else:
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            (origin / name).write_text(text)
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "--allow-empty", "-m", "change")
    head = git(origin, "rev-parse", "HEAD")
    if merge:
        git(origin, "checkout", "-q", "--detach", "main")
        git(origin, "merge", "-q", "--no-ff", "change", "-m", "merge")
        head = git(origin, "rev-parse", "HEAD")
    git(origin, "checkout", "-q", "main")
    return git(origin, "rev-parse", "main"), head


def checkout(origin: Path, sha: str, where: Path) -> Path:
    """actions/checkout of one commit into where."""
    subprocess.run(["git", "clone", "-q", str(origin), str(where)], check=True)
    git(where, "checkout", "-q", sha)
    return where


def seeds_job(origin, workspace, event, sha, *, kind="gpu", stored=False, queue_base="") -> dict:
    """The seeds job of gate-run.yml for an event on commit sha: its outputs."""
    checkout(origin, sha, workspace / "change")
    result, base = run_step(SEEDS, "The base, whose code decides", workspace,
                            {"EVENT": event, "QUEUE_BASE": queue_base})  # fmt: skip
    assert result.returncode == 0, result.stderr
    checkout(origin, base["sha"], workspace / "base")
    read = step(SEEDS, "The base's seed lists")
    assert read["working-directory"] == "base"
    env = {"WHERE": evaluate(read["env"]["WHERE"], event_name=event), "KIND": kind,
           "PER_JOB": str(load("gate.yml")["jobs"][kind]["with"]["seeds-per-job"])}  # fmt: skip
    result, keys = run_step(SEEDS, "The base's seed lists", workspace, env)
    assert result.returncode == 0, result.stderr
    caller = load("gate.yml")["jobs"][kind]["with"]
    plan = {"JOBS": keys["jobs"], "REFERENCE": keys["reference"], "SAME": keys["same"],
            "STORED": str(stored).lower(), "COMPARED": str(event in COMPARED).lower(),
            "TRAIN_REFERENCE": str(caller["train-reference"]).lower()}  # fmt: skip
    result, planned = run_step(SEEDS, "What trains where", workspace, plan)
    assert result.returncode == 0, result.stderr
    return {"base": base["sha"], **keys, **planned, "train": json.loads(planned["train"])}


def trained(plan: dict, side: str) -> list[int]:
    return [int(s) for job in plan["train"] if job["side"] == side for s in job["seeds"].split(",")]


CI, REFERENCE = profiles.load().seeds("ci"), profiles.load().seeds("reference")


def test_a_pull_request_is_decided_by_its_merge_commits_first_parent(origin, tmp_path):
    main, merge = change(origin, {"README.md": "# documents only\n"})
    plan = seeds_job(origin, tmp_path, "pull_request", merge)
    assert plan["base"] == main != merge
    assert plan["same"] == "true" and plan["base-tree"] == key.tree(origin)
    assert plan["key"] == key.reference("gpu", key.tree(origin), REFERENCE)


@pytest.mark.parametrize(
    "setting, this, base",
    [
        (("pull_request", {"README.md": "docs\n"}, "gpu", True), [], []),
        (("pull_request", {"model.py": "# a new network\n"}, "gpu", True), CI, []),
        (("pull_request", {"model.py": "# a new network\n"}, "gpu", False), CI, REFERENCE),
        (("pull_request", {"model.py": "# a new network\n"}, "cpu", False), CI, []),
        (("pull_request", {"README.md": "docs\n"}, "gpu", False), CI, REFERENCE),
        (("push", {}, "gpu", False), REFERENCE, []),
        (("push", {}, "cpu", True), [], []),
    ],
    ids=["docs, stored: nothing trains", "network, stored", "network, not stored: base too",
         "network, not stored, cpu: the check fails instead", "docs, not stored",
         "main trains its reference", "main's stored runs judged again"],
)  # fmt: skip
def test_what_trains_is_what_the_keys_and_the_store_say(origin, tmp_path, setting, this, base):
    event, files, kind, stored = setting
    _, merge = change(origin, files, merge=event in COMPARED)
    plan = seeds_job(origin, tmp_path, event, merge, kind=kind, stored=stored)
    assert trained(plan, "this") == this and trained(plan, "base") == base
    assert plan["reuse"] == str(not this).lower()
    assert plan["base-trains"] == str(bool(base)).lower()
    sides = [job["side"] for job in plan["train"]]
    if kind == "gpu":  # one job a side: its seeds share the GPU
        assert len(sides) == len(set(sides))
    else:  # two seeds a hosted job
        assert all(len(job["seeds"].split(",")) <= 2 for job in plan["train"])


def test_the_merge_queue_is_judged_by_the_groups_base(origin, tmp_path):
    main, head = change(origin, {"train.py": "# queued\n"}, merge=False)
    _, queued = change(origin, {"model.py": "# the change queued before\n"}, merge=False)
    plan = seeds_job(origin, tmp_path, "merge_group", head, queue_base=queued)
    assert plan["base"] == queued != main and trained(plan, "base") == REFERENCE


def test_a_base_whose_seeds_cannot_be_read_fails_its_own_step(origin, tmp_path):
    _, broken = change(origin, {"pyproject.toml": "[tool.gate\n"}, merge=False)
    checkout(origin, broken, tmp_path / "base")
    checkout(origin, broken, tmp_path / "change")
    env = {"WHERE": "reference", "KIND": "gpu", "PER_JOB": "0"}
    result, outputs = run_step(SEEDS, "The base's seed lists", tmp_path, env)
    assert result.returncode != 0 and "jobs" not in outputs
    assert "pyproject.toml" in result.stderr and "Traceback" not in result.stderr


def test_the_jobs_use_the_seeds_jobs_decisions():
    outputs = SEEDS["outputs"]
    assert GATE["if"] == "needs.seeds.outputs.train != '[]'"
    assert GATE["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.seeds.outputs.train) }}"
    (code,) = [s for s in steps(GATE) if s.get("uses", "").startswith("actions/checkout")]
    assert code["with"]["ref"] == "${{ matrix.side == 'base' && needs.seeds.outputs.base || '' }}"
    lookup = step(SEEDS, "Is the base's reference stored?")
    restore = step(VERDICT, "Main's stored runs")
    save_step = step(VERDICT, "Store main's runs")
    # One key and one path everywhere: a cache entry's version includes its path.
    for cache in (lookup, restore, save_step):
        assert cache["with"]["path"] == "runs/reference"
    assert lookup["with"]["key"] == "${{ steps.read.outputs.key }}" and outputs["key"].endswith(
        "steps.read.outputs.key }}"
    )
    assert restore["with"]["key"] == save_step["with"]["key"] == "${{ needs.seeds.outputs.key }}"
    assert restore["with"]["fail-on-cache-miss"] is True
    # Main's runs are stored only by main's own events, after its verdict passed them.
    condition = " ".join(save_step["if"].split()).replace("needs.seeds.outputs.stored", "'false'")
    for event, saves in (("pull_request", False), ("merge_group", False), ("push", True),
                         ("schedule", True), ("workflow_dispatch", True)):  # fmt: skip
        assert evaluate("${{ " + condition + " }}", event_name=event) is saves, event
    assert "success()" not in save_step["if"]  # a failed verdict step stops the job before it


def test_each_attempt_uploads_its_own_artifact_and_the_verdict_reads_them_all():
    upload = next(s for s in steps(GATE) if s.get("uses", "").startswith("actions/upload"))
    name = upload["with"]["name"]
    for part in ("inputs.kind", "github.run_id", "matrix.side", "github.run_attempt",
                 "strategy.job-index"):  # fmt: skip
        assert part in name, f"the artifact name has no {part}"
    assert "matrix.seeds" not in name and "overwrite" not in upload["with"]  # bounded, kept
    download = next(s for s in steps(VERDICT) if s.get("uses", "").startswith("actions/download"))
    # Without run-id and a token, download-artifact sees the current attempt's artifacts alone.
    assert download["with"]["run-id"] == "${{ github.run_id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    assert VERDICT["permissions"]["actions"] == "read"


def test_the_gpu_workers_variable_stays_on_the_gpu():
    env = step(GATE, "Gate (every profile")["env"]["PYTEST_XDIST_AUTO_NUM_WORKERS"]
    assert env == "${{ inputs.kind == 'gpu' && vars.GATE_WORKERS || '' }}"


def runs_as_artifacts(folder: Path, tree: str, worse: bool = False, seeds=CI, **fields) -> None:
    """A gate job's artifact as download-artifact lays it out: a run per profile and seed, its
    record carrying `fields` besides its own."""
    for name, profile in profiles.load().profiles.items():
        for seed in seeds:
            accuracy = 0.9930 if worse and name == "8k" else max(0.9950, profile.min_accuracy)
            run = save(folder / f"gate-{name}-seed{seed}", passing_record(profile, seed, accuracy,
                                                                         key=tree))  # fmt: skip
            if fields:
                path = run.folder / "metrics.json"
                path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def judge_checkout(origin: Path, sha: str, workspace: Path) -> Path:
    """The verdict job's checkouts: commit sha (the base, in CI), and the pull request's
    pyproject.toml in change/ (here the same file)."""
    checkout(origin, sha, workspace)
    (workspace / "change").mkdir()
    shutil.copy(workspace / "pyproject.toml", workspace / "change" / "pyproject.toml")
    return workspace


def verdict_step(workspace: Path, tree: str, **env):
    """The verdict step on the runs under workspace/runs/trained: its exit status and the job
    summary."""
    summary = workspace / "summary.md"
    summary.write_text("")
    jobs = json.dumps({"seeds": {"result": "success"}, "gate": {"result": "success"}})
    values = {"EVENT": "pull_request", "JOBS": jobs, "REUSE": "false", "TREE": tree, "RUN": "7",
              "KIND": "gpu", "STORED": "true", "BASE_TRAINS": "false", "KEY": "gate-gpu-k",
              "BASE": "b" * 40, "GITHUB_STEP_SUMMARY": str(summary), **env}  # fmt: skip
    result, _ = run_step(VERDICT, "Verdict and job summary", workspace, values, WITH_NUMPY)
    return result, summary.read_text()


ROGUE = {
    # Each would end the verdict with success before it judged, were it imported.
    "mnist_gate/__init__.py": "raise SystemExit(0)\n",
    "numpy.py": "raise SystemExit(0)\n",
    "sitecustomize.py": "raise SystemExit(0)\n",
    "org/python/core.py": "raise SystemExit(0)\n",  # Python 3.11's copy and pickle probe for it
    "rogue.pth": "import sys; sys.exit(0)\n",
}


def test_a_change_that_rewrites_the_verdict_is_still_judged_by_the_bases(origin, tmp_path):
    main, merge = change(origin, ROGUE)
    tree = "c" * 64
    judge = judge_checkout(origin, main, tmp_path / "judge")
    runs_as_artifacts(judge / "runs" / "trained" / "gate-gpu-7-this-a1-j0", tree, worse=True)
    result, summary = verdict_step(judge, tree)
    assert result.returncode == 1 and "**FAIL**" in summary, result.stderr
    assert not any((judge / name).exists() for name in ROGUE if "/" not in name)
    # The same step in the change's own checkout is fooled: what the base's checkout prevents.
    fooled = judge_checkout(origin, merge, tmp_path / "fooled")
    runs_as_artifacts(fooled / "runs" / "trained" / "gate-gpu-7-this-a1-j0", tree, worse=True)
    result, summary = verdict_step(fooled, tree)
    assert result.returncode == 0 and "**FAIL**" not in summary


def test_a_change_that_adds_a_record_field_passes_its_bases_verdict(origin, tmp_path):
    main, _ = change(origin, {"mnist_gate/record.py": "# a field added\n"})
    tree = "d" * 64
    judge = judge_checkout(origin, main, tmp_path / "judge")
    artifact = judge / "runs" / "trained" / "gate-gpu-7-this-a1-j0"
    runs_as_artifacts(artifact, tree, added_later="a field the base does not know")
    runs_as_artifacts(judge / "runs" / "reference", "f" * 64, seeds=REFERENCE)  # main's, stored
    result, summary = verdict_step(judge, tree)
    assert result.returncode == 0, summary + result.stderr
    assert '"added_later"' in (judge / "runs" / "this" / artifact.name / "gate-8k-seed0" /
                               "metrics.json").read_text()  # fmt: skip


def test_the_regression_compares_with_the_stored_or_trained_base_or_fails(origin, tmp_path):
    main, _ = change(origin, {"model.py": "# worse\n"})
    tree, judge = "e" * 64, judge_checkout(origin, main, tmp_path / "judge")
    runs_as_artifacts(judge / "runs" / "trained" / "gate-gpu-7-this-a1-j0", tree, worse=True)
    runs_as_artifacts(judge / "runs" / "trained" / "gate-gpu-7-base-a1-j1", "f" * 64,
                      seeds=REFERENCE)  # fmt: skip
    result, summary = verdict_step(judge, tree, STORED="false", BASE_TRAINS="true")
    assert result.returncode == 1 and "**FAIL**: 8k: the recipe got worse" in summary, summary
    assert f"Main's reference: commit {'b' * 40}, trained in this run" in summary


def test_a_reference_neither_stored_nor_trained_fails_and_says_how_to_make_it(origin, tmp_path):
    main, _ = change(origin, {"model.py": "# new\n"})
    tree, judge = "e" * 64, judge_checkout(origin, main, tmp_path / "judge")
    runs_as_artifacts(judge / "runs" / "trained" / "gate-cpu-7-this-a1-j0", tree)
    result, summary = verdict_step(judge, tree, STORED="false", KIND="cpu", KEY="gate-cpu-abc")
    assert result.returncode == 1 and "**FAIL**: no reference from main" in summary
    assert "Nothing is stored under gate-cpu-abc" in summary and "Run workflow" in summary


def test_a_change_outside_the_key_is_judged_again_on_mains_stored_runs(origin, tmp_path):
    main, _ = change(origin, {"README.md": "# documents only\n"})
    tree, judge = "a" * 64, judge_checkout(origin, main, tmp_path / "judge")
    runs_as_artifacts(judge / "runs" / "reference", tree, seeds=REFERENCE)  # restored, nothing new
    jobs = json.dumps({"seeds": {"result": "success"}, "gate": {"result": "skipped"}})
    result, summary = verdict_step(judge, tree, REUSE="true", JOBS=jobs)
    assert result.returncode == 0, summary + result.stderr
    assert "Nothing that decides training changed" in summary
    assert "| `8k` | pass | mean 99.500% of 26 seeds, 99% lower bound" in summary
    assert "none: these are main's runs |  |" in summary


def test_the_required_check_runs_the_bases_script():
    job = load("gate.yml")["jobs"]["gate"]
    (code,) = [s for s in steps(job) if s.get("uses", "").startswith("actions/checkout")]
    assert code["with"]["ref"] == "${{ needs.gpu.outputs.base || needs.cpu.outputs.base }}"
    assert GATE_RUN["on"]["workflow_call"]["outputs"]["base"]["value"] == (
        "${{ jobs.seeds.outputs.base }}"
    )
    guard = step(job, "The base's code decides")
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", guard["run"]], env={"BASE": ""},
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1 and "nothing was judged" in result.stdout


def test_the_judging_jobs_check_out_only_the_base_and_the_changes_budgets():
    for job in (SEEDS, VERDICT):
        for found in steps(job):
            if not found.get("uses", "").startswith("actions/checkout"):
                continue
            ref, path = found["with"].get("ref"), found["with"].get("path")
            sparse = found["with"].get("sparse-checkout")
            assert ref in ("${{ steps.base.outputs.sha }}", "${{ needs.seeds.outputs.base }}") or (
                path == "change" and (sparse == "pyproject.toml" or job is SEEDS)
            ), found
