"""``[convolutional]`` / ``[conv]`` (``convolutional_layer.c``).

Output size is Darknet's integer arithmetic ``(h + 2*pad - size)/stride + 1``,
where ``pad=1`` means ``padding = size/2`` and otherwise ``padding=`` is used.
With ``batch_normalize=1`` the order is conv -> normalize (dialect epsilon) ->
scale -> add bias -> activation, exactly as ``forward_convolutional_layer``.

.weights order: biases[n], then if batch_normalize scales[n], rolling_mean[n],
rolling_variance[n]; then weights[n][c/groups][size][size].

    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=10\\nheight=6\\nchannels=3\\n"
    ...                         "[convolutional]\\nfilters=4\\nsize=3\\nstride=2\\npad=1\\n"))
    >>> tuple(net.layers[0].out_shape)
    (4, 3, 5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cfg.options import option
from . import activations
from .base import BuildContext, DarknetLayer, Shape, check_shape, table_shape
from .batchnorm import BatchNorm
from .registry import register


@dataclass
class ConvolutionalOptions:
    filters: int = option(1)
    size: int = option(1)
    stride: int = option(1)
    stride_x: int = option(-1, only="alexeyab", doc="-1 = stride")
    stride_y: int = option(-1, only="alexeyab", doc="-1 = stride")
    dilation: int = option(1, only="alexeyab")
    pad: int = option(0, doc="non-zero: padding = size/2")
    padding: int = option(0)
    groups: int = option(1)
    activation: str = option("logistic", choices=activations.names)
    batch_normalize: int = option(0)
    # options darknet_py does not implement: a non-default value is an error
    binary: int = option(0)
    xnor: int = option(0)
    flipped: int = option(0)
    dot: float = option(0.0)
    antialiasing: int = option(0)
    share_index: int = option(-1000000000)
    cbn: int = option(0)
    bin_output: int = option(0)
    sway: int = option(0)
    rotate: int = option(0)
    stretch: int = option(0)
    stretch_sway: int = option(0)
    coordconv: int = option(0)
    # AlexeyAB training-only or scheduling keys, no effect on the forward pass
    assisted_excitation: float = option(0.0)
    angle: float = option(15.0)
    grad_centr: int = option(0)
    reverse: float = option(0.0)
    stream: int = option(-1)
    wait_stream: int = option(-1)

    def resolve(self, dialect) -> None:
        if self.stride_x < 1:
            self.stride_x = self.stride
        if self.stride_y < 1:
            self.stride_y = self.stride
        if self.size == 1:
            self.dilation = 1
        if self.pad:
            self.padding = self.size // 2


_UNSUPPORTED = {"binary": 0, "xnor": 0, "flipped": 0, "antialiasing": 0,
                "share_index": -1000000000, "cbn": 0, "bin_output": 0, "sway": 0, "rotate": 0,
                "stretch": 0, "stretch_sway": 0, "coordconv": 0}


def _out_size(size_in: int, pad: int, size: int, stride: int) -> int:
    return (size_in + 2 * pad - size) // stride + 1


class ConvolutionalLayer(DarknetLayer):
    kind = "convolutional"

    def __init__(self, index: int, in_shape: Shape, out_shape: Shape, opts: ConvolutionalOptions,
                 dialect) -> None:
        super().__init__(index, out_shape)
        self.opts = opts
        self.activation = opts.activation
        self._act = activations.get(opts.activation)
        n, c, k = opts.filters, in_shape.c, opts.size
        self.weight = nn.Parameter(torch.zeros(n, c // opts.groups, k, k))
        self.bias = nn.Parameter(torch.zeros(n))
        self.bn = BatchNorm(n, dialect) if opts.batch_normalize else None
        self.stride = (opts.stride_y, opts.stride_x)
        self.padding = opts.padding
        self.groups = opts.groups
        self.dilation = opts.dilation
        #: Darknet's per-layer ``dontloadscales``: the .weights file lacks this layer's BN values.
        self.dontloadscales = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Darknet's init: weights ~ sqrt(2/(size*size*c/groups)) * N(0,1); BN neutral."""
        fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
        with torch.no_grad():
            self.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
            self.bias.zero_()

    def conv(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        if self.bn is None:
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                         self.groups)
        else:
            y = self.conv(x)
            if self.training or y.requires_grad:
                y = self.bn(y) + self.bias.view(1, -1, 1, 1)
            else:  # plain inference: y is ours alone, so BN and bias may work in place
                y = self.bn.inference_(y).add_(self.bias.view(1, -1, 1, 1))
        return self._act(y)

    def fuse_batchnorm(self) -> None:
        """AlexeyAB's ``network.c:fuse_conv_batchnorm`` (what its ``detector test`` does
        after loading): per filter f, in double, ``s = scale/sqrt(var + .00001)``,
        ``bias -= scale*mean/sqrt(var + .00001)``, ``weights *= s``, each stored back as
        float; then the layer has no BN (like Darknet's, its .weights then lack it)."""
        if self.bn is None:
            return
        with torch.no_grad():
            scale = self.bn.scales.detach().double()
            root = torch.sqrt(self.bn.rolling_variance.detach().double() + .00001)
            bias = self.bias.detach().double() - scale * self.bn.rolling_mean.double() / root
            self.bias.copy_(bias.to(self.bias.dtype))
            factor = (scale / root).view(-1, 1, 1, 1)
            self.weight.copy_((self.weight.detach().double() * factor).to(self.weight.dtype))
        self.bn = None

    def weight_tensors(self) -> List[Tensor]:
        tensors: List[Tensor] = [self.bias]
        if self.bn is not None and not self.dontloadscales:
            tensors += self.bn.weight_tensors()
        return tensors + [self.weight]

    def flops(self, in_shape: Shape) -> float:
        return 2.0 * self.weight.numel() * self.out_shape.h * self.out_shape.w

    def describe(self, in_shape: Shape) -> str:
        o = self.opts
        groups = f"{o.groups:>3}" if o.groups > 1 else ""
        return f"{o.filters:>5} {groups}{o.size:>2} x{o.size:>2} /{o.stride:>2}"

    def table_line(self, in_shape: Shape) -> str:
        # make_convolutional_layer's fprintf (pjreddie): groups are not shown
        o = self.opts
        return (f"conv  {o.filters:5d} {o.size:2d} x{o.size:2d} /{o.stride:2d}  "
                f"{table_shape(in_shape)}   ->  {table_shape(self.out_shape)}  "
                f"{self.flops(in_shape) / 1e9:5.3f} BFLOPs")


@register("convolutional", "conv", options=ConvolutionalOptions)
def build(ctx: BuildContext) -> ConvolutionalLayer:
    r = ctx.reader
    o = r.read(ConvolutionalOptions)
    for key, default in _UNSUPPORTED.items():
        r.check(getattr(o, key) == default,
                f"{key}={getattr(o, key)} is not supported by darknet_py", key)
    r.check(o.filters > 0, f"filters must be > 0, got {o.filters}", "filters")
    r.check(o.size > 0, f"size must be > 0, got {o.size}", "size")
    r.check(o.stride_x > 0 and o.stride_y > 0, f"stride must be > 0, got {o.stride}", "stride")
    r.check(o.padding >= 0, f"padding must be >= 0, got {o.padding}", "padding")
    r.check(o.dilation >= 1, f"dilation must be >= 1, got {o.dilation}", "dilation")
    c = ctx.input_shape.c
    r.check(o.groups > 0 and c % o.groups == 0 and o.filters % o.groups == 0,
            f"groups={o.groups} must divide the input channels ({c}) and filters ({o.filters})",
            "groups")
    h_in, w_in = ctx.input_shape.h, ctx.input_shape.w
    r.check(h_in + 2 * o.padding >= o.size and w_in + 2 * o.padding >= o.size,
            f"kernel size {o.size} does not fit the {w_in}x{h_in} input with padding {o.padding}",
            "size")
    n_weights = o.filters * (c // o.groups) * o.size * o.size
    ctx.check_weights(n_weights, "filters")
    ctx.check_elements(c * (h_in + 2 * o.padding) * (w_in + 2 * o.padding),
                       "padded input", "padding" if r.has("padding") else "pad")
    out = Shape(o.filters, _out_size(h_in, o.padding, o.size, o.stride_y),
                _out_size(w_in, o.padding, o.size, o.stride_x))
    if o.dilation > 1:
        span = o.dilation * (o.size - 1) + 1
        torch_h = (h_in + 2 * o.padding - span) // o.stride_y + 1
        torch_w = (w_in + 2 * o.padding - span) // o.stride_x + 1
        r.check((torch_h, torch_w) == (out.h, out.w),
                f"dilation={o.dilation} with size={o.size} and padding={o.padding} gives a "
                f"{torch_w}x{torch_h} output where Darknet allocates {out.w}x{out.h}; "
                f"not supported", "dilation")
    return ConvolutionalLayer(ctx.index, ctx.input_shape, check_shape(ctx, out), o, ctx.dialect)
