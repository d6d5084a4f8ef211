"""``[sam]`` (AlexeyAB ``sam_layer.c``): spatial attention, an elementwise product.

``out = act(prev * from)``: the previous layer's output (``state.input``)
times the output of the single layer named by ``from=`` (negative = relative),
then ``activate_array``. Both must have the same c x h x w (``make_sam_layer``
asserts it). ``from=`` is read with ``atoi``, so only one layer is allowed.

Only activations that AlexeyAB's CPU ``activate()`` implements are accepted:
``swish``/``mish``/``hard_mish``/``relu6``/``normalize_channels*`` have no case
there (the CPU path writes 0s; parse_sam warns about swish/mish), so they are a
CfgError here.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = ("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[upsample]\\nstride=1\\n"
    ...        "[upsample]\\nstride=1\\nscale=3\\n[sam]\\nfrom=-2\\n")
    >>> Darknet(parse_cfg(cfg))(torch.tensor([[[[1.0, -2.0]]]])).flatten().tolist()
    [3.0, 12.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from torch import Tensor

from ..cfg.options import option
from . import activations
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape
from .registry import register

#: activations ``activations.c:activate()`` has a case for (others give 0 on the CPU).
CPU_ACTIVATE = ("linear", "logistic", "loggy", "relu", "elu", "selu", "gelu", "relie", "ramp",
                "revleaky", "leaky", "tanh", "plse", "stair", "hardtan", "lhtan")


@dataclass
class SamOptions:
    from_: List[int] = option(key="from", required=True, doc="one layer (negative = relative)")
    activation: str = option("linear", choices=activations.names)


def check_activation(ctx: BuildContext, name: str) -> None:
    """Refuse activations AlexeyAB's generic ``activate_array`` does not compute."""
    r = ctx.reader
    r.check(name in CPU_ACTIVATE, f"activation={name} is not computed by AlexeyAB's "
            f"activate_array for this layer (its CPU path outputs 0); use one of "
            f"{', '.join(CPU_ACTIVATE)}", "activation")


class SamLayer(DarknetLayer):
    kind = "sam"

    def __init__(self, index: int, out_shape: Shape, ref: int, activation: str) -> None:
        super().__init__(index, out_shape, [ref])
        self.activation = activation
        self._act = activations.get(activation, "alexeyab")

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return self._act(x * refs[0])

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_sam_layer: the output takes the input's size; the from-layer must agree."""
        if ref_shapes[0] != in_shape:
            raise ResizeError(f"layer {self.index} [sam]: layer {self.refs[0]} would be "
                              f"{tuple(ref_shapes[0])} but the previous layer {tuple(in_shape)}")
        return Shape(*in_shape)

    def describe(self, in_shape: Shape) -> str:
        return f" {self.refs[0]}"


@register("sam", options=SamOptions, only="alexeyab")
def build(ctx: BuildContext) -> SamLayer:
    r = ctx.reader
    o = r.read(SamOptions)
    r.check(len(o.from_) == 1, f"from= takes one layer, got {len(o.from_)}", "from")
    check_activation(ctx, o.activation)
    ref = ctx.layer_index(o.from_[0], "from")
    s, i = ctx.shapes[ref], ctx.input_shape
    r.check(s == i, f"layer {ref} is {s.c}x{s.h}x{s.w} but the previous layer is "
            f"{i.c}x{i.h}x{i.w} (c x h x w); [sam] multiplies equal shapes", "from")
    # parse_network_cfg: use_bin_output = 0 on the previous layer and the from-layer
    for index in {ctx.index - 1, ref} - {-1}:
        ctx.layers[index].clear_bin_output()
    return SamLayer(ctx.index, check_shape(ctx, Shape(*s)), ref, o.activation)
