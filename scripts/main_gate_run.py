"""Find main's last successful gate run, for a pull request's comparison; standard library only.

    python scripts/main_gate_run.py >> "$GITHUB_OUTPUT"

Prints `run-id=N` when there is one, else `note=<one sentence saying why not>`; the job summary
shows that sentence in place of the comparison. Reads GITHUB_REPOSITORY, GITHUB_TOKEN and
GITHUB_API_URL (set on every runner, hosted or self-hosted); never fails the job.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

WORKFLOW = "gate.yml"


def find(api: str, repo: str, token: str) -> str:
    query = urllib.parse.urlencode(
        {"branch": "main", "event": "push", "status": "success", "per_page": 1}
    )
    request = urllib.request.Request(
        f"{api}/repos/{repo}/actions/workflows/{WORKFLOW}/runs?{query}",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"note=Could not ask GitHub for main's last gate run ({one_line(err)})."
    runs = answer.get("workflow_runs") if isinstance(answer, dict) else None
    if not isinstance(runs, list):
        return "note=GitHub's answer about main's gate runs had no list of runs."
    if not runs:
        return "note=Main has no successful gate run to compare with yet."
    run_id = runs[0].get("id") if isinstance(runs[0], dict) else None
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        return "note=GitHub's answer about main's last gate run had no run id."
    return f"run-id={run_id}"


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200]


def main() -> None:
    env = os.environ
    missing = [k for k in ("GITHUB_REPOSITORY", "GITHUB_TOKEN") if not env.get(k)]
    if missing:
        print(f"note=Could not look for main's last gate run: {', '.join(missing)} not set.")
        return
    api = env.get("GITHUB_API_URL", "https://api.github.com")
    print(find(api, env["GITHUB_REPOSITORY"], env["GITHUB_TOKEN"]))


if __name__ == "__main__":
    main()
