"""Train the gated MNIST network on whole-tensor data held on the training device.

    python train.py                      # the gated run: defaults below, CPU or CUDA
    python train.py --seed 3 --out runs/seed3
    python train.py --help               # every setting, with its default

train(cfg) trains and saves model.pt, the test predictions and metrics.json; the command line then
writes the reports (summary.md, curves.png, errors.png, model.txt). Importing this file does
nothing.
"""

import argparse
import dataclasses
import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mnist_gate import networks, paths
from mnist_gate.data import DATA_DIR, MEAN, SIZE, STD, DataError, load_mnist
from mnist_gate.paths import PREDICTIONS, RunFolderError


def setting(default, help: str):
    return field(default=default, metadata={"help": help})


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line naming it."""


class TrainingError(RuntimeError):
    """Training went wrong in a way more steps cannot fix."""


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


@dataclass
class Config:
    """Every training setting; building one checks them all."""

    model: str = setting("Net", "network class in model.py")
    epochs: int = setting(15, "training epochs")
    batch_size: int = setting(256, "images per training step")
    lr: float = setting(0.2, "peak learning rate of the one-cycle schedule")
    warmup: float = setting(0.25, "fraction of the steps spent ramping the learning rate up")
    momentum: float = setting(0.9, "SGD Nesterov momentum")
    weight_decay: float = setting(5e-4, "L2 weight decay")
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing")
    rotate: float = setting(10.0, "augmentation: largest rotation, degrees")
    scale: float = setting(0.1, "augmentation: largest relative zoom in or out")
    translate: float = setting(0.1, "augmentation: largest shift, fraction of the image side")
    clean_epochs: int = setting(2, "last epochs trained without augmentation (all, if fewer)")
    small_epochs: int = setting(8, "first epochs trained on images shrunk to --small-size")
    small_size: int = setting(20, "image side in those epochs: even, 8 to 28")
    limit: int = setting(0, "train on the first N images only, for smoke tests (0: all 60,000)")
    seed: int = setting(0, "seeds initialisation, shuffling, augmentation and dropout")
    device: str = setting("auto", "auto, cpu or cuda (auto picks cuda when present)")
    threads: int = setting(0, "CPU intra-op threads (0: PyTorch's default)")
    compile: bool = setting(False, "torch.compile the model (compile time counts in wall time)")
    data_dir: Path = setting(DATA_DIR, "folder holding MNIST/raw/*.gz")
    out: Path | None = setting(None, "output folder, new or empty (default: runs/<model>-<time>/)")
    progress: bool = setting(True, "show a progress bar per epoch on a terminal")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag(f.name)} must be a finite number, got {value}")
        for name in ("epochs", "batch_size", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("warmup", "momentum", "label_smoothing", "scale", "translate"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)} must be in [0, 1), got {getattr(self, name)}")
        for name in ("weight_decay", "rotate", "clean_epochs", "small_epochs", "threads", "limit"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)} must not be negative")
        if self.small_size % 2 or not 8 <= self.small_size <= SIZE:
            raise ConfigError(
                f"--small-size must be even and from 8 to {SIZE}, got {self.small_size}"
            )
        try:
            networks.network_class(self.model)
        except networks.UnknownNetwork as err:
            raise ConfigError(f"--model {err}") from None
        if not Path(self.data_dir).is_dir():
            raise ConfigError(f"--data-dir {self.data_dir} is not a directory")
        pick_device(self.device)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] images (N, 1, 28, 28) to the normalised float input the network expects."""
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return ((images - MEAN) / STD).contiguous(memory_format=torch.channels_last)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float images shrunk to size x size (bilinear), or as they are at full size. Bilinear
    weights sum to one, so it makes no difference whether the images were normalised first."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """F.affine_grid(theta, [n, 1, size, size], align_corners=False) as sums of products: on a CPU
    its batched matrix product of 3-long rows took a tenth of a training step. The same sums, up
    to rounding: bit for bit on some processors, a last bit apart here and there on others, where
    torch's matrix product rounds its sums differently."""
    # The pixel centres on [-1, 1], rounded as affine_grid rounds them.
    centres = torch.linspace(-1, 1, size, device=theta.device) * (size - 1) / size
    x, y = centres.view(1, 1, size), centres.view(1, size, 1)
    t = theta.reshape(-1, 6, 1, 1)
    return torch.stack(
        [x * t[:, 0] + y * t[:, 1] + t[:, 2], x * t[:, 3] + y * t[:, 4] + t[:, 5]], dim=-1
    )


def augment(
    images: torch.Tensor, cfg: Config, gen: torch.Generator, size: int = SIZE
) -> torch.Tensor:
    """Random rotation, zoom and shift, one draw per image, for a whole batch at once, resampled
    to size x size."""
    n = images.shape[0]

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, device=images.device, generator=gen) * 2 - 1) * bound

    angle = uniform(math.radians(cfg.rotate))
    zoom = 1 + uniform(cfg.scale)
    # affine_grid maps output to input coordinates on [-1, 1], so the zoom divides and the image
    # side spans 2 units.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, uniform(2 * cfg.translate)], 1),
            torch.stack([sin, cos, uniform(2 * cfg.translate)], 1),
        ],
        1,
    )
    grid = affine_grid(theta, size)
    # At full size nearest, not bilinear: bilinear resampling blurs every training image while the
    # test images stay sharp, which cost about 0.1 points of test accuracy here. Shrunk, nearest
    # would drop whole rows of thin strokes, so those images are interpolated, as resize() does.
    mode = "nearest" if size == images.shape[-1] else "bilinear"
    return F.grid_sample(images, grid, mode=mode, align_corners=False)


@torch.inference_mode()
def evaluate(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    size: int = SIZE,
    batch_size: int = 2000,
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy (a fraction) and the predicted class of every image, for net
    on uint8 images shown at size x size."""
    net.eval()
    loss = torch.zeros((), device=labels.device)
    predictions = torch.empty_like(labels)
    for start in range(0, len(labels), batch_size):
        x = resize(normalize(images[start : start + batch_size]), size)
        y = labels[start : start + batch_size]
        logits = net(x)
        loss += F.cross_entropy(logits, y, reduction="sum")
        predictions[start : start + batch_size] = logits.argmax(1)
    accuracy = (predictions == labels).sum().item() / len(labels)
    return loss.item() / len(labels), accuracy, predictions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def jsonable(cfg: Config) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}


def start(cfg: Config) -> torch.device:
    """Device, threads and seed, before anything random happens."""
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        # fp32 training; TF32 matrix products are allowed (bf16 is unmeasured on a net this small).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed)
    return device


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


def training_batch(
    images: torch.Tensor, cfg: Config, gen: torch.Generator, augmenting: bool, size: int = SIZE
) -> torch.Tensor:
    """uint8 training images as the network trains on them: augmented (or only resized) and
    normalised."""
    x = images.float() / 255
    return normalize(augment(x, cfg, gen, size) if augmenting else resize(x, size))


def train_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; its loss and logits."""
    logits = forward(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def image_size(cfg: Config, epoch: int) -> int:
    """Progressive resizing: the first epochs learn on smaller, cheaper images; the last epoch is
    always at full size, the size the gate measures."""
    return cfg.small_size if epoch <= cfg.small_epochs and epoch < cfg.epochs else SIZE


def train(cfg: Config) -> tuple[nn.Module, dict]:
    """Train, evaluating after every epoch; save model.pt and metrics.json to the run's folder,
    claimed before training starts; return the network and its metrics."""
    started = time.perf_counter()
    device = start(cfg)
    gen = torch.Generator(device).manual_seed(cfg.seed)
    data = {k: v.to(device) for k, v in load_mnist(cfg.data_dir).items()}
    train_x, train_y = data["train_x"].unsqueeze(1), data["train_y"]
    if cfg.limit:
        train_x, train_y = train_x[: cfg.limit], train_y[: cfg.limit]
    test_x, test_y = data["test_x"].unsqueeze(1), data["test_y"]
    cfg = dataclasses.replace(cfg, out=paths.claim(cfg.out, cfg.model))

    net = networks.build(cfg.model).to(device, memory_format=torch.channels_last)
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
            cfg = dataclasses.replace(cfg, small_epochs=0)
    forward = torch.compile(net) if cfg.compile else net
    steps = math.ceil(len(train_y) / cfg.batch_size)
    optimizer = sgd(net, cfg)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, one_cycle(cfg.epochs * steps, cfg.warmup)
    )

    history = []
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        augmenting = epoch <= cfg.epochs - cfg.clean_epochs
        size = image_size(cfg, epoch)
        net.train()
        lr = schedule.get_last_lr()[0]
        losses = torch.zeros(steps, device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        order = torch.randperm(len(train_y), device=device, generator=gen)
        bar = tqdm(
            order.split(cfg.batch_size),
            desc=f"epoch {epoch}/{cfg.epochs}",
            leave=False,
            disable=None if cfg.progress else True,
        )
        for step, idx in enumerate(bar):
            y = train_y[idx]
            x = training_batch(train_x[idx], cfg, gen, augmenting, size)
            loss, logits = train_step(forward, optimizer, x, y, cfg.label_smoothing)
            schedule.step()
            # Kept on the device: one host sync per epoch, not per step.
            losses[step] = loss.detach()
            correct += (logits.argmax(1) == y).sum()

        losses = losses.cpu()  # waits for the device, so the clock below is honest
        train_seconds = time.perf_counter() - epoch_start
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            step = bad[0].item()
            raise TrainingError(
                f"loss became {losses[step].item()} at epoch {epoch}, step {step + 1} of {steps}"
            )
        test_loss, test_acc, predictions = evaluate(net, test_x, test_y, size)
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
    metrics = run_metrics(cfg, net, device, history, notes, len(test_y), seconds)
    save(cfg, net, metrics, torch.stack([test_y, predictions]))
    return net, metrics


def run_metrics(
    cfg: Config,
    net: nn.Module,
    device: torch.device,
    history: list[dict],
    notes: list[str],
    test_images: int,
    seconds: float,
) -> dict:
    """What metrics.json records: the result, the settings, and where and with what it ran."""
    return {
        "model": cfg.model,
        "parameters": networks.count_parameters(net),
        "epochs": cfg.epochs,
        "final_test_acc": history[-1]["test_acc"],
        "test_images": test_images,
        "test_correct": round(history[-1]["test_acc"] * test_images),
        "wall_seconds": seconds,
        "seed": cfg.seed,
        "device": device_name(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "out": str(cfg.out),
        "config": jsonable(cfg),
        "history": history,
        "notes": notes,  # what the run changed from its settings, and why
    }


def save(cfg: Config, net: nn.Module, metrics: dict, predictions: torch.Tensor) -> None:
    """The checkpoint, the test predictions (row 0 the true digit of each test image, row 1 the
    network's), then the metrics, each renamed into place whole; then the run is complete."""
    with paths.atomic(cfg.out / "model.pt") as tmp:
        torch.save({"model": net.state_dict(), "config": jsonable(cfg)}, tmp)
    with paths.atomic(cfg.out / PREDICTIONS) as tmp:
        np.save(tmp, predictions.to(torch.uint8).cpu().numpy(), allow_pickle=False)
    paths.write_text(cfg.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    paths.finish(cfg.out)


def positive_int(text: str) -> int:
    """argparse type for a count of one or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> Config:
    """The command line, generated from Config's fields; building the Config checks the values."""
    parser = Parser(prog="train.py", description="Train the gated MNIST network.")
    for f in dataclasses.fields(Config):
        help = f.metadata["help"] + ("" if f.default is None else f" (default: {f.default})")
        if f.type is bool:
            parser.add_argument(
                flag(f.name), action=argparse.BooleanOptionalAction, default=f.default, help=help
            )
        else:
            convert = Path if "Path" in str(f.type) else f.type
            parser.add_argument(
                flag(f.name), type=convert, default=f.default, help=help, metavar=f.name.upper()
            )
    return Config(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    def fail(message: str, status: int):
        print(f"train.py: {message}", file=sys.stderr)
        sys.exit(status)

    try:
        cfg = parse_args(argv)
        net, metrics = train(cfg)
        # Imported here, not at the top: training itself needs no plotting library.
        from mnist_gate import report

        report.write_run_reports(Path(metrics["out"]), metrics, net)
    except (ConfigError, DataError, RunFolderError) as err:
        fail(f"error: {err}", 2)
    except TrainingError as err:
        fail(f"error: {err}", 1)
    except KeyboardInterrupt:
        fail("interrupted; a run folder it had claimed is marked INCOMPLETE", 130)
    print(
        f"final test accuracy {metrics['final_test_acc']:.2%} after {metrics['epochs']} epochs, "
        f"{metrics['parameters']:,} parameters, {metrics['wall_seconds']:.0f} s; "
        f"saved to {metrics['out']}"
    )


if __name__ == "__main__":
    main()
