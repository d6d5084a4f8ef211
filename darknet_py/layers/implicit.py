"""``[implicit]`` (AlexeyAB ``representation_layer.c``): a learned constant tensor.

``make_implicit_layer`` gives an output of ``filters x atoms x 1``
(out_c = filters, out_h = atoms, out_w = 1) holding ``nweights = filters*atoms``
weights; ``forward_implicit_layer`` copies them to every image of the batch
(``output[i] = weights[i % nweights]``) and ignores its input. The weights are
initialised ``mean + U(-std, std)`` and are stored in .weights, flat, in that
order (``save_implicit_weights`` / ``load_implicit_weights``, no header).

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=4\\nheight=4\\nchannels=3\\n"
    ...                         "[implicit]\\nfilters=2\\natoms=3\\nstd=0\\nmean=0.5\\n"))
    >>> tuple(net.layers[0].out_shape), net(torch.zeros(2, 3, 4, 4)).shape
    ((2, 3, 1), torch.Size([2, 2, 3, 1]))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor, nn

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, Shape, check_shape, initialising
from .registry import register


@dataclass
class ImplicitOptions:
    mean: float = option(0.0, doc="initial value: mean + U(-std, std)")
    std: float = option(0.2)
    filters: int = option(128)
    atoms: int = option(1)


class ImplicitLayer(DarknetLayer):
    kind = "implicit"

    def __init__(self, index: int, out_shape: Shape, mean: float, std: float) -> None:
        super().__init__(index, out_shape)
        self.weight = nn.Parameter(torch.empty(*out_shape))
        self.mean, self.std = mean, std
        if initialising():
            self.reset_parameters()

    def reset_parameters(self) -> None:
        spread = abs(self.std)  # utils.c:rand_uniform swaps reversed bounds
        with torch.no_grad():
            self.weight.uniform_(-spread, spread).add_(self.mean)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        return self.weight.unsqueeze(0).repeat(x.shape[0], 1, 1, 1)  # own memory per call

    def weight_tensors(self) -> List[Tensor]:
        return [self.weight]

    def describe(self, in_shape: Shape) -> str:
        return f"{self.out_shape.c:>5} x{self.out_shape.h:>2}"


@register("implicit", options=ImplicitOptions, only="alexeyab")
def build(ctx: BuildContext) -> ImplicitLayer:
    r = ctx.reader
    o = r.read(ImplicitOptions)
    r.check(o.filters > 0, f"filters must be > 0, got {o.filters}", "filters")
    r.check(o.atoms > 0, f"atoms must be > 0, got {o.atoms}", "atoms")
    ctx.check_weights(o.filters * o.atoms, "filters")
    out = check_shape(ctx, Shape(o.filters, o.atoms, 1))
    return ImplicitLayer(ctx.index, out, o.mean, o.std)
