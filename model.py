"""The gated networks: BatchNorm, Dropout and global average pooling under a parameter budget.

Both read the image as 2x2 pixel blocks (PixelUnshuffle: 1x28x28 -> 4x14x14, nothing lost), so no
layer runs at full resolution, where a small network spends most of its arithmetic. After one full
3x3 convolution, every block is depthwise separable (a 3x3 filter per channel, then a 1x1 mix):
per parameter that buys twice the width of full 3x3 convolutions, which measured better here at
the same budget. One 2x2 max pool takes 14x14 to 7x7; global average pooling feeds the classifier.

Net (profile 8k), as it runs:

| layer | output | RF | params |
|---|---|---|---|
| features.0 PixelUnshuffle | 4x14x14 | 2 | 0 |
| features.1.0 Conv2d 4->32 3x3 | 32x14x14 | 6 | 1,152 |
| features.1.1 BatchNorm2d | 32x14x14 | 6 | 64 |
| features.2.0 Conv2d 32->32 3x3 depthwise | 32x14x14 | 10 | 288 |
| features.2.1 Conv2d 32->32 1x1 | 32x14x14 | 10 | 1,024 |
| features.2.2 MaxPool2d 2 | 32x7x7 | 12 | 0 |
| features.2.3 BatchNorm2d | 32x7x7 | 12 | 64 |
| features.3.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 20 | 288 |
| features.3.1 Conv2d 32->32 1x1 | 32x7x7 | 20 | 1,024 |
| features.3.2 BatchNorm2d | 32x7x7 | 20 | 64 |
| features.4.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 28 | 288 |
| features.4.1 Conv2d 32->32 1x1 | 32x7x7 | 28 | 1,024 |
| features.4.2 BatchNorm2d | 32x7x7 | 28 | 64 |
| features.5.0 Conv2d 32->32 3x3 depthwise | 32x7x7 | 36 | 288 |
| features.5.1 Conv2d 32->32 1x1 | 32x7x7 | 36 | 1,024 |
| features.5.2 BatchNorm2d | 32x7x7 | 36 | 64 |
| pool AdaptiveAvgPool2d | 32x1x1 | 36 | 0 |
| dropout Dropout | 32 | 36 | 0 |
| classifier Linear 32->10 | 10 | 36 | 330 |
| total | | | 7,050 |

Net25k (profile 25k), as it runs:

| layer | output | RF | params |
|---|---|---|---|
| features.0 PixelUnshuffle | 4x14x14 | 2 | 0 |
| features.1.0 Conv2d 4->48 3x3 | 48x14x14 | 6 | 1,728 |
| features.1.1 BatchNorm2d | 48x14x14 | 6 | 96 |
| features.2.0 Conv2d 48->48 3x3 depthwise | 48x14x14 | 10 | 432 |
| features.2.1 Conv2d 48->48 1x1 | 48x14x14 | 10 | 2,304 |
| features.2.2 MaxPool2d 2 | 48x7x7 | 12 | 0 |
| features.2.3 BatchNorm2d | 48x7x7 | 12 | 96 |
| features.3.0 Conv2d 48->48 3x3 depthwise | 48x7x7 | 20 | 432 |
| features.3.1 Conv2d 48->48 1x1 | 48x7x7 | 20 | 2,304 |
| features.3.2 BatchNorm2d | 48x7x7 | 20 | 96 |
| features.4.0 Conv2d 48->48 3x3 depthwise | 48x7x7 | 28 | 432 |
| features.4.1 Conv2d 48->48 1x1 | 48x7x7 | 28 | 2,304 |
| features.4.2 BatchNorm2d | 48x7x7 | 28 | 96 |
| features.5.0 Conv2d 48->48 3x3 depthwise | 48x7x7 | 36 | 432 |
| features.5.1 Conv2d 48->48 1x1 | 48x7x7 | 36 | 2,304 |
| features.5.2 BatchNorm2d | 48x7x7 | 36 | 96 |
| pool AdaptiveAvgPool2d | 48x1x1 | 36 | 0 |
| dropout Dropout | 48 | 36 | 0 |
| classifier Linear 48->10 | 10 | 36 | 490 |
| total | | | 13,642 |

RF: receptive field of one output pixel, in input pixels. tests/test_model.py recomputes these
tables from the running network and fails when they drift.
"""

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 convolution (full, or depthwise then 1x1), optional 2x2 max pool, BatchNorm, ReLU.

    Pooling before BatchNorm normalises a quarter of the pixels; max pooling commutes with ReLU,
    so the block computes what conv, BN, ReLU, pool would, bar BatchNorm's batch statistics.
    """

    def __init__(self, c_in: int, c_out: int, separable: bool, pool: bool = False):
        if separable:
            layers = [
                nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                nn.Conv2d(c_in, c_out, 1, bias=False),
            ]
        else:
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class TinyNet(nn.Module):
    """Pixel blocks, a full then separable ConvBlocks, global average pool, Dropout, linear."""

    def __init__(self, width: int, blocks: int, dropout: float):
        super().__init__()
        layers = [nn.PixelUnshuffle(2), ConvBlock(4, width, separable=False)]
        for i in range(blocks - 1):
            layers.append(ConvBlock(width, width, separable=True, pool=i == 0))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) normalised images -> (N, 10) logits."""
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


class Net(TinyNet):
    def __init__(self):
        super().__init__(width=32, blocks=5, dropout=0.05)


class Net25k(TinyNet):
    def __init__(self):
        super().__init__(width=48, blocks=5, dropout=0.05)
