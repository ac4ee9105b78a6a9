"""Fast tier: the rules every gated network must keep, checked without training."""

import pytest
import torch
import torch.nn.functional as F

import train
from mnist_gate import checks, report, tracer
from mnist_gate.data import load_mnist


@pytest.fixture
def net(profile):
    torch.manual_seed(0)
    return checks.build(profile)


@pytest.fixture(scope="module")
def probed(profile):
    """What the profile's network computes, measured once for the tests below."""
    return tracer.probe(checks.build(profile))


def test_parameters_are_under_the_budget(net, profile):
    count = checks.check_parameters(net, profile)
    print(f"{profile.model}: {count:,} trainable parameters, budget < {profile.max_params:,}")


def test_every_weight_trains(probed):
    checks.check_weights(probed)


def test_batchnorm_runs_in_training_and_inference(net, probed):
    checks.check_batchnorm(net, probed)


def test_dropout_acts_in_training_only(net, probed):
    checks.check_dropout(net, probed)


def test_global_average_pooling_feeds_the_classifier(probed):
    checks.check_global_average_pool(probed)


def test_receptive_field_is_measured(net, probed, profile):
    print("\n" + report.layer_table(net))
    assert probed.rf is not None and not probed.unfollowed and not probed.rf_clipped
    checks.check_receptive_field(probed, profile.min_receptive_field)


def test_output_is_finite_logits_of_shape_n_by_10(net):
    checks.check_output(net)


def test_a_few_training_steps_lower_the_loss(net):
    data = load_mnist()
    x, y = train.normalize(data["train_x"][:128].unsqueeze(1)), data["train_y"][:128]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"
