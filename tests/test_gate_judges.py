"""The gate judges what a network computes, not how it is spelled: honest networks in other
styles pass, broken ones are refused with the rule (and the layer) that they break."""

import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import train
from mnist_gate import checks, networks, profiles, tracer

from .helpers import unevaluated

PROFILE = profiles.load().profiles["8k"]
WITH_RF = dataclasses.replace(PROFILE, min_receptive_field=28)  # every rule applies


def conv(c_in, c_out, k=3, stride=1):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class Body(nn.Module):
    """Honest features: 28x28 -> 12x7x7 with BatchNorm; a head of the subclass's own."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv(1, 8), nn.MaxPool2d(2), conv(8, 12), nn.MaxPool2d(2), conv(12, 12), conv(12, 12)
        )
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(12, 10)

    def head(self, x):
        return x.mean((2, 3))

    def forward(self, x):
        return self.fc(self.dropout(self.head(self.features(x))))


def block(c_in, c_out, *, bn=True):
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not bn)]
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out), nn.ReLU()) if bn else layers[0]


def head(c_in, dropout=0.1):
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, 10)
    )


def small(*, dropout=0.1, pool=None, bn=True):
    """A net that keeps every rule: five convolutions and two pools see 34x34 pixels."""
    return nn.Sequential(
        block(1, 8, bn=bn),
        nn.MaxPool2d(2),
        block(8, 12, bn=bn),
        nn.MaxPool2d(2),
        block(12, 12, bn=bn),
        block(12, 12, bn=bn),
        block(12, 12, bn=bn),
        *(pool or [head(12, dropout)]),
    )


class UnusedBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small(bn=False)
        self.norm = nn.BatchNorm2d(12)  # defined, never called

    def forward(self, x):
        return self.body(x)


class MeanPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = small()[:7]
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x).mean((2, 3))))


def one_too_many() -> nn.Module:
    net = small()
    extra = 8000 - networks.count_parameters(net)
    net.register_parameter("extra", nn.Parameter(torch.zeros(extra)))
    return net


def frozen() -> nn.Module:
    net = small()
    net[0][0].weight.requires_grad_(False)
    return net


class FlattenMean(Body):
    def head(self, x):
        return x.flatten(2).mean(-1)


class MeanMean(Body):
    def head(self, x):
        return x.mean(-1).mean(-1)


class SumOverArea(Body):
    def head(self, x):
        h, w = x.shape[-2:]
        return x.sum((2, 3)) / (h * w)


class FixedPool(Body):
    """nn.AvgPool2d(7) on the last 7x7 map, as many write-ups do: right at 28x28 only."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(7)

    def head(self, x):
        return self.pool(x).flatten(1)


class GradGuardedDropout(Body):
    def __init__(self):
        super().__init__()
        self.dropout = None  # functional below, so no module that never runs

    def forward(self, x):
        x = self.head(self.features(x))
        if self.training and torch.is_grad_enabled():
            x = F.dropout(x, 0.1)
        return self.fc(x)


class ConvHead(nn.Module):
    """A 1x1 convolution to ten channels, averaged, then log-softmax: the classes are the map's
    channels, and a shift common to all of them vanishes in the softmax."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv(1, 8), nn.MaxPool2d(2), conv(8, 12), nn.Dropout(0.05), nn.MaxPool2d(2),
            conv(12, 12), nn.Conv2d(12, 10, 1), nn.AvgPool2d(7),
        )  # fmt: skip

    def forward(self, x):
        return F.log_softmax(self.features(x).view(-1, 10), dim=-1)


@pytest.mark.parametrize(
    "net", [FlattenMean, MeanMean, SumOverArea, FixedPool, GradGuardedDropout, ConvHead]
)
def test_honest_networks_in_other_styles_pass(net):
    assert failing(net) == {}


def test_the_small_net_passes_every_structural_check():
    checks.check_structure(small(), PROFILE)


@pytest.mark.parametrize(
    "pool",
    [[nn.AdaptiveAvgPool2d(1)], [nn.AvgPool2d(7)]],
    ids=["AdaptiveAvgPool2d(1)", "AvgPool2d(7)"],
)
def test_every_usual_form_of_global_average_pooling_counts(pool):
    net = small(pool=[*pool, nn.Flatten(), nn.Dropout(0.1), nn.Linear(12, 10)])
    checks.check_structure(net, PROFILE)


def test_average_pools_that_downsample_grow_the_receptive_field():
    net = small()
    net[1], net[3] = nn.AvgPool2d(2), nn.AvgPool2d(2)
    assert checks.check_structure(net, PROFILE).rf == 34


def test_a_mean_over_height_and_width_in_forward_counts():
    assert failing(MeanPool) == {}


def test_a_fixed_size_network_trains_at_full_size_and_says_so(tmp_path, monkeypatch):
    import model

    monkeypatch.setattr(model, "FixedPool", FixedPool, raising=False)
    monkeypatch.setattr(train, "evaluate", unevaluated)
    cfg = train.Config(model="FixedPool", epochs=2, small_epochs=1, limit=256, progress=False,
                       reports=False, out=tmp_path / "run")  # fmt: skip
    _, run = train.train(cfg)
    assert [row.size for row in run.history] == [28, 28]
    assert list(run.notes) == [
        "model.FixedPool does not take 20x20 images (RuntimeError: Given input size: (12x5x5). "
        "Calculated output size: (12x0x0). Output size is too small), so every epoch trained "
        "at 28x28"
    ]


class BufferWeights(Body):
    """Most convolution weights kept in buffers: a small trainable count, a large network."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn(64, 12, 3, 3) * 0.1)
        self.mix = nn.Conv2d(64, 12, 1)

    def forward(self, x):
        x = self.mix(F.relu(F.conv2d(self.features(x), self.w, padding=1)))
        return self.fc(self.dropout(x.mean((2, 3))))


class EvalOnlyDropout(GradGuardedDropout):
    def forward(self, x):
        return self.fc(F.dropout(self.head(self.features(x)), 0.1, training=not self.training))


class NoGradOnlyDropout(GradGuardedDropout):
    def forward(self, x):
        x = self.head(self.features(x))
        return self.fc(F.dropout(x, 0.1, self.training) if not torch.is_grad_enabled() else x)


class TrainOnlyBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
            nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 12, 3, padding=1),
        )  # fmt: skip
        self.norm = nn.BatchNorm2d(12)
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(12, 10)

    def normalise(self, x):
        return self.norm(x) if self.training else x

    def forward(self, x):
        x = torch.relu(self.normalise(self.features(x)))
        return self.fc(self.dropout(x.mean((2, 3))))


class BatchNormAboveOne(TrainOnlyBatchNorm):
    def normalise(self, x):
        return self.norm(x) if x.shape[0] > 1 else x


class DiscardedPool(Body):
    """The pool runs and its result is dropped; the classifier reads the flattened map."""

    def __init__(self):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.shrink = nn.MaxPool2d(2)
        self.fc = nn.Linear(12 * 3 * 3, 10)

    def forward(self, x):
        x = self.shrink(self.features(x))
        _ = self.gap(x)
        return self.fc(self.dropout(x.flatten(1)))


class ForwardParameters(Body):
    def forward(self, x):
        if not hasattr(self, "extra"):
            self.extra = nn.Linear(12, 12)
        return self.fc(self.dropout(self.extra(self.head(self.features(x)))))


class Probabilities(Body):
    def forward(self, x):
        return super().forward(x).softmax(1)


class LogProbabilities(Body):
    def forward(self, x):
        return super().forward(x).log_softmax(1)


class Lazy(Body):
    def __init__(self):
        super().__init__()
        self.fc = nn.LazyLinear(10)


def test_log_probabilities_are_fine():
    checks.check_structure(LogProbabilities(), PROFILE)


# The receptive field, measured on networks that are not a single chain. Each expected value is
# worked out by hand in the class docstring.


class Branches(nn.Module):
    """A 3x3 stem (3), then two branches: two 3x3 (7) and one 3x3 (5), added: the wider, 7."""

    def __init__(self):
        super().__init__()
        self.stem = conv(1, 8)
        self.a = nn.Sequential(conv(8, 8), conv(8, 8))
        self.b = conv(8, 8)
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(self.dropout((self.a(x) + self.b(x)).mean((2, 3))))


class StridedShortcut(nn.Module):
    """3x3 stem (3); main: 3x3 stride 2 (5, step 2), 3x3 (9); shortcut: 1x1 stride 2 (3); added
    (9); then a 3x3 at step 2: 9 + 2 * 2 = 13."""

    def __init__(self):
        super().__init__()
        self.stem = conv(1, 8)
        self.main = nn.Sequential(conv(8, 8, stride=2), conv(8, 8))
        self.shortcut = conv(8, 8, k=1, stride=2)
        self.after = conv(8, 8)
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.after(self.main(x) + self.shortcut(x))
        return self.fc(self.dropout(x.mean((2, 3))))


class Upsampled(nn.Module):
    """3x3 stride 2, nearest upsampling x2, 3x3: the last 3x3 reads two low-resolution rows,
    which see input rows 2r-1..2r+1 and 2r+1..2r+3: 5 pixels."""

    def __init__(self):
        super().__init__()
        self.down = conv(1, 8, stride=2)
        self.up = conv(8, 8)
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.up(F.interpolate(self.down(x), scale_factor=2, mode="nearest"))
        return self.fc(self.dropout(x.mean((2, 3))))


@pytest.mark.parametrize("net, rf", [(Branches, 7), (StridedShortcut, 13), (Upsampled, 5)])
def test_the_receptive_field_is_right_for_any_topology(net, rf):
    probe = tracer.probe(net())
    assert (probe.rf, probe.unfollowed, probe.rf_clipped) == (rf, [], False)


class Detached(Branches):
    def forward(self, x):
        x = self.stem(x)
        return self.fc(self.dropout((self.a(x).detach() + self.b(x)).mean((2, 3))))


def test_an_operation_the_receptive_field_cannot_follow_is_named():
    assert failing(Detached, WITH_RF) == {
        "receptive field": "cannot follow the receptive field through detach in forward"
    }


def test_the_receptive_field_minimum_is_a_profile_setting():
    # Body sees 26x26 pixels: every usual profile passes it; one that asks for 28 does not.
    assert failing(Body) == {}
    short = failing(Body, WITH_RF)["receptive field"]
    assert "receptive field at the classifier is 26x26 pixels, 2 short of the 28x28" in short
    assert all(p.min_receptive_field is None for p in profiles.load().profiles.values())


# Networks in styles the gate must follow without a traceback: each outcome is a rule's verdict.


def verdicts(net: nn.Module, profile=PROFILE) -> dict[str, str]:
    """Every rule on net, one at a time as the fast tier runs them: "pass" or its one-line
    failure. Anything else raised is a traceback, and fails the test that asked."""
    subject = checks.Subject(net, profile)
    found = {}
    for rule in checks.RULES:
        if checks.applies(rule, profile):
            try:
                rule(subject)
                found[checks.name(rule)] = "pass"
            except profiles.GateError as err:
                assert "\n" not in str(err), str(err)
                found[checks.name(rule)] = str(err)
    return found


@functools.cache
def judged(build) -> dict[str, str]:
    """verdicts under every rule of the network build() makes from seed 0, worked out once for
    the tests that ask (each probes the network)."""
    torch.manual_seed(0)
    return verdicts(build(), WITH_RF)


def failing(build, profile=PROFILE) -> dict[str, str]:
    """The rules that refuse the network build() makes from seed 0 under profile (PROFILE, or
    WITH_RF with every rule), and why."""
    applies = [checks.name(rule) for rule in checks.RULES if checks.applies(rule, profile)]
    return {name: why for name, why in judged(build).items() if why != "pass" and name in applies}


class WeightNormed(Body):
    def __init__(self):
        super().__init__()
        for block in (self.features[0], self.features[2]):
            torch.nn.utils.parametrizations.weight_norm(block[0])


class SpectralNormed(Body):
    def __init__(self):
        super().__init__()
        torch.nn.utils.parametrizations.spectral_norm(self.fc)


class Halved(nn.Module):
    def forward(self, weight):
        return weight / 2


class CustomParametrization(Body):
    def __init__(self):
        super().__init__()
        torch.nn.utils.parametrize.register_parametrization(self.features[4][0], "weight", Halved())


@pytest.mark.parametrize("net", [WeightNormed, SpectralNormed, CustomParametrization])
def test_parametrised_layers_are_judged_like_any_other(net):
    assert failing(net) == {}
    # Counted as the optimizer sees them: the parametrisation's own tensors.
    probe_net = net()
    assert sum(p.numel() for p in probe_net.parameters()) == checks.check_parameters(
        probe_net, PROFILE
    )


class Scripted(Body):
    def __init__(self):
        super().__init__()
        self.features[0] = torch.jit.script(self.features[0])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated", "ignore:The .grad attribute")
def test_a_torchscript_submodule_is_one_line_that_names_the_limit():
    found = verdicts(Scripted())
    # The rules that need no trace still give their own verdicts.
    assert found.pop("parameters") == found.pop("output") == "pass"
    assert found, "a network the gate cannot trace must not pass"
    for why in found.values():
        assert "features.0 is a TorchScript module, which the gate cannot trace" in why, why


class Thresholded(Body):
    def forward(self, x):
        return super().forward((x > 0).float())


def test_an_operation_that_cuts_the_gradient_costs_only_the_receptive_field_rule():
    assert failing(Thresholded) == {}
    assert failing(Thresholded, WITH_RF) == {
        "receptive field": "cannot follow the receptive field through gt in forward"
    }


class ShiftedReLU(Body):
    """Every ReLU dead on an input of ones: the field is still the whole of what it sees."""

    def forward(self, x):
        return super().forward(torch.relu(x - 3))


def test_the_receptive_field_does_not_depend_on_where_the_probe_input_sits():
    assert failing(ShiftedReLU, WITH_RF) == failing(Body, WITH_RF)  # 26x26, 2 short of 28x28


class NoRunningStatistics(Body):
    def __init__(self):
        super().__init__()
        for block in (self.features[0], self.features[2], self.features[4], self.features[5]):
            block[1] = nn.BatchNorm2d(block[1].num_features, track_running_stats=False)


class RandomSkip(Body):
    """Skips its last block at random, in training and in inference alike."""

    def forward(self, x):
        x = self.features[:5](x)
        if torch.rand(()) < 0.5:
            x = self.features[5](x)
        return self.fc(self.dropout(self.head(x)))


class SkipsOnceInAWhile(Body):
    """Skips its last block on one call in every REPEATS + 1, in inference too."""

    calls = 0

    def forward(self, x):
        self.calls += 1
        x = self.features[:5](x)
        if self.calls % (tracer.REPEATS + 1):
            x = self.features[5](x)
        return self.fc(self.dropout(self.head(x)))


def test_inference_that_strays_on_one_call_in_those_compared_is_random():
    # Whichever of the calls compared strays, the check holds it; a network that strays at
    # random with chance p a call then agrees on all n of them with chance (1 - p)^n + p^n.
    assert "inference is random" in failing(SkipsOnceInAWhile)["deterministic inference"]
    n = tracer.REPEATS + 1
    assert 0.8**n + 0.2**n < 1e-6  # one call in five: caught on all but one probe in a million


class TupleOutput(Body):
    def forward(self, x):
        features = self.head(self.features(x))
        return self.fc(self.dropout(features)), features


class HandDropout(GradGuardedDropout):
    """Inverted dropout written by hand: a random mask in training, nothing in inference."""

    def forward(self, x):
        x = self.head(self.features(x))
        if self.training:
            x = x * (torch.rand_like(x) > 0.1) / 0.9
        return self.fc(x)


class BernoulliDropout(GradGuardedDropout):
    def forward(self, x):
        x = self.head(self.features(x))
        if self.training:
            x = x * torch.bernoulli(torch.full_like(x, 0.8))
        return self.fc(x)


def test_dropout_written_by_hand_is_dropout():
    assert failing(HandDropout) == failing(BernoulliDropout) == {}


class GaussianNoise(GradGuardedDropout):
    def forward(self, x):
        x = self.head(self.features(x))
        if self.training:
            x = x + 0.1 * torch.randn_like(x)
        return self.fc(x)


class MultiplicativeNoise(GradGuardedDropout):
    def forward(self, x):
        x = self.head(self.features(x))
        if self.training:
            x = x * (1 + 0.5 * torch.randn_like(x))
        return self.fc(x)


class HandDropoutAlways(GradGuardedDropout):
    def forward(self, x):
        x = self.head(self.features(x))
        return self.fc(x * (torch.rand_like(x) > 0.1) / 0.9)


# Every rule-breaking network, in one table: what builds it, the rule that must refuse it (then any
# other rule it breaks too), and what the first says. A new rule adds the networks that break it.
BROKEN = [
    (one_too_many, "parameters",
     "8,000 trainable parameters; profile 8k allows fewer than 8,000, so 1 too many"),
    (frozen, "parameters, weights", "frozen parameters would hide from the count: 0.0.weight"),
    (Lazy, "parameters",
     "lazy parameters fc.weight, fc.bias have no size until the first forward pass"),
    (lambda: small(pool=[nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                         nn.Linear(12, 9)]), "output", "output shape (2, 9), not (2, 10)"),
    (Probabilities, "output", "the output rows are probabilities"),
    (TupleOutput, "output", "forward returns a tuple, not a tensor of (N, 10) logits"),
    (BufferWeights, "weights", "weights that do not train would hide from the count: conv2d in "
                               "forward takes its weight from buffer w"),
    (ForwardParameters, "weights", "parameters created inside forward: extra.weight, extra.bias"),
    (lambda: small(bn=False), "batchnorm", "no BatchNorm runs in forward"),
    (UnusedBatchNorm, "batchnorm",
     "BatchNorm defined but never run in forward: norm (BatchNorm2d)"),
    (TrainOnlyBatchNorm, "batchnorm",
     "BatchNorm does not run in eval mode at batch 1, eval mode at batch 64"),
    (BatchNormAboveOne, "batchnorm", "BatchNorm does not run in eval mode at batch 1;"),
    (NoRunningStatistics, "batchnorm",
     "BatchNorm uses batch statistics in inference (eval mode): features.0.1"),
    (lambda: small(dropout=0.0), "dropout",
     "no Dropout with p > 0 drops anything in a training step"),
    (EvalOnlyDropout, "dropout",
     "Dropout drops activations in inference (eval mode): forward (p=0.1)"),
    (NoGradOnlyDropout, "dropout", "no Dropout with p > 0 drops anything in a training step"),
    (GaussianNoise, "dropout", "no Dropout with p > 0 drops anything in a training step"),
    (MultiplicativeNoise, "dropout", "no Dropout with p > 0 drops anything in a training step"),
    (HandDropoutAlways, "dropout",
     "Dropout drops activations in inference (eval mode): mul in forward (zeroes about"),
    (RandomSkip, "deterministic inference",
     "inference is random: two passes in eval mode on the same images differ"),
    (lambda: small(pool=[nn.Flatten(), nn.Dropout(0.1), nn.Linear(12 * 7 * 7, 10)]),
     "global average pooling, parameters", "the classifier reads the 12x7x7 map from relu"),
    (DiscardedPool, "global average pooling",
     "the classifier reads the 12x3x3 map from max_pool2d in shrink beyond its global average"),
]  # fmt: skip


@pytest.mark.parametrize(
    "net, rule, message",
    BROKEN,
    ids=[getattr(net, "__name__", "") if isinstance(net, type) else f"{rule}, {message[:30]}"
         for net, rule, message in BROKEN],
)  # fmt: skip
def test_the_rule_that_is_broken_is_the_one_that_says_so(net, rule, message):
    found = failing(net)
    rule, *also = rule.split(", ")
    assert message in found.pop(rule, "passed"), found
    # Other rules pass, break as the row says, or say which rule's failure keeps them from judging.
    for name, why in found.items():
        assert name in also or "(see the " in why, (name, why)


NETWORKS = [
    value for value in list(globals().values())
    if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == __name__
    and value not in (Halved,)
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated", "ignore:The .grad attribute")
@pytest.mark.parametrize("net", NETWORKS, ids=[n.__name__ for n in NETWORKS])
def test_every_network_here_gets_a_verdict_from_every_rule_never_a_traceback(net):
    # Every rule: a pass or its one-line GateError, nothing else.
    assert set(judged(net)) == {checks.name(rule) for rule in checks.RULES}
