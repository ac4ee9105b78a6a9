"""The verdict over a gate's runs, and the Markdown people read: each run, the seeds together,
and the change against main on the same test images.

    python -m mnist_gate.verdict runs                     # every runs/gate-*/, by profile
    python -m mnist_gate.verdict runs --main runs/main    # with the paired comparison with main

Prints Markdown (the CI job summary) and exits 1 when a profile fails its budget, 2 when the runs
cannot be read. No torch: the CI job that gathers the runs of several runners has no GPU and
installs numpy alone.

With one seed the verdict is that run's; with several it is on their mean, and the summary adds
their spread, a one-sided 95% lower bound on the mean (Student's t: a handful of seeds, spread
unknown) and the chance that one more run ends under the threshold (a normal fit). Each run's
accuracy carries its 95% interval for a test set of this size (Wilson's). Against main, both runs
classify the same 10,000 images, so the comparison is paired: the images the change fixes and
breaks, and McNemar's exact test on them.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from . import budgets, stats
from .budgets import profile_for
from .paths import PREDICTIONS


class ReportError(Exception):
    """Runs that cannot be reported as asked; the message is one line that says which and why."""


def gate_rows(metrics: dict, profile: budgets.Profile) -> list[tuple[str, str, str, str, str]]:
    """(check, value, budget, margin, verdict), each verdict from the gate's own check."""
    acc, params, epochs = metrics["final_test_acc"], metrics["parameters"], metrics["epochs"]
    return [
        ("parameters", f"{params:,}", f"< {profile.max_params:,}",
         f"{profile.max_params - params:,} spare",
         result(budgets.check_parameter_count, params, profile)),
        ("epochs", str(epochs), f"<= {profile.max_epochs}",
         f"{profile.max_epochs - epochs} spare", result(budgets.check_epochs, epochs, profile)),
        ("final-epoch test accuracy", f"{acc:.2%} ({interval(metrics)})",
         f">= {profile.min_accuracy:.2%}",
         f"{(acc - profile.min_accuracy) * 100:+.2f} points",
         result(budgets.check_accuracy, acc, profile)),
    ]  # fmt: skip


def result(check, value, profile: budgets.Profile) -> str:
    try:
        check(value, profile)
    except budgets.GateError:
        return "**FAIL**"
    return "pass"


def interval(metrics: dict) -> str:
    """The 95% interval of a run's accuracy for its number of test images (Wilson's)."""
    if "test_correct" not in metrics:
        return "no interval: a run from before the test counts were kept"
    lo, hi = stats.wilson(metrics["test_correct"], metrics["test_images"])
    return f"95% interval {lo:.2%} to {hi:.2%}"


def table(header: tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def images(row: dict) -> str:
    """What one epoch trained on, e.g. "20x20 augmented"."""
    return f"{row['size']}x{row['size']} {'augmented' if row['augmented'] else 'clean'}"


def run_summary(metrics: dict) -> str:
    """One run as Markdown: the gate table, the per-epoch history, where it ran."""
    profile = profile_for(metrics["model"])
    title = f"{metrics['model']} (profile {profile.name})" if profile else metrics["model"]
    parts = [f"### {title}, seed {metrics['seed']}"]
    if profile:
        parts.append(
            table(("check", "value", "budget", "margin", "result"), gate_rows(metrics, profile))
        )
    else:
        parts.append(f"No profile in pyproject.toml gates {metrics['model']}.")
    parts += metrics.get("notes", [])
    parts.append(
        f"{metrics['wall_seconds']:.0f} s wall on {metrics['device']} ({metrics['device_type']}, "
        f"{metrics['threads']} threads), torch {metrics['torch']}, Python {metrics['python']}, "
        f"commit {(metrics.get('git_commit') or 'unknown')[:12]}."
    )
    history = [
        (h["epoch"], images(h), f"{h['train_loss']:.4f}", f"{h['train_acc']:.2%}",
         f"{h['test_loss']:.4f}", f"{h['test_acc']:.2%}", f"{h['lr']:.4f}", f"{h['seconds']:.1f}")
        for h in metrics["history"]
    ]  # fmt: skip
    header = ("epoch", "images", "train loss", "train acc", "test loss", "test acc", "lr", "s")
    parts.append("<details><summary>per-epoch history</summary>\n\n" + table(header, history))
    parts.append("</details>")
    return "\n\n".join(parts) + "\n"


REQUIRED = ("model", "parameters", "epochs", "final_test_acc", "seed", "wall_seconds", "history")


def load_run(folder: Path) -> dict:
    """One run's metrics.json, or a one-line ReportError saying what is wrong with it."""
    path = Path(folder, "metrics.json")
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"no metrics.json in {folder}") from None
    except (OSError, ValueError) as err:
        raise ReportError(f"{path} is unreadable ({err})") from None
    missing = [k for k in REQUIRED if not isinstance(metrics, dict) or k not in metrics]
    if missing:
        raise ReportError(f"{path} is not a run's metrics (no {', '.join(missing)})")
    metrics["folder"] = str(folder)
    return metrics


def load_runs(folders) -> list[dict]:
    return [load_run(folder) for folder in folders]


def load_predictions(folder: Path) -> np.ndarray | None:
    """Row 0 the true digit of each test image, row 1 the run's prediction; None for a run from
    before predictions were kept."""
    path = Path(folder, PREDICTIONS)
    if not path.is_file():
        return None
    try:
        pairs = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ReportError(f"{path} is unreadable ({err})") from None
    if pairs.ndim != 2 or pairs.shape[0] != 2:
        raise ReportError(f"{path} is not 2 rows of test labels and predictions")
    return pairs


def profile_summary(profile: budgets.Profile, runs: list[dict]) -> tuple[bool, str]:
    """Whether the profile passes over its runs (on their mean with several), and the Markdown."""
    runs = sorted(runs, key=lambda r: r["seed"])
    if len(runs) == 1:
        run = runs[0]
        passed = all(row[-1] == "pass" for row in gate_rows(run, profile))
        return passed, run_summary(run)
    accs = [r["final_test_acc"] for r in runs]
    mean = statistics.mean(accs)
    checks = [result(budgets.check_accuracy, mean, profile)]
    checks += [result(budgets.check_epochs, r["epochs"], profile) for r in runs]
    checks += [result(budgets.check_parameter_count, r["parameters"], profile) for r in runs]
    passed = all(c == "pass" for c in checks)
    rows = [
        (r["seed"], f"{r['final_test_acc']:.2%}", interval(r), r["epochs"], f"{r['parameters']:,}",
         f"{r['wall_seconds']:.0f}")
        for r in runs
    ]  # fmt: skip
    threshold = profile.min_accuracy
    lower = stats.mean_lower_bound(accs)
    below = stats.below_probability(accs, threshold)
    parts = [
        f"### {profile.model} (profile {profile.name}), {len(runs)} seeds: "
        f"{'pass' if passed else '**FAIL**'}",
        table(("seed", "final-epoch test accuracy", "", "epochs", "parameters", "wall s"), rows),
        table(
            ("", "value", "budget", "result"),
            [
                ("mean final-epoch test accuracy", f"{mean:.2%}", f">= {threshold:.2%}", checks[0]),
                ("min / max", f"{min(accs):.2%} / {max(accs):.2%}", "", ""),
                ("standard deviation over seeds", f"{statistics.stdev(accs) * 100:.3f} points",
                 "", ""),
                ("95% lower bound on the mean (one-sided, t)", f"{lower:.2%}", "", ""),
                ("P(one more run < threshold), normal fit", f"{below:.1%}", "", ""),
                ("epochs, parameters (every run)", "", f"<= {profile.max_epochs}, "
                 f"< {profile.max_params:,}", "pass" if all(c == "pass" for c in checks[1:])
                 else "**FAIL**"),
            ],
        ),
        f"Ran on {runs[0]['device']} ({runs[0]['device_type']}), torch {runs[0]['torch']}.",
    ]  # fmt: skip
    return passed, "\n\n".join(parts) + "\n"


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


def comparison(runs: list[dict], main_dir: Path | None, note: str | None = None) -> str:
    """This change against main's last gate result, image by image, or one sentence saying why
    there is none (note: the workflow's own sentence, where it knows)."""
    title = "### Against main\n\n"
    found = []
    if main_dir is not None:
        try:
            found = load_runs(p.parent for p in sorted(main_dir.glob("**/metrics.json")))
        except ReportError as err:
            note = f"Main's gate result cannot be read: {err}."
    if not found:
        why = note or "Main has no successful gate run yet, or its artifact has expired."
        return f"{title}No gate result from main to compare with. {why}\n"
    rows, missing = [], []
    for run in sorted(runs, key=lambda r: (r["model"], r["seed"])):
        same = [m for m in found if m["model"] == run["model"]]
        base = next((m for m in same if m["seed"] == run["seed"]), same[0] if same else None)
        new = load_predictions(Path(run["folder"]))
        old = None if base is None else load_predictions(Path(base["folder"]))
        if base is None or new is None or old is None or old.shape != new.shape:
            missing.append(f"{run['model']} seed {run['seed']}")
            continue
        fixed, broken, p = paired(new, old)
        rows.append((
            f"{run['model']} seed {run['seed']}" + ("" if base["seed"] == run["seed"]
                                                    else f" (main: seed {base['seed']})"),
            f"{base['final_test_acc']:.2%}", f"{run['final_test_acc']:.2%}", fixed, broken,
            f"{p:.3g}", plain(fixed, broken, p),
        ))  # fmt: skip
    parts = []
    if rows:
        header = ("run", "main", "this change", "fixed", "broken", "McNemar p", "at 5%")
        parts.append(table(header, rows))
    if missing:
        parts.append(
            f"No paired comparison for {', '.join(missing)}: main's gate result has no test "
            "predictions for it (no such run on main, or one from before predictions were kept)."
        )
    return title + "\n\n".join(parts) + "\n"


def gather(folder: Path) -> list[dict]:
    """Every run under folder whose directory is named gate-*, at any depth (artifacts unpack
    into a directory each)."""
    found = sorted(p.parent for p in folder.glob("**/gate-*/metrics.json"))
    if not found:
        raise ReportError(f"no gate-*/metrics.json under {folder}")
    return load_runs(found)


def summary(
    folder: Path, main_dir: Path | None = None, note: str | None = None
) -> tuple[bool, str]:
    """The verdict over every gated profile's runs, and the job summary in Markdown."""
    runs = gather(folder)
    parts, passed = ["## Model gate\n"], True
    for name in dict.fromkeys(r["model"] for r in runs):
        group = [r for r in runs if r["model"] == name]
        profile = profile_for(name)
        if profile is None:
            parts.append(f"### {name}\n\nNo profile in pyproject.toml gates {name}.\n")
            continue
        ok, text = profile_summary(profile, group)
        passed &= ok
        parts.append(text)
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
    args = parser.parse_args(argv)
    try:
        passed, text = summary(args.runs, args.main, args.main_note)
    except ReportError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(text)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
