"""Reports people read: the run summary, the training curves, the model summary and the README.

    python -m mnist_gate.report summary runs          # Markdown for every runs/gate-*/ (CI)
    python -m mnist_gate.report readme runs/seeds/*   # rewrite the README's generated sections

train.py's command line and the slow tier call write_run_reports() after a run, so its folder
holds summary.md, curves.png and model.txt beside metrics.json and model.pt.
"""

import argparse
import json
import re
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torchinfo  # noqa: E402
from torch import nn  # noqa: E402

from . import checks, networks, paths  # noqa: E402
from .checks import profile_for  # noqa: E402
from .data import SIZE  # noqa: E402
from .tracer import probe  # noqa: E402


class ReportError(Exception):
    """Runs that cannot be reported as asked; the message is one line that says which and why."""


def gate_rows(metrics: dict, profile: checks.Profile) -> list[tuple[str, str, str, str, str]]:
    """(check, value, budget, margin, verdict), each verdict from the gate's own check."""
    acc, params, epochs = metrics["final_test_acc"], metrics["parameters"], metrics["epochs"]
    return [
        ("parameters", f"{params:,}", f"< {profile.max_params:,}",
         f"{profile.max_params - params:,} spare",
         verdict(checks.check_parameter_count, params, profile)),
        ("epochs", str(epochs), f"<= {profile.max_epochs}",
         f"{profile.max_epochs - epochs} spare", verdict(checks.check_epochs, epochs, profile)),
        ("final-epoch test accuracy", f"{acc:.2%}", f">= {profile.min_accuracy:.2%}",
         f"{(acc - profile.min_accuracy) * 100:+.2f} points",
         verdict(checks.check_accuracy, acc, profile)),
    ]  # fmt: skip


def verdict(check, value, profile: checks.Profile) -> str:
    try:
        check(value, profile)
    except checks.GateError:
        return "**FAIL**"
    return "pass"


def table(header: tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def images(row: dict) -> str:
    """What one epoch trained on, e.g. "20x20 augmented" (rows from older runs lack the keys)."""
    size = row.get("size", SIZE)
    return f"{size}x{size} {'augmented' if row.get('augmented', True) else 'clean'}"


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


def plot_curves(metrics: dict, path: Path) -> None:
    history = metrics["history"]
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train (label-smoothed)")
    loss_ax.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
    loss_ax.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    clean = sum(not h.get("augmented", True) for h in history)
    train_label = f"train (augmented{f', last {clean} clean' if clean else ''})"
    acc_ax.plot(epochs, [100 * h["train_acc"] for h in history], "o-", label=train_label)
    acc_ax.plot(epochs, [100 * h["test_acc"] for h in history], "o-", label="test")
    profile = profile_for(metrics["model"])
    bar = 100 * (profile.min_accuracy if profile else 0.994)
    acc_ax.axhline(bar, color="crimson", linestyle="--", label=f"gate: {bar:.1f}%")
    # Zoom on the top of the scale, but never hide a run that stayed far below it.
    lowest = min(100 * h["test_acc"] for h in history[1:] or history)
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="%", ylim=(min(98, int(lowest)), 100))
    small = [h for h in history if h.get("size", SIZE) < SIZE]
    for ax in (loss_ax, acc_ax):
        if small:
            size = small[0]["size"]
            ax.axvspan(small[0]["epoch"] - 0.5, small[-1]["epoch"] + 0.5, color="grey", alpha=0.15,
                       label=f"{size}x{size} images, train and test")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_xticks(epochs)
    final = history[-1]["test_acc"] * 100
    fig.suptitle(
        f"{metrics['model']}, {metrics['parameters']:,} parameters, seed {metrics['seed']}: "
        f"final-epoch test accuracy {final:.2f}%"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_summary(net: nn.Module) -> str:
    stats = torchinfo.summary(
        net,
        input_size=(1, 1, 28, 28),
        device=next(net.parameters()).device,
        mode="eval",
        verbose=0,
        col_names=("output_size", "num_params"),
    )
    return f"{stats}\n\nReceptive field, layer by layer:\n\n{layer_table(net)}\n"


def layer_table(net: nn.Module) -> str:
    """The architecture as a Markdown table: layer, output shape, receptive field, parameters."""
    lines = ["| layer | output | RF | params |", "|---|---|---|---|"]
    for row in probe(net).rows:
        shape = "x".join(str(d) for d in row.shape)
        rf = "" if row.rf is None else row.rf
        lines.append(f"| {row.layer} | {shape} | {rf} | {row.params:,} |")
    lines.append(f"| total | | | {networks.count_parameters(net):,} |")
    return "\n".join(lines)


def write_run_reports(out: Path, metrics: dict, net: nn.Module) -> None:
    """summary.md, curves.png and model.txt beside metrics.json."""
    paths.write_text(out / "summary.md", run_summary(metrics))
    with paths.atomic(out / "curves.png") as tmp:
        plot_curves(metrics, tmp)
    paths.write_text(out / "model.txt", model_summary(net))


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
    return metrics


def load_runs(folders) -> list[dict]:
    return [load_run(folder) for folder in folders]


def comparison(runs: list[dict], main_dir: Path, note: str | None = None) -> str:
    """This change against main's last gate result, per model, or plainly that there is none
    (note: the workflow's sentence saying why, where it knows)."""
    try:
        found = load_runs(p.parent for p in main_dir.glob("**/metrics.json"))
    except ReportError as err:
        found, note = [], f"Main's gate result cannot be read: {err}."
    main = {m["model"]: m for m in found}
    if not main:
        why = note or "main has no successful gate run yet, or its artifact has expired."
        return f"### Against main\n\nNo gate result from main to compare with. {why}\n"
    rows = []
    for run in runs:
        base = main.get(run["model"])
        if base is None:
            rows.append((run["model"], "no result on main", "", ""))
            continue
        for label, key, fmt, scale in (
            ("final-epoch accuracy", "final_test_acc", "{:.2f}%", 100),
            ("parameters", "parameters", "{:,.0f}", 1),
            ("wall time (s)", "wall_seconds", "{:.0f}", 1),
        ):
            old, new = base[key] * scale, run[key] * scale
            rows.append((f"{run['model']} {label}", fmt.format(old), fmt.format(new),
                         f"{new - old:+,.2f}"))  # fmt: skip
    return "### Against main\n\n" + table(("", "main", "this change", "change"), rows) + "\n"


def results_table(runs: list[dict]) -> str:
    """Final-epoch accuracy and wall time over seeds, one row per model: min / mean / max."""
    rows = []
    by_size = sorted(runs, key=lambda r: r["parameters"])
    for name in dict.fromkeys(r["model"] for r in by_size):
        group = [r for r in runs if r["model"] == name]
        accs = [100 * r["final_test_acc"] for r in group]
        walls = [r["wall_seconds"] for r in group]
        rf = probe(networks.build(name)).rf
        rows.append((
            name, f"{group[0]['parameters']:,}", rf, group[0]["epochs"],
            ", ".join(str(r["seed"]) for r in group),
            f"{min(accs):.2f} / {statistics.mean(accs):.2f} / {max(accs):.2f}",
            f"{min(walls):.0f} / {statistics.median(walls):.0f} / {max(walls):.0f}",
            f"{group[0]['device']} ({group[0]['threads']} threads)",
        ))  # fmt: skip
    header = ("model", "params", "RF", "epochs", "seeds", "final test acc % (min / mean / max)",
              "wall s (min / median / max)", "device")  # fmt: skip
    return table(header, rows)


def architecture() -> str:
    parts = []
    for profile in checks.load_profiles().values():
        net = checks.build(profile)
        rf = probe(net).rf
        parts.append(
            f"**{profile.model}** (profile `{profile.name}`): {networks.count_parameters(net):,} "
            f"parameters, receptive field {rf}x{rf} at the classifier.\n\n{layer_table(net)}"
        )
    return "\n\n".join(parts)


def replace_section(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", flags=re.DOTALL
    )
    if not pattern.search(text):
        raise ReportError(f"README.md has no generated:{name} section")
    return pattern.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text)


def check_seed_runs(runs: list[dict]) -> None:
    """Runs that may share the README's results table: every gated network, each trained the same
    way on every seed, so no row is dropped and no row mixes settings."""
    wanted = [p.model for p in checks.load_profiles().values()]
    missing = [name for name in wanted if not any(r["model"] == name for r in runs)]
    if missing:
        raise ReportError(
            f"no runs of {', '.join(missing)}: the table needs every gated network, or it would "
            "lose a row"
        )
    for name in dict.fromkeys(r["model"] for r in runs):
        group = [r for r in runs if r["model"] == name]
        settings = {json.dumps(training_settings(r), sort_keys=True): r for r in group}
        if len(settings) > 1:
            a, b = list(settings.values())[:2]
            differ = sorted(
                k for k in training_settings(a) | training_settings(b)
                if training_settings(a).get(k) != training_settings(b).get(k)
            )  # fmt: skip
            raise ReportError(
                f"the {name} runs were not trained alike: seeds {a['seed']} and {b['seed']} "
                f"differ in {', '.join(differ)}"
            )
        seeds = [r["seed"] for r in group]
        if len(set(seeds)) < len(seeds):
            raise ReportError(f"the {name} runs repeat a seed: {sorted(seeds)}")


def training_settings(run: dict) -> dict:
    """The settings that decide a run's result, less the seed and where it was saved."""
    ignored = {"seed", "out", "progress", "data_dir"}
    settings = {k: v for k, v in run.get("config", {}).items() if k not in ignored}
    return {**settings, "epochs": run["epochs"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_gate.report", description="Markdown reports from training runs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="Markdown for every gate-*/ run under a folder")
    summary.add_argument("runs", type=Path, help="folder holding gate-<profile>/ runs")
    summary.add_argument("--compare", type=Path, help="folder holding main's gate runs")
    summary.add_argument("--main-note", help="why main's runs are missing, where the caller knows")
    readme = sub.add_parser("readme", help="rewrite README.md's generated sections")
    readme.add_argument("seed_runs", type=Path, nargs="*", help="run folders for the seed table")
    args = parser.parse_args(argv)
    try:
        if args.command == "summary":
            print(summary_text(args.runs, args.compare, args.main_note))
        else:
            write_readme(args.seed_runs)
    except ReportError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")


def summary_text(folder: Path, compare: Path | None, note: str | None) -> str:
    dirs = sorted(p.parent for p in folder.glob("gate-*/metrics.json"))
    if not dirs:
        raise ReportError(f"no gate-*/metrics.json under {folder}")
    runs = load_runs(dirs)
    text = "## Model gate\n\n" + "\n".join(run_summary(m) for m in runs)
    if compare:
        text += "\n" + comparison(runs, compare, note)
    return text


def write_readme(seed_runs: list[Path]) -> None:
    runs = load_runs(seed_runs)
    if runs:
        check_seed_runs(runs)
    text = replace_section(paths.README.read_text(), "architecture", architecture())
    if runs:
        text = replace_section(text, "results", results_table(runs))
    paths.write_text(paths.README, text)


if __name__ == "__main__":
    main()
