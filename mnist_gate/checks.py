"""The structural rules, in one list (RULES) that the checks, the fast tier's tests and the
README's list of rules all read.

Every rule is decided on what the network computes when it runs (mnist_gate.tracer.probe), never
on how its code is spelled. A rule is a function of the network under check (a Subject: the
network, its profile and the probe's measurements), raising GateError when broken, whose docstring
is the README's line for it. To add one, write it here and append it to RULES: the fast tier then
runs it on every gated profile, and `python -m scripts.readme` lists it in the README. A rule
that needs a measurement the probe does not take adds a field to tracer.Probe and fills it in
tracer.probe().
"""

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from . import networks
from .data import SIZE
from .profiles import GateError, Profile, check_parameter_count
from .tracer import Probe, Untraceable, probe


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
    if p.eval_batch_statistics:
        raise GateError(
            f"BatchNorm uses batch statistics in inference (eval mode): "
            f"{', '.join(p.eval_batch_statistics)}; inference must normalise with running "
            "statistics (track_running_stats=True)"
        )
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
    if not p.train_dropouts and not p.train_drops:
        found = f" (it ran with p={p.idle_dropouts} or training off)" if p.idle_dropouts else ""
        raise GateError(
            f"no Dropout with p > 0 drops anything in a training step (train mode, autograd "
            f"on){found}; the budget requires Dropout: activations zeroed at random in training, "
            "the others kept"
        )


def check_deterministic_inference(p: Probe) -> None:
    if p.head.output:
        raise GateError(
            f"inference cannot be judged: forward returns {p.head.output} (see the output rule)"
        )
    if p.head.random:
        dropout = " (see the dropout rule)" if p.eval_dropouts else ""
        raise GateError(
            f"inference is random: two passes in eval mode on the same images differ by up to "
            f"{p.head.random:.3g}; nothing random may act in inference{dropout}"
        )


def check_global_average_pool(p: Probe) -> None:
    head = p.head
    for rule, why in (("output", head.output), ("deterministic inference", head.random)):
        if why:
            raise GateError(f"global average pooling cannot be judged (see the {rule} rule)")
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


def check_receptive_field(p: Probe, minimum: int) -> int:
    """The field is reported in every table; a profile that sets a minimum enforces it."""
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
            if not isinstance(out, torch.Tensor):
                raise GateError(
                    f"forward returns a {type(out).__name__}, not a tensor of (N, 10) logits; "
                    "the trainer's cross-entropy takes the logits alone"
                )
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


@dataclass
class Subject:
    """A network under the gate's checks, for one profile; probed once, on first use."""

    net: nn.Module
    profile: Profile

    @cached_property
    def _probed(self) -> Probe | GateError:
        try:
            return probe(self.net, table=False)
        except Untraceable as err:
            return GateError(str(err))
        except Exception as err:  # the network's own code failed in a pass of the probe
            first = str(err).splitlines()[0] if str(err) else ""
            return GateError(f"the gate cannot run this network: {type(err).__name__}: {first}")

    @property
    def probe(self) -> Probe:
        """What the network computes; a probe that cannot run is one GateError for every rule
        that needs it."""
        if isinstance(self._probed, GateError):
            raise self._probed
        return self._probed


def applies_to(profile_wants: Callable[[Profile], bool]):
    """A rule that only some profiles ask for: it runs where profile_wants(profile) holds."""

    def mark(rule):
        rule.applies = profile_wants
        return rule

    return mark


def parameters(s: Subject) -> None:
    """**Parameters.** Fewer trainable parameters (`requires_grad`) than the profile's
    `max_params`, counted before any forward pass, as the optimizer sees them. BatchNorm's
    running statistics are buffers and do not count; a frozen or lazy parameter fails."""
    check_parameters(s.net, s.profile)


def output(s: Subject) -> None:
    """**Output.** `(N, 10)` finite values in both modes, at batch 1 and 64; rows that are
    probabilities (non-negative, summing to 1) are refused, since the trainer's cross-entropy
    applies the softmax itself (log-probabilities are fine)."""
    check_output(s.net)


def weights(s: Subject) -> None:
    """**Every weight trains.** The weights that convolution, linear and normalisation calls use
    must be trainable parameters created in `__init__`: weights in buffers or constants, or
    parameters created in `forward`, would escape the count or the optimizer."""
    check_weights(s.probe)


def batchnorm(s: Subject) -> None:
    """**BatchNorm.** A BatchNorm call must run with batch statistics in the training step and
    with running statistics in inference, at every batch size tried; a BatchNorm module that
    never runs is named."""
    check_batchnorm(s.net, s.probe)


def dropout(s: Subject) -> None:
    """**Dropout.** Something must drop activations in the training step and nothing in
    inference, recognised by what it computes: in two passes on the same images, an operation
    whose outputs differ only where one of them is zero (torch's dropout functions, or a
    hand-written mask; added or multiplied noise is not dropout). A Dropout module that never
    runs is named."""
    check_dropout(s.net, s.probe)


def deterministic_inference(s: Subject) -> None:
    """**Deterministic inference.** 64 passes in eval mode on the same images give the same
    output: nothing random acts in inference (the pooling rule below relies on it). A network
    that takes one of two paths at random, the rarer with chance p a call, slips through with
    chance (1 - p)^64: 6e-7 at p = 0.2, 4% at p = 0.05."""
    check_deterministic_inference(s.probe)


def global_average_pooling(s: Subject) -> None:
    """**Global average pooling feeds the classifier.** The last feature map that still has
    height and width is perturbed during inference: by a pattern whose average over height and
    width is zero, which must leave the output unchanged (the classifier reads only the map's
    global average, however the code averages it), and by a shift uniform over height and
    width, different per channel, which must change it (it reads the map)."""
    check_global_average_pool(s.probe)


@applies_to(lambda profile: profile.min_receptive_field is not None)
def receptive_field(s: Subject) -> None:
    """**Receptive field**, only for a profile that sets `min_receptive_field`. With every
    weight set positive and max pools replaced by average pools of the same shape, the gradient
    of the centre pixel of the averaged map, taken on a 128x128 input, marks the input pixels it
    sees; the field is the side of that square, through branches, strides and upsampling alike.
    An operation that cuts the gradient is named, not guessed."""
    check_receptive_field(s.probe, s.profile.min_receptive_field)


# The rules, in the order a reader would check them: the fast tier runs each on every gated
# profile, and the README lists each by its docstring.
RULES = [
    parameters,
    output,
    weights,
    batchnorm,
    dropout,
    deterministic_inference,
    global_average_pooling,
    receptive_field,
]


def name(rule) -> str:
    """A rule's name as people read it: "global average pooling"."""
    return rule.__name__.replace("_", " ")


def summary(rule) -> str:
    """A rule's docstring as one paragraph: the README's line for it."""
    return " ".join(inspect.cleandoc(rule.__doc__).split())


def applies(rule, profile: Profile) -> bool:
    return getattr(rule, "applies", lambda profile: True)(profile)


def check_structure(net: nn.Module, profile: Profile) -> Probe:
    """Every rule that applies to the profile, in the order a reader would check them."""
    subject = Subject(net, profile)
    for rule in RULES:
        if applies(rule, profile):
            rule(subject)
    return subject.probe
