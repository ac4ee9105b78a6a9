"""The gated networks: BatchNorm, Dropout and global average pooling under a parameter budget.

Both read the image as 2x2 pixel blocks (PixelUnshuffle: 1x28x28 -> 4x14x14, nothing lost) and do
as little as they can at 14x14, where most of a small network's training time goes: one full 3x3
convolution to a narrow stem, then one depthwise 3x3 with stride 2. Everything after is depthwise
separable (a 3x3 filter per channel, then a 1x1 mix) in two stages, at 7x7 and at 3x3. The first
stage opens with that strided filter; the second with a 2x2 max pool between its depthwise and 1x1
convolution, so the 1x1 already runs on the smaller map. At 7x7 the pool leaves out the last row
and column, whose content the 3x3 filters before it have already spread to their neighbours.
Global average pooling feeds the classifier.

Net uses SiLU where Net25k uses ReLU: on seeds 0-9 SiLU raised Net's mean accuracy, for more time
per training step on a CPU (EXPERIMENTS.md, first round, and "Where the time goes"). Net25k was
chosen with ReLU and has not been measured with SiLU.

ARCHITECTURE.md shows both networks layer by layer as they run (output size, receptive field,
parameters), generated from this file by `python -m scripts.readme`; a fast test fails when it
drifts. Every run's model.txt holds the same table for the network trained.
"""

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 convolution (full, or depthwise then 1x1), optional 2x2 max pool, BatchNorm, activation.

    The 3x3 filter may stride; the pool follows it, and in a separable block sits before the 1x1
    convolution, which then mixes channels on a quarter of the pixels.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        separable: bool,
        act: type[nn.Module],
        stride: int = 1,
        pool: bool = False,
    ):
        groups, c_mid = (c_in, c_in) if separable else (1, c_out)
        layers = [nn.Conv2d(c_in, c_mid, 3, stride, padding=1, groups=groups, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        if separable:
            layers.append(nn.Conv2d(c_in, c_out, 1, bias=False))
        # In place only for ReLU, whose gradient needs just its output. SiLU's needs its input, so
        # autograd would first copy the map for it: out of place, Net's step takes less time.
        layers += [nn.BatchNorm2d(c_out), act(inplace=act is nn.ReLU)]
        super().__init__(*layers)


class TinyNet(nn.Module):
    """Pixel blocks, a full 3x3 stem, separable stages that each halve the map first, GAP, linear.

    stages: (channels, blocks) per stage (14x14 -> 7x7 -> 3x3). The first stage halves with a
    stride-2 depthwise filter, which skips three quarters of the 14x14 filtering and the backward
    pass of a pool over the largest map; later stages halve with a max pool, which measured better
    at 7x7 than a stride.
    """

    def __init__(
        self,
        stem: int,
        stages: tuple[tuple[int, int], ...],
        dropout: float,
        act: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        layers = [nn.PixelUnshuffle(2), ConvBlock(4, stem, separable=False, act=act)]
        c_in = stem
        for s, (channels, blocks) in enumerate(stages):
            halve = {"stride": 2} if s == 0 else {"pool": True}
            for i in range(blocks):
                opening = halve if i == 0 else {}
                layers.append(ConvBlock(c_in, channels, separable=True, act=act, **opening))
                c_in = channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) normalised images -> (N, 10) logits."""
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


class Net(TinyNet):
    def __init__(self):
        super().__init__(stem=16, stages=((32, 3), (32, 2)), dropout=0.05, act=nn.SiLU)


class Net25k(TinyNet):
    def __init__(self):
        super().__init__(stem=32, stages=((64, 3), (64, 2)), dropout=0.05)
