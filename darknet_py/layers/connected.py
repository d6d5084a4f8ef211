"""``[connected]`` / ``[conn]`` (``connected_layer.c``): a fully connected layer.

The previous output is read flat (``inputs = c*h*w``), ``y = W x`` with
``W`` stored ``[outputs][inputs]``; then either ``+ bias`` or, with
``batch_normalize=1``, Darknet's BN over the outputs (dialect epsilon, then
scale, then bias); then the activation. The output is ``(outputs, 1, 1)``.

.weights order (``parser.c:load_connected_weights``): biases[outputs],
weights[outputs*inputs], then if batch_normalize (and not ``dontloadscales``)
scales, rolling_mean, rolling_variance -- after the weights, unlike
[convolutional]. Files whose header has major or minor > 1000 store the
weights transposed (``[inputs][outputs]``); the loader sets
:attr:`ConnectedLayer.transposed_weights` and :meth:`weight_tensors` then
hands out the transposed view, so loading and saving such a file both work.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=2\\nheight=1\\nchannels=1\\n"
    ...                         "[connected]\\noutput=1\\nactivation=linear\\n"))
    >>> _ = net.layers[0].weight.data.copy_(torch.tensor([[2.0, 3.0]]))
    >>> _ = net.layers[0].bias.data.fill_(1.0)
    >>> net(torch.tensor([[[[1.0, 10.0]]]])).flatten().tolist()
    [33.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cfg.options import option
from . import activations
from .base import (AltWeightGrad, BuildContext, DarknetLayer, Shape, check_shape, filled,
                   initialising)
from .batchnorm import BatchNorm
from .registry import register


@dataclass
class ConnectedOptions:
    output: int = option(1)
    activation: str = option("logistic", choices=activations.names)
    batch_normalize: int = option(0)


class ConnectedLayer(DarknetLayer):
    kind = "connected"
    channels_key = "output"

    def __init__(self, index: int, inputs: int, opts: ConnectedOptions, dialect) -> None:
        super().__init__(index, Shape(opts.output, 1, 1))
        self.flat = True
        self.opts = opts
        self.inputs = inputs
        self.outputs = opts.output
        self.activation = opts.activation
        self._act = activations.get(opts.activation, dialect)
        self.weight = nn.Parameter(filled(opts.output, inputs))
        self.bias = nn.Parameter(filled(opts.output))
        self.bn = (BatchNorm(opts.output, dialect, dialect.connected_bn_rolling_momentum)
                   if opts.batch_normalize else None)
        #: set by the .weights loader (:meth:`set_weights_transposed`): the file stores W as
        #: [inputs][outputs] (major/minor > 1000)
        self.transposed_weights = False
        if initialising():
            self.reset_parameters()

    def set_weights_transposed(self, transposed: bool) -> None:
        self.transposed_weights = transposed

    def reset_parameters(self) -> None:
        """Darknet's init: weights ~ sqrt(2/inputs) * U(-1, 1), biases 0."""
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_((2.0 / self.inputs) ** 0.5)
            self.bias.zero_()
        if self.bn is not None:
            self.bn.reset_parameters()

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        b = x.shape[0]
        alt = self.pending_weight_input()
        flat = x.reshape(b, -1)
        lin = (F.linear(flat, self.weight) if alt is None
               else AltWeightGrad.apply(flat, alt, self.weight, "linear"))
        y = self.mark_delta(lin.view(b, self.outputs, 1, 1))
        if self.training and y.requires_grad:
            # backward_connected_layer leaves in l.delta the gradient of W x (after the
            # activation's and BN's backward, in place): what AlexeyAB's next backward adds
            # to, as it never clears a [connected] l.delta (see base.StaleDelta)
            y.register_hook(self._keep_stale_delta)
        if self.bn is not None:
            y = self.bn(y)
        y = y + self.bias.view(1, -1, 1, 1)
        return self._act(y)

    def _keep_stale_delta(self, grad: Tensor) -> None:
        self._stale_delta = grad.detach().clone()

    def weight_tensors(self) -> List[Tensor]:
        weight = self.weight.t() if self.transposed_weights else self.weight
        tensors: List[Tensor] = [self.bias, weight]
        if self.bn is not None and not self.dontloadscales:
            tensors += self.bn.weight_tensors()
        return tensors

    def uses_adam(self, dialect) -> bool:
        """pjreddie's update_connected_layer_gpu has the Adam branch; AlexeyAB's has none."""
        return dialect.adam_beyond_convolutional

    def flops(self, in_shape: Shape) -> float:
        return 2.0 * self.inputs * self.outputs

    def describe(self, in_shape: Shape) -> str:
        return f"{self.inputs:>8} -> {self.outputs}"


    def table_line(self, in_shape: Shape) -> str:
        return f"connected                            {self.inputs:4d}  ->  {self.outputs:4d}"


@register("connected", "conn", options=ConnectedOptions)
def build(ctx: BuildContext) -> ConnectedLayer:
    r = ctx.reader
    o = r.read(ConnectedOptions)
    r.check(o.output > 0, f"output must be > 0, got {o.output}", "output")
    inputs = ctx.input_shape.numel
    r.check(inputs > 0, f"the previous layer has no outputs ({inputs})")
    ctx.check_weights(inputs * o.output, "output")
    check_shape(ctx, Shape(o.output, 1, 1))
    return ConnectedLayer(ctx.index, inputs, o, ctx.dialect)
