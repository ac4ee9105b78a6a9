"""Time per training step of one or more networks in model.py, taking turns in one process.

    python -m scripts.steptime Net Net25k        # each one's median, and its ratio to the first
    python -m scripts.steptime Net --threads 1 --rounds 31

A step is train.py's, with its default settings: an augmented, normalised batch of training images,
forward, loss, backward, SGD. The networks take turns, --steps steps each per round, so a machine
that speeds up or slows down meanwhile slows them all alike, and the medians are over the rounds.
To time a change to a network, keep both versions in model.py under two names and pass both.
The weights move, so the steps are real ones; accuracy is not the point and is not measured.
"""

import statistics
import time

import torch

import train
from mnist_gate import networks, runtime
from mnist_gate.data import load_mnist
from mnist_gate.settings import Parser, positive_int

WARMUP_STEPS = 5


def step_timer(cfg: train.Config, images, labels, gen):
    """A function that runs n training steps of a fresh cfg.model and returns ms per step."""
    device = labels.device
    net = networks.build(cfg.model).to(device, memory_format=torch.channels_last)
    net.train()
    optimizer = train.sgd(net, cfg)

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            idx = torch.randint(len(labels), (cfg.batch_size,), device=device, generator=gen)
            draws = train.augmentation_draws(cfg.batch_size, gen)
            x = train.training_batch(images[idx], cfg, draws)
            loss, _ = train.train_step(net, optimizer, x, labels[idx], cfg.label_smoothing)
        loss.item()  # wait for the device before stopping the clock
        return (time.perf_counter() - start) / n * 1000

    return run


def command_line() -> Parser:
    parser = Parser(prog="python -m scripts.steptime", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="network classes in model.py")
    parser.add_argument(
        "--rounds", type=positive_int, default=21, help="turns per network (default: 21)"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=25, help="steps per turn (default: 25)"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    if len(set(args.models)) < len(args.models):
        parser.error("a network is named twice")
    configs = parser.run(lambda: [
        train.Config(model=name, threads=args.threads, device=args.device, progress=False)
        for name in args.models
    ])  # fmt: skip
    device = parser.run(lambda: runtime.start(args.device, args.threads, seed=0))
    data = parser.run(lambda: load_mnist(configs[0].data_dir, ("train",)))
    images = data["train_x"].unsqueeze(1).to(device)
    labels = data["train_y"].to(device)
    gen = torch.Generator(device).manual_seed(0)
    timers = {cfg.model: step_timer(cfg, images, labels, gen) for cfg in configs}
    for run in timers.values():
        run(WARMUP_STEPS)
    times = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, run in timers.items():
            times[name].append(run(args.steps))

    first = args.models[0]
    print(f"{runtime.device_name(device)} ({device.type}, {torch.get_num_threads()} threads)")
    print(f"median over {args.rounds} rounds of {args.steps} steps, batch {configs[0].batch_size}:")
    for name, ms in times.items():
        ratios = [a / b for a, b in zip(ms, times[first], strict=True)]
        print(
            f"  {name:12s} {statistics.median(ms):7.2f} ms/step"
            + ("" if name == first else f"  {statistics.median(ratios):.2f}x {first}'s")
        )


if __name__ == "__main__":
    main()
