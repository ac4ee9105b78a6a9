"""The gated networks: BatchNorm, Dropout and global average pooling under a parameter budget.

Both read the image as 2x2 pixel blocks (PixelUnshuffle: 1x28x28 -> 4x14x14, nothing lost) and do
as little as they can at 14x14, where most of a small network's training time goes: one full 3x3
convolution to a narrow stem, then one depthwise 3x3 with stride 2. Everything after is depthwise
separable (a 3x3 filter per channel, then a 1x1 mix) in two stages, at 7x7 and at 3x3. The first
stage opens with that strided filter; the second with a 2x2 max pool between its depthwise and 1x1
convolution, so the 1x1 already runs on the smaller map. At 7x7 the pool leaves out the last row
and column, whose content the 3x3 filters before it have already spread to their neighbours.
Global average pooling feeds the classifier.

Net (profile 8k), as it runs:

| layer | output | RF | params |
|---|---|---|---|
| features.0 PixelUnshuffle | 4x14x14 | 2 | 0 |
| features.1.0 Conv2d 4->16 3x3 | 16x14x14 | 6 | 576 |
| features.1.1 BatchNorm2d | 16x14x14 | 6 | 32 |
| features.2.0 Conv2d 16->16 3x3 depthwise | 16x7x7 | 10 | 144 |
| features.2.1 Conv2d 16->32 1x1 | 32x7x7 | 10 | 512 |
| features.2.2 BatchNorm2d | 32x7x7 | 10 | 64 |
| features.3.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 18 | 288 |
| features.3.1 Conv2d 32->32 1x1 | 32x7x7 | 18 | 1,024 |
| features.3.2 BatchNorm2d | 32x7x7 | 18 | 64 |
| features.4.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 26 | 288 |
| features.4.1 Conv2d 32->32 1x1 | 32x7x7 | 26 | 1,024 |
| features.4.2 BatchNorm2d | 32x7x7 | 26 | 64 |
| features.5.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 34 | 288 |
| features.5.1 MaxPool2d 2 | 32x3x3 | 38 | 0 |
| features.5.2 Conv2d 32->32 1x1 | 32x3x3 | 38 | 1,024 |
| features.5.3 BatchNorm2d | 32x3x3 | 38 | 64 |
| features.6.0 Conv2d 32->32 3x3 depthwise | 32x3x3 | 54 | 288 |
| features.6.1 Conv2d 32->32 1x1 | 32x3x3 | 54 | 1,024 |
| features.6.2 BatchNorm2d | 32x3x3 | 54 | 64 |
| pool AdaptiveAvgPool2d | 32x1x1 | 54 | 0 |
| dropout Dropout | 32 | 54 | 0 |
| classifier Linear 32->10 | 10 | 54 | 330 |
| total | | | 7,162 |

Net25k (profile 25k), as it runs:

| layer | output | RF | params |
|---|---|---|---|
| features.0 PixelUnshuffle | 4x14x14 | 2 | 0 |
| features.1.0 Conv2d 4->32 3x3 | 32x14x14 | 6 | 1,152 |
| features.1.1 BatchNorm2d | 32x14x14 | 6 | 64 |
| features.2.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 10 | 288 |
| features.2.1 Conv2d 32->64 1x1 | 64x7x7 | 10 | 2,048 |
| features.2.2 BatchNorm2d | 64x7x7 | 10 | 128 |
| features.3.0 Conv2d 64->64 3x3 depthwise | 64x7x7 | 18 | 576 |
| features.3.1 Conv2d 64->64 1x1 | 64x7x7 | 18 | 4,096 |
| features.3.2 BatchNorm2d | 64x7x7 | 18 | 128 |
| features.4.0 Conv2d 64->64 3x3 depthwise | 64x7x7 | 26 | 576 |
| features.4.1 Conv2d 64->64 1x1 | 64x7x7 | 26 | 4,096 |
| features.4.2 BatchNorm2d | 64x7x7 | 26 | 128 |
| features.5.0 Conv2d 64->64 3x3 depthwise | 64x7x7 | 34 | 576 |
| features.5.1 MaxPool2d 2 | 64x3x3 | 38 | 0 |
| features.5.2 Conv2d 64->64 1x1 | 64x3x3 | 38 | 4,096 |
| features.5.3 BatchNorm2d | 64x3x3 | 38 | 128 |
| features.6.0 Conv2d 64->64 3x3 depthwise | 64x3x3 | 54 | 576 |
| features.6.1 Conv2d 64->64 1x1 | 64x3x3 | 54 | 4,096 |
| features.6.2 BatchNorm2d | 64x3x3 | 54 | 128 |
| pool AdaptiveAvgPool2d | 64x1x1 | 54 | 0 |
| dropout Dropout | 64 | 54 | 0 |
| classifier Linear 64->10 | 10 | 54 | 650 |
| total | | | 23,530 |

RF: receptive field of one output pixel, in input pixels. tests/test_model.py recomputes these
tables from the running network and fails when they drift.
"""

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 convolution (full, or depthwise then 1x1), optional 2x2 max pool, BatchNorm, ReLU.

    The 3x3 filter may stride; the pool follows it, and in a separable block sits before the 1x1
    convolution, which then mixes channels on a quarter of the pixels.
    """

    def __init__(self, c_in: int, c_out: int, separable: bool, stride: int = 1, pool: bool = False):
        groups, c_mid = (c_in, c_in) if separable else (1, c_out)
        layers = [nn.Conv2d(c_in, c_mid, 3, stride, padding=1, groups=groups, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        if separable:
            layers.append(nn.Conv2d(c_in, c_out, 1, bias=False))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class TinyNet(nn.Module):
    """Pixel blocks, a full 3x3 stem, separable stages that each halve the map first, GAP, linear.

    stages: (channels, blocks) per stage (14x14 -> 7x7 -> 3x3). The first stage halves with a
    stride-2 depthwise filter, which skips three quarters of the 14x14 filtering and the backward
    pass of a pool over the largest map; later stages halve with a max pool, which measured better
    at 7x7 than a stride.
    """

    def __init__(self, stem: int, stages: tuple[tuple[int, int], ...], dropout: float):
        super().__init__()
        layers = [nn.PixelUnshuffle(2), ConvBlock(4, stem, separable=False)]
        c_in = stem
        for s, (channels, blocks) in enumerate(stages):
            halve = {"stride": 2} if s == 0 else {"pool": True}
            for i in range(blocks):
                opening = halve if i == 0 else {}
                layers.append(ConvBlock(c_in, channels, separable=True, **opening))
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
        super().__init__(stem=16, stages=((32, 3), (32, 2)), dropout=0.05)


class Net25k(TinyNet):
    def __init__(self):
        super().__init__(stem=32, stages=((64, 3), (64, 2)), dropout=0.05)
