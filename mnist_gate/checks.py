"""The budgets and the rules that enforce them, shared by the test suite and the reports.

The budgets live in one table, [tool.gate.profiles] in pyproject.toml. Every structural rule looks
at what forward actually runs (mnist_gate.tracer), not at which modules are defined.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import networks
from .data import SIZE
from .paths import PYPROJECT
from .tracer import Trace, trace

GAP_FORMS = "AdaptiveAvgPool2d(1), an average pool over the whole map, or x.mean((2, 3))"


class GateError(AssertionError):
    """A broken rule; the message names the rule, the layer and by how much."""


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    max_params: int  # strictly fewer trainable parameters than this
    max_epochs: int
    min_accuracy: float  # final-epoch test accuracy, a fraction
    train: dict = field(default_factory=dict, hash=False)  # train.py settings the gate trains with


def load_profiles(path: Path = PYPROJECT) -> dict[str, Profile]:
    """The budgets, from the one table that holds them: [tool.gate.profiles] in pyproject.toml."""
    table = tomllib.loads(path.read_text())["tool"]["gate"]["profiles"]
    return {name: Profile(name=name, **budget) for name, budget in table.items()}


def profile_for(model_name: str) -> Profile | None:
    """The profile that gates a network, if any."""
    return next((p for p in load_profiles().values() if p.model == model_name), None)


def build(profile: Profile) -> nn.Module:
    """A fresh instance of the profile's network from model.py."""
    try:
        return networks.build(profile.model)
    except networks.UnknownNetwork as err:
        raise GateError(f"profile {profile.name} gates model.{profile.model}: {err}") from None


def check_parameters(net: nn.Module, profile: Profile) -> int:
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    if frozen:
        raise GateError(
            f"frozen parameters would hide from the count: {', '.join(frozen)}; every parameter "
            "must be trainable"
        )
    return check_parameter_count(networks.count_parameters(net), profile)


def check_parameter_count(count: int, profile: Profile) -> int:
    if count >= profile.max_params:
        raise GateError(
            f"{count:,} trainable parameters; profile {profile.name} allows fewer than "
            f"{profile.max_params:,}, so {count - profile.max_params + 1:,} too many"
        )
    return count


def _never_run(net: nn.Module, t: Trace, kinds: tuple[type, ...]) -> list[str]:
    return [
        f"{name} ({type(m).__name__})"
        for name, m in net.named_modules()
        if isinstance(m, kinds) and name not in t.ran
    ]


def check_batchnorm(net: nn.Module, t: Trace) -> None:
    unused = _never_run(net, t, (nn.modules.batchnorm._BatchNorm,))
    if unused:
        raise GateError(f"BatchNorm defined but never run in forward: {', '.join(unused)}")
    if t.batch_norms == 0:
        raise GateError("no BatchNorm runs in forward; the budget requires BatchNorm")


def check_dropout(net: nn.Module, t: Trace) -> None:
    unused = _never_run(net, t, (nn.modules.dropout._DropoutNd,))
    if unused:
        raise GateError(f"Dropout defined but never run in forward: {', '.join(unused)}")
    if not any(p > 0 for p in t.dropouts):
        found = f" (only p={t.dropouts})" if t.dropouts else ""
        raise GateError(
            f"no Dropout with p > 0 runs in forward{found}; the budget requires Dropout"
        )


def check_global_average_pool(t: Trace) -> None:
    if t.early_linear:
        raise GateError(
            f"Linear layer {t.early_linear} runs on a flattened feature map before any global "
            f"average pooling; pool first ({GAP_FORMS})"
        )
    if t.gap is None:
        raise GateError(f"no global average pooling runs in forward; use {GAP_FORMS}")


def check_receptive_field(t: Trace, minimum: int = SIZE) -> int:
    if t.unknown:
        raise GateError(f"cannot follow the receptive field through {', '.join(t.unknown)}")
    if t.rf is None:
        raise GateError("no global average pooling, so no receptive field at the classifier")
    if t.rf < minimum:
        raise GateError(
            f"receptive field at the classifier is {t.rf}x{t.rf} pixels, {minimum - t.rf} short "
            f"of the {minimum}x{minimum} image"
        )
    return t.rf


def check_output(net: nn.Module) -> None:
    device = next(net.parameters()).device
    for mode in ("train", "eval"):
        net.train(mode == "train")
        for n in (1, 64) if mode == "eval" else (2, 64):
            with torch.no_grad():
                out = net(torch.randn(n, 1, SIZE, SIZE, device=device))
            if tuple(out.shape) != (n, 10):
                raise GateError(
                    f"{mode} mode, batch {n}: output shape {tuple(out.shape)}, not ({n}, 10)"
                )
            if not torch.isfinite(out).all():
                raise GateError(f"{mode} mode, batch {n}: output has non-finite values")


def check_accuracy(accuracy: float, profile: Profile) -> float:
    margin = accuracy - profile.min_accuracy
    if margin < 0:
        raise GateError(
            f"final-epoch test accuracy {accuracy:.2%} is below the {profile.min_accuracy:.2%} "
            f"threshold of profile {profile.name} by {-margin * 100:.2f} points"
        )
    return margin


def check_epochs(epochs: int, profile: Profile) -> None:
    if epochs > profile.max_epochs:
        raise GateError(
            f"trained {epochs} epochs; profile {profile.name} allows at most {profile.max_epochs}, "
            f"{epochs - profile.max_epochs} too many"
        )


def check_structure(net: nn.Module, profile: Profile) -> Trace:
    """Every rule that needs no training, in the order a reader would check them."""
    check_parameters(net, profile)
    t = trace(net)
    check_batchnorm(net, t)
    check_dropout(net, t)
    check_global_average_pool(t)
    check_receptive_field(t)
    check_output(net)
    return t
