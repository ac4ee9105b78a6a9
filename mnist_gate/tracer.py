"""The forward-pass tracer: what a network computes, measured by running it, not by reading it.

`probe(net)` runs a copy of the network several ways and records what each run did:

- a training step (train mode, autograd on) and inference (eval mode, no autograd), at several
  batch sizes: which BatchNorm and dropout calls ran, and in which mode; and each mode twice on the
  same images, to find what drops activations at random by what it computes;
- the tensors that convolution, linear and normalisation calls used as weights, and whether each
  is a trainable parameter;
- the head: inference repeated on the same images must not change (nothing random acts there);
  then the last feature map that still has height and width is perturbed by a pattern whose
  spatial average is zero, and the output must not move (the classifier reads only the map's
  global average), while a shift uniform over height and width must move it (it reads the map);
- the receptive field: with every weight positive and max pools averaged, so that no ReLU or pool
  hides a path, the gradient of one pixel of each map with respect to a large input marks the
  input pixels it sees, whatever the topology (branches, strides, upsampling), at two input
  levels so that no shift before a ReLU hides it.

Measured in float64, or float32 where the network insists on it. Parametrised layers (weight_norm,
spectral_norm) count as the layer they parametrise; a TorchScript module cannot be traced, and
says so (Untraceable).
"""

import copy
from dataclasses import dataclass, field
from itertools import zip_longest

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .data import SIZE

RF_SIDE = 128  # input side for measuring receptive fields: wider than any they are compared with
# Input levels the receptive field is measured at: a network that shifts its input before a ReLU
# may have every unit dead at one level and alive at another. The field is the widest seen.
RF_LEVELS = (1.0, 100.0)
# Inference passes compared with the first, to tell randomness at inference: a network that takes
# one of two paths at random, the rarer with chance p a call, agrees on all 64 passes with chance
# (1 - p)^64 + p^64: 6e-7 at p = 0.2, 4% at p = 0.05.
REPEATS = 63
DROPOUTS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
            "feature_alpha_dropout"}  # fmt: skip
MAX_POOLS = {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices"}
ADAPTIVE_MAX_POOLS = {"adaptive_max_pool2d", "_adaptive_max_pool2d",
                      "adaptive_max_pool2d_with_indices"}  # fmt: skip
WEIGHTED = {"conv1d", "conv2d", "conv3d", "conv_transpose2d", "linear", "bilinear", "batch_norm",
            "instance_norm", "layer_norm", "group_norm"}  # fmt: skip
# Functional calls made straight from a forward() that get a row of their own in the layer table.
LAYER_OPS = WEIGHTED | DROPOUTS | MAX_POOLS | ADAPTIVE_MAX_POOLS | {
    "avg_pool2d", "adaptive_avg_pool2d", "pixel_shuffle", "pixel_unshuffle", "interpolate",
    "mean", "sum", "amax",
}  # fmt: skip


@dataclass
class Row:
    """One layer as it ran: its output shape and the receptive field of one output pixel."""

    layer: str
    shape: tuple[int, ...]
    rf: int | None
    params: int


@dataclass
class Head:
    """Whether the output depends on the last spatial map only through its global average."""

    where: str | None = None  # the op and module that made the last map with height and width
    shape: tuple[int, ...] | None = None
    averaged: bool = False  # a zero-mean spatial pattern leaves the output unchanged
    reads_map: bool = False  # a uniform shift of the map changes the output
    output: str | None = None  # what the output is, when it is not a tensor
    random: float = 0.0  # the largest change between inference passes on the same images


@dataclass
class Probe:
    rows: list[Row] = field(default_factory=list)  # the layer table, where probe() was asked for it
    ran: set[str] = field(default_factory=set)  # modules whose forward ran, in any pass
    # (mode, batch) -> batch_norm calls; in train mode only those using batch statistics count
    batch_norms: dict[tuple[str, int], int] = field(default_factory=dict)
    eval_batch_statistics: list[str] = field(default_factory=list)  # BatchNorm without running
    # statistics in inference, where
    train_dropouts: list[float] = field(default_factory=list)  # p of dropouts active in training
    # Ops that dropped activations in a training step, by what they computed (hand-written masks)
    train_drops: list[str] = field(default_factory=list)
    idle_dropouts: list[float] = field(default_factory=list)  # p of dropout calls that did nothing
    eval_dropouts: list[str] = field(default_factory=list)  # dropouts active in inference, where
    hidden_weights: list[str] = field(default_factory=list)  # weights that do not train
    created: list[str] = field(default_factory=list)  # parameters that appeared during forward
    head: Head = field(default_factory=Head)
    rf: int | None = None  # receptive field of one pixel of the map the head averages
    rf_clipped: bool = False  # measured on the 28x28 image only: the true field may be larger
    unfollowed: list[str] = field(default_factory=list)  # ops the receptive field cannot follow
    # Every torch function one inference pass (eval mode, batch 64) called, and from where: the
    # op's name ("max_pool2d") and its module ("features.5.1"), in the order they ran.
    calls: list[tuple[str, str]] = field(default_factory=list)


def _arg(args, kwargs, index, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


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


class _Stop(Exception):
    """Raised inside a pass once it has what it came for."""


class Untraceable(Exception):
    """A network the tracer cannot run or follow; the message is one line that says why."""


class _Recorder(TorchFunctionMode):
    """Records the torch functions one forward pass calls, and the module each was called from.

    edit(index, out) may replace the output of the index-th call that returned a tensor.
    """

    def __init__(self, net: nn.Module, edit=None, averaged_pools: bool = False):
        super().__init__()
        self.names = {module: name or "forward" for name, module in net.named_modules()}
        scripted = [n for m, n in self.names.items() if isinstance(m, torch.jit.ScriptModule)]
        if scripted:
            raise Untraceable(
                f"{scripted[0]} is a TorchScript module, which the gate cannot trace; build the "
                "network in Python and script it after training"
            )
        # A parametrisation's module computes a weight, not a layer's output: no row of its own.
        self.leaves = {
            name
            for module, name in self.names.items()
            if not list(module.children()) and ".parametrizations." not in name
        }
        self.stack: list[str] = []
        self.ran: set[str] = set()
        self.calls: list[tuple[str, str, tuple, dict]] = []  # op, where, args, kwargs
        self.outputs: list[tuple[str, str, torch.Tensor]] = []  # op, where, tensor
        self.rows: list[tuple[str, torch.Tensor, int]] = []  # label, output, own parameters
        self.unfollowed: list[str] = []
        self.edit, self.averaged_pools = edit, averaged_pools
        self.handles = []
        for module in self.names:
            self.handles.append(module.register_forward_pre_hook(self.enter))
            self.handles.append(module.register_forward_hook(self.leave))

    def remove(self):
        for handle in self.handles:
            handle.remove()

    def enter(self, module, args):
        self.stack.append(self.names[module])
        self.ran.add(self.names[module])

    def leave(self, module, args, out):
        self.stack.pop()
        # Activations change neither shape nor receptive field: the table leaves them out.
        quiet = module.__module__ == nn.ReLU.__module__
        if self.names[module] in self.leaves and isinstance(out, torch.Tensor) and not quiet:
            own = sum(p.numel() for p in module.parameters(recurse=False))
            label = f"{self.names[module]} {type(module).__name__}{_shape_of(module)}"
            self.rows.append((label, out, own))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = getattr(func, "__name__", "")
        where = self.stack[-1] if self.stack else "forward"
        out = self.averaged(op, where, args, kwargs) if self.averaged_pools else None
        if out is None:
            out = func(*args, **kwargs)
        self.calls.append((op, where, args, kwargs))
        if isinstance(out, torch.Tensor):
            if self.edit is not None:
                out = self.edit(len(self.outputs), out)
            self.outputs.append((op, where, out))
            self.check_followed(op, where, args, out)
            if op in LAYER_OPS and where not in self.leaves:
                self.rows.append((f"{where} {op}", out, 0))
        return out

    def averaged(self, op, where, args, kwargs):
        """A max pool's gradient reaches one pixel of each window: measure with the average."""
        x = args[0] if args else kwargs.get("input")
        if op in MAX_POOLS:
            kernel = _arg(args, kwargs, 1, "kernel_size")
            dilation = _arg(args, kwargs, 4, "dilation", 1)
            if dilation not in (1, (1, 1), [1, 1]) or _arg(args, kwargs, 6, "return_indices"):
                self.unfollowed.append(f"{op} with dilation or indices in {where}")
                return None
            stride = _arg(args, kwargs, 2, "stride") or kernel
            padding = _arg(args, kwargs, 3, "padding", 0)
            ceil = _arg(args, kwargs, 5, "ceil_mode", False)
            return F.avg_pool2d(x, kernel, stride, padding, ceil, count_include_pad=False)
        if op in ADAPTIVE_MAX_POOLS:
            if _arg(args, kwargs, 2, "return_indices"):
                self.unfollowed.append(f"{op} with indices in {where}")
                return None
            return F.adaptive_avg_pool2d(x, _arg(args, kwargs, 1, "output_size"))
        return None

    def check_followed(self, op, where, args, out):
        """An op that cuts the gradient from a float input to a float or boolean output (a
        comparison, a detach) hides the field of what follows it."""
        if not self.averaged_pools or out.requires_grad:
            return
        if not (out.is_floating_point() or out.dtype == torch.bool):
            return
        if op.endswith("_like") or op.startswith("new_"):  # takes only the input's shape
            return
        inputs = [a for a in args if isinstance(a, torch.Tensor)]
        if any(a.requires_grad for a in inputs):
            self.unfollowed.append(f"{op} in {where}")


def _run(net: nn.Module, x: torch.Tensor, stop_after: int | None = None, **recorder):
    """One forward pass of net under a recorder; returns the recorder and the output (or None
    when it stopped early or the network could not take the input)."""
    rec = _Recorder(net, **recorder)
    if stop_after is not None:
        user_edit = rec.edit

        def edit(index, out):
            out = user_edit(index, out) if user_edit else out
            if index == stop_after:
                rec.outputs.append(("", "", out))
                raise _Stop
            return out

        rec.edit = edit
    try:
        with rec:
            out = net(x)
    except _Stop:
        out = None
    finally:
        rec.remove()
    return rec, out


def _last_spatial_map(outputs) -> int | None:
    """Index of the last recorded output that is still a map with height and width."""
    found = None
    for i, (_, _, out) in enumerate(outputs):
        if out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
            found = i
    return found


def _field(out: torch.Tensor, x: torch.Tensor) -> int | None:
    """Receptive field of the centre pixel of a map: the side of the input square it sees (the
    smaller side, where the field is not square)."""
    if not out.requires_grad:  # the gradient was cut on the way (check_followed names where)
        return None
    h, w = out.shape[-2:]
    (grad,) = torch.autograd.grad(
        out[0, :, h // 2, w // 2].sum(), x, retain_graph=True, allow_unused=True
    )
    if grad is None:
        return None
    seen = grad[0].abs().sum(0) > 0
    if not seen.any():
        return None
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    return int(min(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def _batch_norm_calls(rec: _Recorder, mode: str) -> int:
    calls = [c for c in rec.calls if c[0] == "batch_norm"]
    if mode == "train":  # batch statistics, as BatchNorm is meant to train
        calls = [c for c in calls if _arg(c[2], c[3], 5, "training", False)]
    return len(calls)


def _dropouts(rec: _Recorder) -> tuple[list[tuple[str, float]], list[float]]:
    """(where, p) of each dropout call that dropped something, and p of those that could not."""
    active, idle = [], []
    for op, where, args, kwargs in rec.calls:
        if op in DROPOUTS:
            p = float(_arg(args, kwargs, 1, "p", 0.5))
            training = _arg(args, kwargs, 2, "training", _arg(args, kwargs, 2, "train", True))
            (active if training and p > 0 else idle).append((where, p))
    return active, [p for _, p in idle]


def _drops(first: _Recorder, second: _Recorder) -> list[str]:
    """Ops that drop activations, by what they compute: two passes on the same input, and an
    op whose outputs differ only where one of them is zero (survivors equal, scaled or not).
    Other noise (added, multiplied, a random path) changes values that survive, and is not
    dropout. The first of a chain names it; what follows (a ReLU, a scale) keeps the pattern."""
    found = []
    for (op, where, a), (op2, where2, b) in zip(first.outputs, second.outputs, strict=False):
        if (op, where) != (op2, where2) or a.shape != b.shape:
            break  # the passes took different paths from here on
        if not a.is_floating_point():
            continue
        differ = a != b
        if differ.any() and ((a == 0) | (b == 0))[differ].all():
            alive = (a != 0) | (b != 0)
            share = (a[alive] == 0).float().mean().item()
            found.append(f"{op} in {where} (zeroes about {share:.0%} at random)")
    return found[:1]


def _hidden_weights(net: nn.Module, rec: _Recorder) -> list[str]:
    """Weights of convolutions, linear and normalisation layers that no optimizer would train."""
    buffers = {id(b): name for name, b in net.named_buffers()}
    hidden = []
    for op, where, args, kwargs in rec.calls:
        if op not in WEIGHTED:
            continue
        index = {"batch_norm": 3, "instance_norm": 3, "layer_norm": 2, "group_norm": 2}.get(op, 1)
        weight = _arg(args, kwargs, index, "weight")
        if isinstance(weight, torch.Tensor) and not weight.requires_grad:
            held = f"buffer {buffers[id(weight)]}" if id(weight) in buffers else "a constant"
            hidden.append(f"{op} in {where} takes its weight from {held}")
    return list(dict.fromkeys(hidden))


def _precision(net: nn.Module) -> torch.dtype:
    """float64 for the measurements below, unless the network insists on float32 (a .float() in
    its forward, say): then float32, with a tolerance to match."""
    copied = copy.deepcopy(net).double().eval()
    try:
        with torch.no_grad():
            copied(torch.zeros(2, 1, SIZE, SIZE, dtype=torch.float64))
    except Exception:  # whatever it raises, it does not run in float64
        return torch.float32
    return torch.float64


def _head(net: nn.Module, dtype: torch.dtype) -> tuple[Head, int | None]:
    """Perturb the last spatial map: by a pattern that averages to zero, then by a constant.
    Returns the verdict and the index of that map among the pass's outputs."""
    tolerance = 1e-9 if dtype == torch.float64 else 1e-5
    net = copy.deepcopy(net).to(dtype).eval()
    x = torch.randn(2, 1, SIZE, SIZE, dtype=dtype, generator=_seeded(0))
    with torch.no_grad():
        rec, base = _run(net, x)
        k = _last_spatial_map(rec.outputs)
        if not isinstance(base, torch.Tensor):
            return Head(output=f"a {type(base).__name__}"), k
        # Random skips may agree by chance on one repeat, hardly on REPEATS.
        random = max(_difference(base, net(x)) for _ in range(REPEATS))
        if k is None or random:
            return Head(random=random), k
        op, where, out = rec.outputs[k]
        head = Head(where=f"{op} in {where}", shape=tuple(out.shape[1:]))
        pattern = torch.randn(out.shape, dtype=out.dtype, generator=_seeded(1))
        pattern = (pattern - pattern.mean((2, 3), keepdim=True)) * (out.std() + 1)

        def moved(shift: torch.Tensor) -> float:
            _, y = _run(net, x, edit=lambda i, t: t + shift if i == k else t)
            return (y - base).abs().max().item() / (1 + base.abs().max().item())

        head.averaged = moved(pattern) < tolerance
        # Uniform over height and width, different for each channel: the same shift for all
        # would vanish in a softmax over classes that are the map's channels.
        shift = torch.randn(1, out.shape[1], 1, 1, dtype=out.dtype, generator=_seeded(2))
        head.reads_map = moved(shift * (out.std() + 1)) > tolerance
    return head, k


def _difference(a: torch.Tensor, b) -> float:
    """The largest change between two outputs of one network (inf when they differ in kind)."""
    if not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return float("inf")
    return (a - b).abs().max().item()


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _receptive_fields(net: nn.Module, k: int | None, dtype: torch.dtype, table: bool):
    """Receptive field of each layer-table row of an eval pass (where table), and of output k
    (the map the head averages); whether they were measured on the 28x28 image only; the ops they
    could not follow."""
    net = copy.deepcopy(net).to(dtype).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                module.running_mean.zero_()
                module.running_var.fill_(1)
        for p in net.parameters():
            p.fill_(1 / p[0].numel() if p.dim() > 1 else 0.1)
    # Full pass on a large input; else up to the averaged map only (the head may want 28x28);
    # else on the image itself, where a field wider than the image is cut to it.
    for side, stop in ((RF_SIDE, None), (RF_SIDE, k), (SIZE, None)):
        try:
            measured = [_fields_at(net, k, side, stop, level=lvl, dtype=dtype, table=table)
                        for lvl in RF_LEVELS]  # fmt: skip
        except Exception:  # a layer made for one input size only: try the next way
            continue
        # Rows differ in number only where the forward takes another path at another level.
        rows = [_widest(fields) for fields in zip_longest(*(m[0] for m in measured))]
        rf = _widest(m[1] for m in measured)
        unfollowed = list(dict.fromkeys(u for m in measured for u in m[2]))
        return rows, rf, side == SIZE, unfollowed
    return [], None, True, ["every forward pass of a copy with positive weights"]


def _fields_at(net, k: int | None, side: int, stop: int | None, *, level: float, dtype, table):
    """The fields of each row (where table) and of output k, on a side x side input of one
    level: a gradient each."""
    # Batch 2, as in the head's pass, so that the forward takes the same path.
    x = torch.full((2, 1, side, side), level, dtype=dtype, requires_grad=True)
    rec, _ = _run(net, x, stop_after=stop, averaged_pools=True)
    rows = [_field(out, x) if out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1 else None
            for _, out, _ in rec.rows] if table else []  # fmt: skip
    unfollowed = list(rec.unfollowed)
    averaged = None if k is None else rec.outputs[k if stop is None else -1][2]
    if averaged is not None and averaged.dim() != 4:
        averaged = None
        unfollowed.append(f"a forward pass on {side}x{side} images, which takes another path")
    return rows, None if averaged is None else _field(averaged, x), unfollowed


def _widest(fields) -> int | None:
    found = [f for f in fields if f is not None]
    return max(found) if found else None


def probe(net: nn.Module, table: bool = True) -> Probe:
    """Run a copy of net as training and as inference would, and measure what it computes; with
    table, its layers too (the rows, each with its receptive field, a gradient each: most of what
    the probe costs a small network, and nothing the rules read)."""
    net = copy.deepcopy(net).float().cpu()
    before = {name for name, _ in net.named_parameters()}
    result = Probe()
    for mode, batch in (("train", 2), ("train", 64), ("eval", 1), ("eval", 64)):
        net.train(mode == "train")
        x = torch.randn(batch, 1, SIZE, SIZE, generator=_seeded(batch))
        with torch.set_grad_enabled(mode == "train"):
            rec, _ = _run(net, x)
        result.ran |= rec.ran
        result.batch_norms[mode, batch] = _batch_norm_calls(rec, mode)
        if mode == "eval":
            result.eval_batch_statistics += [
                where for op, where, args, kwargs in rec.calls
                if op == "batch_norm" and _arg(args, kwargs, 5, "training", False)
            ]  # fmt: skip
        active, idle = _dropouts(rec)
        drops = _drops(rec, _run(net, x)[0]) if batch > 2 else []
        if mode == "train":
            result.train_dropouts += [p for _, p in active]
            result.train_drops += drops
            result.idle_dropouts += idle
            result.hidden_weights += _hidden_weights(net, rec)
        else:
            result.eval_dropouts += [f"{where} (p={p})" for where, p in active] or drops
            layers = rec.rows
            result.calls = [(op, where) for op, where, _, _ in rec.calls]
    result.eval_dropouts = list(dict.fromkeys(result.eval_dropouts))
    result.eval_batch_statistics = list(dict.fromkeys(result.eval_batch_statistics))
    result.hidden_weights = list(dict.fromkeys(result.hidden_weights))
    result.created = [name for name, _ in net.named_parameters() if name not in before]
    dtype = _precision(net)
    result.head, k = _head(net, dtype)
    fields, result.rf, result.rf_clipped, result.unfollowed = _receptive_fields(
        net, k, dtype, table
    )
    if table:
        fields += [None] * (len(layers) - len(fields))
        last = None
        for (label, out, own), rf in zip(layers, fields, strict=False):
            last = rf if rf is not None else last
            result.rows.append(Row(label, tuple(out.shape[1:]), last, own))
    return result
