"""``[crnn]`` (``crnn_layer.c``): Darknet's convolutional RNN, three inner [convolutional] layers.

The [rnn] recurrence (see :mod:`darknet_py.layers.rnn`) with convolutions in place of the
connected layers: per step ``state = (shortcut ? state : 0) + input_layer(x_i) +
self_layer(state)`` and ``y_i = output_layer(state)``; the state (``h*w*hidden`` per
sequence) is zeroed by a training forward, kept between inference calls.

pjreddie reads ``hidden_filters=``/``output_filters=`` and always uses 3x3 kernels, stride 1,
padding 1; AlexeyAB reads ``hidden=``/``output=``, ``size=`` (3), ``stride=``, ``dilation=``,
``pad=``/``padding=`` and ``groups=``. Darknet sizes the state by the *input's* h x w: a
kernel/stride/padding that changes the size is refused here (Darknet would read past its
buffers).

pjreddie's ``parse_crnn`` hands ``make_crnn_layer`` the width as its height and the height as
its width: on a non-square input its convolutions read the same memory as an image of the
other orientation, and the layer's output is ``h x w`` swapped. This module does the same (and
warns). pjreddie's [crnn] also does not count its inner convolutions' workspace in the
network's, so Darknet itself only runs it safely when another layer needs a workspace as large.

Training: ``backward_crnn_layer`` is [rnn]'s (:func:`~darknet_py.layers.rnn.vanilla_steps`);
pjreddie's inner convolutions never move (their ``l.learning_rate_scale`` is never set: 0).

.weights order: input, self, output layer, each as ``load_convolutional_weights``.
Darknet cannot resize a [crnn].
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..cfg.options import option
from ..errors import CfgWarning
from . import activations
from .base import BuildContext, Shape, check_shape
from .convolutional import ConvolutionalLayer, ConvolutionalOptions
from .registry import register
from .rnn import Recurrent, inner_bn, vanilla_steps


@dataclass
class CRNNOptions:
    output_filters: int = option(1, only="pjreddie")
    hidden_filters: int = option(1, only="pjreddie")
    output: int = option(1, only="alexeyab")
    hidden: int = option(1, only="alexeyab")
    size: int = option(3, only="alexeyab")
    stride: int = option(1, only="alexeyab")
    dilation: int = option(1, only="alexeyab")
    pad: int = option(0, only="alexeyab")
    padding: int = option(0, only="alexeyab")
    groups: int = option(1, only="alexeyab")
    activation: str = option("logistic", choices=activations.names)
    batch_normalize: int = option(0)
    xnor: int = option(0, only="alexeyab")
    shortcut: int = option(0)


def _conv_out(n: int, pad: int, size: int, stride: int) -> int:
    return (n + 2 * pad - size) // stride + 1


class CRNNLayer(Recurrent):
    kind = "crnn"
    #: make_crnn_layer sets l.train (AlexeyAB updates it; its [rnn]/[gru]/[lstm] not)
    ab_train = True
    inner_names = ("input_layer", "self_layer", "output_layer")

    def __init__(self, index: int, in_shape: Shape, hidden: int, output: int, conv: dict,
                 opts: CRNNOptions, steps: int, dialect) -> None:
        c, h, w = in_shape
        super().__init__(index, Shape(output, h, w), steps)
        self.opts = opts
        self.in_shape = Shape(*in_shape)
        self.hidden_shape = Shape(hidden, h, w)

        def make(cin: int, n: int) -> ConvolutionalLayer:
            o = ConvolutionalOptions(filters=n, activation=opts.activation,
                                     batch_normalize=opts.batch_normalize, **conv)
            o.stride_x = o.stride_y = o.stride
            return inner_bn(ConvolutionalLayer(index, Shape(cin, h, w), Shape(n, h, w), o, dialect))

        self.input_layer = make(c, hidden)
        self.self_layer = make(hidden, hidden)
        self.output_layer = make(hidden, output)

    def overwrites_input_delta(self) -> bool:
        # backward_crnn_layer's input layer writes the previous layer's delta step by step
        return self.input_layer.overwrites_input_delta()

    def uses_adam(self, dialect) -> bool:
        """Neither fork gives the inner convolutions Adam (make_convolutional_layer(...,
        adam=0) in both crnn_layer.c): AlexeyAB's keep SGD (``l.adam`` is 0)."""
        return False

    def adam_refusal(self, dialect) -> "str | None":
        if dialect.adam_beyond_convolutional:
            return ("adam=1 with a [crnn]: pjreddie's update_crnn_layer_gpu runs the Adam "
                    "branch of update_convolutional_layer_gpu on inner layers made without "
                    "Adam buffers (m_gpu, v_gpu are NULL): its GPU build fails there")
        return None

    def rate_scale(self, cfg_scale: float) -> float:
        # pjreddie's make_convolutional_layer never sets l.learning_rate_scale (0, only the
        # parser sets it, on top-level layers): its [crnn] inner layers never move; AlexeyAB's: 1
        return 0.0 if self.output_layer.dialect_name == "pjreddie" else 1.0

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        k, xs = self.split_steps(x)
        (state,) = self.initial_state(k, x, [self.hidden_shape.numel])
        xs = xs.view((self.steps, k) + tuple(self.in_shape))
        state = state.view((k,) + tuple(self.hidden_shape))
        out, state = vanilla_steps(self, xs, state, self.opts.shortcut, tuple(self.hidden_shape))
        self.keep_state([state.reshape(k, -1)])
        return torch.cat(out, 0)

    def table_line(self, in_shape: Shape) -> str:
        c, h, w = self.in_shape
        tab = "" if self.output_layer.dialect_name == "alexeyab" else "\t\t"
        lines = [f"CRNN Layer: {h} x {w} x {c} image, {self.out_shape.c} filters"]
        shapes = (self.in_shape, self.hidden_shape, self.hidden_shape)
        lines += [tab + l.table_line(s) for l, s in zip(self.inner(), shapes)]
        return "\n".join(lines)


@register("crnn", options=CRNNOptions)
def build(ctx: BuildContext) -> CRNNLayer:
    r = ctx.reader
    o = r.read(CRNNOptions)
    c, h, w = ctx.input_shape
    if ctx.dialect.name == "alexeyab":
        hidden, output = o.hidden, o.output
        padding = o.size // 2 if o.pad else o.padding
        conv = dict(size=o.size, stride=o.stride, dilation=o.dilation, padding=padding, groups=o.groups)
        r.check(not o.xnor, "xnor=1 inner convolutions are not supported", "xnor")
    else:
        hidden, output = o.hidden_filters, o.output_filters
        conv = dict(size=3, stride=1, dilation=1, padding=1, groups=1)
        if h != w:
            # parse_crnn passes (w, h) where make_crnn_layer takes (h, w)
            warnings.warn(CfgWarning(f"{r.section.file}:{r.section.line}: pjreddie's parse_crnn swaps width and height: "
                                     f"its convolutions read the {w} x {h} input as {h} x {w} "
                                     f"(the same memory) and output {h} x {w}; done as Darknet does"), stacklevel=2)
            h, w = w, h
    r.check(hidden > 0 and output > 0, f"hidden and output filters must be > 0, got {hidden}, {output}")
    r.check(c > 0 and h > 0 and w > 0, f"the input must be an image (c x h x w), got {c} x {h} x {w}")
    steps = ctx.net.time_steps
    r.check(steps > 0, f"[net] time_steps must be > 0, got {steps}")
    oh = _conv_out(h, conv["padding"], conv["size"], conv["stride"])
    ow = _conv_out(w, conv["padding"], conv["size"], conv["stride"])
    r.check((oh, ow) == (h, w) and conv["dilation"] == 1 or conv["size"] == 1 and (oh, ow) == (h, w),
            f"its convolutions map {w} x {h} to {ow} x {oh}; Darknet sizes the state by the input "
            f"({w} x {h}) and would read past its buffers", "size")
    g = conv["groups"]
    r.check(c % g == 0 and hidden % g == 0, f"groups={g} must divide the channels ({c}, {hidden})", "groups")
    k2 = conv["size"] ** 2
    ctx.check_weights(k2 * (c * hidden + hidden * hidden + hidden * output) // g, "hidden")
    check_shape(ctx, Shape(output, h, w))
    return CRNNLayer(ctx.index, Shape(c, h, w), hidden, output, conv, o, steps, ctx.dialect)
