"""Reports people read: the run summary, the training curves, the model summary and the README.

    python report.py summary runs                 # Markdown for every runs/gate-*/ (CI job summary)
    python report.py readme runs/seed0 runs/seed1  # rewrite the README's generated sections

train.py calls write_run_reports() after every run, so each output folder holds metrics.json,
summary.md, curves.png and model.txt.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torchinfo  # noqa: E402
from torch import nn  # noqa: E402

import gate  # noqa: E402
import model  # noqa: E402
from mnist import SIZE  # noqa: E402

ROOT = Path(__file__).resolve().parent
README = ROOT / "README.md"


def profile_for(model_name: str) -> gate.Profile | None:
    return next((p for p in gate.load_profiles().values() if p.model == model_name), None)


def gate_rows(metrics: dict, profile: gate.Profile) -> list[tuple[str, str, str, str, str]]:
    """(check, value, budget, margin, verdict), each verdict from the gate's own check."""
    acc, params, epochs = metrics["final_test_acc"], metrics["parameters"], metrics["epochs"]
    return [
        ("parameters", f"{params:,}", f"< {profile.max_params:,}",
         f"{profile.max_params - params:,} spare",
         verdict(gate.check_parameter_count, params, profile)),
        ("epochs", str(epochs), f"<= {profile.max_epochs}",
         f"{profile.max_epochs - epochs} spare", verdict(gate.check_epochs, epochs, profile)),
        ("final-epoch test accuracy", f"{acc:.2%}", f">= {profile.min_accuracy:.2%}",
         f"{(acc - profile.min_accuracy) * 100:+.2f} points",
         verdict(gate.check_accuracy, acc, profile)),
    ]  # fmt: skip


def verdict(check, value, profile: gate.Profile) -> str:
    try:
        check(value, profile)
    except gate.GateError:
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
    return f"{stats}\n\nReceptive field, layer by layer:\n\n{gate.layer_table(net)}\n"


def write_run_reports(out: Path, metrics: dict, net: nn.Module) -> None:
    """summary.md, curves.png and model.txt beside metrics.json."""
    (out / "summary.md").write_text(run_summary(metrics))
    plot_curves(metrics, out / "curves.png")
    (out / "model.txt").write_text(model_summary(net))


def load_runs(paths) -> list[dict]:
    return [json.loads(Path(p, "metrics.json").read_text()) for p in paths]


def comparison(runs: list[dict], main_dir: Path, note: str | None = None) -> str:
    """This change against main's last gate result, per model, or plainly that there is none
    (note: the workflow's sentence saying why, where it knows)."""
    main = {m["model"]: m for m in load_runs(p.parent for p in main_dir.glob("**/metrics.json"))}
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
        rf = gate.trace(getattr(model, name)()).rf
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
    for profile in gate.load_profiles().values():
        net = gate.build(profile)
        rf = gate.trace(net).rf
        parts.append(
            f"**{profile.model}** (profile `{profile.name}`): {gate.count_parameters(net):,} "
            f"parameters, receptive field {rf}x{rf} at the classifier.\n\n{gate.layer_table(net)}"
        )
    return "\n\n".join(parts)


def replace_section(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", flags=re.DOTALL
    )
    if not pattern.search(text):
        raise SystemExit(f"report.py: error: README.md has no generated:{name} section")
    return pattern.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Markdown reports from training runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="Markdown for every gate-*/ run under a folder")
    summary.add_argument("runs", type=Path, help="folder holding gate-<profile>/ runs")
    summary.add_argument("--compare", type=Path, help="folder holding main's gate runs")
    summary.add_argument("--main-note", help="why main's runs are missing, where the caller knows")
    readme = sub.add_parser("readme", help="rewrite README.md's generated sections")
    readme.add_argument("seed_runs", type=Path, nargs="*", help="run folders for the seed table")
    args = parser.parse_args(argv)

    if args.command == "summary":
        dirs = sorted(p.parent for p in args.runs.glob("gate-*/metrics.json"))
        if not dirs:
            sys.exit(f"report.py: error: no gate-*/metrics.json under {args.runs}")
        runs = load_runs(dirs)
        print("## Model gate\n\n" + "\n".join(run_summary(m) for m in runs))
        if args.compare:
            print(comparison(runs, args.compare, args.main_note))
        return

    missing = [str(p) for p in args.seed_runs if not (p / "metrics.json").is_file()]
    if missing:
        sys.exit(f"report.py: error: no metrics.json in {', '.join(missing)}")
    text = replace_section(README.read_text(), "architecture", architecture())
    if args.seed_runs:
        text = replace_section(text, "results", results_table(load_runs(args.seed_runs)))
    README.write_text(text)


if __name__ == "__main__":
    main()
