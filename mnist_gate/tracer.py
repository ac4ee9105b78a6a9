"""The forward-pass tracer: what one forward pass actually runs, and the receptive field it sees.

It records the torch functions called during one pass (convolutions, pools, BatchNorm, dropout,
means, linear layers) and which module called each, so a layer that is defined but never called,
or an average pool that only shrinks the map, does not count.
"""

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .data import SIZE

MAX_POOLS = {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices"}
DROPOUTS = {
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
}
TRACKED = (
    MAX_POOLS
    | DROPOUTS
    | {
        "conv2d",
        "avg_pool2d",
        "adaptive_avg_pool2d",
        "pixel_unshuffle",
        "mean",
        "linear",
        "batch_norm",
    }
)


@dataclass
class Row:
    """One layer as it ran: its output shape and the receptive field of one output pixel."""

    layer: str
    shape: tuple[int, ...]
    rf: int
    params: int


@dataclass
class Trace:
    rows: list[Row] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)  # names of the modules whose forward ran
    batch_norms: int = 0
    dropouts: list[float] = field(default_factory=list)  # p of each dropout call
    gap: str | None = None  # how global average pooling was done, where
    rf: int | None = None  # receptive field of the map that the global pool averages
    early_linear: str | None = None  # a linear layer that ran on a map before any global pool
    unknown: list[str] = field(default_factory=list)  # spatial ops the RF cannot follow


def _arg(args, kwargs, index, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _side(value) -> int:
    """The smaller side of a kernel, stride or factor given as an int or a pair.

    For a non-square layer the receptive field is then the one that every axis reaches.
    """
    return min(value) if isinstance(value, (tuple, list)) else int(value)


def _shape_of(module: nn.Module) -> str:
    """What a reader needs to picture the layer: channels and kernel."""
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        kind = " depthwise" if module.groups > 1 and module.groups == module.in_channels else ""
        return f" {module.in_channels}->{module.out_channels} {k}{kind}"
    if isinstance(module, nn.Linear):
        return f" {module.in_features}->{module.out_features}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return f" {module.kernel_size}"
    return ""


class _Tracer(TorchFunctionMode):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.trace = Trace()
        self.names = {module: name or "forward" for name, module in net.named_modules()}
        self.leaves = {name for module, name in self.names.items() if not list(module.children())}
        self.stack: list[str] = []
        self.rf, self.jump = 1, 1

    def enter(self, module, args):
        name = self.names[module]
        self.stack.append(name)
        self.trace.ran.add(name)

    def leave(self, module, args, out):
        self.stack.pop()
        # Activations change neither shape nor receptive field: the table leaves them out.
        quiet = module.__module__ == nn.ReLU.__module__
        if self.names[module] in self.leaves and isinstance(out, torch.Tensor) and not quiet:
            own = sum(p.numel() for p in module.parameters(recurse=False))
            label = f"{self.names[module]} {type(module).__name__}{_shape_of(module)}"
            self.trace.rows.append(Row(label, tuple(out.shape[1:]), self.shown_rf(), own))

    def shown_rf(self) -> int:
        return self.trace.rf if self.trace.rf is not None else self.rf

    def grow(self, kernel: int, stride: int, dilation: int = 1):
        if self.trace.gap is None:
            self.rf += (kernel - 1) * dilation * self.jump
            self.jump *= stride

    def global_pool(self, how: str):
        if self.trace.gap is None:
            self.trace.gap, self.trace.rf = f"{how} in {self.stack[-1]}", self.rf

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = getattr(func, "__name__", "")
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        where = self.stack[-1] if self.stack else "forward"
        spatial_in = tuple(x.shape[-2:]) if x is not None and x.dim() == 4 else None
        spatial_out = (
            tuple(out.shape[-2:]) if isinstance(out, torch.Tensor) and out.dim() == 4 else None
        )

        if op == "conv2d":
            weight = _arg(args, kwargs, 1, "weight")
            self.grow(
                _side(weight.shape[-2:]),
                _side(_arg(args, kwargs, 3, "stride", 1)),
                _side(_arg(args, kwargs, 5, "dilation", 1)),
            )
        elif op in MAX_POOLS or op == "avg_pool2d":
            size = _arg(args, kwargs, 1, "kernel_size")
            kernel = _side(size)
            stride = _arg(args, kwargs, 2, "stride") or kernel
            pair = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
            whole_map = pair[0] >= spatial_in[0] and pair[1] >= spatial_in[1]
            if op == "avg_pool2d" and spatial_out == (1, 1) and whole_map:
                self.global_pool("avg_pool2d over the whole map")
            else:
                dilation = _arg(args, kwargs, 4, "dilation", 1) if op in MAX_POOLS else 1
                self.grow(kernel, _side(stride), _side(dilation))
        elif op == "pixel_unshuffle":
            factor = _side(_arg(args, kwargs, 1, "downscale_factor"))
            self.grow(factor, factor)
        elif op == "adaptive_avg_pool2d":
            if spatial_out == (1, 1):
                self.global_pool("adaptive_avg_pool2d to 1x1")
            elif spatial_out != spatial_in:
                self.trace.unknown.append(f"adaptive_avg_pool2d to {spatial_out} in {where}")
        elif op == "mean" and x is not None and x.dim() == 4:
            dims = _arg(args, kwargs, 1, "dim", ())
            dims = {d % 4 for d in (dims if isinstance(dims, (tuple, list)) else (dims,))}
            if {2, 3} <= dims:
                self.global_pool("mean over height and width")
        elif op == "linear" and self.trace.gap is None:
            self.trace.early_linear = f"{where} ({_arg(args, kwargs, 1, 'weight').shape[1]} inputs)"
        elif op == "batch_norm":
            self.trace.batch_norms += 1
        elif op in DROPOUTS:
            self.trace.dropouts.append(float(_arg(args, kwargs, 1, "p", 0.5)))

        if op in TRACKED and where not in self.leaves and isinstance(out, torch.Tensor):
            # Called straight from a forward(), not inside a leaf module: give it a row of its own.
            self.trace.rows.append(Row(f"{where} {op}", tuple(out.shape[1:]), self.shown_rf(), 0))
        return out


def trace(net: nn.Module, side: int = SIZE) -> Trace:
    """Run one forward pass in training mode on two random images and record what ran.

    The pass runs on a copy, so the network's BatchNorm statistics stay as they were.
    """
    net = copy.deepcopy(net)
    tracer = _Tracer(net)
    for module in tracer.names:
        module.register_forward_pre_hook(tracer.enter)
        module.register_forward_hook(tracer.leave)
    net.train()
    with tracer, torch.no_grad():
        net(torch.randn(2, 1, side, side, device=next(net.parameters()).device))
    return tracer.trace
