"""The one required check of the gate workflow: pass only when the gate this event needs passed.

    EVENT=pull_request FORK=false JOBS='{"gpu": {"result": "success"}}' python3 required_gate.py

A pull request from a fork needs the CPU gate on a GitHub-hosted runner (it never reaches the
self-hosted one); every other event needs the GPU gate. A job that failed, was cancelled or was
skipped fails this check, which is why it runs always: branch protection counts a skipped check
as passed. Standard library only; prints one line, and exits 1 on failure. While
.github/CODEOWNERS names the placeholder owner, the job summary (GITHUB_STEP_SUMMARY) warns.
"""

import json
import os
import sys
from pathlib import Path

CODEOWNERS = Path(__file__).resolve().parent.parent / ".github" / "CODEOWNERS"
PLACEHOLDER = "@OWNER"


def needed(event: str, fork: bool) -> str:
    return "cpu" if event == "pull_request" and fork else "gpu"


def failure(event: str, fork: bool, jobs: dict) -> str | None:
    """Why the check fails, or None when the gate this event needs succeeded."""
    job = needed(event, fork)
    result = jobs.get(job, {}).get("result", "missing")
    if result != "success":
        source = " from a fork" if fork and event == "pull_request" else ""
        return f"the {job} gate, which a {event} event{source} needs, ended {result}"
    return None


def placeholder_warning() -> str | None:
    """While CODEOWNERS names no real owner, no review is required of anyone: say so."""
    try:
        rules = [line.split() for line in CODEOWNERS.read_text().splitlines()]
    except OSError:
        return f"{CODEOWNERS.name} is missing: no change to the gate needs a review"
    if any(PLACEHOLDER in rule[1:] for rule in rules if rule and not rule[0].startswith("#")):
        return (
            f".github/{CODEOWNERS.name} still names {PLACEHOLDER}: no change to the gate needs "
            "a real owner's review until it names yours (README, Continuous integration)"
        )
    return None


def main() -> None:
    warning = placeholder_warning()
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if warning and summary:
        with open(summary, "a", encoding="utf-8") as file:
            file.write(f"> [!WARNING]\n> {warning}\n")
    try:
        jobs = json.loads(os.environ.get("JOBS", ""))
    except ValueError:
        jobs = None
    shaped = isinstance(jobs, dict) and all(
        isinstance(job, dict) and isinstance(job.get("result"), str) for job in jobs.values()
    )
    if not shaped or not jobs:
        sys.exit(
            "required gate: JOBS is not GitHub's needs context: a JSON object of jobs, each with "
            "a result, one job at least"
        )
    event, fork = os.environ.get("EVENT", ""), os.environ.get("FORK") == "true"
    why = failure(event, fork, jobs)
    if why:
        sys.exit(f"required gate: {why}")
    print(f"required gate: the {needed(event, fork)} gate passed")


if __name__ == "__main__":
    main()
