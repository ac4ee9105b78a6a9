"""The gated networks: BatchNorm, Dropout and global average pooling under a parameter budget.

Both read the image as 2x2 pixel blocks (PixelUnshuffle: 1x28x28 -> 4x14x14, nothing lost), so no
layer runs at full resolution, where a small network would spend most of its arithmetic.

Net (profile 8k), as it runs:

| layer | output | RF | params |
|---|---|---|---|
| features.0 PixelUnshuffle | 4x14x14 | 2 | 0 |
| features.1.0 Conv2d | 16x14x14 | 6 | 576 |
| features.1.1 BatchNorm2d | 16x14x14 | 6 | 32 |
| features.2.0 Conv2d | 16x14x14 | 10 | 2,304 |
| features.2.1 MaxPool2d | 16x7x7 | 12 | 0 |
| features.2.2 BatchNorm2d | 16x7x7 | 12 | 32 |
| features.3.0 Conv2d | 16x7x7 | 20 | 2,304 |
| features.3.1 BatchNorm2d | 16x7x7 | 20 | 32 |
| features.4.0 Conv2d | 16x7x7 | 28 | 2,304 |
| features.4.1 BatchNorm2d | 16x7x7 | 28 | 32 |
| pool AdaptiveAvgPool2d | 16x1x1 | 28 | 0 |
| dropout Dropout | 16 | 28 | 0 |
| classifier Linear | 10 | 28 | 170 |
| total | | | 7,786 |

Net25k (profile 25k), as it runs:

| layer | output | RF | params |
|---|---|---|---|
| features.0 PixelUnshuffle | 4x14x14 | 2 | 0 |
| features.1.0 Conv2d | 24x14x14 | 6 | 864 |
| features.1.1 BatchNorm2d | 24x14x14 | 6 | 48 |
| features.2.0 Conv2d | 24x14x14 | 10 | 5,184 |
| features.2.1 MaxPool2d | 24x7x7 | 12 | 0 |
| features.2.2 BatchNorm2d | 24x7x7 | 12 | 48 |
| features.3.0 Conv2d | 24x7x7 | 20 | 5,184 |
| features.3.1 BatchNorm2d | 24x7x7 | 20 | 48 |
| features.4.0 Conv2d | 24x7x7 | 28 | 5,184 |
| features.4.1 BatchNorm2d | 24x7x7 | 28 | 48 |
| features.5.0 Conv2d | 24x7x7 | 36 | 5,184 |
| features.5.1 BatchNorm2d | 24x7x7 | 36 | 48 |
| pool AdaptiveAvgPool2d | 24x1x1 | 36 | 0 |
| dropout Dropout | 24 | 36 | 0 |
| classifier Linear | 10 | 36 | 250 |
| total | | | 22,090 |

RF: receptive field of one output pixel, in input pixels. tests/test_model.py recomputes these
tables from the running network and fails when they drift.
"""

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """3x3 convolution, optional 2x2 max pool, BatchNorm, ReLU.

    Pooling before BatchNorm normalises a quarter of the pixels; max pooling commutes with ReLU,
    so the block computes what conv, BN, ReLU, pool would, bar BatchNorm's batch statistics.
    """

    def __init__(self, c_in: int, c_out: int, pool: bool = False):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class TinyNet(nn.Module):
    """Pixel blocks, a stack of ConvBlocks, then global average pool, Dropout and a linear head."""

    def __init__(self, widths: list[int], pool_after: int, dropout: float):
        super().__init__()
        blocks, c_in = [nn.PixelUnshuffle(2)], 4
        for i, c_out in enumerate(widths):
            blocks.append(ConvBlock(c_in, c_out, pool=i == pool_after))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) normalised images -> (N, 10) logits."""
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


class Net(TinyNet):
    def __init__(self):
        super().__init__(widths=[16, 16, 16, 16], pool_after=1, dropout=0.05)


class Net25k(TinyNet):
    def __init__(self):
        super().__init__(widths=[24, 24, 24, 24, 24], pool_after=1, dropout=0.05)
