"""The verdict over a gate's runs, and the Markdown people read: each run, the seeds together,
the budget check and the regression check against main.

    python -m mnist_gate.verdict runs --seeds 0                # every runs/gate-*/, by profile
    python -m mnist_gate.verdict runs --main runs/main         # CI: the ci seeds, with main's
    python -m mnist_gate.verdict runs --check regression --main runs/main   # against main's seeds

judge() is the one place a profile's runs are held to its budget; the slow tier asserts its answer
and the CI verdict job prints it; regression() tests the seeds against main's reference seeds.
Prints Markdown (the CI job summary) and exits 1 when a check fails, 2 when the runs cannot be
read. No torch: the CI jobs that gather the runs of several runners have no GPU and install numpy
alone.

With one seed the verdict is that run's; with several it is on their mean, and the summary adds
their spread, a one-sided 95% lower bound on the mean (Student's t: a handful of seeds, spread
unknown) and the chance that one more run ends under the threshold (a normal fit). Each run's
accuracy carries its 95% interval for a test set of this size (Wilson's). Against main, both runs
classify the same 10,000 images, so the comparison is paired: the images the change fixes and
breaks, and McNemar's exact test on them.
"""

import argparse
import io
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import budgets, data, paths, record, stats
from .budgets import GateError, Profile
from .paths import PREDICTIONS
from .record import Record, RecordError

PREDICTIONS_BYTES = 1_000_000  # 20 kB: 2 x 10,000 bytes and a header


@dataclass(frozen=True)
class Verdict:
    profile: Profile
    records: tuple[Record, ...]
    run_failures: tuple[str, ...]  # a line per run and broken budget: parameters, epochs
    accuracy_failure: str | None  # the final-epoch accuracy (the mean, with several seeds)
    markdown: str

    @property
    def failures(self) -> list[str]:
        return [*self.run_failures, *filter(None, [self.accuracy_failure])]

    @property
    def passed(self) -> bool:
        return not self.failures


def failure(check, value, profile: Profile) -> str | None:
    try:
        check(value, profile)
    except GateError as err:
        return str(err)
    return None


def judge(profile: Profile, records: list[Record]) -> Verdict:
    """A profile's runs against its budget: every run's parameters and epochs, and the final-epoch
    test accuracy (their mean, with several seeds)."""
    records = sorted(records, key=lambda r: r.seed)
    if not records:
        raise ValueError(f"profile {profile.name}: no runs to judge")
    found = []
    for r in records:
        other = r.model != profile.model and f"trained {r.model}, not {profile.model}"
        recipe = next(
            (f"trained with {key} = {r.config.get(key)!r}; profile {profile.name} trains with "
             f"{value!r}" for key, value in profile.train.items() if r.config.get(key) != value),
            None,
        )  # fmt: skip
        found += [
            f"seed {r.seed}: {why}"
            for why in (
                other,
                recipe,
                failure(budgets.check_parameter_count, r.parameters, profile),
                failure(budgets.check_epochs, r.epochs, profile),
            )
            if why
        ]
    by_commit = {}
    for r in records:
        by_commit.setdefault(r.git_commit or "unknown", []).append(str(r.seed))
    if len(by_commit) > 1:  # one verdict judges one version of the code
        groups = [f"commit {c[:12]}: seed {', '.join(s)}" for c, s in sorted(by_commit.items())]
        found.append(f"the seeds trained different code: {'; '.join(groups)}")
    accuracies = [r.final_test_acc for r in records]
    spread = stats.spread(accuracies, profile.min_accuracy)
    why = failure(budgets.check_accuracy, spread.mean, profile)
    if why and len(records) > 1:
        why = f"mean of {len(records)} seeds: {why}"
    if len(records) == 1:
        text = run_summary(records[0], profile)
    else:
        text = seeds_summary(profile, records, spread, why is not None, bool(found))
    return Verdict(profile, tuple(records), tuple(found), why, text)


def result(failed: bool) -> str:
    return "**FAIL**" if failed else "pass"


def gate_rows(run: Record, profile: Profile) -> list[tuple[str, str, str, str, str]]:
    """(check, value, budget, margin, verdict), each verdict from the gate's own check."""
    acc, params, epochs = run.final_test_acc, run.parameters, run.epochs
    return [
        ("model", run.model, profile.model, "", result(run.model != profile.model)),
        ("parameters", f"{params:,}", f"< {profile.max_params:,}",
         f"{profile.max_params - params:,} spare",
         result(failure(budgets.check_parameter_count, params, profile))),
        ("epochs", str(epochs), f"<= {profile.max_epochs}",
         f"{profile.max_epochs - epochs} spare",
         result(failure(budgets.check_epochs, epochs, profile))),
        ("final-epoch test accuracy", f"{acc:.2%} ({interval(run)})",
         f">= {profile.min_accuracy:.2%}",
         f"{(acc - profile.min_accuracy) * 100:+.2f} points",
         result(failure(budgets.check_accuracy, acc, profile))),
    ]  # fmt: skip


def interval(run: Record) -> str:
    """The 95% interval of a run's accuracy for its number of test images (Wilson's)."""
    lo, hi = stats.wilson(run.test_correct, run.test_images)
    return f"95% interval {lo:.2%} to {hi:.2%}"


def table(header: tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def images(row: record.Epoch) -> str:
    """What one epoch trained on, e.g. "20x20 augmented"."""
    return f"{row.size}x{row.size} {'augmented' if row.augmented else 'clean'}"


def run_summary(run: Record, profile: Profile | None = None) -> str:
    """One run as Markdown: the gate table (against `profile`, else the run's own profile in
    pyproject.toml), the per-epoch history, where it ran."""
    if profile is None and run.profile:
        profile = budgets.load_profiles().get(run.profile)
    title = f"{run.model} (profile {profile.name})" if profile else run.model
    parts = [f"### {title}, seed {run.seed}"]
    if profile:
        parts.append(
            table(("check", "value", "budget", "margin", "result"), gate_rows(run, profile))
        )
    else:
        parts.append(f"Not trained as a gate profile (train.py --profile NAME): {run.model}.")
    parts += run.notes
    parts.append(
        f"{run.wall_seconds:.0f} s wall on {run.device} ({run.device_type}, "
        f"{run.threads} threads), torch {run.torch}, Python {run.python}, "
        f"commit {(run.git_commit or 'unknown')[:12]}."
    )
    history = [
        (h.epoch, images(h), f"{h.train_loss:.4f}", f"{h.train_acc:.2%}", f"{h.test_loss:.4f}",
         f"{h.test_acc:.2%}", f"{h.lr:.4f}", f"{h.seconds:.1f}")
        for h in run.history
    ]  # fmt: skip
    header = ("epoch", "images", "train loss", "train acc", "test loss", "test acc", "lr", "s")
    parts.append("<details><summary>per-epoch history</summary>\n\n" + table(header, history))
    parts.append("</details>")
    return "\n\n".join(parts) + "\n"


def seeds_summary(
    profile: Profile,
    runs: list[Record],
    spread: stats.Spread,
    accuracy_failed: bool,
    budget_failed: bool,
) -> str:
    """Several seeds of a profile as Markdown: every run, then judge()'s verdict on their mean and
    on each run's own budget."""
    threshold = profile.min_accuracy
    rows = [
        (r.seed, f"{r.final_test_acc:.2%}" + (" (under)" if r.final_test_acc < threshold else ""),
         interval(r), r.epochs, f"{r.parameters:,}", f"{r.wall_seconds:.0f}")
        for r in runs
    ]  # fmt: skip
    parts = [
        f"### {profile.model} (profile {profile.name}), {len(runs)} seeds: "
        f"{result(accuracy_failed or budget_failed)}",
        table(("seed", "final-epoch test accuracy", "", "epochs", "parameters", "wall s"), rows),
        table(
            ("", "value", "budget", "result"),
            [
                # Three decimals: a mean of 99.3967% must not read as the 99.40% it fails.
                ("mean final-epoch test accuracy", f"{spread.mean:.3%}", f">= {threshold:.2%}",
                 result(accuracy_failed)),
                ("min / max", f"{spread.low:.2%} / {spread.high:.2%}", "", ""),
                ("standard deviation over seeds", f"{spread.sd * 100:.3f} points"
                 + (" (identical runs: no spread to estimate)" if spread.sd == 0 else ""), "", ""),
                ("95% lower bound on the mean (one-sided, t)",
                 "n/a" if spread.sd == 0 else f"{spread.lower_bound:.2%}", "", ""),
                ("P(one more run < threshold), normal fit",
                 "n/a" if spread.sd == 0 else f"{spread.below:.1%}", "", ""),
                ("model, epochs, parameters (every run)", "",
                 f"{profile.model}, <= {profile.max_epochs}, < {profile.max_params:,}",
                 result(budget_failed)),
            ],
        ),
        f"Ran on {runs[0].device} ({runs[0].device_type}), torch {runs[0].torch}.",
    ]  # fmt: skip
    return "\n\n".join(parts) + "\n"


class ReportError(Exception):
    """Runs that cannot be reported as asked; the message is one line that says which and why."""


def load_runs(folders) -> list[Record]:
    try:
        return [record.load(folder) for folder in folders]
    except RecordError as err:
        raise ReportError(str(err)) from None


def load_predictions(folder: Path) -> np.ndarray | None:
    """Row 0 the true digit of each test image, row 1 the run's prediction; None where there are
    none."""
    path = Path(folder, PREDICTIONS)
    if not path.exists():
        return None
    wrong = f"{path} is not 2 rows of uint8 test labels and predictions"
    try:
        raw = paths.read_bounded(path, PREDICTIONS_BYTES)
        file = io.BytesIO(raw)
        version = np.lib.format.read_magic(file)
        header = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        if header is None:
            raise ValueError(f".npy format version {version}")
        shape, _, dtype = header(file)
        data_bytes = len(raw) - file.tell()
        if len(shape) != 2 or shape[0] != 2 or dtype != np.uint8 or 2 * shape[1] != data_bytes:
            raise ReportError(wrong)  # before reading: a header may claim any size
        file.seek(0)
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ReportError(f"{path} is unreadable ({err})") from None


def unpaired(new: np.ndarray, old: np.ndarray) -> str | None:
    """Why two runs' predictions cannot be compared image by image, or None."""
    if old.shape != new.shape:
        return f"main's predictions cover {old.shape[1]:,} images, this change's {new.shape[1]:,}"
    if not np.array_equal(old[0], new[0]):
        return "main's predictions are of other test labels, or in another order"
    return None


def paired(new: np.ndarray, old: np.ndarray) -> tuple[int, int, float]:
    """Images the change fixes and breaks, and McNemar's exact p-value on them."""
    right_new, right_old = new[1] == new[0], old[1] == old[0]
    fixed = int((right_new & ~right_old).sum())
    broken = int((right_old & ~right_new).sum())
    return fixed, broken, stats.mcnemar(fixed, broken)


def plain(fixed: int, broken: int, p: float) -> str:
    if p >= 0.05:
        return "no evidence of a change"
    return "significantly better" if fixed > broken else "significantly worse"


def comparison(runs: list[Record], main_dir: Path | None, note: str | None = None) -> str:
    """This change against main's last gate result, image by image, or one sentence saying why
    there is none (note: the workflow's own sentence, where it knows)."""
    title = "### Against main\n\n"
    found, why = main_runs(main_dir)
    note = note or why
    if not found:
        why = note or "Main has no successful gate run yet, or its artifact has expired."
        return f"{title}No gate result from main to compare with. {why}\n"
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
        why = unpaired(new, old)
        if why:
            unreadable.append(f"{name}: {why}")
            continue
        fixed, broken, p = paired(new, old)
        rows.append((
            f"{run.name} seed {run.seed}" + ("" if base.seed == run.seed
                                             else f" (main: seed {base.seed})"),
            f"{base.final_test_acc:.2%}", f"{run.final_test_acc:.2%}", fixed, broken,
            f"{p:.3g}", plain(fixed, broken, p),
        ))  # fmt: skip
    parts = []
    if rows:
        header = ("run", "main", "this change", "fixed", "broken", "McNemar p", "at 5%")
        parts.append(table(header, rows))
    if missing:
        parts.append(
            f"No paired comparison for {', '.join(missing)}: main's gate result has no test "
            "predictions for it (no such run on main)."
        )
    parts += [f"No paired comparison for {line}." for line in unreadable]
    return title + "\n\n".join(parts) + "\n"


def main_runs(main_dir: Path | None) -> tuple[list[Record], str | None]:
    """Main's gate runs, or none and the sentence that says why: anything wrong on main's side is
    never a failure of this change."""
    if main_dir is None or not main_dir.is_dir():
        return [], f"The folder {main_dir} does not exist." if main_dir else None
    try:
        return load_runs(p.parent for p in sorted(main_dir.glob(f"**/{record.FILE}"))), None
    except ReportError as err:
        return [], f"Main's gate result cannot be read: {err}."


ALPHA = 0.05  # the regression check's false-alarm rate when nothing changed


def dropped(w: stats.Welch) -> bool:
    """The regression check's rule: a drop significant at ALPHA, one-sided."""
    return w.change < 0 and w.p_drop < ALPHA


def regression(
    runs: list[Record], main_dir: Path | None, note: str | None = None
) -> tuple[bool, str]:
    """Did the recipe get worse? This change's seeds against main's reference seeds, per
    profile: Welch's one-sided t-test on the per-seed accuracies. It fails on a drop significant
    at 5%; without main's seeds it says why in one sentence, and passes."""
    title = "### Regression against main\n\n"
    found, why = main_runs(main_dir)
    if not found:
        why = note or why or "Main has no successful gate run yet, or its artifact has expired."
        return True, f"{title}No reference from main to compare with. {why}\n"
    rows, passed, short = [], True, []
    for name in dict.fromkeys(r.name for r in runs):
        new = [100 * r.final_test_acc for r in runs if r.name == name]
        old = [100 * r.final_test_acc for r in found if r.name == name]
        if len(new) < 2 or len(old) < 2:
            short.append(f"{name} ({len(new)} seeds here, {len(old)} on main)")
            continue
        w = stats.welch(new, old)
        drop = dropped(w)
        passed &= not drop
        low, high = w.interval()
        rows.append((
            name, f"{statistics.mean(new):.3f}% ({len(new)})",
            f"{statistics.mean(old):.3f}% ({len(old)})",
            f"{w.change:+.3f} ({low:+.3f} to {high:+.3f})", f"{w.p_drop:.3g}",
            f"{w.detectable(ALPHA):.3f}", "**FAIL**: the recipe got worse" if drop else "pass",
        ))  # fmt: skip
    parts = [
        "Each side is a mean over independently trained seeds, so this asks whether the recipe "
        "got worse, not whether two trained networks differ."
    ]
    if rows:
        header = ("profile", "this change (seeds)", "main (seeds)", "change, points (95% interval)",
                  "p, one-sided", "smallest drop detectable (80% power)", "at 5%")  # fmt: skip
        parts.append(table(header, rows))
    if short:
        parts.append(f"Not judged, a side with fewer than two seeds: {', '.join(short)}.")
    return passed, title + "\n\n".join(parts) + "\n"


def gather(folder: Path) -> list[Record]:
    """Every finished run under folder whose directory is named gate-*, at any depth (artifacts
    unpack into a directory each), each checked against its own predictions, whose label row
    must be the MNIST test labels shipped in data/; a seed found twice is an error."""
    found = sorted(p.parent for p in folder.glob(f"**/gate-*/{record.FILE}"))
    if not found:
        raise ReportError(f"no gate-*/{record.FILE} under {folder}")
    try:
        labels = np.frombuffer(data.mnist_test_labels(), dtype=np.uint8)
    except data.DataError as err:
        raise ReportError(str(err)) from None
    runs = load_runs(found)
    seen = {}
    for run in runs:
        if run.folder.is_symlink():
            raise ReportError(f"{run.folder} is a link: a gate run is a folder of its own")
        named = paths.gate_folder(run.name, run.seed, run.folder.parent).name
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


def unfinished(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob(f"**/gate-*/{paths.INCOMPLETE}"))


def jobs_problems(jobs: dict) -> list[str]:
    """The jobs a verdict needs (GitHub's `needs` context) that did not succeed: a job that
    failed, was cancelled or was skipped leaves nothing the verdict may pass on."""
    return [
        f"job {name} ended {(job or {}).get('result', 'without a result')}"
        for name, job in jobs.items()
        if (job or {}).get("result") != "success"
    ]


def budget_changes(base: dict[str, Profile], ours: dict[str, Profile]) -> list[str]:
    """What a change does to the budgets it is judged by (the base branch's)."""
    changes = [f"this change adds profile {name}" for name in ours if name not in base]
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
    main_dir: Path | None = None,
    note: str | None = None,
    seeds: list[int] | None = None,
    names: list[str] | None = None,
    budgets_path: Path = paths.PYPROJECT,
    jobs: dict | None = None,
    seeds_from: str = "ci",
) -> tuple[bool, str]:
    """The verdict over the profiles' runs, and the job summary in Markdown.

    The runs are judged by the budgets in `budgets_path` (in a pull request, the base branch's
    pyproject.toml, so that a change cannot lower its own bar). Each profile named (default:
    every one there) must have a finished run for each of `seeds` (default: its [tool.gate.seeds]
    list `seeds_from`), nothing else may be there, and every job in `jobs` must have succeeded."""
    try:
        profiles = budgets.load_profiles(budgets_path)
        seeds = budgets.seeds(seeds_from, budgets_path) if seeds is None else seeds
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReportError(f"cannot read the budgets in {budgets_path} ({err})") from None
    failed_jobs = jobs_problems(jobs or {})
    try:
        runs = gather(folder)
    except ReportError as err:
        if not failed_jobs:
            raise
        runs, failed_jobs = [], [*failed_jobs, str(err)]  # the jobs say why
    unknown = sorted(set(names or []) - set(profiles))
    if unknown:
        raise ReportError(f"no profile {', '.join(unknown)} in {budgets_path}")
    changes = []
    if Path(budgets_path).resolve() != paths.PYPROJECT.resolve():
        changes = budget_changes(profiles, budgets.load_profiles())
    profiles = {name: profiles[name] for name in names or profiles}
    parts, passed = ["## Model gate\n"], True
    strays = sorted({r.name for r in runs} - set(profiles))
    unasked = sorted(f"{r.name} seed {r.seed}" for r in runs if r.seed not in seeds)
    missing = [
        f"{name} seed {seed}"
        for name in profiles for seed in seeds
        if not any(r.name == name and r.seed == seed for r in runs)
    ]  # fmt: skip
    problems = [
        *failed_jobs,
        *(f"{name}: no profile in {budgets_path} has this name" for name in strays),
        *(f"{run}: not one of the seeds asked for ({seeds})" for run in unasked),
        *(f"{run}: no finished run" for run in missing),
        *(f"{path} never finished ({paths.INCOMPLETE})" for path in unfinished(folder)),
    ]
    if changes:
        parts.append(
            f"Judged by the budgets of {budgets_path}, not this change's own: "
            + "; ".join(changes) + ".\n"
        )  # fmt: skip
    if problems:
        passed = False
        parts.append("### **FAIL**: the gate did not run as asked\n")
        parts.append("\n".join(f"- {p}" for p in problems) + "\n")
    for name in profiles:
        group = [r for r in runs if r.name == name and r.seed in seeds]
        if group:
            verdict = judge(profiles[name], group)
            passed &= verdict.passed
            parts.append(verdict.markdown)
    if main_dir is not None or note:
        parts.append(comparison(runs, main_dir, note))
    return passed, "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_gate.verdict", description="The verdict over a gate's runs."
    )
    parser.add_argument("runs", type=Path, help="folder holding gate-*/ runs, at any depth")
    parser.add_argument("--main", type=Path, help="folder holding main's gate runs")
    parser.add_argument("--main-note", help="why main's runs are missing, where the caller knows")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(s) for s in text.split(",")],
        help="the seeds every profile must have, e.g. 0,1,2 (default: [tool.gate.seeds] ci)",
    )
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
        "--jobs", type=json.loads, help="GitHub's needs context as JSON: every job must succeed"
    )
    parser.add_argument(
        "--seeds-from", choices=budgets.WHERE, default="ci",
        help="without --seeds, the [tool.gate.seeds] list asked for (default: ci)",
    )  # fmt: skip
    parser.add_argument(
        "--check", choices=("budget", "regression"), default="budget",
        help="budget: the runs against the budgets (default); regression: against main's seeds",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.check == "regression":
            passed, text = regression(gather(args.runs), args.main, args.main_note)
        else:
            passed, text = summary(
                args.runs, args.main, args.main_note, args.seeds, args.profile, args.budgets,
                args.jobs, args.seeds_from,
            )  # fmt: skip
    except (ReportError, budgets.ConfigError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(text)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
