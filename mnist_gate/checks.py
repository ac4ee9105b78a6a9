"""The budgets and the rules that enforce them, shared by the test suite and the reports.

The budgets live in one table, [tool.gate.profiles] in pyproject.toml. Every structural rule is
decided on what the network computes when it runs (mnist_gate.tracer.probe), never on how its code
is spelled.
"""

import copy

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from . import networks
from .budgets import GateError, Profile, check_parameter_count
from .data import SIZE
from .tracer import Probe, probe


def build(profile: Profile) -> nn.Module:
    """A fresh instance of the profile's network from model.py."""
    try:
        return networks.build(profile.model)
    except networks.UnknownNetwork as err:
        raise GateError(f"profile {profile.name} gates model.{profile.model}: {err}") from None


def check_parameters(net: nn.Module, profile: Profile) -> int:
    lazy = [name for name, p in net.named_parameters() if is_lazy(p)]
    if lazy:
        raise GateError(
            f"lazy parameters {', '.join(lazy)} have no size until the first forward pass, after "
            "the trainer has built its optimizer; give the layer its input size (Conv2d, not "
            "LazyConv2d)"
        )
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    if frozen:
        raise GateError(
            f"frozen parameters would hide from the count: {', '.join(frozen)}; every parameter "
            "must be trainable"
        )
    return check_parameter_count(networks.count_parameters(net), profile)


def check_weights(p: Probe) -> None:
    if p.created:
        raise GateError(
            f"parameters created inside forward: {', '.join(p.created)}; they escape the count "
            "and the optimizer, which exist before the first forward pass: create every layer "
            "in __init__"
        )
    if p.hidden_weights:
        raise GateError(
            f"weights that do not train would hide from the count: {'; '.join(p.hidden_weights)}"
            "; every weight must be a trainable parameter"
        )


def _never_run(net: nn.Module, p: Probe, kinds: tuple[type, ...]) -> list[str]:
    return [
        f"{name} ({type(m).__name__})"
        for name, m in net.named_modules()
        if isinstance(m, kinds) and name not in p.ran
    ]


def check_batchnorm(net: nn.Module, p: Probe) -> None:
    unused = _never_run(net, p, (nn.modules.batchnorm._BatchNorm,))
    if unused:
        raise GateError(f"BatchNorm defined but never run in forward: {', '.join(unused)}")
    if not any(p.batch_norms.values()):
        raise GateError("no BatchNorm runs in forward; the budget requires BatchNorm")
    missing = [
        f"{mode} mode at batch {batch}"
        for (mode, batch), calls in p.batch_norms.items()
        if not calls
    ]
    if missing:
        raise GateError(
            f"BatchNorm does not run in {', '.join(missing)}; it must normalise with batch "
            "statistics in every training step and with its running statistics in inference, "
            "at any batch size"
        )


def check_dropout(net: nn.Module, p: Probe) -> None:
    unused = _never_run(net, p, (nn.modules.dropout._DropoutNd,))
    if unused:
        raise GateError(f"Dropout defined but never run in forward: {', '.join(unused)}")
    if p.eval_dropouts:
        raise GateError(
            f"Dropout drops activations in inference (eval mode): {', '.join(p.eval_dropouts)}; "
            "it must act in training steps only"
        )
    if not p.train_dropouts:
        found = f" (it ran with p={p.idle_dropouts} or training off)" if p.idle_dropouts else ""
        raise GateError(
            f"no Dropout with p > 0 drops anything in a training step (train mode, autograd "
            f"on){found}; the budget requires Dropout"
        )


def check_global_average_pool(p: Probe) -> None:
    head = p.head
    if head.where is None:
        raise GateError(
            "no feature map with height and width reaches the output, so no global average "
            "pooling; average the last map over height and width before the classifier"
        )
    if not head.averaged:
        c, h, w = head.shape
        raise GateError(
            f"the classifier reads the {c}x{h}x{w} map from {head.where} beyond its global "
            "average (it changes when the map changes but its average does not); average the "
            "map over height and width, and feed only that to the classifier"
        )
    if not head.reads_map:
        raise GateError(
            f"the output does not depend on the last feature map ({head.where}); the global "
            "average of the features must feed the classifier"
        )


def check_receptive_field(p: Probe, minimum: int | None = None) -> int | None:
    """The field is always measured and reported; a profile that sets a minimum enforces it."""
    if minimum is None:
        return p.rf
    if p.unfollowed:
        raise GateError(f"cannot follow the receptive field through {', '.join(p.unfollowed)}")
    if p.rf is None:
        raise GateError("no global average pooling, so no receptive field at the classifier")
    if p.rf < minimum:
        raise GateError(
            f"receptive field at the classifier is {p.rf}x{p.rf} pixels, {minimum - p.rf} short "
            f"of the {minimum}x{minimum} the profile asks"
        )
    return p.rf


def check_output(net: nn.Module) -> None:
    net = copy.deepcopy(net)
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
            sums_to_one = torch.allclose(out.sum(1), out.new_ones(n), atol=1e-4)
            if n > 1 and (out >= 0).all() and sums_to_one:
                raise GateError(
                    f"{mode} mode: the output rows are probabilities (non-negative, summing to "
                    "1); return logits (log-probabilities also work): the trainer's "
                    "cross-entropy applies the softmax itself"
                )


def check_structure(net: nn.Module, profile: Profile) -> Probe:
    """Every rule that needs no training, in the order a reader would check them."""
    check_parameters(net, profile)
    check_output(net)
    p = probe(net)
    check_weights(p)
    check_batchnorm(net, p)
    check_dropout(net, p)
    check_global_average_pool(p)
    check_receptive_field(p, profile.min_receptive_field)
    return p
