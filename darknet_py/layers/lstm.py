"""``[lstm]`` (``lstm_layer.c``): Darknet's LSTM, eight inner linear [connected] layers.

Steps are carved out of the batch as for [rnn] (see :mod:`darknet_py.layers.rnn`). Per step,
as ``forward_lstm_layer`` on the CPU (the same in both forks; ``u*`` read the input, ``w*``
the hidden state ``h``; each a linear connected layer with its own BN when
``batch_normalize=1``)::

    f = logistic(wf(h) + uf(x_i));  i = logistic(wi(h) + ui(x_i))
    g = tanh(wg(h) + ug(x_i));      o = logistic(wo(h) + uo(x_i))
    c = f * c + i * g
    h = y_i = o * tanh(c)

Darknet never zeroes ``h`` and ``c`` (neither between inference calls nor when training):
they run on here too (:meth:`LSTMLayer.reset_state` zeroes them).

.weights order (``parser.c:load_weights``): pjreddie ``wi, wf, wo, wg, ui, uf, uo, ug``;
AlexeyAB ``wf, wi, wg, wo, uf, ui, ug, uo``. Darknet cannot resize an [lstm].
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
class LSTMOptions:
    output: int = option(1)
    batch_normalize: int = option(0)


class LSTMLayer(Recurrent):
    kind = "lstm"
    #: make_lstm_layer creates (and prints) them in this order
    created = ("uf", "ui", "ug", "uo", "wf", "wi", "wg", "wo")

    def __init__(self, index: int, inputs: int, opts: LSTMOptions, steps: int, dialect) -> None:
        super().__init__(index, Shape(opts.output, 1, 1), steps)
        self.flat = True
        self.opts = opts
        self.inputs = inputs
        n, bn = opts.output, opts.batch_normalize
        self.outputs = n
        for name in self.created:
            setattr(self, name, connected(index, inputs if name[0] == "u" else n, n, "linear", bn, dialect))
        self.inner_names = (("wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo") if dialect.name == "alexeyab"
                            else ("wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug"))
        self._logistic = activation("logistic")
        self._tanh = activation("tanh")

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        k, xs = self.split_steps(x)
        h, c = self.initial_state(k, x, [self.outputs, self.outputs], keep_when_training=True)

        def gate(name: str, xi: Tensor) -> Tensor:
            return (getattr(self, "w" + name)(h, []).view(k, -1)
                    + getattr(self, "u" + name)(xi, []).view(k, -1))

        out = []
        for t in range(self.steps):
            f = self._logistic(gate("f", xs[t]))
            i = self._logistic(gate("i", xs[t]))
            g = self._tanh(gate("g", xs[t]))
            o = self._logistic(gate("o", xs[t]))
            c = c * f + i * g
            h = self._tanh(c) * o
            out.append(h.view(k, -1, 1, 1))
        self.keep_state([h, c], keep_when_training=True)
        return torch.cat(out, 0)

    def table_line(self, in_shape: Shape) -> str:
        return gate_table("LSTM Layer", self, in_shape)


@register("lstm", options=LSTMOptions)
def build(ctx: BuildContext) -> LSTMLayer:
    r = ctx.reader
    o = r.read(LSTMOptions)
    steps, inputs = flat_sizes(ctx, o.output, lambda i: 4 * (i + o.output) * o.output)
    return LSTMLayer(ctx.index, inputs, o, steps, ctx.dialect)
