"""Find main's reference for a pull request or the merge queue: the newest successful gate run on
main, of any trusted event (a push, the weekly schedule, a manual run), that still holds unexpired
artifacts of the kind being judged (gpu or cpu). Standard library only.

    KIND=gpu python scripts/main_gate_run.py >> "$GITHUB_OUTPUT"

Prints `run-id=N` and `about=<a sentence naming the run, its event, date and commit, and whether
main has changed training since>` when there is one, else `note=<one sentence saying why not>`;
the job summary shows the sentence. Reads KIND, GITHUB_REPOSITORY, GITHUB_TOKEN and
GITHUB_API_URL (set on every runner, hosted or self-hosted); never fails the job.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

WORKFLOW = "gate.yml"
TRUSTED = ("push", "schedule", "workflow_dispatch")  # main's own events; never a pull request
LOOKED_AT = 20  # main's newest successful gate runs searched for the kind's artifacts
# What decides a run's result: a commit on main that changes one of these makes older
# references stale.
TRAINING = ("model.py", "train.py", "mnist_gate/", "pyproject.toml", "requirements.txt")


class Unanswered(Exception):
    """GitHub's answer could not be had or read; the message is the sentence to show."""


def ask(api: str, repo: str, token: str, path: str, **query):
    url = f"{api}/repos/{repo}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    request = urllib.request.Request(
        url,
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise Unanswered(f"Could not ask GitHub for main's gate runs ({one_line(err)}).") from None


def listed(answer, key: str) -> list[dict]:
    """answer[key] as a list of objects, or Unanswered."""
    items = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise Unanswered(f"GitHub's answer about main's gate runs had no list of {key}.")
    return [item for item in items if isinstance(item, dict)]


def find(api: str, repo: str, token: str, kind: str) -> str:
    """The lines for GITHUB_OUTPUT: run-id= and about=, or note=."""
    try:
        runs = listed(
            ask(api, repo, token, f"actions/workflows/{WORKFLOW}/runs", branch="main",
                status="success", per_page=LOOKED_AT),
            "workflow_runs",
        )  # fmt: skip
        runs = [r for r in runs if r.get("event") in TRUSTED and valid_id(r.get("id"))]
        if not runs:
            return "note=Main has no successful gate run to compare with yet."
        expired = 0
        for run in runs:
            prefix = f"gate-{kind}-{run['id']}-"
            artifacts = listed(
                ask(api, repo, token, f"actions/runs/{run['id']}/artifacts", per_page=100),
                "artifacts",
            )
            ours = [a for a in artifacts if str(a.get("name", "")).startswith(prefix)]
            if ours and not any(a.get("expired") for a in ours):
                return f"run-id={run['id']}\nabout={about(api, repo, token, run)}"
            expired += bool(ours)
    except Unanswered as err:
        return f"note={err}"
    why = "their artifacts expired" if expired else f"none of them trained on {kind}"
    return (
        f"note=None of main's last {len(runs)} successful gate runs has a gate-{kind} result to "
        f"compare with: {why}. The weekly run, or a manual one, makes a new one."
    )


def valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def about(api: str, repo: str, token: str, run: dict) -> str:
    """A sentence on the reference run, and whether training has changed on main since."""
    sha = str(run.get("head_sha") or "")
    said = (
        f"Main's reference: gate run {run['id']} ({run.get('event')}, "
        f"{str(run.get('created_at', 'date unknown'))[:10]}) of commit {sha[:12] or 'unknown'}."
    )
    if not sha:
        return said
    try:
        files = listed(ask(api, repo, token, f"compare/{sha}...main"), "files")
    except Unanswered:
        return f"{said} Whether main has changed training since is unknown."
    changed = sorted(
        {str(f.get("filename")) for f in files if str(f.get("filename", "")).startswith(TRAINING)}
    )
    if changed:
        return (
            f"{said} Main has changed training since ({', '.join(changed[:3])}), so the "
            "reference is stale: main's next gate run renews it."
        )
    return said


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200]


def main() -> None:
    env = os.environ
    missing = [k for k in ("GITHUB_REPOSITORY", "GITHUB_TOKEN", "KIND") if not env.get(k)]
    if missing:
        print(f"note=Could not look for main's last gate run: {', '.join(missing)} not set.")
        return
    api = env.get("GITHUB_API_URL", "https://api.github.com")
    print(find(api, env["GITHUB_REPOSITORY"], env["GITHUB_TOKEN"], env["KIND"]))


if __name__ == "__main__":
    main()
