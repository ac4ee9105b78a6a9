"""The one path from a profile to what its verdict judges: train the profile once per seed, as
`python train.py --profile NAME --seed N` would (reports included), check that each saved
checkpoint reproduces the accuracy its record claims, and judge the seeds together.

    gate.train_seed(profile, seed)       # a slow-tier test each (pytest-xdist runs them at once)
    gate.judge_seeds(profile, seeds)     # the verdict on them, once every seed has trained

Each seed's run goes to runs/gate-<profile>-seed<N>/, replacing the seed's earlier gate run.
"""

import shutil
from pathlib import Path

import torch

import train

from . import networks, paths, record, settings, verdict
from .budgets import GateError, Profile
from .data import load_mnist
from .images import evaluate
from .record import Record
from .verdict import Verdict


def folder(profile: Profile, seed: int, runs: Path | None = None) -> Path:
    """runs/gate-<profile>-seed<N>/, in paths.RUNS unless told otherwise."""
    return paths.gate_folder(profile.name, seed, runs or paths.RUNS)


def config(profile: Profile, seed: int, runs: Path | None = None, threads: int = 0) -> train.Config:
    """What `python train.py --profile NAME --seed N` trains, into the gate's folder."""
    out = folder(profile, seed, runs)
    return settings.for_profile(
        train.Config, profile.name, seed=seed, out=out, threads=threads, progress=False
    )


def train_seed(profile: Profile, seed: int, runs: Path | None = None, threads: int = 0) -> Record:
    """One seed of a profile trained, checked and reported: its record.

    The seed's folder is replaced only under that seed's lock, so two gate runs in one checkout
    (or two pytest-xdist workers) never touch each other's folders: the second to ask for a seed
    is refused at once."""
    cfg = config(profile, seed, runs, threads)
    lock = cfg.out.parent / f".{cfg.out.name}.lock"
    busy = f"another gate run in this checkout is training {cfg.out.name} ({lock})"
    with paths.locked(lock, busy):
        if cfg.out.is_symlink() or cfg.out.is_file():
            cfg.out.unlink()  # the link, never what it points to
        elif cfg.out.exists():
            shutil.rmtree(cfg.out)
        net, run = train.train(cfg)
        check_checkpoint(run, net, load_mnist(cfg.data_dir, ("test",)))
    return run


def judge_seeds(profile: Profile, seeds: list[int], runs: Path | None = None) -> Verdict:
    """The verdict on the profile's gate runs of these seeds, as saved; written beside them to
    runs/gate-<profile>.md."""
    judged = verdict.judge(profile, [record.load(folder(profile, s, runs)) for s in seeds])
    paths.write_text((runs or paths.RUNS) / f"gate-{profile.name}.md", judged.markdown)
    return judged


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
