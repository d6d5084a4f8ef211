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

from contextlib import contextmanager
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

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
    layers = list(model.layers)
    if not model.dialect.update_needs_layer_train:
        return list(range(len(layers)))
    stops = [i for i, c in enumerate(model.common) if c.stopbackward]
    first = max(stops) if stops else 0
    return [i for i, layer in enumerate(layers) if i >= first and layer.ab_train]


def update_tensors(model: "Darknet") -> Iterator[Tuple[str, Tensor, bool, float]]:
    """(name, parameter, decayed, layer learning-rate scale) of every tensor update_network
    moves (:func:`updated_layers`)."""
    layers = list(model.layers)
    for index in updated_layers(model):
        layer = layers[index]
        scale = float(layer.rate_scale(float(model.common[index].learning_rate)))
        for name, param, decayed in layer.update_tensors():
            yield f"layers.{index}.{name}", param, decayed, scale


@torch.no_grad()
def update_network(model: "Darknet", state: "TrainState", rate: float, batch: int) -> None:
    """One Darknet update with learning rate ``rate`` over a batch of ``batch`` images.

    Per tensor, in this order: ``updates -= grad`` (the gradient is then dropped),
    ``updates += -decay*batch * weights`` (decayed tensors), ``tensor += lr/batch *
    updates``, ``updates *= momentum``. The tensors are independent, so each of these runs
    as one ``torch._foreach_*`` call over all of them (on CPU the same per-tensor kernels,
    without a Python call each); a tensor listed twice (AlexeyAB's share_index: the owner's
    and the sharer's entries) is updated again in a later round, as the per-tensor loop
    would, from the value the first update left."""
    net = model.net
    f32 = np.float32
    momentum = float(f32(net.momentum))
    decay = float(f32(-f32(net.decay) * batch))  # -decay*batch, a float in C
    rounds: List[_Round] = []
    seen: Dict[int, int] = {}
    alphas: Dict[float, float] = {}
    for name, param, decayed, scale in update_tensors(model):
        if not param.requires_grad:
            continue
        buf = state.updates.get(name)
        if buf is None:
            buf = state.updates[name] = torch.zeros_like(param)
        k = seen.get(id(param), 0)
        seen[id(param)] = k + 1
        if k == len(rounds):
            rounds.append(_Round())
        r = rounds[k]
        if param.grad is not None:
            r.grad_bufs.append(buf)
            r.grads.append(param.grad)
            param.grad = None
        if decayed:
            r.decay_bufs.append(buf)
            r.decay_params.append(param)
        alpha = alphas.get(scale)
        if alpha is None:
            lr = float(f32(f32(rate) * f32(scale)))
            alpha = alphas[scale] = float(f32(lr / batch))
        params, bufs = r.steps.setdefault(alpha, ([], []))
        params.append(param)
        bufs.append(buf)
        r.bufs.append(buf)
    for r in rounds:
        if r.grads:
            torch._foreach_sub_(r.grad_bufs, r.grads)
        if r.decay_bufs:
            torch._foreach_add_(r.decay_bufs, r.decay_params, alpha=decay)
        for alpha, (params, bufs) in r.steps.items():
            torch._foreach_add_(params, bufs, alpha=alpha)
        torch._foreach_mul_(r.bufs, momentum)


class _Round:
    """The tensors of one round of :func:`update_network` (each tensor at most once)."""

    __slots__ = ("grad_bufs", "grads", "decay_bufs", "decay_params", "steps", "bufs")

    def __init__(self) -> None:
        self.grad_bufs: List[Tensor] = []
        self.grads: List[Tensor] = []
        self.decay_bufs: List[Tensor] = []
        self.decay_params: List[Tensor] = []
        #: learning rate / batch -> (tensors, their update buffers)
        self.steps: Dict[float, Tuple[List[Tensor], List[Tensor]]] = {}
        self.bufs: List[Tensor] = []


# -- AlexeyAB's ema_alpha (network.c: train_network_waitkey, ema_update, ema_apply) --------
def _c_half(value: int) -> int:
    """C's ``int / 2`` (truncates toward zero)."""
    return value // 2 if value >= 0 else -((-value) // 2)


def ema_tensors(model: "Darknet") -> Iterator[Tuple[str, Tensor, bool]]:
    """(name, tensor, is_weights) of every tensor with an EMA: the layers update_network
    moves (built with train=1) that have one (:meth:`~darknet_py.layers.base.DarknetLayer.ema_tensors`:
    [convolutional] without a share_layer)."""
    for index in updated_layers(model):
        for name, tensor, is_weights in model.layers[index].ema_tensors():
            yield f"layers.{index}.{name}", tensor, is_weights


def ema_initialized(model: "Darknet", state: "TrainState") -> bool:
    """is_ema_initialized: some convolutional ``weights_ema`` element is not 0 (the buffers
    start at 0, calloc's). False where the fork has no EMA or ``ema_alpha`` is 0."""
    if not (model.dialect.trains_ema and model.net.ema_alpha):
        return False
    return any(is_weights and name in state.ema and bool(state.ema[name].ne(0).any())
               for name, _, is_weights in ema_tensors(model))


@torch.no_grad()
def ema_update(model: "Darknet", state: "TrainState", alpha: float) -> None:
    """ema_update(net, alpha): ``ema = alpha*ema + (1 - alpha)*tensor`` in float32
    (alpha = 0 initialises the EMA with the tensors)."""
    a = np.float32(alpha)
    keep, take = float(a), float(np.float32(1) - a)
    for name, tensor, _ in ema_tensors(model):
        ema = state.ema.get(name)
        if ema is None:
            ema = state.ema[name] = torch.zeros_like(tensor)
        ema.mul_(keep).add_(tensor * take)


@torch.no_grad()
def ema_apply(model: "Darknet", state: "TrainState") -> None:
    """ema_apply: every tensor with an EMA takes its EMA's value (BN rolling statistics
    stay as they are)."""
    for name, tensor, _ in ema_tensors(model):
        ema = state.ema.get(name)
        tensor.copy_(ema if ema is not None else torch.zeros_like(tensor))


def ema_step(model: "Darknet", state: "TrainState") -> Optional[str]:
    """What train_network_waitkey does after update_network with [net] ``ema_alpha`` set
    (AlexeyAB), at iteration ``state.iteration`` (``*net.cur_iteration``, already counting
    this update): from ``max_batches/2`` on, the EMA is initialised when it is not yet
    (:func:`ema_initialized`); at ``max_batches - 1000`` the weights take the EMA
    (:func:`ema_apply`), before it the EMA is updated with ``ema_alpha``. Returns what it
    did ("init", "update", "init+update", "apply", "init+apply") or None."""
    net = model.net
    if not (model.dialect.trains_ema and net.ema_alpha):
        return None
    it = state.iteration
    start = _c_half(int(net.max_batches))
    if it < start:
        return None
    done = []
    if not ema_initialized(model, state):
        ema_update(model, state, 0.0)
        done.append("init")
    apply_at = int(net.max_batches) - 1000
    if it == apply_at:
        ema_apply(model, state)
        done.append("apply")
    elif it < apply_at:
        ema_update(model, state, float(net.ema_alpha))
        done.append("update")
    return "+".join(done) or None


@contextmanager
def ema_weights(model: "Darknet", state: "TrainState") -> Iterator[None]:
    """Inside: the tensors with an EMA hold it (what save_weights_upto(..., save_ema=1)
    writes for them: biases_ema, scales_ema, weights_ema; every other value as it is);
    restored on exit."""
    saved = []
    with torch.no_grad():
        for name, tensor, _ in ema_tensors(model):
            saved.append((tensor, tensor.detach().clone()))
            ema = state.ema.get(name)
            tensor.copy_(ema if ema is not None else torch.zeros_like(tensor))
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, value in saved:
                tensor.copy_(value)


def zero_updates(model: "Darknet") -> None:
    for param in model.parameters():
        param.grad = None


def momentum_buffers(state: "TrainState") -> Dict[str, Tensor]:
    """The per-tensor ``*_updates`` buffers (for checkpoints)."""
    return state.updates


__all__: List[str] = ["ema_apply", "ema_initialized", "ema_step", "ema_tensors", "ema_update",
                      "ema_weights", "momentum_buffers", "update_network", "update_tensors",
                      "updated_layers", "zero_updates"]
