"""Images as the networks see them, and the measurement every run and the gate share.

- normalize(), resize(): the input convention (normalised float, channels last, size x size).
- affine_grid(): F.affine_grid as sums of products, for the augmentation in train.py.
- evaluate(): loss, accuracy and predictions on the test set; the gated number comes from it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .data import MEAN, SIZE, STD


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] images (N, 1, 28, 28) to the normalised float input the network expects."""
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return ((images - MEAN) / STD).contiguous(memory_format=torch.channels_last)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float images shrunk to size x size (bilinear), or as they are at full size. Bilinear
    weights sum to one, so it makes no difference whether the images were normalised first."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """F.affine_grid(theta, [n, 1, size, size], align_corners=False) as sums of products: on a CPU
    its batched matrix product of 3-long rows took a tenth of a training step. The same sums, up
    to rounding: bit for bit on some processors, a last bit apart here and there on others, where
    torch's matrix product rounds its sums differently."""
    # The pixel centres on [-1, 1], rounded as affine_grid rounds them.
    centres = torch.linspace(-1, 1, size, device=theta.device) * (size - 1) / size
    x, y = centres.view(1, 1, size), centres.view(1, size, 1)
    t = theta.reshape(-1, 6, 1, 1)
    return torch.stack(
        [x * t[:, 0] + y * t[:, 1] + t[:, 2], x * t[:, 3] + y * t[:, 4] + t[:, 5]], dim=-1
    )


@torch.inference_mode()
def evaluate(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    size: int = SIZE,
    batch_size: int = 2000,
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy (a fraction) and the predicted class of every image, for net
    on uint8 images shown at size x size."""
    net.eval()
    loss = torch.zeros((), device=labels.device)
    predictions = torch.empty_like(labels)
    for start in range(0, len(labels), batch_size):
        x = resize(normalize(images[start : start + batch_size]), size)
        y = labels[start : start + batch_size]
        logits = net(x)
        loss += F.cross_entropy(logits, y, reduction="sum")
        predictions[start : start + batch_size] = logits.argmax(1)
    accuracy = (predictions == labels).sum().item() / len(labels)
    return loss.item() / len(labels), accuracy, predictions
