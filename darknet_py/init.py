"""Seeded random weights with sane outputs, for cfgs whose trained weights are not at hand.

:func:`random_init` follows the recipe of the Darknet reference cases (see
``../shared/reference/darknet-alexeyab/README.md``): every convolution's weights
``sqrt(2/(size*size*c/groups)) * U(-1, 1)`` (``make_convolutional_layer``'s
formula; ``[connected]``: ``sqrt(2/inputs)``), batchnorm scales ``U(0.5, 1.5)``, biases ``U(-0.2, 0.2)``, then one
train-mode forward on a calibration input sets each batchnorm's rolling mean to
``batch_mean + U(-0.1, 0.1)*sqrt(batch_var)`` and rolling variance to
``batch_var*U(0.8, 1.25)``, so inference activations stay in range through deep
networks. Draws come from numpy's ``default_rng(seed)`` (not Darknet's ``rand``):
the saved ``.weights`` file, not the recipe, is what a comparison with Darknet loads.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> net = Darknet(parse_cfg("[net]\\nwidth=8\\nheight=8\\nchannels=3\\n[convolutional]\\n"
    ...                         "filters=2\\nsize=3\\nbatch_normalize=1\\nactivation=leaky\\n"))
    >>> _ = random_init(net, seed=1)
    >>> float(net.layers[0].bn.scales.min()) >= 0.5, net.training
    (True, False)
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .layers.batchnorm import BatchNorm


def _uniform(rng: np.random.Generator, low: float, high: float, shape) -> Tensor:
    return torch.from_numpy(rng.uniform(low, high, size=shape).astype(np.float32))


def random_init(model, seed: int = 1, calibration: Optional[Tensor] = None,
                objectness_bias: Optional[float] = None,
                bn_scales: Tuple[float, float] = (0.5, 1.5), head_gain: float = 1.0,
                class_bias: Optional[float] = None):
    """Fill ``model``'s parameters as the reference cases' init does (see the module
    docstring); ``calibration``: a (B, C, H, W) input in [0, 1] for the batchnorm
    statistics (default: U(0, 1) noise from the same seed). ``objectness_bias``:
    the bias of the objectness logits of the convolution right before each
    detection head (e.g. -4: a few boxes above .25 instead of nearly every cell,
    as trained weights give). ``bn_scales``: the range of the batchnorm scales; a
    smaller one (e.g. (0.2, 0.6)) keeps deep residual networks (yolov4) from
    amplifying float rounding as random ones do at (0.5, 1.5). ``head_gain``
    multiplies the weights of the objectness and class logits of the convolution
    right before each detection head (spread logits: a few confident boxes rather
    than every class near .5); ``class_bias`` sets the bias of the class logits
    there (like ``objectness_bias``). Returns the model, in eval mode."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for layer in model.layers:
            weight = getattr(layer, "weight", None)
            if isinstance(weight, torch.nn.Parameter) and weight.dim() in (2, 4):
                # conv: size*size*c/groups; [connected]: its inputs (make_connected_layer)
                fan_in = int(np.prod(weight.shape[1:]))
                scale = float(np.sqrt(np.float32(2.0) / np.float32(fan_in)))
                weight.copy_(_uniform(rng, -1, 1, tuple(weight.shape)) * scale)
        for module in model.modules():
            if isinstance(module, BatchNorm):
                module.scales.copy_(_uniform(rng, *bn_scales, tuple(module.scales.shape)))
        for layer in model.layers:
            bias = getattr(layer, "bias", None)
            if isinstance(bias, torch.nn.Parameter):
                bias.copy_(_uniform(rng, -0.2, 0.2, tuple(bias.shape)))
        for index in model.heads:
            head, before = model.layers[index], model.layers[index - 1]
            bias, weight = getattr(before, "bias", None), getattr(before, "weight", None)
            if index == 0 or head.refs or not isinstance(bias, torch.nn.Parameter):
                continue
            logits = head.objectness_channels() + head.class_channels()
            if head_gain != 1.0 and isinstance(weight, torch.nn.Parameter) and logits:
                weight[logits] *= float(head_gain)
            if objectness_bias is not None:
                bias[head.objectness_channels()] = float(objectness_bias)
            if class_bias is not None:
                bias[head.class_channels()] = float(class_bias)
    norms = [m for m in model.modules() if isinstance(m, BatchNorm)]
    if not norms:
        return model.eval()
    if calibration is None:
        c, h, w = model.input_shape
        calibration = torch.from_numpy(rng.random((1, c, h, w), dtype=np.float32))
    stats: Dict[int, tuple] = {}

    def hook(index: int):
        def record(module, inputs, output):
            x = inputs[0]
            n = x.shape[0] * x.shape[2] * x.shape[3]
            mean = x.mean(dim=(0, 2, 3))
            var = ((x - mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3)) / max(n - 1, 1)
            stats[index] = (mean.detach(), var.detach())
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(norms)]
    try:
        model.train()
        with torch.no_grad():
            model(calibration)
    finally:
        for handle in handles:
            handle.remove()
        model.eval()
    with torch.no_grad():
        for i, module in enumerate(norms):
            mean, var = stats[i]
            shape = tuple(mean.shape)
            module.rolling_mean.copy_(mean + _uniform(rng, -0.1, 0.1, shape) * var.sqrt())
            module.rolling_variance.copy_(var * _uniform(rng, 0.8, 1.25, shape))
    return model


__all__ = ["random_init"]
