"""``[deconvolutional]`` / ``[deconv]`` (pjreddie ``deconvolutional_layer.c``): transposed conv.

``make_deconvolutional_layer``: ``out = (h - 1)*stride + size - 2*padding``
(``pad=1`` means ``padding = size/2``). ``forward_deconvolutional_layer``
computes ``weights^T x input`` per image and scatters it with ``col2im`` --
a transposed convolution with weights ``[c][filters][size][size]``; then
Darknet's BN (``batch_normalize=1``: normalize, scale, bias) or the bias, then
the activation.

.weights order (``load_convolutional_weights``, also used for deconv): biases,
[scales, rolling_mean, rolling_variance], weights[c][filters][size][size]
(``save_convolutional_weights`` writes ``l.nweights = c*filters*size*size``).
Real pjreddie Darknet divides by ``l.groups``, which a deconv layer leaves at
0, when *loading*; darknet_py reads the layout its saver writes.

    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=4\\nheight=3\\nchannels=2\\n"
    ...                         "[deconv]\\nfilters=5\\nsize=4\\nstride=2\\npadding=1\\n"))
    >>> tuple(net.layers[0].out_shape), tuple(net.layers[0].weight.shape)
    ((5, 6, 8), (2, 5, 4, 4))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cfg.options import option
from . import activations
from .base import BuildContext, DarknetLayer, Shape, check_shape, filled, initialising, table_shape
from .batchnorm import BatchNorm
from .registry import register


@dataclass
class DeconvolutionalOptions:
    filters: int = option(1)
    size: int = option(1)
    stride: int = option(1)
    activation: str = option("logistic", choices=activations.names)
    batch_normalize: int = option(0)
    pad: int = option(0, doc="non-zero: padding = size/2")
    padding: int = option(0)

    def resolve(self, dialect) -> None:
        if self.pad:
            self.padding = self.size // 2


class DeconvolutionalLayer(DarknetLayer):
    kind = "deconvolutional"
    delta_comparable = False  # l.delta after backward: before BN/activation, not marked
    channels_key = "filters"

    def __init__(self, index: int, in_shape: Shape, out_shape: Shape,
                 opts: DeconvolutionalOptions, dialect) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.stride = opts.stride
        self.padding = opts.padding
        self.activation = opts.activation
        self._act = activations.get(opts.activation)
        n, c, k = opts.filters, in_shape.c, opts.size
        self.weight = nn.Parameter(filled(c, n, k, k))
        self.bias = nn.Parameter(filled(n))
        self.bn = BatchNorm(n, dialect) if opts.batch_normalize else None
        if initialising():
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Darknet's init: weights ~ 0.02 * N(0, 1), biases 0."""
        with torch.no_grad():
            self.weight.normal_(0.0, 0.02)
            self.bias.zero_()
        if self.bn is not None:
            self.bn.reset_parameters()

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        # the full scatter, then col2im's crop of `padding` on every side
        y = F.conv_transpose2d(x, self.weight, None, self.stride)
        _, oh, ow = self.out_shape
        p = self.padding
        y = y[:, :, p:p + oh, p:p + ow]
        if self.bn is not None:
            y = self.bn(y)
        return self._act(y + self.bias.view(1, -1, 1, 1))

    def weight_tensors(self) -> List[Tensor]:
        tensors: List[Tensor] = [self.bias]
        if self.bn is not None and not self.dontloadscales:
            tensors += self.bn.weight_tensors()
        return tensors + [self.weight]

    def uses_adam(self, dialect) -> bool:
        """pjreddie's update_deconvolutional_layer_gpu has the Adam branch; AlexeyAB's has
        none."""
        return dialect.adam_beyond_convolutional

    def flops(self, in_shape: Shape) -> float:
        return 2.0 * self.weight.numel() * in_shape.h * in_shape.w

    def describe(self, in_shape: Shape) -> str:
        o = self.opts
        return f"{o.filters:>5} {o.size:>2} x{o.size:>2} /{o.stride:>2}"


    def table_line(self, in_shape: Shape) -> str:
        o = self.opts
        return (f"deconv{o.filters:5d} {o.size:2d} x{o.size:2d} /{o.stride:2d}  "
                f"{table_shape(in_shape)}   ->  {table_shape(self.out_shape)}")


@register("deconvolutional", "deconv", options=DeconvolutionalOptions, only="pjreddie")
def build(ctx: BuildContext) -> DeconvolutionalLayer:
    r = ctx.reader
    o = r.read(DeconvolutionalOptions)
    r.check(o.filters > 0, f"filters must be > 0, got {o.filters}", "filters")
    r.check(o.size > 0, f"size must be > 0, got {o.size}", "size")
    r.check(o.stride > 0, f"stride must be > 0, got {o.stride}", "stride")
    r.check(o.padding >= 0, f"padding must be >= 0, got {o.padding}", "padding")
    i = ctx.input_shape
    full_h, full_w = (i.h - 1) * o.stride + o.size, (i.w - 1) * o.stride + o.size
    out = Shape(o.filters, full_h - 2 * o.padding, full_w - 2 * o.padding)
    check_shape(ctx, out)
    ctx.check_elements(o.filters * full_h * full_w, "uncropped output",
                       "padding" if r.has("padding") else "pad")
    ctx.check_weights(i.c * o.filters * o.size * o.size, "filters")
    return DeconvolutionalLayer(ctx.index, i, out, o, ctx.dialect)
