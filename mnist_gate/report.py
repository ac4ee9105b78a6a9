"""Reports people read beside a run: summary.md, curves.png, errors.png and model.txt.

    python -m mnist_gate.report runs/net-20261203-101500    # rebuild a complete run's reports

train.train() writes them before it marks a run complete, beside its record, checkpoint and test
predictions (mnist_gate.runfolder), from which they can be rebuilt. The verdict over several runs
is mnist_gate.judging's and mnist_gate.markdown's; the README's tables, scripts.readme's.
"""

from pathlib import Path

import numpy as np
import torchinfo
from matplotlib.figure import Figure  # no pyplot: figures of their own, drawn by Agg to PNG
from torch import nn

from . import networks, paths, profiles, runfolder, settings
from .data import SIZE, load_mnist
from .markdown import run_summary
from .profiles import Profile
from .record import Record
from .tracer import Probe, probe

ERRORS_SHOWN = 100  # misclassified test images in errors.png, at most


def plot_curves(run: Record, profile: Profile | None, path: Path) -> None:
    """Loss and accuracy by epoch, with the profile's threshold (None: a run of no profile)."""
    history = run.history
    epochs = [h.epoch for h in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h.train_loss for h in history], "o-", label="train (label-smoothed)")
    loss_ax.plot(epochs, [h.test_loss for h in history], "o-", label="test")
    loss_ax.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    clean = sum(not h.augmented for h in history)
    train_label = f"train (augmented{f', last {clean} clean' if clean else ''})"
    acc_ax.plot(epochs, [100 * h.train_acc for h in history], "o-", label=train_label)
    acc_ax.plot(epochs, [100 * h.test_acc for h in history], "o-", label="test")
    if profile:
        bar = 100 * profile.min_accuracy
        acc_ax.axhline(bar, color="crimson", linestyle="--", label=f"gate: {bar:.1f}%")
    # Zoom on the top of the scale, but never hide a run that stayed far below it.
    lowest = min(100 * h.test_acc for h in history[1:] or history)
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="%", ylim=(min(98, int(lowest)), 100))
    small = [h for h in history if h.size < SIZE]
    for ax in (loss_ax, acc_ax):
        if small:
            size = small[0].size
            ax.axvspan(small[0].epoch - 0.5, small[-1].epoch + 0.5, color="grey", alpha=0.15,
                       label=f"{size}x{size} images, train and test")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_xticks(epochs)
    fig.suptitle(
        f"{run.model}, {run.parameters:,} parameters, seed {run.seed}: "
        f"final-epoch test accuracy {run.final_test_acc:.2%}"
    )
    fig.savefig(path, dpi=110)


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


def layer_table(net: nn.Module, probed: Probe | None = None) -> str:
    """The architecture as a Markdown table: layer, output shape, receptive field, parameters
    (from `probed`, the network's probe where the caller has it)."""
    lines = ["| layer | output | RF | params |", "|---|---|---|---|"]
    for row in (probed or probe(net)).rows:
        shape = "x".join(str(d) for d in row.shape)
        rf = "" if row.rf is None else row.rf
        lines.append(f"| {row.layer} | {shape} | {rf} | {row.params:,} |")
    lines.append(f"| total | | | {networks.count_parameters(net):,} |")
    return "\n".join(lines)


def plot_errors(run: Record, pairs: np.ndarray, images: np.ndarray, path: Path) -> None:
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
    fig = Figure(figsize=(cols * cell_w * inch, height + heading))
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
        f"{run.model}, seed {run.seed}: {len(wrong)} of {pairs.shape[1]:,} test "
        f"images misclassified{more} (true digit as predicted digit)",
        fontsize=11,
    )
    fig.savefig(path, dpi=90)


def write_run_reports(
    run: Record, net: nn.Module, profile: Profile | None, test_images: np.ndarray | None = None
) -> None:
    """summary.md, curves.png, errors.png and model.txt beside the run's record, against the
    profile it trained as (None: none); test_images (10,000 x 28 x 28 uint8) are read from the
    run's data folder unless given."""
    out = run.folder
    # Everything read and worked out first: a report that cannot be made leaves the others as
    # they were, never some rewritten and some not.
    pairs = runfolder.load_predictions(out)
    if pairs is None:
        raise runfolder.RunError(f"{out} has no {runfolder.PREDICTIONS} to report on")
    if test_images is None:
        test_images = load_mnist(Path(run.config["data_dir"]), ("test",))["test_x"].numpy()
    summary, layers = run_summary(run, profile), model_summary(net)
    paths.write_text(out / runfolder.SUMMARY, summary)
    with paths.atomic(out / runfolder.CURVES) as tmp:
        plot_curves(run, profile, tmp)
    with paths.atomic(out / runfolder.ERRORS) as tmp:
        plot_errors(run, pairs, test_images, tmp)
    paths.write_text(out / runfolder.MODEL_TABLE, layers)


def rebuild(folder: Path, gate: profiles.Gate) -> None:
    """A complete run's reports, from its record, checkpoint and predictions, against the budget
    gate holds for its profile."""
    run = runfolder.load_record(folder)
    net = networks.build(run.model)
    weights = runfolder.load_weights(run.folder)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        path, why = run.folder / runfolder.CHECKPOINT, str(err).splitlines()[0]
        raise runfolder.RunError(f"{path} is unreadable ({why})") from None
    with runfolder.saving(run.folder):
        write_run_reports(run, net, gate.profiles.get(run.profile))


def command_line() -> settings.Parser:
    parser = settings.Parser(
        prog="python -m mnist_gate.report", description="Rebuild complete runs' reports."
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    gate = parser.run(profiles.load)
    for folder in args.runs:
        parser.run(lambda: rebuild(folder, gate))  # noqa: B023 (called at once)
        print(f"rebuilt the reports in {folder}")


if __name__ == "__main__":
    main()
