"""The slow tier's one path from a profile to what its verdict judges: train the profile once per
seed, as `python train.py --profile NAME --seed N` would (reports included), and check that the
saved checkpoint reproduces the accuracy its record claims. The verdict over the seeds is
mnist_gate.gate.judge_seeds. Each seed's run goes to runs/gate-<profile>-seed<N>/, replacing the
seed's earlier gate run.
"""

import shutil
from pathlib import Path

import train
from mnist_gate import gate, paths, runfolder
from mnist_gate.data import load_mnist
from mnist_gate.profiles import Profile
from mnist_gate.record import Record


def config(profile: Profile, seed: int, runs: Path | None = None, threads: int = 0) -> train.Config:
    """What `python train.py --profile NAME --seed N` trains, into the gate's folder in runs
    (default: paths.RUNS)."""
    out = runfolder.gate_folder(profile.name, seed, runs or paths.RUNS)
    return profile.settings(train.Config, seed=seed, out=out, threads=threads, progress=False)


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
        net, run = train.train(cfg, profile)
        gate.check_checkpoint(run, net, load_mnist(cfg.data_dir, ("test",)))
    return run
