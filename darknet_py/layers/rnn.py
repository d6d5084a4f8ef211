"""``[rnn]`` (``rnn_layer.c``): Darknet's vanilla recurrent layer, three inner [connected] layers.

Time steps are carved out of the batch: the network's ``time_steps`` (``[net]``) is the
layer's ``steps``, and a forward over ``B = steps * k`` rows runs ``steps`` steps of ``k``
sequences each, step ``i`` reading rows ``i*k .. i*k+k-1`` (Darknet's ``net.input +
i*inputs*batch``). Per step, as ``forward_rnn_layer`` on the CPU::

    a     = input_layer(x_i)              # connected inputs -> hidden (its BN, activation)
    s     = self_layer(state)             # connected hidden -> hidden
    state = (shortcut ? state : 0) + a + s
    y_i   = output_layer(state)           # connected hidden -> outputs

pjreddie's fork has ``hidden = output`` (it does not read ``hidden=``); AlexeyAB's reads
``hidden=`` and ``logistic=`` (1: the self layer uses logistic, 2: loggy, instead of
``activation``). In inference Darknet keeps ``l.state`` from one forward call to the next
(the state starts at zero); a training forward starts from zero. This module does the same:
:meth:`RNNLayer.reset_state` zeroes it, and a forward whose ``k`` differs from the kept
state's starts from zero (Darknet's buffer is sized for the cfg's batch).

Training follows ``backward_rnn_layer`` (both forks), which is not the forward's gradient
(:func:`vanilla_steps`); AlexeyAB's update_network never moves an [rnn] (no ``l.train``),
pjreddie's Darknet cannot train one at all (its ``l.state`` holds one step and the training
forward writes past it): darknet_py trains it by the same loops and warns.

.weights order (``parser.c:load_weights``, both forks): the input, self and output layers,
each as ``load_connected_weights`` (biases, weights, then BN scales/mean/variance).
Darknet's ``resize_network`` has no case for [rnn]; it cannot be resized.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\ninputs=1\\ntime_steps=2\\n"
    ...                         "[rnn]\\noutput=1\\nactivation=linear\\n"))
    >>> rnn = net.layers[0]
    >>> for inner, w in ((rnn.input_layer, 2.0), (rnn.self_layer, 0.5), (rnn.output_layer, 3.0)):
    ...     _ = inner.weight.data.fill_(w)
    >>> net(torch.tensor([[1.0], [10.0]])).flatten().tolist()   # states 2, 20+1 -> y 6, 63
    [6.0, 63.0]
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional

import torch
from torch import Tensor

from ..cfg.options import option
from ..errors import CfgWarning
from . import activations
from .base import BuildContext, DarknetLayer, Shape, check_shape
from .connected import ConnectedLayer, ConnectedOptions
from .registry import register

if TYPE_CHECKING:
    from .convolutional import ConvolutionalLayer


@dataclass
class RNNOptions:
    output: int = option(1)
    hidden: int = option(1, only="alexeyab")
    activation: str = option("logistic", choices=activations.names)
    batch_normalize: int = option(0)
    logistic: int = option(0, only="alexeyab", doc="1: self layer logistic, 2: loggy")
    shortcut: int = option(0)


class Recurrent(DarknetLayer):
    """What the recurrent layers share: steps carved out of the batch, the kept state,
    the inner layers' .weights order and the transposed-weights flag."""

    #: the inner layers in .weights order (names of attributes)
    inner_names: "tuple[str, ...]" = ()
    #: l.delta of a recurrent layer is its output layer's, over all steps
    delta_comparable = False
    #: each one's training forward clears the delta buffers its backward reads
    ab_forward_zeroes_delta = True

    def __init__(self, index: int, out_shape: Shape, steps: int) -> None:
        super().__init__(index, out_shape)
        self.steps = steps
        self._state: "Optional[List[Tensor]]" = None

    def inner(self) -> List[DarknetLayer]:
        return [getattr(self, n) for n in self.inner_names]

    def reset_state(self) -> None:
        """Zero the state Darknet keeps between inference calls."""
        self._state = None

    def split_steps(self, x: Tensor) -> "tuple[int, Tensor]":
        b = x.shape[0]
        if b % self.steps:
            raise ValueError(f"layer {self.index} [{self.kind}]: a batch of {b} is not a multiple "
                             f"of time_steps={self.steps} (Darknet carves the steps out of the batch)")
        k = b // self.steps
        return k, x.reshape(self.steps, k, -1)

    def initial_state(self, k: int, like: Tensor, sizes: "List[int]",
                      keep_when_training: bool = False) -> List[Tensor]:
        """The kept state, or zeros: when training (unless the layer keeps its state then too,
        as Darknet's GRU/LSTM do), at the first call, or when ``k`` or the device changed."""
        kept = self._state
        if ((self.training and not keep_when_training) or kept is None
                or kept[0].shape[0] != k or kept[0].device != like.device
                or kept[0].dtype != like.dtype):
            return [like.new_zeros(k, n) for n in sizes]
        return kept

    def keep_state(self, state: List[Tensor], keep_when_training: bool = False) -> None:
        # [rnn]: a training forward does not move Darknet's l.state (it advances a copy of
        # the pointer over a zeroed buffer), so the next inference starts from zero
        if self.training and not keep_when_training:
            self._state = None
        else:
            self._state = [s.detach() for s in state]

    def set_weights_transposed(self, transposed: bool) -> None:
        for l in self.inner():
            l.set_weights_transposed(transposed)

    def rate_scale(self, cfg_scale: float) -> float:
        # the inner layers' own l.learning_rate_scale, not the section's learning_rate=
        # (parse_network_cfg sets it on the outer layer, which no update reads):
        # make_connected_layer's 1 in both forks
        return 1.0

    def weight_tensors(self) -> List[Tensor]:
        tensors: List[Tensor] = []
        for l in self.inner():
            tensors += l.weight_tensors()
        return tensors

    def uses_adam(self, dialect) -> bool:
        """pjreddie makes the inner [connected] layers with the net's adam
        (rnn/gru/lstm_layer.c make_connected_layer(..., adam)) and its update_*_layer_gpu
        call update_connected_layer_gpu with the same update_args; AlexeyAB's connected
        update has no Adam."""
        return dialect.adam_beyond_convolutional

    def flops(self, in_shape: Shape) -> float:
        return sum(l.flops(in_shape) for l in self.inner())


def vanilla_steps(layer: Recurrent, xs: Tensor, state: Tensor, shortcut: int,
                  hidden_shape: "tuple[int, ...]") -> "tuple[List[Tensor], Tensor]":
    """[rnn]/[crnn]'s steps: ``state = (shortcut ? state : 0) + input(x_i) + self(state)``,
    ``y_i = output(state)``; returns the outputs and the last state (``hidden_shape``).

    A training forward (with gradients) builds the graph of ``backward_rnn_layer`` /
    ``backward_crnn_layer`` (both forks), which is not the gradient of the forward: per step
    the self layer's backward turns the state's delta into its own l.delta (its activation's
    and BN's backward, in place), and *that* is copied to the input layer's delta and, with
    ``shortcut``, added to the earlier state's delta (:meth:`DarknetLayer.share_delta`); the
    output layer's weight gradient reads the state recomputed as ``input(x_i) + self(state)``,
    without the shortcut term; inner convolutions that overwrite their input's delta leave
    the state the output layers' gradient alone."""
    inp, self_l, outp = layer.input_layer, layer.self_layer, layer.output_layer
    k = xs.shape[1]
    darknet_backward = layer.training and torch.is_grad_enabled()
    # inner convolutions whose backward overwrites its input's delta (AlexeyAB's, pjreddie's
    # 1x1): each step's output layer then overwrites the state's delta that the next step's
    # self layer (and shortcut) wrote first: the state learns from the outputs alone
    cut = darknet_backward and self_l.overwrites_input_delta()
    out = []
    for i in range(layer.steps):
        a = inp(xs[i], []).reshape((k,) + hidden_shape)
        if darknet_backward:
            self_l.share_delta(a, *([state] if shortcut and not cut else []))
        s = self_l(state.detach() if cut else state, []).reshape((k,) + hidden_shape)
        if darknet_backward:
            a_val = a.detach()
            new = (state.detach() + a_val if shortcut else a_val) + s
            if shortcut:
                outp.weight_grad_input(a_val + s.detach())
        else:
            new = (state + a if shortcut else a) + s
        state = new
        out.append(outp(state, []))
    return out, state


def inner_bn(layer: "ConnectedLayer | ConvolutionalLayer") -> "ConnectedLayer | ConvolutionalLayer":
    """``layer`` (a [connected] or [convolutional], both with ``bn``) as a recurrent layer's
    inner one: its BN backward reads the statistics of its last step's forward
    (:attr:`~darknet_py.layers.batchnorm.BatchNorm.backward_reads_last_stats`)."""
    if layer.bn is not None:
        layer.bn.backward_reads_last_stats = True
    return layer


def connected(index: int, inputs: int, outputs: int, activation: str, bn: int, dialect) -> ConnectedLayer:
    return inner_bn(ConnectedLayer(index, inputs, ConnectedOptions(
        output=outputs, activation=activation, batch_normalize=bn), dialect))


class RNNLayer(Recurrent):
    kind = "rnn"
    inner_names = ("input_layer", "self_layer", "output_layer")

    def __init__(self, index: int, inputs: int, hidden: int, opts: RNNOptions, steps: int,
                 self_activation: str, dialect) -> None:
        super().__init__(index, Shape(opts.output, 1, 1), steps)
        self.flat = True
        self.opts = opts
        self.inputs, self.hidden, self.outputs = inputs, hidden, opts.output
        self.dialect_name = dialect.name
        self._warned = False
        bn = opts.batch_normalize
        self.input_layer = connected(index, inputs, hidden, opts.activation, bn, dialect)
        self.self_layer = connected(index, hidden, hidden, self_activation, bn, dialect)
        self.output_layer = connected(index, hidden, opts.output, opts.activation, bn, dialect)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        k, xs = self.split_steps(x)
        (state,) = self.initial_state(k, x, [self.hidden])
        if self.training and self.dialect_name == "pjreddie" and not self._warned:
            self._warned = True
            warnings.warn(CfgWarning(
                f"layer {self.index} [rnn]: pjreddie's make_rnn_layer allocates l.state for one "
                f"step, and its training forward writes {self.steps} steps past it (a heap "
                f"overflow: that Darknet's own training of [rnn] is undefined); darknet_py trains "
                f"it by the loops of its forward_/backward_rnn_layer, as AlexeyAB's does"),
                stacklevel=2)
        out, state = vanilla_steps(self, xs, state, self.opts.shortcut, (self.hidden,))
        self.keep_state([state])
        return torch.cat(out, 0)

    def overwrites_input_delta(self) -> bool:
        return self.input_layer.overwrites_input_delta()

    def table_line(self, in_shape: Shape) -> str:
        return (f"RNN Layer: {self.inputs} inputs, {self.outputs} outputs\n" +
                "\n".join("\t\t" + l.table_line(in_shape) for l in self.inner()))


def flat_sizes(ctx: BuildContext, output: int, weights: int) -> "tuple[int, int]":
    """Check what a recurrent section over a flat input needs; (time steps, inputs).
    ``weights(inputs)`` counts its inner layers' weights."""
    r = ctx.reader
    r.check(output > 0, f"output must be > 0, got {output}", "output")
    steps = ctx.net.time_steps
    r.check(steps > 0, f"[net] time_steps must be > 0, got {steps}")
    inputs = ctx.input_shape.numel
    r.check(inputs > 0, f"the previous layer has no outputs ({inputs})")
    ctx.check_weights(weights(inputs), "output")
    check_shape(ctx, Shape(output, 1, 1))
    return steps, inputs


def gate_table(title: str, layer: Recurrent, in_shape: Shape) -> str:
    """``make_gru_layer``/``make_lstm_layer``'s table: a title line, then each inner layer's."""
    return (f"{title}: {layer.inputs} inputs, {layer.outputs} outputs\n" +
            "\n".join("\t\t" + getattr(layer, n).table_line(in_shape) for n in layer.created))


@register("rnn", options=RNNOptions)
def build(ctx: BuildContext) -> RNNLayer:
    r = ctx.reader
    o = r.read(RNNOptions)
    alexeyab = ctx.dialect.name == "alexeyab"
    r.check(o.output > 0, f"output must be > 0, got {o.output}", "output")
    hidden = o.hidden if alexeyab else o.output
    r.check(hidden > 0, f"hidden must be > 0, got {hidden}", "hidden")
    steps = ctx.net.time_steps
    r.check(steps > 0, f"[net] time_steps must be > 0, got {steps}")
    inputs = ctx.input_shape.numel
    r.check(inputs > 0, f"the previous layer has no outputs ({inputs})")
    ctx.check_weights(inputs * hidden + hidden * hidden + hidden * o.output, "output")
    check_shape(ctx, Shape(o.output, 1, 1))
    self_act = o.activation
    if alexeyab and o.logistic in (1, 2):
        self_act = "loggy" if o.logistic == 2 else "logistic"
    return RNNLayer(ctx.index, inputs, hidden, o, steps, self_act, ctx.dialect)
