"""``[softmax]`` / ``[soft]`` (``softmax_layer.c``).

Splits the flat input into ``groups`` contiguous groups and applies
``exp(x/t - max/t) / sum`` within each (``blas.c:softmax``). Darknet's output
is a flat vector, so :meth:`Darknet.layer_outputs` returns it as (batch, N).

Training (``forward_softmax_layer`` with a truth, both forks): the truth is the network's
``net.truth`` read flat against the output (``softmax_x_ent_cpu``): ``delta = t - p`` and
``cost = sum(t ? -log(p) : 0)``; ``noloss=1`` leaves both 0 (the cost still counts in the
network's mean). ``backward_softmax_layer`` adds ``l.delta`` to the input's delta as it is,
without the softmax's (or the temperature's) derivative: so does this layer's backward in
training mode.

With ``tree=`` (darknet9000's hierarchical softmax, :mod:`darknet_py.tree`) the groups are
the tree's, over the first ``tree.n`` inputs of each image, with ``temperature``
(``groups`` is then unused, as in Darknet); inputs past the tree stay 0. Training with a
tree is the same ``softmax_x_ent_cpu`` on the tree's outputs (both forks' CPU build): the truth
rows as given, e.g. made as Darknet's classifier loader makes them with
:func:`darknet_py.tree.fill_hierarchy` (ancestors 1, the groups off the label's path -1234,
which the CPU build does not mask: delta ``-1234 - p`` there, unless a ``[cost] type=masked``
follows, as in darknet9000.cfg, whose delta is then 0 there; only the CUDA build masks them).

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

import numpy as np

from .. import tree as _tree
from ..cfg.options import option
from .base import (BuildContext, DarknetLayer, LossStep, ResizeError, Shape, flat_truth,
                   head_output)
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
    #: make_softmax_layer allocates l.cost (counted in the network's mean cost)
    has_cost = True
    #: its training forward writes l.delta itself (softmax_x_ent_cpu): nothing stale
    ab_forward_zeroes_delta = True

    def __init__(self, index: int, out_shape: Shape, groups: int, temperature: float,
                 noloss: int = 0, tree: "Optional[_tree.Tree]" = None) -> None:
        super().__init__(index, out_shape)
        self.flat = True
        self.groups = groups
        self.temperature = temperature
        self.noloss = noloss
        self.tree = tree

    def _softmax(self, x: Tensor) -> Tensor:
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

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        if self.training:  # backward_softmax_layer: l.delta goes to the input unchanged
            return head_output(x.reshape(x.shape[0], -1), self._softmax)
        return self._softmax(x)

    def loss(self, output: Tensor, truth: Tensor, net_size: "tuple[int, int]", seen: int = 0,
             step: "Optional[LossStep]" = None) -> "tuple[Tensor, Tensor]":
        """softmax_x_ent_cpu over the batch: ``delta = t - p``, ``cost`` = the float sum of
        ``-log(p)`` where ``t`` is non-zero (``noloss=1``: both zero)."""
        p, t = flat_truth(self, output, truth, "outputs")
        if self.noloss:
            return torch.zeros_like(output), output.new_zeros(())
        delta = (t - p).reshape(output.shape)
        lp = p.cpu().numpy().astype(np.float64)
        with np.errstate(divide="ignore"):
            err = np.where(t.cpu().numpy() != 0, -np.log(lp), 0.0).astype(np.float32)
        cost = np.add.accumulate(err.ravel(), dtype=np.float32)[-1] if err.size else 0.0
        return delta, output.new_tensor(float(cost))

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
    return SoftmaxLayer(ctx.index, ctx.input_shape, o.groups, o.temperature, o.noloss,
                        tree)
