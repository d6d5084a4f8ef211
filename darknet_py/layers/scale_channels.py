"""``[scale_channels]`` (AlexeyAB ``scale_channels_layer.c``): squeeze-and-excitation.

The output has the shape of the layer named by ``from=`` (one layer, read with
``atoi``). With ``scale_wh=0`` (default) the previous layer is C x 1 x 1 and
``out[c,h,w] = act(from[c,h,w] * prev[c])``; with ``scale_wh=1`` it is
1 x H x W and ``out[c,h,w] = act(from[c,h,w] * prev[0,h,w])``
(``forward_scale_channels_layer``'s ``i / channel_size`` and
``i % channel_size + (i / batch_size)*channel_size`` indexing).
``make_scale_channels_layer`` asserts those shapes. Activations as in
:mod:`.sam` (swish/mish/... are refused: AlexeyAB's CPU path outputs 0s).

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=2\\nheight=1\\nchannels=2\\n[upsample]\\nstride=1\\n"
    ...        "[avgpool]\\n[scale_channels]\\nfrom=-2\\n")
    >>> x = torch.tensor([[[[1.0, 3.0]], [[-1.0, 5.0]]]])  # channel means 2 and 2
    >>> Darknet(parse_cfg(cfg), dialect="alexeyab")(x)[0].flatten().tolist()
    [2.0, 6.0, -2.0, 10.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from torch import Tensor

from ..cfg.options import option
from . import activations
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape
from .registry import register
from .sam import check_activation


@dataclass
class ScaleChannelsOptions:
    from_: List[int] = option(key="from", required=True, doc="one layer (negative = relative)")
    scale_wh: int = option(0, doc="1: the previous layer is 1 x H x W, scale spatially")
    activation: str = option("linear", choices=activations.names)


class ScaleChannelsLayer(DarknetLayer):
    kind = "scale_channels"

    def __init__(self, index: int, out_shape: Shape, ref: int, scale_wh: bool,
                 activation: str) -> None:
        super().__init__(index, out_shape, [ref])
        self.scale_wh = scale_wh
        self.activation = activation
        self._act = activations.get(activation, "alexeyab")

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        # x is (B, C, 1, 1) or, with scale_wh, (B, 1, H, W): broadcasting is the C indexing
        return self._act(refs[0] * x)

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_scale_channels_layer: the from-layer's shape."""
        s = ref_shapes[0]
        ok = ((in_shape.c == 1 and (in_shape.h, in_shape.w) == (s.h, s.w)) if self.scale_wh
              else ((in_shape.h, in_shape.w) == (1, 1) and in_shape.c == s.c))
        if not ok:
            raise ResizeError(f"layer {self.index} [scale_channels]: input {tuple(in_shape)} "
                              f"cannot scale layer {self.refs[0]} of {tuple(s)}")
        return Shape(*s)

    def describe(self, in_shape: Shape) -> str:
        return f" {self.refs[0]}" + (" wh" if self.scale_wh else "")


@register("scale_channels", options=ScaleChannelsOptions, only="alexeyab")
def build(ctx: BuildContext) -> ScaleChannelsLayer:
    r = ctx.reader
    o = r.read(ScaleChannelsOptions)
    r.check(len(o.from_) == 1, f"from= takes one layer, got {len(o.from_)}", "from")
    check_activation(ctx, o.activation)
    ref = ctx.layer_index(o.from_[0], "from")
    s, i = ctx.shapes[ref], ctx.input_shape
    if o.scale_wh:
        r.check(i.c == 1 and (i.h, i.w) == (s.h, s.w),
                f"with scale_wh=1 the previous layer must be 1x{s.h}x{s.w} (c x h x w) to "
                f"scale layer {ref}, got {i.c}x{i.h}x{i.w}", "scale_wh")
    else:
        r.check((i.h, i.w) == (1, 1) and i.c == s.c,
                f"the previous layer must be {s.c}x1x1 (c x h x w) to scale the channels of "
                f"layer {ref}, got {i.c}x{i.h}x{i.w}", "from")
    # parse_network_cfg: use_bin_output = 0 on the previous layer and the from-layer
    for index in {ctx.index - 1, ref} - {-1}:
        ctx.layers[index].clear_bin_output()
    return ScaleChannelsLayer(ctx.index, check_shape(ctx, Shape(*s)), ref, bool(o.scale_wh),
                              o.activation)
