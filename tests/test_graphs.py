"""The graphed training loop trains what the eager loop trains: the same batches in the same order,
the same draws, the schedule's rate at every step, every image once an epoch (the last batch
partial). On a CPU the step a graph would hold runs as it is; on a GPU it is captured."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import model
import train
from mnist_gate.graphs import GraphedEpochs

IMAGES, BATCH = 600, 256  # two full batches and a partial one of 88
STEPS = -(-IMAGES // BATCH)
CFG = train.Config(progress=False)


def data(device: str):
    """Random images and labels, and two epochs: an augmented one at 20x20, a clean one at 28x28,
    each (order, draws, size); and the learning rate of every step."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (IMAGES, 1, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (IMAGES,), generator=gen)
    epochs = [
        (
            torch.randperm(IMAGES, generator=gen),
            torch.rand(STEPS, train.DRAWS, BATCH, generator=gen),
            20,
        ),
        (torch.randperm(IMAGES, generator=gen), None, 28),
    ]
    epochs = [(order.to(device), draws if draws is None else draws.to(device), size)
              for order, draws, size in epochs]  # fmt: skip
    schedule = [0.2 * (k + 1) / (2 * STEPS) for k in range(2 * STEPS)]
    return images.to(device), labels.to(device), epochs, schedule


def network(device: str, dropout: float) -> nn.Module:
    torch.manual_seed(0)
    return model.TinyNet(8, ((16, 1), (16, 1)), dropout, nn.SiLU).to(
        device, memory_format=torch.channels_last
    )


def learner(net: nn.Module, optimizer):
    def learn(images, labels, draws, size):
        x = train.training_batch(images, CFG, draws, size)
        return train.train_step(net, optimizer, x, labels, CFG.label_smoothing)

    return learn


def eager(net: nn.Module, device: str) -> list[tuple[list[float], int]]:
    """The two epochs as train.py's eager loop runs them: each epoch's step losses and count of
    correct guesses."""
    images, labels, epochs, schedule = data(device)
    optimizer = train.sgd(net, CFG)
    torch.manual_seed(1)  # the same dropout draws for either loop
    learn, found = learner(net, optimizer), []
    for epoch, (order, draws, size) in enumerate(epochs):
        losses, correct = [], 0
        for step, idx in enumerate(order.split(BATCH)):
            optimizer.param_groups[0]["lr"] = schedule[epoch * STEPS + step]
            batch_draws = None if draws is None else draws[step, :, : len(idx)]
            loss, logits = learn(images[idx], labels[idx], batch_draws, size)
            losses.append(loss.item())
            correct += (logits.argmax(1) == labels[idx]).sum().item()
        found.append((losses, correct))
    return found


def graphed(net: nn.Module, device: str) -> list[tuple[list[float], int]]:
    images, labels, epochs, schedule = data(device)
    optimizer = train.sgd(net, CFG)
    torch.manual_seed(1)  # the same dropout draws for either loop
    loop = GraphedEpochs(
        learner(net, optimizer), net, optimizer, images, labels, batch_size=BATCH, schedule=schedule
    )
    found = []
    for epoch, (order, draws, size) in enumerate(epochs):
        losses, correct = loop.epoch(order, draws, size, epoch * STEPS)
        found.append((losses.tolist(), correct.item()))
    return found


def uncaptured(loop: GraphedEpochs, size: int, augmenting: bool) -> SimpleNamespace:
    """In place of GraphedEpochs.capture: what a captured step does, done eagerly."""
    return SimpleNamespace(replay=lambda: loop.train_batch(loop.batch_size, size, augmenting))


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def test_the_graphed_loop_trains_the_batches_draws_and_rates_of_the_eager_loop(monkeypatch):
    monkeypatch.setattr(GraphedEpochs, "capture", uncaptured)
    reference, ours = network("cpu", 0.05), network("cpu", 0.05)
    assert graphed(ours, "cpu") == eager(reference, "cpu")
    expected = state(reference)
    for name, value in state(ours).items():
        assert torch.equal(value, expected[name]), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_captured_steps_compute_what_the_uncaptured_ones_do():
    """Without dropout (whose draws differ between a graph and eager code) the captured run and
    the uncaptured one agree to rounding: the warm-up before each capture leaves nothing behind,
    and each replay trains the next batch."""
    ours, plain = network("cuda", 0.0), network("cuda", 0.0)
    captured = graphed(ours, "cuda")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GraphedEpochs, "capture", uncaptured)
        eagerly = graphed(plain, "cuda")
    for (losses, correct), (expected, count) in zip(captured, eagerly, strict=True):
        assert losses == pytest.approx(expected, rel=1e-4) and abs(correct - count) <= 2
    expected = state(plain)
    for name, value in state(ours).items():
        assert torch.allclose(value.double(), expected[name].double(), rtol=1e-3, atol=1e-5), name
