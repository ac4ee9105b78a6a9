#!/bin/bash
# Job-started hook for the self-hosted GPU runner: admits only the events the workflows use, and
# refuses every pull request whose code comes from another repository (a fork), whatever the
# workflow file it brings says.
#
# For a pull_request event GitHub runs the workflow file from the pull request's own merge commit,
# so a fork can delete the `if:` that keeps it off this runner. This hook runs on the runner, from
# a file the pull request cannot change. Install it outside the runner's folder, owned by root,
# and point the runner at it in its .env file (also owned by root):
#
#     ACTIONS_RUNNER_HOOK_JOB_STARTED=/opt/mnist-gate/runner-job-started.sh
#
# A hook's non-zero exit does not stop a job's `if: always()` steps nor an action's `pre:` script
# (actions/runner#2811), so a refusal ends the job's worker process itself (Runner.Worker, an
# ancestor of this hook), then exits 1. The worker forwards a step's output to GitHub every 250 to
# 500 ms, so the refusal is written and flushed a second before the worker ends: the person whose
# job it was reads why, not a worker crash. Interpreters are called by absolute path: nothing on
# the job's PATH is run.
set -euo pipefail

exec /usr/bin/python3 -I - <<'PY'
import json
import os
import signal
import sys
import time

EVENTS = {"push", "pull_request", "workflow_dispatch", "schedule", "merge_group"}
WORKER = "Runner.Worker"
FORWARDED = 1.0  # seconds the worker may take to forward the refusal (it does so every 0.5 s)


def worker() -> int | None:
    """The nearest ancestor process named Runner.Worker, from /proc."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/comm") as file:
                name = file.read().strip()
            with open(f"/proc/{pid}/stat") as file:
                parent = int(file.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if name == WORKER:
            return pid
        pid = parent
    return None


def refuse(reason: str) -> None:
    pid = worker()
    ended = f"; ended {WORKER} (process {pid})" if pid else f"; no {WORKER} process found"
    print(f"::error::runner hook: {reason}; this self-hosted runner takes no code from forks"
          f"{ended}", flush=True)
    if pid:
        time.sleep(FORWARDED)
        os.kill(pid, signal.SIGKILL)
    sys.exit(1)


name = os.environ.get("GITHUB_EVENT_NAME", "")
if name not in EVENTS:
    refuse(f"event {name or '(none)'} is not one this runner takes ({', '.join(sorted(EVENTS))})")
path = os.environ.get("GITHUB_EVENT_PATH")
if not path:
    refuse("GITHUB_EVENT_PATH is not set, so the event cannot be checked")
try:
    with open(path, encoding="utf-8") as file:
        event = json.load(file)
except (OSError, ValueError) as err:
    refuse(f"cannot read the event at {path} ({err})")
if not isinstance(event, dict):
    refuse(f"the event at {path} is not a JSON object")

if name == "pull_request":
    pull = event.get("pull_request") or {}
    base = (event.get("repository") or {}).get("full_name")
    head = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
    if not base or head != base:
        refuse(f"pull request #{pull.get('number')} comes from {head or 'a deleted repository'}, "
               f"not {base}")
PY
