"""Reports people read beside a run, and the README's generated tables.

    python -m mnist_gate.report readme runs/seeds/*   # rewrite the README's generated sections

train.py's command line and the slow tier call write_run_reports() after a run, so its folder
holds summary.md, curves.png, errors.png and model.txt beside metrics.json, model.pt and the test
predictions. The verdict over several runs, and the CI job summary, are mnist_gate.verdict's.
"""

import argparse
import json
import re
import statistics
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torchinfo  # noqa: E402
from torch import nn  # noqa: E402

from . import budgets, checks, networks, paths, stats  # noqa: E402
from .budgets import profile_for  # noqa: E402
from .data import SIZE, load_mnist  # noqa: E402
from .tracer import probe  # noqa: E402
from .verdict import ReportError, load_predictions, load_runs, run_summary, table  # noqa: E402

ERRORS_SHOWN = 100  # misclassified test images in errors.png, at most


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
        input_size=(1, 1, SIZE, SIZE),
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


def plot_errors(metrics: dict, pairs: np.ndarray, images: np.ndarray, path: Path) -> None:
    """The misclassified test images as a grid, each titled with its true and predicted digit.

    The grid is one image with the titles written on it: an axes per digit, a hundred of them,
    took seconds to lay out."""
    wrong = np.flatnonzero(pairs[0] != pairs[1])
    shown = wrong[:ERRORS_SHOWN]
    cols = 10
    rows = max(1, -(-len(shown) // cols))
    gap, title = 12, 16  # pixels between the digits side by side, and above each for its title
    cell_w, cell_h = SIZE + gap, title + SIZE + 4
    grid = np.zeros((rows * cell_h, cols * cell_w), dtype=np.uint8)
    inch = 1.1 / cell_w  # a digit's cell 1.1 inches wide
    height, heading = rows * cell_h * inch, 0.5  # inches: the grid, and the figure's title above
    fig = plt.figure(figsize=(cols * cell_w * inch, height + heading))
    ax = fig.add_axes((0, 0, 1, height / (height + heading)))
    ax.axis("off")
    for k, i in enumerate(shown):
        top, left = (k // cols) * cell_h + title, (k % cols) * cell_w + gap // 2
        grid[top : top + SIZE, left : left + SIZE] = images[i]
        ax.text(left + SIZE / 2, top - 3, f"{pairs[0, i]} as {pairs[1, i]}", ha="center",
                va="bottom", fontsize=10, color="crimson")  # fmt: skip
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=255)
    more = f", the first {len(shown)} shown" if len(wrong) > len(shown) else ""
    fig.suptitle(
        f"{metrics['model']}, seed {metrics['seed']}: {len(wrong)} of {pairs.shape[1]:,} test "
        f"images misclassified{more} (true digit as predicted digit)",
        fontsize=11,
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_run_reports(out: Path, metrics: dict, net: nn.Module) -> None:
    """summary.md, curves.png, errors.png and model.txt beside metrics.json."""
    paths.write_text(out / "summary.md", run_summary(metrics))
    with paths.atomic(out / "curves.png") as tmp:
        plot_curves(metrics, tmp)
    pairs = load_predictions(out)
    if pairs is not None:
        images = load_mnist(Path(metrics["config"]["data_dir"]))["test_x"].numpy()
        with paths.atomic(out / "errors.png") as tmp:
            plot_errors(metrics, pairs, images, tmp)
    paths.write_text(out / "model.txt", model_summary(net))


def results_table(runs: list[dict]) -> str:
    """Final-epoch accuracy over seeds, one row per network and device: min / mean / max, the
    standard deviation, the chance that one run ends under the profile's threshold (a normal fit to
    these runs), and the wall time."""
    rows = []
    for group in row_groups(runs):
        name = group[0]["model"]
        accs = [100 * r["final_test_acc"] for r in group]
        walls = [r["wall_seconds"] for r in group]
        threshold = 100 * profile_for(name).min_accuracy
        below = stats.below_probability(accs, threshold) if len(accs) > 1 else float("nan")
        chance = f"{below:.2%}" if not below < 1e-4 else "< 0.01%"
        rows.append((
            name, f"{group[0]['parameters']:,}", probe(networks.build(name)).rf,
            group[0]["epochs"], seed_list([r["seed"] for r in group]),
            f"{min(accs):.2f} / {statistics.mean(accs):.2f} / {max(accs):.2f}",
            f"{statistics.stdev(accs):.3f}" if len(accs) > 1 else "",
            f"{chance} (< {threshold:.2f}%)",
            f"{min(walls):.0f} / {statistics.median(walls):.0f} / {max(walls):.0f}",
            device_label(group[0]),
        ))  # fmt: skip
    header = ("model", "params", "RF", "epochs", "seeds", "final test acc % (min / mean / max)",
              "sd", "P(one run under)", "wall s (min / median / max)", "device")  # fmt: skip
    return table(header, rows)


def row_groups(runs: list[dict]) -> list[list[dict]]:
    """The runs of each table row: one network on one device, smallest network first, the devices
    in the order their runs were given."""
    by_size = sorted(runs, key=lambda r: r["parameters"])  # stable: devices keep their order
    keys = dict.fromkeys((r["model"], r["device"]) for r in by_size)
    return [[r for r in runs if (r["model"], r["device"]) == key] for key in keys]


def device_label(run: dict) -> str:
    """A CPU's name with the threads it trained on; a GPU's name alone."""
    if run["device_type"] == "cpu":
        return f"{run['device']} ({run['threads']} threads)"
    return run["device"]


def seed_list(seeds: list[int]) -> str:
    """0, 1, 2, 3 as "0-3"; anything else as it is."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def architecture() -> str:
    parts = []
    for profile in budgets.load_profiles().values():
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
    way on every seed of a device, so no row is dropped and no row mixes settings."""
    wanted = [p.model for p in budgets.load_profiles().values()]
    ungated = sorted({r["model"] for r in runs} - set(wanted))
    if ungated:
        raise ReportError(f"no profile gates {', '.join(ungated)}; the table shows gated networks")
    missing = [name for name in wanted if not any(r["model"] == name for r in runs)]
    if missing:
        raise ReportError(
            f"no runs of {', '.join(missing)}: the table needs every gated network, or it would "
            "lose a row"
        )
    for group in row_groups(runs):
        name = group[0]["model"]
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
            device = group[0]["device"]
            raise ReportError(f"the {name} runs on {device} repeat a seed: {sorted(seeds)}")


def training_settings(run: dict) -> dict:
    """The settings that decide a run's result, less the seed and where it was saved."""
    ignored = {"seed", "out", "progress", "data_dir"}
    settings = {k: v for k, v in run.get("config", {}).items() if k not in ignored}
    return {**settings, "epochs": run["epochs"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_gate.report", description="The README's generated tables."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    readme = sub.add_parser("readme", help="rewrite README.md's generated sections")
    readme.add_argument("seed_runs", type=Path, nargs="*", help="run folders for the seed table")
    args = parser.parse_args(argv)
    try:
        write_readme(args.seed_runs)
    except ReportError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")


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
