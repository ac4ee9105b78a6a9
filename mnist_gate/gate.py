"""The one path from a profile to what its verdict judges: train the profile once per seed, as
`python train.py --profile NAME --seed N` would (reports included), and check that each saved
checkpoint reproduces the accuracy its record claims.

    records = gate.train_profile(profile, seeds)     # the slow tier and CI's seed jobs
    verdict.judge(profile, records)                  # the verdict on them

Each seed's run goes to runs/gate-<profile>-seed<N>/, replacing the seed's earlier gate run.
"""

import contextlib
import shutil
from pathlib import Path

import torch

import train

from . import networks, paths, settings
from .budgets import GateError, Profile
from .data import load_mnist
from .images import evaluate
from .record import Record


def folder(profile: Profile, seed: int, runs: Path = paths.RUNS) -> Path:
    return runs / f"gate-{profile.name}-seed{seed}"


def config(profile: Profile, seed: int, runs: Path = paths.RUNS) -> train.Config:
    """What `python train.py --profile NAME --seed N` trains, into the gate's folder."""
    out = folder(profile, seed, runs)
    return settings.for_profile(train.Config, profile.name, seed=seed, out=out, progress=False)


def train_profile(profile: Profile, seeds: list[int], runs: Path = paths.RUNS) -> list[Record]:
    """Every seed of a profile trained, checked and reported; their records, in seed order.

    Each seed's folder is replaced only under that seed's lock, so two gate runs in one checkout
    (or two pytest-xdist workers) never touch each other's folders: the second to ask for a
    seed is refused at once."""
    # Every setting is checked before anything is locked, removed or trained.
    configs = [config(profile, seed, runs) for seed in seeds]
    with contextlib.ExitStack() as held:
        for cfg in configs:
            lock = runs / f".{cfg.out.name}.lock"
            busy = f"another gate run in this checkout is training {cfg.out.name} ({lock})"
            held.enter_context(paths.locked(lock, busy))
        test = None
        records = []
        for cfg in configs:
            if cfg.out.exists():
                shutil.rmtree(cfg.out)
            net, record = train.train(cfg)
            if test is None:
                test = load_mnist(cfg.data_dir, ("test",))
            check_checkpoint(record, net, test)
            records.append(record)
    return records


def check_checkpoint(run: Record, net: torch.nn.Module, test: dict) -> None:
    """The saved model.pt, loaded into a fresh network, must score what the record says."""
    checkpoint = torch.load(run.folder / "model.pt", weights_only=True)
    fresh = networks.build(run.model)
    fresh.load_state_dict(checkpoint["model"])
    device = next(net.parameters()).device
    fresh.to(device, memory_format=torch.channels_last)
    x, y = test["test_x"].unsqueeze(1).to(device), test["test_y"].to(device)
    _, accuracy, _ = evaluate(fresh, x, y)
    # One image of slack: a fresh cuDNN algorithm choice may flip one near-tie on a GPU.
    if abs(round(accuracy * run.test_images) - run.test_correct) > 1:
        raise GateError(
            f"seed {run.seed}: the checkpoint in {run.folder} scores {accuracy:.2%}, not the "
            f"{run.final_test_acc:.2%} its record claims"
        )
