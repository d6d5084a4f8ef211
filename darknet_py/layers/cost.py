"""``[cost]`` (``cost_layer.c``): a loss on the layer before; a pass-through at inference.

``forward_cost_layer`` returns at once when there is no truth, so at
inference its ``l.output`` (the per-value loss buffer, a flat vector) stays
zeros -- and that is what this layer outputs. Darknet's network output
(``get_network_output``) skips trailing [cost] layers, and so does
``Darknet.forward``: the network's output is the layer before. ``type``: sse,
masked, smooth (both dialects), seg, L1, wgan (pjreddie); Darknet falls back to
sse for other names.

Training (``forward_cost_layer`` / ``backward_cost_layer``, the CPU build of each fork, which
is what the tests compare with): the truth is ``net.truth`` read flat against the input
(``l.batch*l.inputs`` values: a classifier's one-hot rows, a regression's targets), with
``diff = t - x``:

* every type but smooth and L1 (sse, seg, masked; wgan too, refused below): ``l2_cpu``, per
  value ``delta = diff``, ``output = diff*diff``;
* masked: first every input value whose truth is ``SECRET_NUM`` (-1234) is set to -1234 *in
  the previous layer's output* (so those values get delta 0 and loss 0), then ``l2_cpu``;
* smooth: ``smooth_l1_cpu``: ``|diff| < 1``: ``diff*diff`` / ``diff``; else ``2|diff| - 1``
  and a delta of +-1 -- pjreddie's CPU gives it the sign of ``-diff``, AlexeyAB's of ``diff``;
* L1 (pjreddie): ``l1_cpu``: ``|diff|``, delta ``diff > 0 ? 1 : -1``.

``*(l.cost)`` is the float sum of ``l.output`` (``sum_array``); it counts in the network's
mean cost with the other layers' (a [softmax] before it keeps its own cross-entropy loss and
delta: backward_cost_layer *adds* ``scale * l.delta`` to that layer's delta). ``ratio=`` is
read and never used (the CUDA forward sorts the delta pulled to the host, then forces its threshold
to 0).

Refused in training, because only the CUDA forward (``forward_cost_layer_gpu``, pjreddie)
implements them and the CPU one trains them as sse: ``type=wgan`` (``wgan_gpu``), ``thresh=``
(``supp_gpu`` on the delta) and ``noobj=`` other than 1 with ``type=seg`` (``scale_mask_gpu``).
pjreddie's CUDA forward also differs from its CPU one for smooth (the other sign) and masked
(it leaves the input alone and masks ``net.delta_gpu``): darknet_py follows the CPU build.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[avgpool]\\n"
    ...                         "[cost]\\ntype=sse\\n"))
    >>> x = torch.tensor([[[[1.0, 2.0]]]])
    >>> net(x).flatten().tolist(), net.layer_outputs(x)[1].tolist(), net.layers[1].cost_type
    ([1.5], [[0.0]], 'sse')
    >>> delta, cost = net.layers[1].loss(torch.tensor([[1.5]]), torch.tensor([[2.0]]), (2, 1))
    >>> delta.tolist(), float(cost)
    ([[0.5]], 0.25)
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..cfg.options import option
from ..errors import CfgWarning
from .base import BuildContext, DarknetLayer, LossStep, flat_truth, head_output
from .registry import register

COST_TYPES = {"pjreddie": ("seg", "sse", "masked", "smooth", "L1", "wgan"),
              "alexeyab": ("sse", "masked", "smooth")}

#: darknet.h's SECRET_NUM: a truth value that masks the input value (type=masked)
SECRET_NUM = -1234.0


@dataclass
class CostOptions:
    type: str = option("sse")
    scale: float = option(1.0)
    ratio: float = option(0.0)
    noobj: float = option(1.0, only="pjreddie")
    thresh: float = option(0.0, only="pjreddie")


class CostLayer(DarknetLayer):
    kind = "cost"
    elementwise = True
    #: make_cost_layer allocates l.cost (counted in the network's mean cost)
    has_cost = True
    #: its training forward writes every value of l.delta itself
    ab_forward_zeroes_delta = True

    def __init__(self, index, out_shape, opts: CostOptions, dialect: str = "pjreddie") -> None:
        super().__init__(index, out_shape)
        self.flat = True
        self.opts = opts
        self.cost_type = opts.type
        self.scale = opts.scale
        self.dialect_name = dialect

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        if self.training:  # the input, for loss(); backward_cost_layer's delta goes to it
            return head_output(x, torch.clone)
        return torch.zeros_like(x)  # no truth: the loss buffer stays zeros

    def train_refusal(self) -> Optional[str]:
        o = self.opts
        gpu_only = None
        if self.cost_type == "wgan":
            gpu_only = "type=wgan (wgan_gpu)"
        elif o.thresh:
            gpu_only = f"thresh={o.thresh:g} (supp_gpu on the delta)"
        elif self.cost_type == "seg" and o.noobj != 1:
            gpu_only = f"type=seg with noobj={o.noobj:g} (scale_mask_gpu)"
        if gpu_only:
            return (f"[cost] {gpu_only}: only pjreddie's CUDA forward_cost_layer_gpu implements "
                    f"it, its CPU forward_cost_layer trains plain sse; darknet_py does not guess "
                    f"which")
        return None

    def _per_value(self, x: Tensor, t: Tensor) -> "Tuple[Tensor, Tensor, Tensor]":
        """(input as Darknet leaves it, l.delta, l.output) of forward_cost_layer."""
        if self.cost_type == "masked":
            x = torch.where(t == SECRET_NUM, torch.full_like(x, SECRET_NUM), x)
        diff = t - x
        if self.cost_type == "smooth":
            small = diff.abs() < 1
            sign = (diff > 0) if self.dialect_name == "alexeyab" else (diff < 0)
            step = torch.where(sign, torch.ones_like(diff), -torch.ones_like(diff))
            return (x, torch.where(small, diff, step),
                    torch.where(small, diff * diff, 2 * diff.abs() - 1))
        if self.cost_type == "L1":
            return (x, torch.where(diff > 0, torch.ones_like(diff), -torch.ones_like(diff)),
                    diff.abs())
        return x, diff, diff * diff

    def _flat(self, output: Tensor, truth: Tensor) -> "Tuple[Tensor, Tensor]":
        return flat_truth(self, output, truth, "inputs")

    def loss(self, output: Tensor, truth: Tensor, net_size: "tuple[int, int]", seen: int = 0,
             step: "Optional[LossStep]" = None) -> "tuple[Tensor, Tensor]":
        """``l.delta`` (before ``scale``: see :meth:`input_delta`) and ``*(l.cost)``, the float
        sum of the per-value loss in Darknet's order."""
        x, t = self._flat(output, truth)
        _, delta, err = self._per_value(x, t)
        e = err.cpu().numpy().astype(np.float32).ravel()
        cost = np.add.accumulate(e, dtype=np.float32)[-1] if e.size else 0.0
        return delta.reshape(output.shape), output.new_tensor(float(cost))

    def input_delta(self, delta: Tensor, output: Tensor) -> Tensor:
        """backward_cost_layer: ``axpy(l.scale, l.delta -> net.delta)``."""
        return delta * self.scale if self.scale != 1 else delta

    def loss_buffers(self, output: Tensor, truth: Tensor) -> "Tuple[Tensor, Optional[Tensor]]":
        """``l.output`` after the training forward (the per-value loss) and the previous
        layer's output as masked leaves it (None for the other types: untouched)."""
        x, t = self._flat(output, truth)
        masked, _, err = self._per_value(x, t)
        return err.reshape(output.shape), (masked if self.cost_type == "masked" else None)

    def describe(self, in_shape) -> str:
        return f"{in_shape.numel:>8}"

    def table_line(self, in_shape) -> str:
        return f"cost{'':43}{in_shape.numel:4d}"


@register("cost", options=CostOptions)
def build(ctx: BuildContext) -> CostLayer:
    r = ctx.reader
    o = r.read(CostOptions)
    known = COST_TYPES[ctx.dialect.name]
    if o.type not in known:
        entry = r.section.find("type")
        where = f"{r.section.file}:{entry.line if entry is not None else r.section.line}"
        warnings.warn(CfgWarning(f"{where}: [cost] unknown type {o.type!r}; Darknet goes with "
                                 f"sse (known: {', '.join(known)})"), stacklevel=2)
        o.type = "sse"
    return CostLayer(ctx.index, ctx.input_shape, o, ctx.dialect.name)
