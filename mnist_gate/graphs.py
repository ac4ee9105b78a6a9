"""Training epochs replayed from CUDA graphs. A step of a network this small is a few hundred kernel
launches of microseconds' work each, so on a GPU the step's time is the launching, not the
arithmetic; captured once, a step is one graph launch.

    epochs = GraphedEpochs(learn, net, optimizer, train_x, train_y, batch_size, schedule)
    losses, correct = epochs.epoch(order, draws, size, first_step)

Everything a captured step reads sits on the device at a fixed address: the training images and
labels, the epoch's order and random draws, a step counter and the learning-rate schedule. Each
epoch's full batches replay a graph, one per image size and kind of batch (augmented or clean),
captured on first use; its last, partial batch (60,000 images are 234 batches of 256 and one of
96) runs the same step eagerly, so every epoch trains on every image once, as an eager loop does.
"""

from collections.abc import Callable

import torch
from torch import nn

WARMUP_STEPS = 3  # eager steps before a capture, so lazy set-up (cuBLAS, cuDNN) happens outside it

# learn(images, labels, draws, size) -> (loss, logits): one optimizer step on uint8 images, with
# this batch's random draws (None: no augmentation), at this image side.
Learn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, int], tuple]


class GraphedEpochs:
    """A training loop whose steps replay CUDA graphs; the data must be on the GPU already.

    It takes over the optimizer's learning rate (a device tensor each step sets from `schedule`,
    the rate of every step of the run) and creates its momentum buffers (zero: SGD's first step
    then does what it does without them). The warm-up before each capture trains a few steps and
    then puts back every tensor they changed, so capturing changes nothing a run computes."""

    def __init__(
        self,
        learn: Learn,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        *,
        batch_size: int,
        schedule: list[float],
    ):
        device = train_y.device
        self.learn, self.train_x, self.train_y = learn, train_x, train_y
        self.batch_size = batch_size
        self.steps = -(-len(train_y) // batch_size)  # the last batch may be partial
        self.schedule = torch.tensor(schedule, dtype=torch.float32, device=device)
        self.lr = torch.tensor(schedule[0], dtype=torch.float32, device=device)
        for group in optimizer.param_groups:
            group["lr"] = self.lr
            for p in group["params"]:
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
        self.order = torch.zeros(len(train_y), dtype=torch.long, device=device)
        self.draws: torch.Tensor | None = None
        self.step = torch.zeros(1, dtype=torch.long, device=device)  # within the epoch
        self.done = torch.zeros(1, dtype=torch.long, device=device)  # in the run: the lr's index
        self.losses = torch.zeros(self.steps, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        momenta = [s["momentum_buffer"] for s in optimizer.state.values()]
        self.state = [*net.parameters(), *net.buffers(), *momenta, self.step, self.done,
                      self.losses, self.correct]  # fmt: skip
        self.graphs: dict[tuple[int, bool], torch.cuda.CUDAGraph] = {}

    def epoch(
        self, order: torch.Tensor, draws: torch.Tensor | None, size: int, first_step: int,
        progress: Callable[[], None] = lambda: None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """One epoch in the images' `order`, with `draws` (steps, ..., batch) random numbers per
        step or None, on size x size images, the run's step `first_step` first; calls progress()
        after each step. Returns each step's loss and the count of correct training guesses."""
        self.order.copy_(order)
        augmenting = draws is not None
        if augmenting:
            if self.draws is None or self.draws.shape != draws.shape:
                self.draws = torch.empty_like(draws)
            self.draws.copy_(draws)
        self.step.zero_()
        self.done.fill_(first_step)
        self.losses.zero_()
        self.correct.zero_()
        full, rest = divmod(len(self.train_y), self.batch_size)
        if full:
            key = (size, augmenting)
            if key not in self.graphs:
                self.graphs[key] = self.capture(size, augmenting)
            for _ in range(full):
                self.graphs[key].replay()
                progress()
        if rest:
            self.train_batch(rest, size, augmenting)
            progress()
        return self.losses, self.correct

    def train_batch(self, n: int, size: int, augmenting: bool) -> None:
        """The step the graphs replay: the counter's batch of n images, trained on, counted."""
        start = self.step * self.batch_size
        idx = self.order.index_select(0, start + torch.arange(n, device=start.device))
        labels = self.train_y[idx]
        draws = self.draws.index_select(0, self.step)[0, ..., :n] if augmenting else None
        self.lr.copy_(self.schedule.index_select(0, self.done)[0])
        loss, logits = self.learn(self.train_x[idx], labels, draws, size)
        self.losses.index_copy_(0, self.step, loss.detach().view(1))
        self.correct += (logits.argmax(1) == labels).sum()
        self.step += 1
        self.done += 1

    def capture(self, size: int, augmenting: bool) -> torch.cuda.CUDAGraph:
        """A full batch's step as a CUDA graph, after a warm-up whose changes are undone."""
        with torch.no_grad():
            saved = [t.clone() for t in self.state]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.step.zero_()  # the epoch's first batch each time: any epoch has one
                self.done.zero_()
                self.train_batch(self.batch_size, size, augmenting)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for tensor, value in zip(self.state, saved, strict=True):
                tensor.copy_(value)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.train_batch(self.batch_size, size, augmenting)
        return graph
