"""The verdict as people read it, in Markdown: one run's gate table and history, several seeds with
their spread, the paired comparison and the regression check against main. Rendering only: what
passes is decided in mnist_gate.judging. No torch.
"""

import statistics

from . import rates, stats
from .judging import Regression, Verdict, failure, rule, underpowered
from .profiles import Profile, check_accuracy, check_epochs, check_parameter_count
from .record import Epoch, Record
from .settings import Refused


class ReportError(Refused):
    """Runs that cannot be reported as asked; the message is one line that says which and why."""


def result(failed: bool) -> str:
    return "**FAIL**" if failed else "pass"


def gate_rows(run: Record, profile: Profile) -> list[tuple[str, str, str, str, str]]:
    """(check, value, budget, margin, verdict), each verdict from the gate's own check."""
    acc, params, epochs = run.final_test_acc, run.parameters, run.epochs
    return [
        ("model", run.model, profile.model, "", result(run.model != profile.model)),
        ("parameters", f"{params:,}", f"< {profile.max_params:,}",
         f"{profile.max_params - params:,} spare",
         result(failure(check_parameter_count, params, profile))),
        ("epochs", str(epochs), f"<= {profile.max_epochs}",
         f"{profile.max_epochs - epochs} spare",
         result(failure(check_epochs, epochs, profile))),
        ("final-epoch test accuracy", f"{acc:.2%} ({interval(run)})",
         f">= {profile.min_accuracy:.2%}",
         f"{(acc - profile.min_accuracy) * 100:+.2f} points",
         result(failure(check_accuracy, acc, profile))),
    ]  # fmt: skip


def interval(run: Record) -> str:
    """The 95% interval of a run's accuracy for its number of test images (Wilson's)."""
    lo, hi = stats.wilson(run.test_correct, run.test_images)
    return f"95% interval {lo:.2%} to {hi:.2%}"


def table(header: tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def images(row: Epoch) -> str:
    """What one epoch trained on, e.g. "20x20 augmented"."""
    return f"{row.size}x{row.size} {'augmented' if row.augmented else 'clean'}"


def run_summary(run: Record, profile: Profile | None) -> str:
    """One run as Markdown: the gate table against `profile` (None: a run of no profile), the
    per-epoch history, where it ran."""
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


def verdict(judged: Verdict) -> str:
    """A verdict as Markdown: one run's summary, or the seeds' (seeds_summary)."""
    if len(judged.records) == 1:
        return run_summary(judged.records[0], judged.profile)
    return seeds_summary(judged)


def seeds_summary(judged: Verdict) -> str:
    """Several seeds of a profile as Markdown: every run, then judge()'s verdict on their mean and
    on each run's own budget."""
    profile, runs, spread = judged.profile, judged.records, judged.spread
    accuracy_failed, budget_failed = judged.accuracy_failure is not None, bool(judged.run_failures)
    threshold = profile.min_accuracy
    rows = [
        (r.seed, f"{r.final_test_acc:.2%}" + (" (under)" if r.final_test_acc < threshold else ""),
         interval(r), r.epochs, f"{r.parameters:,}", f"{r.wall_seconds:.0f}")
        for r in runs
    ]  # fmt: skip
    seeds = table(("seed", "final-epoch test accuracy", "", "epochs", "parameters", "wall s"), rows)
    parts = [
        f"### {profile.model} (profile {profile.name}), {len(runs)} seeds: "
        f"{result(accuracy_failed or budget_failed)}",
        table(
            ("", "value", "budget", "result"),
            [
                # Three decimals: a mean of 99.3967% must not read as the 99.40% it fails.
                ("mean final-epoch test accuracy", f"{spread.mean:.3%}",
                 *((f">= {threshold:.2%}", result(accuracy_failed))
                   if len(runs) < rates.bound_seeds() else ("", ""))),
                ("min / max", f"{spread.low:.2%} / {spread.high:.2%}", "", ""),
                ("standard deviation over seeds", f"{spread.sd * 100:.3f} points"
                 + (" (identical runs: no spread to estimate)" if spread.sd == 0 else ""), "", ""),
                (f"{rates.BOUND_CONFIDENCE:.0%} lower bound on the mean (one-sided, t)",
                 "n/a" if spread.sd == 0 else f"{spread.lower_bound:.3%}",
                 *((f">= {threshold:.2%}", result(accuracy_failed))
                   if len(runs) >= rates.bound_seeds() else ("", ""))),
                ("P(one more run < threshold), normal fit",
                 "n/a" if spread.sd == 0 else f"{spread.below:.1%}", "", ""),
                ("model, epochs, parameters (every run)", "",
                 f"{profile.model}, <= {profile.max_epochs}, < {profile.max_params:,}",
                 result(budget_failed)),
            ],
        ),
        "\n".join(f"- {line}" for line in judged.run_failures),
        rule(len(runs)),
        f"Ran on {places(runs)}.",
        folded("every seed", seeds),
    ]  # fmt: skip
    return "\n\n".join(part for part in parts if part) + "\n"


def folded(title: str, text: str) -> str:
    """Text a reader opens when they want it: `<details>`, closed."""
    return f"<details><summary>{title}</summary>\n\n{text}\n\n</details>"


def accuracy(judged: Verdict) -> str:
    """The number a verdict decides on: the run's accuracy, the mean of a few seeds, or the mean
    with the lower bound that many seeds are held to."""
    n, spread = len(judged.records), judged.spread
    if n == 1:
        return f"{spread.mean:.2%}, 1 seed"
    if n < rates.bound_seeds():
        return f"mean {spread.mean:.3%} of {n} seeds"
    bound = "n/a" if spread.sd == 0 else f"{spread.lower_bound:.3%}"
    return f"mean {spread.mean:.3%} of {n} seeds, {rates.BOUND_CONFIDENCE:.0%} lower bound {bound}"


def change(compared: Regression) -> str:
    """A profile's change against main, in points, with its 95% interval."""
    low, high = compared.test.interval()
    return f"{compared.test.change:+.3f} points (95%: {low:+.3f} to {high:+.3f})"


def headline(
    judged: dict[str, Verdict | None],
    compared: dict[str, Regression | str] | None,
    passed: bool,
    reasons: list[str],
) -> str:
    """The summary's first lines: the decision, then a row per profile (its budget decision and
    the number it rests on, and with `compared` its change against main and the regression
    check's decision, or why there is none), then every reason it failed."""
    header = ["profile", "budget", "final-epoch test accuracy", "bar"]
    if compared is not None:
        header += ["against main", "regression"]
    rows = []
    for name, verdict in judged.items():
        row = [f"`{name}`"]
        if verdict is None:
            row += ["**FAIL**", "no runs", ""]
        else:
            bar = f">= {verdict.profile.min_accuracy:.2%}"
            row += [result(not verdict.passed), accuracy(verdict), bar]
        if compared is not None:
            found = compared.get(name, "not compared")
            if isinstance(found, str):
                row += [found, ""]
            else:
                row += [change(found), "**FAIL**: worse" if found.dropped else "pass"]
        rows.append(row)
    lines = [f"## Model gate: {result(not passed)}", table(tuple(header), rows)]
    if reasons:
        lines.append("\n".join(f"- **FAIL**: {line}" for line in reasons))
    return "\n\n".join(lines) + "\n"


def places(runs) -> str:
    """Every device and torch the runs ran on, each once: "NVIDIA H200 (cuda), torch 2.11.0"."""
    seen = dict.fromkeys(f"{r.device} ({r.device_type}), torch {r.torch}" for r in runs)
    return "; ".join(seen)


def comparison(rows: list[tuple], missing: list[str], unreadable: list[str]) -> str:
    """The paired comparison with main: a row per run (run, main's accuracy, this change's, images
    fixed, broken, McNemar's p, what it says), and a sentence per run without one."""
    parts = []
    if rows:
        header = (
            "run",
            "main",
            "this change",
            "fixed",
            "broken",
            "McNemar p",
            f"at 5% over the {len(rows)} runs (Bonferroni)",
        )
        parts.append(folded(f"image by image, {len(rows)} runs", table(header, rows)))
    if missing:
        parts.append(
            f"No paired comparison for {', '.join(missing)}: main's gate result has no test "
            "predictions for it (no such run on main)."
        )
    parts += [f"No paired comparison for {line}." for line in unreadable]
    return "### Against main\n\n" + "\n\n".join(parts) + "\n"


def regression(
    judged: list[Regression],
    notes: dict[str, str],
    failures: dict[str, str],
    reference: str | None = None,
) -> str:
    """The regression check: what main's reference is, a row per profile judged, a sentence for
    each profile that passes unjudged and for each that fails uncompared."""
    rows = []
    for r in judged:
        low, high = r.test.interval()
        rows.append((
            r.name, f"{statistics.mean(r.new):.3f}% ({len(r.new)})",
            f"{statistics.mean(r.old):.3f}% ({len(r.old)})",
            f"{r.test.change:+.3f} ({low:+.3f} to {high:+.3f})", f"{r.test.p_drop:.3g}",
            f"{r.test.detectable(r.level):.3f}",
            "**FAIL**: the recipe got worse" if r.dropped else "pass",
        ))  # fmt: skip
    parts = [
        "Each side is a mean over independently trained seeds, so this asks whether the recipe "
        "got worse, not whether two trained networks differ (Hsu's test). It blocks an honest "
        f"change at most {rates.FALSE_ALARMS:.0%} of the time, every profile together, however "
        "its seeds scatter."
    ]
    if reference:
        parts.append(reference)
    if rows:
        level = judged[0].level
        header = ("profile", "this change (seeds)", "main (seeds)", "change, points (95% interval)",
                  "p, one-sided", f"smallest drop detectable (80% power, at {level:.2%})",
                  f"at {level:.2%}")  # fmt: skip
        parts.append(table(header, rows))
    weak = dict.fromkeys(
        filter(None, (underpowered(len(r.new), len(r.old), r.profiles) for r in judged))
    )
    parts += [f"Too few seeds: {line}." for line in weak]
    parts += [f"{name[0].upper()}{name[1:]}: {why}." for name, why in notes.items()]  # sentences
    parts += [f"**FAIL**: {name}: {why}." for name, why in failures.items()]
    return "### Regression against main\n\n" + "\n\n".join(parts) + "\n"
