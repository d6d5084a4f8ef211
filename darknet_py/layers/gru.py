"""``[gru]`` (``gru_layer.c``): Darknet's GRU, six inner linear [connected] layers.

Steps are carved out of the batch as for [rnn] (see :mod:`darknet_py.layers.rnn`). Per step,
as ``forward_gru_layer`` on the CPU (``u*`` read the input, ``w*`` the state; each is a
connected layer with a linear activation and, with ``batch_normalize=1``, its own BN)::

    z     = logistic(uz(x_i) + wz(state))
    r     = logistic(ur(x_i) + wr(state))
    h     = act(uh(x_i) + wh(r * state))       # act: logistic, or tanh with pjreddie's tanh=1
    state = y_i = z * state + (1 - z) * h      # weighted_sum_cpu

Darknet never zeroes a GRU's state (neither between inference calls nor when training), so
it runs on from call to call here too (:meth:`GRULayer.reset_state` zeroes it). AlexeyAB's
fork has no ``tanh=`` (its ``USET`` compile flag is off).

Training: ``backward_gru_layer`` is empty in both forks' CPU code, so a [gru] passes no delta
to the layers before it and its inner layers get no gradient: pjreddie's update_network then
moves their weights by the weight decay (and momentum) alone, AlexeyAB's not at all (no
``l.train``). A training forward here runs without autograd, to the same effect.

.weights order (``parser.c:load_weights``): pjreddie ``wz, wr, wh, uz, ur, uh``; AlexeyAB
``input_z, input_r, input_h, state_z, state_r, state_h`` (= ``uz, ur, uh, wz, wr, wh``).
Darknet cannot resize a [gru].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from .activations import get as activation
from .base import BuildContext, Shape
from .registry import register
from .rnn import Recurrent, connected, flat_sizes, gate_table


@dataclass
class GRUOptions:
    output: int = option(1)
    batch_normalize: int = option(0)
    tanh: int = option(0, only="pjreddie")


class GRULayer(Recurrent):
    kind = "gru"
    #: pjreddie creates (and prints) them in this order
    created = ("uz", "wz", "ur", "wr", "uh", "wh")

    def __init__(self, index: int, inputs: int, opts: GRUOptions, steps: int, dialect) -> None:
        super().__init__(index, Shape(opts.output, 1, 1), steps)
        self.flat = True
        self.opts = opts
        self.inputs = inputs
        n, bn = opts.output, opts.batch_normalize
        self.outputs = n
        for name in self.created:
            setattr(self, name, connected(index, inputs if name[0] == "u" else n, n, "linear", bn, dialect))
        self.inner_names = (("uz", "ur", "uh", "wz", "wr", "wh") if dialect.name == "alexeyab"
                            else ("wz", "wr", "wh", "uz", "ur", "uh"))
        self._logistic = activation("logistic")
        self._h_act = activation("tanh" if opts.tanh and dialect.name != "alexeyab" else "logistic")

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        if self.training and torch.is_grad_enabled():
            # backward_gru_layer is empty in both forks: no gradient reaches the inner layers
            # (update_network moves them by the weight decay alone) nor the layer's input
            with torch.no_grad():
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        k, xs = self.split_steps(x)
        (state,) = self.initial_state(k, x, [self.outputs], keep_when_training=True)

        def run(layer, inp: Tensor) -> Tensor:
            return layer(inp, []).view(k, -1)

        out = []
        for i in range(self.steps):
            z = self._logistic(run(self.uz, xs[i]) + run(self.wz, state))
            r = self._logistic(run(self.ur, xs[i]) + run(self.wr, state))
            h = self._h_act(run(self.uh, xs[i]) + run(self.wh, state * r))
            state = z * state + (1 - z) * h
            out.append(state.view(k, -1, 1, 1))
        self.keep_state([state], keep_when_training=True)
        return torch.cat(out, 0)

    def table_line(self, in_shape: Shape) -> str:
        return gate_table("GRU Layer", self, in_shape)


@register("gru", options=GRUOptions)
def build(ctx: BuildContext) -> GRULayer:
    r = ctx.reader
    o = r.read(GRUOptions)
    steps, inputs = flat_sizes(ctx, o.output, lambda i: 3 * (i + o.output) * o.output)
    return GRULayer(ctx.index, inputs, o, steps, ctx.dialect)
