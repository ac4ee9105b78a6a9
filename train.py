"""Train an MNIST network on whole-tensor data held on the training device: the recipe.

    python train.py                      # Net with the defaults below, on CUDA if present
    python train.py --profile 25k        # exactly what the gate trains for profile 25k
    python train.py --seed 3 --out runs/seed3
    python train.py --help               # every setting, with its default

Config holds every setting and its constraint; augment() is the augmentation; train() is the loop,
top to bottom. On CUDA an epoch's steps replay CUDA graphs (mnist_gate/graphs.py): the same step,
with the epoch's order and draws on the device; elsewhere, and with --no-cuda-graphs, the loop
takes them one by one. It saves the checkpoint, the test predictions, the record and the reports
(mnist_gate/runfolder.py names them), and only then marks the run complete. Importing
this file does nothing. The plumbing (devices, saving, the command line) lives in mnist_gate.
"""

import dataclasses
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mnist_gate import networks, profiles, runfolder, runtime, settings
from mnist_gate.data import DATA_DIR, SIZE, TRAIN_IMAGES, load_mnist
from mnist_gate.graphs import GraphedEpochs
from mnist_gate.images import affine_grid, evaluate, normalize, resize
from mnist_gate.profiles import Profile
from mnist_gate.record import Record
from mnist_gate.settings import (
    ConfigError,
    Refused,
    even_between,
    fraction,
    non_negative,
    positive,
    seed_range,
    setting,
)


class TrainingError(Refused, RuntimeError):
    """Training went wrong in a way more steps cannot fix."""

    status = 1


class Terminated(Exception):
    """SIGTERM arrived."""


@dataclass
class Config:
    """Every training setting, each with its constraint; building one checks them all."""

    # The recipe: what decides a run's result.
    model: str = setting("Net", "network class in model.py")
    epochs: int = setting(15, "training epochs", positive)
    batch_size: int = setting(256, "images per training step", positive)
    lr: float = setting(0.2, "peak learning rate of the one-cycle schedule", positive)
    warmup: float = setting(0.25, "fraction of the steps ramping the learning rate up", fraction)
    momentum: float = setting(0.9, "SGD Nesterov momentum", fraction)
    weight_decay: float = setting(5e-4, "L2 weight decay", non_negative)
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing", fraction)
    rotate: float = setting(10.0, "augmentation: largest rotation, degrees", non_negative)
    scale: float = setting(0.1, "augmentation: largest relative zoom in or out", fraction)
    translate: float = setting(0.1, "augmentation: largest shift, fraction of the side", fraction)
    clean_epochs: int = setting(2, "last epochs without augmentation (all, if fewer)", non_negative)
    small_epochs: int = setting(8, "first epochs on images shrunk to --small-size", non_negative)
    small_size: int = setting(20, "image side then: even, 8 to 28", even_between(8, SIZE))
    limit: int = setting(0, "train on the first N images only (0: all 60,000)", non_negative)

    # Where and how it runs.
    profile: str | None = setting(None, "train what this gate profile trains", runtime=True)
    seed: int = setting(0, "seeds init, order, augmentation, dropout", seed_range, runtime=True)
    device: str = setting("auto", "auto, cpu or cuda (auto: cuda when present)", runtime=True)
    threads: int = setting(0, "CPU threads (0: PyTorch's default)", non_negative, runtime=True)
    cuda_graphs: bool = setting(
        True, "on CUDA, replay the training steps from CUDA graphs", runtime=True
    )
    data_dir: Path = setting(DATA_DIR, "folder holding MNIST/raw/*.gz", runtime=True)
    out: Path | None = setting(None, "new or empty folder (default: runs/MODEL-TIME)", runtime=True)
    reports: bool = setting(True, "summary.md, curves.png, errors.png, model.txt", runtime=True)
    progress: bool = setting(True, "a progress bar per epoch on a terminal", runtime=True)

    def __post_init__(self):
        settings.check(self)
        try:
            networks.network_class(self.model)
        except networks.UnknownNetwork as err:
            raise ConfigError(f"--model {err}") from None
        if not Path(self.data_dir).is_dir():
            raise ConfigError(f"--data-dir {self.data_dir} is not a directory")
        if self.out and Path(self.out).resolve().is_relative_to(Path(self.data_dir).resolve()):
            raise ConfigError(f"--out {self.out} is inside the data folder {self.data_dir}")
        if self.threads > (os.cpu_count() or 1):
            raise ConfigError(f"--threads {self.threads}: this machine has {os.cpu_count()} cores")
        # BatchNorm cannot normalise one image: every batch, the last one too, needs two.
        images = min(self.limit or TRAIN_IMAGES, TRAIN_IMAGES)
        if self.batch_size < 2 or images % self.batch_size == 1:
            raise ConfigError(
                f"--batch-size {self.batch_size} with {images:,} images leaves a batch of one "
                "image, which BatchNorm cannot train on"
            )
        runtime.pick_device(self.device)


DRAWS = 4  # random numbers augment() takes per image


def augment(
    images: torch.Tensor, cfg: Config, draws: torch.Tensor, size: int = SIZE
) -> torch.Tensor:
    """Random rotation, zoom and shift, one draw per image, for a whole batch at once, resampled
    to size x size. draws: (DRAWS, N) uniform in [0, 1), the rotation, zoom and shifts of each
    image."""
    angle, zoom, dx, dy = draws * 2 - 1
    angle, zoom = angle * math.radians(cfg.rotate), 1 + zoom * cfg.scale
    # affine_grid maps output to input coordinates on [-1, 1], so the zoom divides and the image
    # side spans 2 units.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift = 2 * cfg.translate
    theta = torch.stack(
        [torch.stack([cos, -sin, dx * shift], 1), torch.stack([sin, cos, dy * shift], 1)], 1
    )
    grid = affine_grid(theta, size)
    # At full size nearest, not bilinear: bilinear resampling blurs every training image while the
    # test images stay sharp, which cost about 0.1 points of test accuracy here. Shrunk, nearest
    # would drop whole rows of thin strokes, so those images are interpolated, as resize() does.
    mode = "nearest" if size == images.shape[-1] else "bilinear"
    return F.grid_sample(images, grid, mode=mode, align_corners=False)


def augmentation_draws(n: int, gen: torch.Generator) -> torch.Tensor:
    """The (DRAWS, n) random numbers augment() takes, in the generator's order: rotations, then
    zooms, then the two shifts."""
    return torch.stack([torch.rand(n, device=gen.device, generator=gen) for _ in range(DRAWS)])


def training_batch(
    images: torch.Tensor, cfg: Config, draws: torch.Tensor | None, size: int = SIZE
) -> torch.Tensor:
    """uint8 training images as the network trains on them: augmented with draws (None: only
    resized) and normalised."""
    x = images.float() / 255
    return normalize(resize(x, size) if draws is None else augment(x, cfg, draws, size))


def one_cycle(total: int, warmup: float):
    """Linear ramp up to the peak over the warm-up steps, then linear decay to zero at the end."""
    warm = max(1, round(warmup * total))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(total - step, 0) / max(total - warm, 1)

    return factor


def sgd(net: nn.Module, cfg: Config) -> torch.optim.SGD:
    return torch.optim.SGD(
        net.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
        weight_decay=cfg.weight_decay,
        fused=True,  # one kernel for all parameters: a third of the default's time per step
    )


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; its loss and logits."""
    logits = net(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def image_size(cfg: Config, epoch: int) -> int:
    """Progressive resizing: the first epochs learn on smaller, cheaper images; the last epoch is
    always at full size, the size the gate measures."""
    return cfg.small_size if epoch <= cfg.small_epochs and epoch < cfg.epochs else SIZE


def train(cfg: Config, profile: Profile | None = None) -> tuple[nn.Module, Record]:
    """Train, evaluating after every epoch; save the checkpoint, test predictions and record to
    the run's folder, claimed before training starts, and the reports, against the budget of
    `profile` (cfg.profile's); return the network and its record."""
    started = time.perf_counter()
    device = runtime.start(cfg.device, cfg.threads, cfg.seed)
    gen = torch.Generator(device).manual_seed(cfg.seed)
    data = {k: v.to(device) for k, v in load_mnist(cfg.data_dir).items()}
    train_x, train_y = data["train_x"].unsqueeze(1), data["train_y"]
    if cfg.limit:
        train_x, train_y = train_x[: cfg.limit], train_y[: cfg.limit]
    test_x, test_y = data["test_x"].unsqueeze(1), data["test_y"]
    net = networks.build(cfg.model).to(device, memory_format=torch.channels_last)
    why = networks.untrainable(net, SIZE)
    if why:
        raise ConfigError(f"model.{cfg.model} cannot train: {why}")
    cfg = dataclasses.replace(cfg, out=runfolder.claim(cfg.out, cfg.model))

    notes = []
    if cfg.small_epochs and cfg.small_size < SIZE:
        why = networks.refuses_side(net, cfg.small_size)
        if why:
            side = f"{cfg.small_size}x{cfg.small_size}"
            notes.append(
                f"model.{cfg.model} does not take {side} images ({why}), so every epoch "
                f"trained at {SIZE}x{SIZE}"
            )
            tqdm.write(notes[-1])
            cfg.small_epochs = 0  # on this copy alone; the record keeps it, and the note why
    steps = math.ceil(len(train_y) / cfg.batch_size)
    factor = one_cycle(cfg.epochs * steps, cfg.warmup)
    schedule = [cfg.lr * factor(step) for step in range(cfg.epochs * steps)]  # each step's rate
    optimizer = sgd(net, cfg)

    def learn(images, labels, draws, size):
        x = training_batch(images, cfg, draws, size)
        return train_step(net, optimizer, x, labels, cfg.label_smoothing)

    graphed = None
    if cfg.cuda_graphs and device.type == "cuda":
        graphed = GraphedEpochs(
            learn, net, optimizer, train_x, train_y, batch_size=cfg.batch_size, schedule=schedule
        )

    history = []
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        augmenting = epoch <= cfg.epochs - cfg.clean_epochs
        size = image_size(cfg, epoch)
        net.train()
        first = (epoch - 1) * steps
        lr = schedule[first]
        order = torch.randperm(len(train_y), device=device, generator=gen)
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch}/{cfg.epochs}",
            leave=False,
            disable=None if cfg.progress else True,
        )
        if graphed:
            # The whole epoch's draws at once, in one launch: the graphs read them on the device.
            shape = (steps, DRAWS, cfg.batch_size)
            draws = torch.rand(shape, device=device, generator=gen) if augmenting else None
            losses, correct = graphed.epoch(order, draws, size, first, bar.update)
        else:
            losses = torch.zeros(steps, device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for step, idx in enumerate(order.split(cfg.batch_size)):
                optimizer.param_groups[0]["lr"] = schedule[first + step]
                y = train_y[idx]
                draws = augmentation_draws(len(idx), gen) if augmenting else None
                loss, logits = learn(train_x[idx], y, draws, size)
                # Kept on the device: one host sync per epoch, not per step.
                losses[step] = loss.detach()
                correct += (logits.argmax(1) == y).sum()
                bar.update()
        bar.close()

        losses = losses.cpu()  # waits for the device, so the clock below is honest
        train_seconds = time.perf_counter() - epoch_start
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            step = bad[0].item()
            raise TrainingError(
                f"loss became {losses[step].item()} at epoch {epoch}, step {step + 1} of {steps}"
            )
        test_loss, test_acc, predictions = evaluate(net, test_x, test_y, size)
        if not math.isfinite(test_loss):
            raise TrainingError(f"test loss became {test_loss} after epoch {epoch}")
        row = {
            "epoch": epoch,
            "train_loss": losses.mean().item(),
            "train_acc": correct.item() / len(train_y),
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
            "augmented": augmenting,
            "size": size,
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(row)
        tqdm.write(
            f"epoch {epoch:2d}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%}  "
            f"test loss {test_loss:.4f} acc {test_acc:.2%}  lr {lr:.4f}  {row['seconds']:.1f}s"
        )

    seconds = time.perf_counter() - started
    pairs = torch.stack([test_y, predictions])
    record = runtime.save_run(
        cfg, net, history=history, notes=notes, predictions=pairs, seconds=seconds
    )
    if cfg.reports:
        # Imported here: training itself needs no plotting library.
        from mnist_gate import report

        with runfolder.saving(cfg.out):
            report.write_run_reports(record, net, profile, data["test_x"].cpu().numpy())
    runfolder.finish(cfg.out)  # everything the run promises is there: it is complete
    return net, record


def main(argv: list[str] | None = None) -> None:
    def fail(message: str, status: int):
        print(f"train.py: {message}", file=sys.stderr)
        sys.exit(status)

    def terminated(signum, frame):
        raise Terminated  # SIGTERM (a cancelled CI job, a timeout) ends a run as Ctrl-C does

    signal.signal(signal.SIGTERM, terminated)
    try:
        gate = profiles.load()
        cfg = settings.parse(
            Config, argv, prog="train.py", description="Train an MNIST network in model.py.",
            build=lambda **given: gate.settings(Config, **given),
        )  # fmt: skip
        _, record = train(cfg, gate.profiles.get(cfg.profile))
    except Refused as err:
        fail(f"error: {err}", err.status)
    except Terminated:
        fail("terminated; a run folder it had claimed stays marked INCOMPLETE", 143)
    except KeyboardInterrupt:
        fail("interrupted; a run folder it had claimed stays marked INCOMPLETE", 130)
    print(
        f"final test accuracy {record.final_test_acc:.2%} after {record.epochs} epochs, "
        f"{record.parameters:,} parameters, {record.wall_seconds:.0f} s; saved to {record.folder}"
    )


if __name__ == "__main__":
    main()
