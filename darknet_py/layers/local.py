"""``[local]`` (``local_layer.c``): a locally connected layer (YOLOv1).

A convolution whose filters are not shared: every output position ``l`` has
its own ``filters x (c*size*size)`` matrix. Darknet sizes the output with
``local_out_height``: ``(h - size)/stride + 1`` when ``pad=0``, else
``(h - 1)/stride + 1``, and im2col pads by ``pad`` pixels (``pad`` is the
padding itself here, not a flag); a cfg where the two disagree is refused.
Output = activation(bias[n][out_h][out_w] + W_l . im2col_l).

.weights order (``load_weights_upto``, LOCAL): biases[filters*out_h*out_w],
then weights[location][filter][c][size][size].

    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=5\\nheight=5\\nchannels=2\\n"
    ...                         "[local]\\nfilters=3\\nsize=3\\nstride=1\\npad=1\\n"))
    >>> tuple(net.layers[0].out_shape), tuple(net.layers[0].weight.shape)
    ((3, 5, 5), (25, 3, 18))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cfg.options import option
from . import activations
from .base import BuildContext, DarknetLayer, Shape, check_shape, filled, initialising
from .registry import register


@dataclass
class LocalOptions:
    filters: int = option(1)
    size: int = option(1)
    stride: int = option(1)
    pad: int = option(0, doc="padding in pixels; also switches the output size formula")
    activation: str = option("logistic", choices=activations.names)


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def local_out_size(size_in: int, size: int, stride: int, pad: int) -> int:
    """``local_out_height``/``local_out_width``."""
    span = size_in - size if not pad else size_in - 1
    return _c_div(span, stride) + 1


class LocalLayer(DarknetLayer):
    kind = "local"
    delta_comparable = False  # l.delta after backward: before the activation, not marked
    channels_key = "filters"

    def __init__(self, index: int, in_shape: Shape, out_shape: Shape, opts: LocalOptions,
                 dialect=None) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.size = opts.size
        self.stride = opts.stride
        self.pad = opts.pad
        self.activation = opts.activation
        self._act = activations.get(opts.activation, dialect)
        locations = out_shape.h * out_shape.w
        k = in_shape.c * opts.size * opts.size
        self.weight = nn.Parameter(filled(locations, opts.filters, k))
        self.bias = nn.Parameter(filled(opts.filters, out_shape.h, out_shape.w))
        if initialising():
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Darknet's init: weights ~ sqrt(2/(size*size*c)) * U(-1, 1), biases 0."""
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_((2.0 / self.weight.shape[2]) ** 0.5)
            self.bias.zero_()

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        b = x.shape[0]
        cols = F.unfold(x, self.size, padding=self.pad, stride=self.stride)  # (b, c*k*k, L)
        y = torch.einsum("lfk,bkl->bfl", self.weight, cols)
        y = y.reshape(b, *self.out_shape) + self.bias
        return self._act(y)

    def weight_tensors(self) -> List[Tensor]:
        return [self.bias, self.weight]

    def flops(self, in_shape: Shape) -> float:
        return 2.0 * self.weight.numel()

    def describe(self, in_shape: Shape) -> str:
        o = self.opts
        return f"{o.filters:>5} {o.size:>2} x{o.size:>2} /{o.stride:>2}"


    def table_line(self, in_shape: Shape) -> str:
        i, o = in_shape, self.out_shape
        return (f"Local Layer: {i.h} x {i.w} x {i.c} image, {o.c} filters -> "
                f"{o.h} x {o.w} x {o.c} image")


@register("local", options=LocalOptions)
def build(ctx: BuildContext) -> LocalLayer:
    r = ctx.reader
    o = r.read(LocalOptions)
    r.check(o.filters > 0, f"filters must be > 0, got {o.filters}", "filters")
    r.check(o.size > 0, f"size must be > 0, got {o.size}", "size")
    r.check(o.stride > 0, f"stride must be > 0, got {o.stride}", "stride")
    r.check(o.pad >= 0, f"pad must be >= 0, got {o.pad}", "pad")
    i = ctx.input_shape
    out = Shape(o.filters, local_out_size(i.h, o.size, o.stride, o.pad),
                local_out_size(i.w, o.size, o.stride, o.pad))
    check_shape(ctx, out)
    cols_h = (i.h + 2 * o.pad - o.size) // o.stride + 1
    cols_w = (i.w + 2 * o.pad - o.size) // o.stride + 1
    r.check((cols_h, cols_w) == (out.h, out.w),
            f"size={o.size} with pad={o.pad} gives a {out.w}x{out.h} output "
            f"(local_out_height) but im2col makes {cols_w}x{cols_h} columns; Darknet would "
            f"read past its buffers (use pad=0, or pad=(size-1)/2 with an odd size)", "pad")
    ctx.check_weights(out.h * out.w * o.filters * i.c * o.size * o.size, "filters")
    return LocalLayer(ctx.index, i, out, o, ctx.dialect)
