"""``[softmax]`` / ``[soft]`` (``softmax_layer.c``).

Splits the flat input into ``groups`` contiguous groups and applies
``exp(x/t - max/t) / sum`` within each (``blas.c:softmax``). Darknet's output
is a flat vector, so :meth:`Darknet.layer_outputs` returns it as (batch, N).

With ``tree=`` (darknet9000's hierarchical softmax, :mod:`darknet_py.tree`) the groups are
the tree's, over the first ``tree.n`` inputs of each image, with ``temperature``
(``groups`` is then unused, as in Darknet); inputs past the tree stay 0.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=1\\nheight=1\\nchannels=2\\n[softmax]\\n"))
    >>> [round(v, 4) for v in net(torch.zeros(1, 2, 1, 1)).flatten().tolist()]
    [0.5, 0.5]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from .. import tree as _tree
from ..cfg.options import option
from .base import BuildContext, DarknetLayer, ResizeError, Shape
from .registry import register


@dataclass
class SoftmaxOptions:
    groups: int = option(1)
    temperature: float = option(1.0)
    tree: Optional[str] = option(None, doc="YOLO9000 hierarchy file (hierarchical softmax)")
    spatial: float = option(0.0)
    noloss: int = option(0)


class SoftmaxLayer(DarknetLayer):
    kind = "softmax"
    elementwise = True

    def __init__(self, index: int, out_shape: Shape, groups: int, temperature: float,
                 tree: "Optional[_tree.Tree]" = None) -> None:
        super().__init__(index, out_shape)
        self.flat = True
        self.groups = groups
        self.temperature = temperature
        self.tree = tree

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        b = x.shape[0]
        if self.tree is not None:
            return _tree.hier_softmax(x.reshape(b, -1), self.tree, self.temperature)
        g = x.reshape(b, self.groups, -1)
        t = self.temperature
        largest = g.max(dim=2, keepdim=True).values
        e = torch.exp(g / t - largest / t)
        return (e / e.sum(dim=2, keepdim=True)).reshape(b, -1)

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        if self.tree is not None and in_shape.numel < self.tree.n:
            raise ResizeError(f"layer {self.index} [softmax]: {in_shape.numel} inputs are fewer "
                              f"than the {self.tree.n} classes of its tree")
        return super().resize(in_shape, ref_shapes)

    def describe(self, in_shape: Shape) -> str:
        return f"{in_shape.numel:>8}"

    def table_line(self, in_shape: Shape) -> str:
        return f"softmax{'':40}{in_shape.numel:4d}"


@register("softmax", "soft", options=SoftmaxOptions)
def build(ctx: BuildContext) -> SoftmaxLayer:
    r = ctx.reader
    o = r.read(SoftmaxOptions)
    r.check(o.spatial == 0, "spatial= is not supported", "spatial")
    n = ctx.input_shape.numel
    r.check(o.groups >= 1 and n % o.groups == 0,
            f"groups={o.groups} must divide the {n} inputs", "groups")
    r.check(o.temperature != 0, "temperature must not be 0", "temperature")
    tree = None
    if o.tree is not None:
        tree = _tree.tree_option(r, o.tree)
        r.check(tree.n <= n, f"the tree {o.tree} has {tree.n} classes, more than the {n} "
                f"inputs (Darknet would read and write past them)", "tree")
    return SoftmaxLayer(ctx.index, ctx.input_shape, o.groups, o.temperature, tree)
