"""``[route]`` (``route_layer.c``): concatenate earlier layers along channels.

``layers=`` is a comma list; negative values are relative to this layer,
others absolute. All inputs must have the same width and height. AlexeyAB's
``groups=G group_id=k`` takes the k-th contiguous 1/G slice of every input.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = "[net]\\nwidth=1\\nheight=1\\nchannels=4\\n[avgpool]\\n[route]\\nlayers=-1\\n"
    >>> cfg += "[route]\\nlayers=0,-1\\ngroups=2\\ngroup_id=1\\n"
    >>> net = Darknet(parse_cfg(cfg), dialect="alexeyab")
    >>> net(torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist()
    [2.0, 3.0, 2.0, 3.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from .base import BuildContext, DarknetLayer, ResizeError, Shape, check_shape
from .registry import register


@dataclass
class RouteOptions:
    layers: List[int] = option(required=True)
    groups: int = option(1, only="alexeyab")
    group_id: int = option(0, only="alexeyab")
    stream: int = option(-1, only="alexeyab")
    wait_stream: int = option(-1, only="alexeyab")


class RouteLayer(DarknetLayer):
    kind = "route"
    reads_previous = False  # only the layers it names

    def __init__(self, index: int, out_shape: Shape, refs: List[int], groups: int,
                 group_id: int) -> None:
        super().__init__(index, out_shape, refs)
        self.groups = groups
        self.group_id = group_id

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        if self.groups > 1:
            parts = []
            for r in refs:
                step = r.shape[1] // self.groups
                parts.append(r[:, self.group_id * step:(self.group_id + 1) * step])
            refs = parts
        return refs[0] if len(refs) == 1 else torch.cat(refs, dim=1)

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_route_layer: the routed layers' current shapes, which must agree in w x h."""
        first = ref_shapes[0]
        channels = 0
        for ref, s in zip(self.refs, ref_shapes):
            if (s.h, s.w) != (first.h, first.w):
                raise ResizeError(f"layer {self.index} [route]: layer {ref} would be {s.w}x{s.h} "
                                  f"but layer {self.refs[0]} {first.w}x{first.h}")
            channels += s.c // self.groups
        return Shape(channels, first.h, first.w)

    def describe(self, in_shape: Shape) -> str:
        text = " " + " ".join(str(i) for i in self.refs)
        if self.groups > 1:
            text += f" /{self.groups}({self.group_id})"
        return text

    def table_line(self, in_shape: Shape) -> str:
        return "route " + "".join(f" {i}" for i in self.refs)


@register("route", options=RouteOptions)
def build(ctx: BuildContext) -> RouteLayer:
    r = ctx.reader
    o = r.read(RouteOptions)
    r.check(o.groups >= 1, f"groups must be >= 1, got {o.groups}", "groups")
    r.check(0 <= o.group_id < o.groups, f"group_id must be in [0, {o.groups}), got {o.group_id}",
            "group_id")
    refs = [ctx.layer_index(v, "layers") for v in o.layers]
    first = ctx.shapes[refs[0]]
    channels = 0
    for ref in refs:
        s = ctx.shapes[ref]
        r.check((s.h, s.w) == (first.h, first.w),
                f"layer {ref} is {s.w}x{s.h} but layer {refs[0]} is {first.w}x{first.h}; "
                f"routed layers must have the same width and height", "layers")
        r.check(s.c % o.groups == 0,
                f"layer {ref} has {s.c} channels, not divisible by groups={o.groups}", "groups")
        channels += s.c // o.groups
    out = Shape(channels, first.h, first.w)
    for ref in refs:  # AlexeyAB's parse_network_cfg: use_bin_output = 0 on each input
        ctx.layers[ref].clear_bin_output()
    return RouteLayer(ctx.index, check_shape(ctx, out), refs, o.groups, o.group_id)
