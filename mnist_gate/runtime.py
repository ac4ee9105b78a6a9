"""What a training run needs around its loop: the device, threads and seed it starts with, and
where and with what it ran, in its record."""

import dataclasses
import os
import platform
import subprocess
from pathlib import Path

import torch
from torch import nn

from . import key, networks, paths, runfolder, settings
from .record import Epoch, Record
from .settings import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def start(device: str, threads: int, seed: int) -> torch.device:
    """Device, threads and seed, before anything random happens."""
    picked = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    if picked.type == "cuda":
        # fp32 training; TF32 matrix products are allowed (bf16 is unmeasured on a net this small).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # cuDNN's newer API builds an execution plan for every new convolution shape: 2.5 s of
        # the first epoch at each image size on an H200, a third of Net's 8k run. Its older API
        # picks an algorithm in milliseconds (EXPERIMENTS.md). Read at the first convolution.
        os.environ.setdefault("TORCH_CUDNN_V8_API_DISABLED", "1")
    torch.manual_seed(seed)
    return picked


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


def jsonable(cfg) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}


def save_run(cfg, net: nn.Module, *, history: list[dict], notes: list[str], predictions,
             seconds: float) -> Record:  # fmt: skip
    """The run's record, saved with its checkpoint and test predictions (mnist_gate.runfolder)."""
    device = next(net.parameters()).device
    record = Record(
        model=cfg.model,
        profile=cfg.profile,
        seed=cfg.seed,
        parameters=networks.count_parameters(net),
        epochs=cfg.epochs,
        test_images=predictions.shape[1],
        test_correct=int((predictions[0] == predictions[1]).sum()),
        wall_seconds=seconds,
        device=device_name(device),
        device_type=device.type,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        git_commit=git_commit(),
        key=key.here(),
        config=jsonable(cfg),
        recipe_settings=tuple(settings.recipe_names(cfg)),
        history=tuple(Epoch(**row) for row in history),
        notes=tuple(notes),
        folder=cfg.out,
    )
    runfolder.save(cfg.out, record, net.state_dict(), predictions.to(torch.uint8).cpu().numpy())
    return record
