#!/usr/bin/env bash
# Job-started hook for the self-hosted GPU runner: refuses every pull request whose code comes from
# another repository (a fork), whatever the workflow file it brings says.
#
# For a pull_request event GitHub runs the workflow file from the pull request's own merge commit,
# so a fork can delete the `if:` that keeps it off this runner. This hook runs on the runner, before
# any step of any job, from a file the pull request cannot change. Install it outside the runner's
# folder and point the runner at it, in the runner's .env file:
#
#     ACTIONS_RUNNER_HOOK_JOB_STARTED=/opt/mnist-gate/runner-job-started.sh
#
# It reads the event from GITHUB_EVENT_PATH; a non-zero exit stops the job before it starts.
set -euo pipefail

python3 - <<'PY'
import json
import os
import sys


def refuse(reason: str) -> None:
    print(f"::error::runner hook: {reason}; this self-hosted runner takes no code from forks")
    sys.exit(1)


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

pull = event.get("pull_request")
if pull is not None:
    base = (event.get("repository") or {}).get("full_name")
    head = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
    if not base or head != base:
        refuse(f"pull request #{pull.get('number')} comes from {head or 'a deleted repository'}, "
               f"not {base}")
PY
