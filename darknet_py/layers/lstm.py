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

Training (AlexeyAB; pjreddie's [lstm] has no CPU backward and is refused): the gradient of
the forward but for ``backward_lstm_layer``'s quirks -- at step 0 it reads step 0's own cell
and output where the previous ones belong (:class:`FirstForget`, the ``w*`` layers' weight
gradients), its cell delta ``l.dc_cpu`` carries over into the next backward
(:class:`CarriedCellDelta`), and the state the next forward starts from is step 0's. Its
``make_lstm_layer`` leaves the CPU ``l.delta`` NULL, so AlexeyAB's own training dies unless
it is allocated (the harness's ``HARNESS_ALLOC_LSTM_DELTA=1``).

.weights order (``parser.c:load_weights``): pjreddie ``wi, wf, wo, wg, ui, uf, uo, ug``;
AlexeyAB ``wf, wi, wg, wo, uf, ui, ug, uo``. Darknet cannot resize an [lstm].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from ..cfg.options import option
from .activations import get as activation
from .base import BuildContext, Later, Shape
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
        self.dialect_name = dialect.name
        #: l.dc_cpu: the cell delta the last training backward left (delta space)
        self._dc: Optional[Tensor] = None

    def train_refusal(self) -> Optional[str]:
        if self.dialect_name == "pjreddie":
            return ("[lstm]: pjreddie's make_lstm_layer sets no CPU backward (l.backward stays "
                    "NULL, only backward_gpu is set: backward_network calls address 0) and no "
                    "CPU l.delta: its Darknet cannot train an [lstm], and darknet_py does not "
                    "guess what it would do")
        return None

    def reset_state(self) -> None:
        super().reset_state()
        self._dc = None

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        k, xs = self.split_steps(x)
        h, c = self.initial_state(k, x, [self.outputs, self.outputs], keep_when_training=True)
        darknet_backward = self.training and torch.is_grad_enabled()
        h0, c0 = Later(), Later()  # what l.prev_state_cpu / l.prev_cell_cpu hold at step 0
        if darknet_backward:
            for name in "fiog":
                getattr(self, "w" + name).weight_grad_input(h0)

        def gate(name: str, xi: Tensor) -> Tensor:
            return (getattr(self, "w" + name)(h, []).view(k, -1)
                    + getattr(self, "u" + name)(xi, []).view(k, -1))

        out = []
        for t in range(self.steps):
            f = self._logistic(gate("f", xs[t]))
            i = self._logistic(gate("i", xs[t]))
            g = self._tanh(gate("g", xs[t]))
            o = self._logistic(gate("o", xs[t]))
            fc = FirstForget.apply(f, c, c0, self) if darknet_backward and t == 0 else c * f
            c = fc + i * g
            if t == 0:
                # backward_lstm_layer copies step i-1's cell and output into them for i > 0
                # only: at step 0 they still hold step 0's own (zeros: calloc, with one step)
                c0.value = c.detach() if self.steps > 1 else torch.zeros_like(c)
            if darknet_backward and t == self.steps - 1:
                c = CarriedCellDelta.apply(c, self)
            h = self._tanh(c) * o
            if t == 0:
                h0.value = h.detach() if self.steps > 1 else torch.zeros_like(h)
            out.append(h.view(k, -1, 1, 1))
            if t == 0:
                first = [h, c]
        # backward_lstm_layer walks the steps back through l.h_cpu / l.c_cpu, the state the
        # next forward starts from: after a training step it is step 0's
        self.keep_state(first if darknet_backward else [h, c], keep_when_training=True)
        return torch.cat(out, 0)

    def table_line(self, in_shape: Shape) -> str:
        return gate_table("LSTM Layer", self, in_shape)


class FirstForget(torch.autograd.Function):
    """Step 0's ``f * c_prev`` (Darknet's ``c *= f``); backward as backward_lstm_layer's at
    i = 0: the forget gate's delta reads ``l.prev_cell_cpu`` (``c0``, step 0's own cell) in
    place of the cell carried in, and the cell delta it leaves (``l.dc_cpu = temp2 * f``) is
    kept on the layer for the next backward (:class:`CarriedCellDelta`)."""

    @staticmethod
    def forward(ctx, f: Tensor, c_prev: Tensor, c0: Later, layer) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(f)
        ctx.c0, ctx.layer = c0, layer
        return c_prev * f

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (f,) = ctx.saved_tensors
        carried = grad * f
        ctx.layer._dc = (-carried).detach().clone()  # Darknet's dc_cpu (a delta: -gradient)
        return grad * ctx.c0.value, carried, None, None


class CarriedCellDelta(torch.autograd.Function):
    """The last step's cell; backward adds ``l.dc_cpu`` as the previous backward left it
    (backward_lstm_layer never clears it: ``temp2 += dc_cpu`` at the last step)."""

    @staticmethod
    def forward(ctx, c: Tensor, layer) -> Tensor:  # type: ignore[override]
        ctx.layer = layer
        return c.view_as(c)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        dc = getattr(ctx.layer, "_dc", None)
        if dc is not None and dc.shape == grad.shape:
            grad = grad - dc
        return grad, None


@register("lstm", options=LSTMOptions)
def build(ctx: BuildContext) -> LSTMLayer:
    r = ctx.reader
    o = r.read(LSTMOptions)
    steps, inputs = flat_sizes(ctx, o.output, lambda i: 4 * (i + o.output) * o.output)
    return LSTMLayer(ctx.index, inputs, o, steps, ctx.dialect)
