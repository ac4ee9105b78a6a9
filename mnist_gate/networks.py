"""The one place a network's name becomes a network: the classes in model.py that build with no
arguments."""

import copy
import importlib
import inspect

import torch
from torch import nn

from .settings import Refused


class UnknownNetwork(Refused, ValueError):
    """A name that is not a network in model.py; the message lists the ones that are."""


def _is_network(cls: object) -> bool:
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        return False
    required = [
        p
        for p in inspect.signature(cls).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return not required


def names() -> list[str]:
    """Every network model.py defines, in the order it defines them."""
    model = importlib.import_module("model")
    return [
        name
        for name, value in vars(model).items()
        if _is_network(value) and value.__module__ == model.__name__
    ]


def network_class(name: str) -> type[nn.Module]:
    model = importlib.import_module("model")
    cls = getattr(model, name, None)
    if not _is_network(cls):
        raise UnknownNetwork(
            f"{name!r} is not a network in model.py (an nn.Module that builds with no arguments); "
            f"model.py has {', '.join(names()) or 'none'}"
        )
    return cls


def build(name: str) -> nn.Module:
    return network_class(name)()


def count_parameters(net: nn.Module) -> int:
    """Trainable parameters; BatchNorm's running statistics are buffers and do not count."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def refuses_side(net: nn.Module, side: int) -> str | None:
    """Why net cannot classify side x side images (a layer sized for 28x28, say), or None."""
    net = copy.deepcopy(net).eval()
    x = torch.zeros(2, 1, side, side, device=next(net.parameters()).device)
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as err:  # whatever the network raises, it cannot take this size
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 10):
        return "its output for them is not (N, 10) logits"
    return None


def untrainable(net: nn.Module, side: int) -> str | None:
    """Why training net cannot even start, or None: nothing to train, or no (N, 10) logits for
    side x side images. A network that merely breaks a budget rule trains."""
    if count_parameters(net) == 0:
        return "it has no trainable parameters"
    why = refuses_side(net, side)
    return None if why is None else f"it does not classify {side}x{side} images ({why})"
