"""Darknet's ``update_network``: SGD with momentum and weight decay, in Darknet's order.

Darknet keeps ``l.weight_updates`` (and bias/scale updates) per layer: backward *adds*
the negative gradient summed over the batch into it, and at each update::

    updates += -decay*batch * weights          (weights only: never biases or BN scales)
    weights += learning_rate/batch * updates   (learning_rate * the layer's learning_rate=)
    updates *= momentum

with ``batch`` = the cfg's batch (mini-batch * subdivisions). The momentum buffers
(:attr:`TrainState.updates`) are exactly Darknet's ``*_updates`` after the scaling.
PyTorch's ``p.grad`` is minus what backward added, so ``updates = buffer - grad``.

Neither fork's CPU ``update_convolutional_layer`` has an Adam branch (only the CUDA
``update_*_gpu`` do), so ``adam=1`` is refused here rather than silently ignored.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterator, List, Tuple

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Darknet
    from .engine import TrainState


def updated_layers(model: "Darknet") -> List[int]:
    """Indices of the layers update_network moves: every one (pjreddie), or those with
    ``l.train`` set (AlexeyAB: :attr:`~darknet_py.layers.base.DarknetLayer.ab_train`, and
    none before the last ``stopbackward=1``, which parse_network_cfg builds with train=0)."""
    indices = range(len(model.layers))
    if not model.dialect.update_needs_layer_train:
        return list(indices)
    stops = [i for i, c in enumerate(model.common) if c.stopbackward]
    first = max(stops) if stops else 0
    return [i for i in indices if i >= first and model.layers[i].ab_train]


def update_tensors(model: "Darknet") -> Iterator[Tuple[str, Tensor, bool, float]]:
    """(name, parameter, decayed, layer learning-rate scale) of every tensor update_network
    moves (:func:`updated_layers`)."""
    for index in updated_layers(model):
        layer = model.layers[index]
        scale = float(layer.rate_scale(float(model.common[index].learning_rate)))
        for name, param, decayed in layer.update_tensors():
            yield f"layers.{index}.{name}", param, decayed, scale


@torch.no_grad()
def update_network(model: "Darknet", state: "TrainState", rate: float, batch: int) -> None:
    """One Darknet update with learning rate ``rate`` over a batch of ``batch`` images."""
    net = model.net
    f32 = np.float32
    momentum = float(f32(net.momentum))
    decay = float(f32(-f32(net.decay) * batch))  # -decay*batch, a float in C
    for name, param, decayed, scale in update_tensors(model):
        if not param.requires_grad:
            continue
        buf = state.updates.get(name)
        if buf is None:
            buf = state.updates[name] = torch.zeros_like(param)
        if param.grad is not None:
            buf.sub_(param.grad)
            param.grad = None
        lr = float(f32(f32(rate) * f32(scale)))
        if decayed:
            buf.add_(param, alpha=decay)
        param.add_(buf, alpha=float(f32(lr / batch)))
        buf.mul_(momentum)


def zero_updates(model: "Darknet") -> None:
    for param in model.parameters():
        param.grad = None


def momentum_buffers(state: "TrainState") -> Dict[str, Tensor]:
    """The per-tensor ``*_updates`` buffers (for checkpoints)."""
    return state.updates


__all__: List[str] = ["update_network", "update_tensors", "updated_layers", "zero_updates", "momentum_buffers"]
