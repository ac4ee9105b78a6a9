"""The CI verdict job: gather the runs every gate job uploaded, judge each profile by the budgets it
is held to, compare with main, and print the job summary. Judging is mnist_gate.judging's and the
Markdown mnist_gate.markdown's; this module reads the folders and answers the job.

    python -m mnist_gate.verdict runs --seeds 0          # every runs/gate-*/, by profile
    python -m mnist_gate.verdict runs --main runs/main   # CI: the ci seeds, against main's

Prints Markdown (the CI job summary) and exits 1 when a check fails, 2 when the runs cannot be
read. No torch: the CI jobs that gather the runs of several runners have no GPU and install numpy
alone.
"""

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data, judging, markdown, paths, profiles, runfolder, settings
from .judging import Regression
from .markdown import ReportError
from .profiles import Profile
from .record import Record, RecordError
from .runfolder import PREDICTIONS, RunError


def load_runs(folders) -> list[Record]:
    try:
        return [runfolder.load_record(folder) for folder in folders]
    except RecordError as err:
        raise ReportError(str(err)) from None


def load_predictions(folder: Path) -> np.ndarray | None:
    try:
        return runfolder.load_predictions(folder)
    except RunError as err:
        raise ReportError(str(err)) from None


def comparison(runs: list[Record], main_dir: Path | None, note: str | None = None) -> str:
    """This change against main's last gate result, image by image, or one sentence saying why
    there is none (note: the workflow's own sentence, where it knows)."""
    found, dropped = main_runs(main_dir)
    if not found:
        why = no_reference(note, dropped)
        return f"### Against main\n\nNo gate result from main to compare with. {why}\n"
    rows, missing, unreadable = [], [], []
    for run in sorted(runs, key=lambda r: (r.name, r.seed)):
        same = [m for m in found if m.name == run.name]
        base = next((m for m in same if m.seed == run.seed), same[0] if same else None)
        name = f"{run.name} seed {run.seed}"
        try:  # anything wrong on main's side is a sentence, never a failure
            old = None if base is None else load_predictions(base.folder)
        except ReportError as err:
            unreadable.append(f"{name}: {err}")
            continue
        new = load_predictions(run.folder)
        if base is None or new is None or old is None:
            missing.append(name)
            continue
        why = judging.unpaired(new, old)
        if why:
            unreadable.append(f"{name}: {why}")
            continue
        fixed, broken, p = judging.paired(new, old)
        rows.append((
            f"{run.name} seed {run.seed}" + ("" if base.seed == run.seed
                                             else f" (main: seed {base.seed})"),
            f"{base.final_test_acc:.2%}", f"{run.final_test_acc:.2%}", fixed, broken, p,
        ))  # fmt: skip
    # Each row is a test: at 5% over all of them together (Bonferroni), not 5% a row, which would
    # call some run of an honest change significantly worse most of the time.
    level = 0.05 / max(len(rows), 1)
    rows = [(*row[:-1], f"{row[-1]:.3g}", judging.plain(*row[3:], level)) for row in rows]
    return markdown.comparison(rows, missing, unreadable)


NO_REFERENCE = "This run neither restored main's stored runs nor trained them."
REGRESSION_OFF = (
    "The regression check is off ([tool.gate] regression = false): no change is compared with "
    "main, so a recipe that got worse but stays over its bar passes."
)


def no_reference(note: str | None, dropped: list[str]) -> str:
    """Why main left nothing to compare with: the workflow's sentence where it knows, else what
    main_runs dropped or found missing."""
    return note or " ".join(dropped) or NO_REFERENCE


def main_runs(main_dir: Path | None) -> tuple[list[Record], list[str]]:
    """Main's gate runs, and a sentence for each one dropped (a damaged record, a seed found
    twice) or for why there are none: the comparison image by image says it and goes on; the
    regression check compares with what is left, or fails for want of a reference."""
    if main_dir is None or not main_dir.is_dir():
        return [], [f"The folder {main_dir} does not exist."] if main_dir else []
    found, dropped, seen = [], [], {}
    for folder in runfolder.gate_runs(main_dir):
        try:
            run = runfolder.load_record(folder)
        except RecordError as err:
            dropped.append(f"Dropped from main's reference: {err}.")
            continue
        first = seen.setdefault((run.name, run.seed), run)
        if first is not run:
            dropped.append(
                f"Dropped from main's reference: {run.name} seed {run.seed} again, in "
                f"{run.folder} (kept the one in {first.folder})."
            )
            continue
        found.append(run)
    return found, dropped


@dataclass(frozen=True)
class Compared:
    """The regression check's answer: whether it passed, its section of the summary, for the
    headline each profile's test (or a few words on why it has none), and the lines it failed."""

    passed: bool
    text: str
    rows: dict[str, Regression | str]
    failures: list[str]


def regression(
    runs: list[Record],
    main_dir: Path | None,
    gate: profiles.Gate,
    note: str | None = None,
    about: str | None = None,
) -> Compared:
    """Did the recipe get worse? This change's seeds against main's reference seeds, per profile
    (judging.regressions), each profile of the budgets that judge (the base's, in CI) held to a
    comparison: without main's seeds, or with too few, it fails and says why. about: the
    workflow's sentence on where the reference came from."""
    title = "### Regression against main\n\n"
    if not gate.regression:
        return Compared(True, f"{title}{REGRESSION_OFF}\n", dict.fromkeys(gate.profiles, "off"), [])
    found, dropped = main_runs(main_dir)
    if not found:
        line = f"no reference from main to compare with. {no_reference(note, dropped)}"
        return Compared(False, f"{title}**FAIL**: {line}\n", {}, [line])
    judged, notes, failures = judging.regressions(runs, found, gate.profiles)
    commits = ", ".join(dict.fromkeys((r.git_commit or "unknown")[:12] for r in found))
    ran = f"Main's reference ran on {markdown.places(found)}, trained by commit {commits}."
    reference = " ".join(filter(None, [about, ran, *dropped]))
    rows = {**notes, **dict.fromkeys(failures, "cannot be compared"), **{r.name: r for r in judged}}
    lines = [f"{name}: {why}" for name, why in failures.items()]
    worse = [
        f"{r.name}: the recipe got worse, {markdown.change(r)}, p = {r.test.p_drop:.3g} at "
        f"{r.level:.2%}"
        for r in judged
        if r.dropped
    ]
    text = markdown.regression(judged, notes, failures, reference)
    return Compared(not lines and not worse, text, rows, [*lines, *worse])


def gather(folder: Path) -> list[Record]:
    """Every finished run under folder whose directory is named gate-*, at any depth (artifacts
    unpack into a directory each), each checked against its own predictions, whose label row
    must be the MNIST test labels shipped in data/; a seed found twice is an error."""
    found = runfolder.gate_runs(folder)
    if not found:
        raise ReportError(f"no gate-*/{runfolder.RECORD} under {folder}")
    try:
        labels = np.frombuffer(data.mnist_test_labels(), dtype=np.uint8)
    except data.DataError as err:
        raise ReportError(str(err)) from None
    runs = load_runs(found)
    seen = {}
    for run in runs:
        if run.folder.is_symlink():
            raise ReportError(f"{run.folder} is a link: a gate run is a folder of its own")
        named = runfolder.gate_folder(run.name, run.seed, run.folder.parent).name
        if run.folder.name != named:
            raise ReportError(
                f"{run.folder}: its record is of {run.name} seed {run.seed}, which the gate "
                f"keeps in {named}/"
            )
        twice = seen.setdefault((run.name, run.seed), run)
        if twice is not run:
            raise ReportError(
                f"{run.name} seed {run.seed} twice: in {twice.folder} and in {run.folder}"
            )
        pairs = load_predictions(run.folder)
        if pairs is None:
            raise ReportError(f"{run.folder} has no {PREDICTIONS}")
        if not np.array_equal(pairs[0], labels):
            raise ReportError(
                f"{run.folder}: the label row of its predictions is not the {len(labels):,} "
                "MNIST test labels shipped in data/, so its accuracy is not of the test set"
            )
        correct = int((pairs[0] == pairs[1]).sum())
        if pairs.shape[1] != run.test_images or correct != run.test_correct:
            raise ReportError(
                f"{run.folder}: its predictions get {correct:,} of {pairs.shape[1]:,} right, "
                f"its record says {run.test_correct:,} of {run.test_images:,}"
            )
    return runs


def needs_context(text: str) -> dict:
    """GitHub's `needs` context as the workflow passes it (toJSON(needs)): a JSON object naming
    one job at least, each an object with a result; else a ReportError in one line."""
    try:
        jobs = json.loads(text)
    except ValueError:
        jobs = None
    shaped = isinstance(jobs, dict) and all(
        isinstance(job, dict) and isinstance(job.get("result"), str) for job in jobs.values()
    )
    if not shaped or not jobs:
        raise ReportError(
            f"--jobs {text[:80]!r} is not GitHub's needs context: a JSON object of jobs, each "
            "with a result, one job at least"
        )
    return jobs


def jobs_problems(jobs: dict) -> list[str]:
    """The jobs a verdict needs (GitHub's `needs` context) that did not succeed: a job that
    failed, was cancelled or was skipped leaves nothing the verdict may pass on."""
    return [
        f"job {name} ended {job['result']}" for name, job in jobs.items()
        if job["result"] != "success"
    ]  # fmt: skip


def budget_changes(base: dict[str, Profile], ours: dict[str, Profile]) -> list[str]:
    """What a change does to the budgets it is judged by (the base branch's)."""
    changes = [
        f"this change adds profile {name}, judged by its own budget (main has no reference for it "
        "yet)"
        for name in ours
        if name not in base
    ]
    for name, profile in base.items():
        if name not in ours:
            changes.append(f"this change removes profile {name}")
            continue
        for key, was in vars(profile).items():
            now = getattr(ours[name], key)
            if now != was:
                changes.append(f"this change moves {key} of profile {name} from {was} to {now}")
    return changes


def summary(
    folder: Path,
    *,
    main_dir: Path | None = None,
    note: str | None = None,
    seeds: list[int] | None = None,
    names: list[str] | None = None,
    budgets_path: Path = paths.PYPROJECT,
    change_path: Path | None = None,
    jobs: dict | None = None,
    seeds_from: str = "ci",
    reused: bool = False,
    tree: str | None = None,
    about: str | None = None,
) -> tuple[bool, str]:
    """The verdict over the profiles' runs, and the job summary in Markdown: its first lines the
    decision, each profile's (with `main_dir`, its regression check's too) and every reason it
    failed; then the details.

    The runs are judged by the budgets in `budgets_path` (in CI the base's own, since the base's
    code judges); `change_path`, the change's pyproject.toml read as data, only says what the
    change would move, and gives a profile the change adds its own budget. Each profile named
    (default: every one) must have a finished run for each of `seeds` (default: the
    [tool.gate.seeds] list `seeds_from` of budgets_path, the list the gate jobs trained), nothing
    else may be there, every job in `jobs` must have succeeded, and with `tree` every run must
    have been trained by a checkout of that tree key. `reused`: the runs are main's stored runs
    of the change's own tree key, so nothing trained (the gate job was skipped) and only the
    seeds asked for are judged. With `main_dir` (and not `reused`) the runs are also checked
    against main's reference (regression(); `note` and `about` are the workflow's sentences on
    it)."""
    try:
        base = profiles.load(budgets_path)
        seeds = base.seeds(seeds_from) if seeds is None else seeds
        ours = base if change_path is None else profiles.load(change_path)
    except profiles.ConfigError as err:
        raise ReportError(f"cannot read the budgets ({err})") from None
    if reused:
        jobs = {name: job for name, job in (jobs or {}).items() if name != "gate"}
    failed_jobs = jobs_problems(jobs or {})
    try:
        runs = gather(folder)
    except ReportError as err:
        if not failed_jobs:
            raise
        runs, failed_jobs = [], [*failed_jobs, str(err)]  # the jobs say why
    if reused:
        runs = [r for r in runs if r.seed in seeds]
    gated = {**ours.profiles, **base.profiles}  # the base branch's budget, where it has one
    unknown = sorted(set(names or []) - set(gated))
    if unknown:
        raise ReportError(f"no profile {', '.join(unknown)} in {budgets_path}")
    changes = budget_changes(base.profiles, ours.profiles)
    gated = {name: gated[name] for name in names or gated}
    strays = sorted({r.name for r in runs} - set(gated))
    unasked = sorted(f"{r.name} seed {r.seed}" for r in runs if r.seed not in seeds)
    removed = {name for name in base.profiles if name not in ours.profiles}
    expected = [name for name in gated if not (name in removed and base.profiles[name].retired)]
    missing = [
        f"{name} seed {seed}"
        for name in expected
        for seed in seeds
        if not any(r.name == name and r.seed == seed for r in runs)
    ]
    unretired = sorted(name for name in removed if not base.profiles[name].retired)
    problems = [
        *failed_jobs,
        *(f"{name}: no profile in {budgets_path} has this name" for name in strays),
        *(f"this change removes profile {name}, which the base has not retired: retire it first "
          "(retired = true in its budget), then remove it" for name in unretired),
        *(f"{run}: not one of the seeds asked for ({seeds})" for run in unasked),
        *(f"{run}: no finished run" for run in missing),
        *(f"{path} never finished ({runfolder.INCOMPLETE})"
          for path in runfolder.unfinished(folder)),
        *(f"{r.name} seed {r.seed}: trained by a checkout of tree key {r.key}, not this "
          f"change's {tree}" for r in runs if tree and r.key != tree),
    ]  # fmt: skip
    judged = {}
    for name, profile in gated.items():
        group = [r for r in runs if r.name == name and r.seed in seeds]
        if group or name in expected:
            judged[name] = judging.judge(profile, group) if group else None
    against = None
    if main_dir is not None and not reused:
        against = regression(runs, main_dir, base, note, about)
    elif reused:
        against = Compared(True, "", dict.fromkeys(judged, "none: these are main's runs"), [])
    reasons = [
        *problems,
        *(f"profile {name}: {line}" for name, j in judged.items() if j for line in j.failures),
        *(against.failures if against else []),
    ]
    passed = not reasons
    parts = [markdown.headline(judged, against and against.rows, passed, reasons)]
    if not base.regression:
        parts.append(f"{REGRESSION_OFF}\n")
    if reused:
        parts.append(
            f"Nothing that decides training changed (tree key {tree or 'unknown'}): these are "
            "main's stored runs of that tree, judged again; nothing trained.\n"
        )
    if changes:
        parts.append(
            f"Judged by the budgets of {budgets_path}, not this change's own: "
            + "; ".join(changes) + ".\n"
        )  # fmt: skip
    parts += [markdown.verdict(j) for j in judged.values() if j]
    if against and against.text and base.regression:
        parts.append(against.text)
    if main_dir is not None or note:
        parts.append(comparison(runs, main_dir, note))
    return passed, "\n".join(parts)


def keep(runs: Path, folder: Path) -> None:
    """Copy every run the verdict judged (gather() has checked each one's folder name) into
    folder: what CI stores as main's reference once the verdict passed it."""
    try:
        for run in runfolder.gate_runs(runs):
            shutil.copytree(run, folder / run.name)
    except OSError as err:
        raise ReportError(f"cannot keep the runs in {folder} ({err})") from None


def command_line() -> settings.Parser:
    parser = settings.Parser(
        prog="python -m mnist_gate.verdict", description="The verdict over a gate's runs."
    )
    parser.add_argument("runs", type=Path, help="folder holding gate-*/ runs, at any depth")
    parser.add_argument("--main", type=Path, help="folder holding main's gate runs")
    parser.add_argument("--main-note", help="why main's runs are missing, where the caller knows")
    parser.add_argument("--main-about", help="which of main's runs the reference is, in a sentence")
    parser.add_argument(
        "--seeds", type=profiles.seeds_argument,
        help="the seeds every profile must have, e.g. 0,1,2 (default: [tool.gate.seeds] ci)",
    )  # fmt: skip
    parser.add_argument(
        "--profile",
        type=lambda text: text.split(","),
        help="the profiles that must be there, e.g. 8k (default: every one)",
    )
    parser.add_argument(
        "--budgets", type=Path, default=paths.PYPROJECT,
        help="the pyproject.toml whose budgets and seeds judge the runs (default: this one)",
    )  # fmt: skip
    parser.add_argument(
        "--change-budgets", type=Path,
        help="the change's pyproject.toml, read as data: what it would move in the budgets",
    )  # fmt: skip
    parser.add_argument("--jobs", help="GitHub's needs context as JSON: every job must succeed")
    parser.add_argument(
        "--seeds-from", choices=profiles.WHERE, default="ci",
        help="without --seeds, the [tool.gate.seeds] list asked for (default: ci)",
    )  # fmt: skip
    parser.add_argument("--tree", help="the tree key every run must have been trained by")
    parser.add_argument(
        "--reused", action="store_true",
        help="the runs are main's stored runs of this change's tree key: nothing trained",
    )  # fmt: skip
    parser.add_argument("--keep", type=Path, help="copy the judged runs here when they pass")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    passed, text = parser.run(lambda: answer(args))
    print(text)
    sys.exit(0 if passed else 1)


def answer(args) -> tuple[bool, str]:
    """What the command line asked: the verdict (against main too, with --main), and the runs
    kept to store, when they pass."""
    jobs = None if args.jobs is None else needs_context(args.jobs)
    passed, text = summary(
        args.runs, main_dir=args.main, note=args.main_note, seeds=args.seeds,
        names=args.profile, budgets_path=args.budgets, change_path=args.change_budgets,
        jobs=jobs, seeds_from=args.seeds_from, reused=args.reused, tree=args.tree,
        about=args.main_about,
    )  # fmt: skip
    if passed and args.keep:
        keep(args.runs, args.keep)
    return passed, text


if __name__ == "__main__":
    main()
