"""Fast tier: every rule in mnist_gate.checks.RULES on every gated profile's network, without
training, and a few real training steps."""

import pytest
import torch
import torch.nn.functional as F

from mnist_gate import checks
from mnist_gate.data import load_mnist
from mnist_gate.images import normalize


@pytest.fixture(scope="module")
def subject(profile):
    """The profile's network, probed once for every rule below."""
    torch.manual_seed(0)
    return checks.Subject(checks.build(profile), profile)


@pytest.mark.parametrize("rule", checks.RULES, ids=[checks.name(rule) for rule in checks.RULES])
def test_the_network_keeps_the_rule(subject, rule):
    if not checks.applies(rule, subject.profile):
        pytest.skip(f"profile {subject.profile.name} does not ask for this rule")
    rule(subject)


def test_a_few_training_steps_lower_the_loss(profile):
    torch.manual_seed(0)
    net = checks.build(profile)
    data = load_mnist(splits=("train",))
    x, y = normalize(data["train_x"][:128].unsqueeze(1)), data["train_y"][:128]
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
