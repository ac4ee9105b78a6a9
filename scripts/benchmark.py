"""Training throughput of this project's pipeline against the usual DataLoader pipeline, same model.

    python -m scripts.benchmark            # one full gated training run, then the reference
    python -m scripts.benchmark --model Net25k --device cuda --out runs/bench-cuda

The reference is the pipeline most MNIST exercises use: a torchvision DataLoader with 2 workers,
batch 128, and per-sample PIL RandomRotation + RandomAffine. It trains the same network with the
same optimizer for a fixed number of steps. The project's figure is the median training time per
epoch (evaluation excluded) of a real `train.py` run with its defaults, over its epochs that train
as the reference does (full-size, augmented images; the run's shrunk epochs are cheaper and its
clean ones skip augmentation). The run also gives the full-gate wall time and the first full-size
epoch that reached the accuracy threshold. Both run in this one process, so their ratio holds on a
busy machine even when the absolute numbers do not.
"""

import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import train
from mnist_gate import networks, profiles, runfolder, runtime
from mnist_gate.data import MEAN, SIZE, STD, load_mnist
from mnist_gate.settings import Parser, positive_int


class PilMnist(Dataset):
    """MNIST as torchvision's own dataset serves it: one PIL image at a time, transformed."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        # Imported here: torchvision's import takes over a second, which every test process that
        # collects this module (the slow tier's included) would otherwise pay.
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [
                transforms.RandomRotation(10),
                transforms.RandomAffine(0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                transforms.ToTensor(),
                transforms.Normalize((MEAN,), (STD,)),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i].numpy(), mode="L")), self.labels[i]


def reference_images_per_second(cfg: train.Config, steps: int, warmup: int = 5) -> float:
    device = runtime.pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_mnist(cfg.data_dir)
    loader = DataLoader(
        PilMnist(data["train_x"], data["train_y"]), batch_size=128, shuffle=True, num_workers=2
    )
    net = networks.build(cfg.model).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    batches = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()  # wait for the device before stopping the clock
    return steps * 128 / (time.perf_counter() - start)


def command_line() -> Parser:
    parser = Parser(prog="python -m scripts.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Net", help="network class in model.py (default: Net)")
    parser.add_argument(
        "--steps", type=positive_int, default=100, help="reference steps timed (default: 100)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the training run, new or empty (default: runs/bench-<time>/)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    gate = parser.run(profiles.load)
    cfg = parser.run(lambda: gate.settings(
        train.Config, model=args.model, device=args.device, out=args.out, progress=False
    ))  # fmt: skip
    if cfg.out is None:
        cfg.out = parser.run(lambda: runfolder.new_folder("bench"))
    _, run = parser.run(lambda: train.train(cfg, gate.profiles.get(cfg.profile)))
    reference = parser.run(lambda: reference_images_per_second(cfg, args.steps))
    history = run.history
    like_reference = [h for h in history if h.augmented and h.size == SIZE]
    project = 60_000 / statistics.median(h.train_seconds for h in like_reference)

    elapsed = {h.epoch: sum(g.seconds for g in history[: h.epoch]) for h in history}
    print(f"\ndevice: {run.device} ({run.device_type}, {run.threads} threads)")
    print(f"reference pipeline (DataLoader + PIL, batch 128): {reference:10,.0f} images/s")
    print(f"this project's pipeline (batch {cfg.batch_size}):          {project:10,.0f} images/s")
    print(f"  (median of its {len(like_reference)} full-size augmented epochs)")
    print(f"ratio: {project / reference:.1f}x")
    # The bar of the run's profile, or of a profile that gates its network; none gates it: no line.
    bars = [
        p.min_accuracy
        for p in gate.profiles.values()
        if p.model == run.model and run.profile in (None, p.name)
    ]
    if bars:
        full_size = (h for h in history if h.size == SIZE)
        reached = next((h for h in full_size if h.test_acc >= bars[0]), None)
        when = reached and f"epoch {reached.epoch}, {elapsed[reached.epoch]:.0f} s of training"
        print(f"first full-size epoch at >= {bars[0]:.1%}: {when or 'none'}")
    print(
        f"full gate run: {run.epochs} epochs, final-epoch test accuracy "
        f"{run.final_test_acc:.2%}, {run.wall_seconds:.0f} s wall"
    )


if __name__ == "__main__":
    main()
