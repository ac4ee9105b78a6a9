"""The slow tier's verdict over a profile's gate runs as saved, and the check that a run's saved
checkpoint reproduces the accuracy its record claims. Training the seeds is the slow tier's
(tests/gate_runs.py): `python train.py --profile NAME --seed N`, into runs/gate-<profile>-seed<N>/.

    gate.judge_seeds(profile, seeds)     # the verdict on them, once every seed has trained
"""

from pathlib import Path

import torch

from . import judging, markdown, networks, paths, runfolder
from .images import evaluate
from .judging import Verdict
from .profiles import GateError, Profile
from .record import Record


def judge_seeds(profile: Profile, seeds: list[int], runs: Path | None = None) -> Verdict:
    """The verdict on the profile's gate runs of these seeds, as saved in runs (default:
    paths.RUNS); written beside them to runs/gate-<profile>.md."""
    runs = runs or paths.RUNS
    records = [runfolder.load_record(runfolder.gate_folder(profile.name, s, runs)) for s in seeds]
    judged = judging.judge(profile, records)
    paths.write_text(verdict_file(profile.name, runs), markdown.verdict(judged))
    return judged


def verdict_file(profile: str, runs: Path | None = None) -> Path:
    """Where the slow tier writes a profile's verdict: runs/gate-<profile>.md."""
    return (runs or paths.RUNS) / f"gate-{profile}.md"


def check_checkpoint(run: Record, net: torch.nn.Module, test: dict) -> None:
    """The saved checkpoint, loaded into a fresh network, must score what the record says."""
    fresh = networks.build(run.model)
    fresh.load_state_dict(runfolder.load_weights(run.folder))
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
