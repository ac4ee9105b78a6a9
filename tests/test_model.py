"""Fast tier: the rules every gated network must keep, checked without training."""

import pytest
import torch
import torch.nn.functional as F

import gate
import model
import train
from mnist import load_mnist


@pytest.fixture
def net(profile):
    torch.manual_seed(0)
    return gate.build(profile)


def test_parameters_are_under_the_budget(net, profile):
    count = gate.check_parameters(net, profile)
    print(f"{profile.model}: {count:,} trainable parameters, budget < {profile.max_params:,}")


def test_batchnorm_runs_in_forward(net):
    gate.check_batchnorm(net, gate.trace(net))


def test_dropout_runs_in_forward(net):
    gate.check_dropout(net, gate.trace(net))


def test_global_average_pooling_feeds_the_classifier(net):
    gate.check_global_average_pool(gate.trace(net))


def test_receptive_field_covers_the_image(net):
    print("\n" + gate.layer_table(net))
    gate.check_receptive_field(gate.trace(net))


def test_output_is_finite_logits_of_shape_n_by_10(net):
    gate.check_output(net)


def test_docstring_table_matches_the_network(net, profile):
    table = gate.layer_table(net)
    assert table in model.__doc__, (
        f"model.py's docstring no longer shows {profile.model} as it runs; the table should read:\n"
        f"{table}"
    )


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
