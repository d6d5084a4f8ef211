"""``[maxpool]`` / ``[max]`` (``maxpool_layer.c``).

Darknet's padding rule, which zero-padding ports get wrong: ``size`` defaults
to ``stride``, ``padding`` (total) defaults to ``size-1``, windows start at
``-padding/2``, the output is ``(w + padding - size)/stride + 1``, and cells
outside the image are *ignored* (the max starts at -FLT_MAX), never zeros.
So a 2x2/1 maxpool keeps the size and the last column/row sees only itself.

Backward (training) is Darknet's ``backward_maxpool_layer``: each output's delta goes to
the one input ``l.indexes`` names, the *first* maximum of its window in Darknet's scan
order (rows, then columns; channels for AlexeyAB's ``maxpool_depth``) by a strict ``>``
from ``-FLT_MAX``, so a later equal value and a padding cell never win. A max built from
``torch.maximum``/``amax`` splits a tie's gradient instead, which changes every delta behind
a tie (ties are common: a leaky layer's equal outputs, saturated inputs). PyTorch's CPU
``max_pool2d`` picks Darknet's cell, so training runs it on Darknet's padded grid and falls
back to the scan where it would not (``maxpool_depth``, NaN, a max <= -FLT_MAX, CUDA).

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=3\\nheight=1\\nchannels=1\\n[maxpool]\\nsize=2\\nstride=1\\n"))
    >>> net(torch.tensor([[[[-3.0, -2.0, -1.0]]]])).flatten().tolist()
    [-2.0, -1.0, -1.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape, table_shape
from .registry import register

FLT_MAX = 3.4028234663852886e38


@dataclass
class PoolWindowOptions:
    """The window geometry [maxpool] shares with AlexeyAB's [local_avgpool]."""

    stride: int = option(1)
    stride_x: Optional[int] = option(None, only="alexeyab", doc="default stride")
    stride_y: Optional[int] = option(None, only="alexeyab", doc="default stride")
    size: Optional[int] = option(None, doc="default stride")
    padding: Optional[int] = option(None, doc="default size-1 (total, split floor-left)")

    def resolve(self, dialect) -> None:
        if self.stride_x is None:
            self.stride_x = self.stride
        if self.stride_y is None:
            self.stride_y = self.stride
        if self.size is None:
            self.size = self.stride
        if self.padding is None:
            self.padding = self.size - 1


def window_padding(o: PoolWindowOptions) -> Tuple[int, int, int, int]:
    """F.pad amounts (left, right, top, bottom): windows start at -padding/2.

    On this grid PyTorch's output size equals Darknet's (w+padding-size)/stride+1.
    """
    before = o.padding // 2
    return (before, o.padding - before, before, o.padding - before)


def window_shape(o: PoolWindowOptions, i: Shape) -> Shape:
    """Darknet's pooling output (c, (h+padding-size)/stride+1, (w+padding-size)/stride+1)."""
    return Shape(i.c, (i.h + o.padding - o.size) // o.stride_y + 1,
                 (i.w + o.padding - o.size) // o.stride_x + 1)


def resize_window(layer: DarknetLayer, o: PoolWindowOptions, i: Shape) -> Shape:
    """resize_maxpool_layer (and AlexeyAB's local_avgpool): the window arithmetic again."""
    if i.w + o.padding < o.size or i.h + o.padding < o.size:
        raise ResizeError(f"layer {layer.index} [{layer.kind}]: window {o.size} does not fit "
                          f"the {i.w}x{i.h} input with padding {o.padding}")
    return window_shape(o, i)


def window_output(ctx: BuildContext, o: PoolWindowOptions) -> Shape:
    """Validate the window and return Darknet's output shape."""
    r = ctx.reader
    r.check(o.stride_x > 0 and o.stride_y > 0, f"stride must be > 0, got {o.stride}", "stride")
    r.check(o.size > 0, f"size must be > 0, got {o.size}", "size")
    r.check(o.padding >= 0, f"padding must be >= 0, got {o.padding}", "padding")
    i = ctx.input_shape
    r.check(i.w + o.padding >= o.size and i.h + o.padding >= o.size,
            f"window {o.size} does not fit the {i.w}x{i.h} input with padding {o.padding}", "size")
    ctx.check_elements(i.c * (i.h + o.padding) * (i.w + o.padding), "padded input", "padding")
    return check_shape(ctx, window_shape(o, i))


@dataclass
class MaxpoolOptions(PoolWindowOptions):
    maxpool_depth: int = option(0, only="alexeyab", doc="1: max over channel groups instead")
    out_channels: int = option(1, only="alexeyab", doc="groups of maxpool_depth=1")
    # not implemented: a non-default value is an error
    antialiasing: int = option(0)
    maxpool_zero_nonmax: int = option(0)


def _window_max(x: Tensor, dim: int, size: int, stride: int) -> Tensor:
    """out[i] = max(x[i*stride : i*stride+size]) along ``dim``, for the
    ``(n - size) // stride + 1`` windows that fit in its ``n`` entries.

    Offset ``k`` of every window is ``x[k : n-(size-1-k) : stride]``: an end relative
    to the size, so nothing here fixes the input size (a traced or exported graph
    takes any size).
    """
    index = [slice(None)] * x.dim()
    views = []
    for k in range(size):
        index[dim] = slice(k, -(size - 1 - k) or None, stride)
        views.append(x[tuple(index)])
    if size == 1:
        return views[0].clone()
    out = torch.maximum(views[0], views[1])
    # the rest in place where nothing records it (autograd, tracing): one temporary, not size-1
    inplace = not (x.requires_grad and torch.is_grad_enabled()) and not torch.jit.is_tracing()
    for view in views[2:]:
        out = torch.maximum(out, view, out=out) if inplace else torch.maximum(out, view)
    return out


def _first_max(views: List[Tensor], carry: Optional[List[Tensor]] = None):
    """Darknet's window scan over ``views`` (the window's cells in scan order): ``max``
    starts at -FLT_MAX and a cell replaces it only when strictly greater. Returns the max
    (-FLT_MAX when no cell won), the winning view's number (-1: none) and, for each tensor
    of ``carry`` (one list per view), the winner's entry."""
    best = torch.full_like(views[0], -FLT_MAX)
    at = torch.full(best.shape, -1, dtype=torch.int64, device=best.device)
    kept = [torch.full_like(c[0], -1) for c in carry or []]
    for k, view in enumerate(views):
        better = view > best
        best = torch.where(better, view, best)
        at.masked_fill_(better, k)
        for n, c in enumerate(carry or []):
            kept[n] = torch.where(better, c[k], kept[n])
    return best, at, kept


def _strided_views(x: Tensor, dim: int, size: int, stride: int) -> List[Tensor]:
    """Offset ``k`` of every window along ``dim`` (see :func:`_window_max`)."""
    index = [slice(None)] * x.dim()
    views = []
    for k in range(size):
        index[dim] = slice(k, -(size - 1 - k) or None, stride)
        views.append(x[tuple(index)])
    return views


class _IndexedMax(torch.autograd.Function):
    """Forward: the window maxima and Darknet's ``l.indexes`` (flat input position per
    output, -1 where no cell won); backward: ``net.delta[index] += l.delta[i]``."""

    @staticmethod
    def forward(ctx, x: Tensor, layer: "MaxpoolLayer") -> Tensor:  # type: ignore[override]
        out, index = layer._indexed(x)
        ctx.save_for_backward(index)
        ctx.in_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        n, c = ctx.in_shape[0], ctx.in_shape[1:].numel()
        flat = index.reshape(n, -1)
        won = flat >= 0
        delta = torch.where(won, grad.reshape(n, -1), torch.zeros((), dtype=grad.dtype,
                                                                   device=grad.device))
        out = torch.zeros((n, c), dtype=grad.dtype, device=grad.device)
        out.scatter_add_(1, flat.clamp(min=0), delta)
        return out.view(ctx.in_shape), None


class MaxpoolLayer(DarknetLayer):
    kind = "maxpool"
    ab_forward_zeroes_delta = True
    ab_train = True

    def __init__(self, index: int, out_shape: Shape, opts: MaxpoolOptions) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.size = opts.size
        self.stride = (opts.stride_y, opts.stride_x)
        self.pad = window_padding(opts)
        self.depth = opts.out_channels if opts.maxpool_depth else 0

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        if x.requires_grad and torch.is_grad_enabled() and not torch.jit.is_tracing():
            out = None if self.depth else self._aten_max(x)
            return _IndexedMax.apply(x, self) if out is None else out
        if self.depth:
            # AlexeyAB maxpool_depth: out[g] = max over input channels g, g+G, g+2G, ... < c
            # (G = out_channels), starting from -FLT_MAX; size/stride/padding are unused
            g, c = self.depth, x.shape[1]
            n = -(-c // g)
            x = F.pad(x, (0, 0, 0, 0, 0, n * g - c), value=-FLT_MAX)
            return x.unflatten(1, (n, g)).amax(dim=1)
        x = self._padded(x, -FLT_MAX)
        # a max over a size x size window is a max over rows of a max over columns: the same
        # values as F.max_pool2d (max is exact), several times faster on the CPU
        # rows first: its views read whole rows, and the column pass then sees half the data
        return _window_max(_window_max(x, 2, self.size, self.stride[0]),
                           3, self.size, self.stride[1])

    def _padded(self, x: Tensor, value: float) -> Tensor:
        """``x`` padded with ``value`` on Darknet's grid (windows start at -padding/2)."""
        left, right, top, bottom = self.pad
        sy, sx = self.stride
        k, h, w = self.size, x.shape[2], x.shape[3]
        # padding on the right/bottom that no window reaches (size 2 / stride 2 on an even
        # size, the usual case) is skipped: the pad is a full copy. The window counts come
        # from the input's size, as with the padding; a traced graph always pads (any size).
        reached = (torch.jit.is_tracing() or left or top or h < k or w < k
                   or (h - k) // sy != (h + top + bottom - k) // sy
                   or (w - k) // sx != (w + left + right - k) // sx)
        return F.pad(x, self.pad, value=value) if reached and any(self.pad) else x

    def _aten_max(self, x: Tensor) -> Optional[Tensor]:
        """Training forward by PyTorch's CPU max_pool2d, None where it is not Darknet's.

        That kernel scans each window row by row, column by column, and takes a cell when
        ``val > max || isnan(val)`` from -inf; its backward adds each output's gradient to
        that cell. On Darknet's padded grid (padding cells -inf, so they never win) that is
        ``l.indexes`` and backward_maxpool_layer exactly -- same outputs, indexes and deltas
        as :meth:`_indexed`, ties included, contiguous or channels_last -- unless a window's
        max is NaN or <= -FLT_MAX (Darknet: a NaN never wins, a -FLT_MAX cell or a window
        of padding only gives -FLT_MAX and no index). Those show in the output, which is
        checked: then None and the caller takes the scan of :meth:`_indexed`. CUDA's kernel
        is not checked here, so only the CPU takes this path.
        """
        if x.device.type != "cpu":
            return None
        out = F.max_pool2d(self._padded(x, -float("inf")), self.size, self.stride,
                           return_indices=True)[0]
        with torch.no_grad():
            exact = bool((out > -FLT_MAX).all())  # False for NaN, -FLT_MAX and -inf
        return out if exact else None

    def _indexed(self, x: Tensor):
        """forward_maxpool_layer in training: outputs and ``l.indexes`` (flat positions in
        each image's input, Darknet's scan order, first maximum wins)."""
        n, c, h, w = x.shape
        if self.depth:
            # out[g] scans input channels g, g+G, ... < c (G = out_channels)
            g = self.depth
            groups = -(-c // g)
            padded = F.pad(x, (0, 0, 0, 0, 0, groups * g - c), value=-float("inf"))
            views = list(padded.unflatten(1, (groups, g)).unbind(1))
            out, at, _ = _first_max(views)
            plane = torch.arange(h * w, device=x.device).view(1, 1, h, w)
            chan = at * g + torch.arange(g, device=x.device).view(1, g, 1, 1)
            return out, torch.where(at >= 0, chan * (h * w) + plane, at)
        left, right, top, bottom = self.pad
        sy, sx = self.stride
        k = self.size
        # padding cells are -inf here: below -FLT_MAX, they never win (Darknet: "valid")
        padded = F.pad(x, self.pad, value=-float("inf")) if any(self.pad) else x
        # per row of each window: its first max over the window's columns and that column
        cols = _strided_views(padded, 3, k, sx)
        row_max, col_at, _ = _first_max(cols)
        # over the window's rows: the first row holding a strictly greater max wins, with
        # its column -- Darknet's row-major scan with a strict > gives that same cell
        out, row_at, (col,) = _first_max(_strided_views(row_max, 2, k, sy),
                                         [_strided_views(col_at, 2, k, sy)])
        oh, ow = out.shape[2], out.shape[3]
        iy = torch.arange(oh, device=x.device).view(1, 1, oh, 1) * sy + row_at - top
        ix = torch.arange(ow, device=x.device).view(1, 1, 1, ow) * sx + col - left
        chan = torch.arange(c, device=x.device).view(1, c, 1, 1) * (h * w)
        return out, torch.where(row_at >= 0, chan + iy * w + ix, row_at)

    def darknet_indexes(self, x: Tensor) -> Tensor:
        """``l.indexes`` of a forward on ``x``: per output, its input cell's flat position
        within the image (c, h, w), -1 where no cell won."""
        with torch.no_grad():
            return self._indexed(x)[1]

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        if self.depth:
            return Shape(self.depth, in_shape.h, in_shape.w)
        return resize_window(self, self.opts, in_shape)

    def describe(self, in_shape: Shape) -> str:
        o = self.opts
        return f"{o.size:>8} x{o.size:>2} /{o.stride:>2}"

    def table_line(self, in_shape: Shape) -> str:
        o = self.opts
        return (f"max          {o.size} x {o.size} / {o.stride}  {table_shape(in_shape)}   ->  "
                f"{table_shape(self.out_shape)}")


@register("maxpool", "max", options=MaxpoolOptions)
def build(ctx: BuildContext) -> MaxpoolLayer:
    r = ctx.reader
    o = r.read(MaxpoolOptions)
    for key, default in (("antialiasing", 0), ("maxpool_zero_nonmax", 0)):
        r.check(getattr(o, key) == default, f"{key}={getattr(o, key)} is not supported", key)
    if o.maxpool_depth:
        r.check(o.out_channels >= 1, f"out_channels must be >= 1, got {o.out_channels}",
                "out_channels")
        i = ctx.input_shape
        return MaxpoolLayer(ctx.index, check_shape(ctx, Shape(o.out_channels, i.h, i.w)), o)
    return MaxpoolLayer(ctx.index, window_output(ctx, o), o)
