"""The gate can fail: each broken network goes through the same checks and is rejected by name."""

import pytest
import torch
from torch import nn

from mnist_gate import checks, networks, profiles, tracer

PROFILE = profiles.load().profiles["8k"]


def conv(c_in, c_out, *, bn=True):
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not bn)]
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out), nn.ReLU()) if bn else layers[0]


def head(c_in, dropout=0.1):
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, 10)
    )


def small(*, dropout=0.1, pool=None, bn=True):
    """A net that keeps every rule: five convolutions and two pools see 34x34 pixels."""
    return nn.Sequential(
        conv(1, 8, bn=bn),
        nn.MaxPool2d(2),
        conv(8, 12, bn=bn),
        nn.MaxPool2d(2),
        conv(12, 12, bn=bn),
        conv(12, 12, bn=bn),
        conv(12, 12, bn=bn),
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


def rejected(net: nn.Module) -> str:
    with pytest.raises(profiles.GateError) as err:
        checks.check_structure(net, PROFILE)
    return str(err.value)


def test_the_reference_net_passes_every_structural_check():
    checks.check_structure(small(), PROFILE)


@pytest.mark.parametrize(
    "pool",
    [
        [nn.AdaptiveAvgPool2d(1)],
        [nn.AvgPool2d(7)],
    ],
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
    checks.check_structure(MeanPool(), PROFILE)


def test_8000_parameters_is_one_too_many():
    net = small()
    net.register_parameter(
        "extra", nn.Parameter(torch.zeros(8000 - networks.count_parameters(net)))
    )
    assert "8,000 trainable parameters; profile 8k allows fewer than 8,000, so 1 too many" in (
        rejected(net)
    )


def test_frozen_parameters_cannot_hide_from_the_count():
    net = small()
    net[0][0].weight.requires_grad_(False)
    assert "frozen parameters would hide from the count: 0.0.weight" in rejected(net)


def test_no_batchnorm_is_rejected():
    assert "no BatchNorm runs in forward" in rejected(small(bn=False))


def test_batchnorm_defined_but_unused_is_rejected():
    assert "BatchNorm defined but never run in forward: norm (BatchNorm2d)" in rejected(
        UnusedBatchNorm()
    )


def test_no_dropout_is_rejected():
    assert "no Dropout with p > 0 drops anything in a training step" in rejected(small(dropout=0.0))


def test_flatten_into_linear_instead_of_pooling_is_rejected():
    net = small(pool=[nn.Flatten(), nn.Dropout(0.1), nn.Linear(12 * 7 * 7, 10)])
    with pytest.raises(profiles.GateError, match=r"the classifier reads the 12x7x7 map from relu"):
        checks.check_global_average_pool(tracer.probe(net))


def test_a_receptive_field_smaller_than_a_profile_asks_is_rejected():
    net = nn.Sequential(conv(1, 12), conv(12, 12), head(12))
    profile = profiles.Profile("rf", "Net", 8000, 15, 0.994, min_receptive_field=28)
    with pytest.raises(profiles.GateError, match="receptive field at the classifier is 5x5 pixels"):
        checks.check_structure(net, profile)


def test_wrong_output_shape_is_rejected():
    net = small(pool=[nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(12, 9)])
    assert "output shape (2, 9), not (2, 10)" in rejected(net)


def test_accuracy_just_under_the_threshold_fails_and_at_it_passes():
    with pytest.raises(profiles.GateError, match=r"below the 99.40% threshold .* by 0.01 points"):
        profiles.check_accuracy(0.9939, PROFILE)
    assert profiles.check_accuracy(0.9940, PROFILE) == pytest.approx(0)


def test_more_epochs_than_the_budget_fail():
    with pytest.raises(profiles.GateError, match="trained 16 epochs; profile 8k allows at most 15"):
        profiles.check_epochs(16, PROFILE)
    profiles.check_epochs(15, PROFILE)
