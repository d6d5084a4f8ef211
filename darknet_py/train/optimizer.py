"""Darknet's ``update_network``: SGD with momentum and weight decay, in Darknet's order.

Darknet keeps ``l.weight_updates`` (and bias/scale updates) per layer: backward *adds*
the negative gradient summed over the batch into it, and at each update::

    updates += -decay*batch * weights          (weights only: never biases or BN scales)
    weights += learning_rate/batch * updates   (learning_rate * the layer's learning_rate=)
    updates *= momentum

with ``batch`` = the cfg's batch (mini-batch * subdivisions). The momentum buffers
(:attr:`TrainState.updates`) are exactly Darknet's ``*_updates`` after the scaling.
PyTorch's ``p.grad`` is minus what backward added, so ``updates = buffer - grad``.

AlexeyAB's train_network_waitkey then does more (:func:`ema_step`, :func:`reject_similar_step`):
[net] ``ema_alpha`` keeps an EMA of the convolutional tensors from max_batches/2 and puts it
into the weights at max_batches-1000; ``weights_reject_freq`` re-initialises the first
filter of the most similar pair of each convolution.

[net] ``adam=1`` (:func:`adam_update`): neither fork's CPU ``update_*_layer`` has an Adam
branch -- the CUDA ``update_*_layer_gpu`` are the only Darknet Adam there is, so that is
what is followed here, by reading (blas_kernels.cu ``adam_update_gpu``/``adam_kernel``):
no GPU Darknet was run to compare with. A CPU build of Darknet given ``adam=1`` trains with
plain SGD; darknet_py trains as the GPU build does, on CPU and CUDA tensors alike.
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


def adam_layers(model: "Darknet") -> List[int]:
    """Indices of the layers whose ``update_*_layer_gpu`` takes the Adam branch when [net]
    ``adam=1`` (:meth:`~darknet_py.layers.base.DarknetLayer.uses_adam`); every other layer
    keeps SGD with momentum, as its CUDA update does."""
    if not model.net.adam:
        return []
    return [i for i, layer in enumerate(model.layers) if layer.uses_adam(model.dialect)]


def adam_t(model: "Darknet", state: "TrainState", batch: int) -> int:
    """The ``t`` of this update's bias correction: pjreddie's update_network_gpu does
    ``++*net.t; a.t = *net.t`` (network.c:827-828; ``net->t`` is calloc'd by make_network,
    never loaded from or saved to .weights: updates since the network was made); AlexeyAB's
    sets ``l.t = get_current_batch(net)`` = seen / (batch*subdivisions) after this
    iteration's images (network_kernels.cu:289)."""
    if model.dialect.adam_t_counts_updates:
        return state.adam_t + 1
    return state.seen // batch


@torch.no_grad()
def adam_update(param: Tensor, d: Tensor, m: Tensor, v: Tensor, B1: float, B2: float,
                eps: float, decay: float, rate: float, batch: int, t: int) -> None:
    """blas_kernels.cu ``adam_update_gpu(w, d, m, v, B1, B2, eps, decay, rate, n, batch, t)``
    (pjreddie 180-192, AlexeyAB 209-221) in float32, in the C's order; ``d`` is Darknet's
    ``*_updates`` (the negative gradient summed over the batch) and is overwritten::

        m *= B1;  v *= B2
        d += -decay*batch * w          (every tensor: weights, biases and BN scales)
        m += (1-B1) * d;  d = d*d;  v += (1-B2) * d
        w += rate * (m / (1 - B1^t)) / (sqrt(v / (1 - B2^t)) + eps)     (adam_kernel)
        d = 0                          (no momentum: fill_gpu(n, 0, d, 1))

    ``rate`` is the layer's learning rate, not divided by ``batch``."""
    f32 = np.float32
    b1, b2 = f32(B1), f32(B2)
    m.mul_(float(b1))
    v.mul_(float(b2))
    d.add_(param, alpha=float(f32(-f32(decay) * f32(batch))))
    m.add_(d, alpha=float(f32(1) - b1))
    d.mul_(d)
    v.add_(d, alpha=float(f32(1) - b2))
    # powf(B1, t) in float; 1.f - powf(...) in float
    c1 = float(f32(1) - f32(np.power(b1, f32(t), dtype=f32)))
    c2 = float(f32(1) - f32(np.power(b2, f32(t), dtype=f32)))
    mhat = m / c1
    vhat = v / c2
    param.add_(float(f32(rate)) * mhat / (vhat.sqrt() + float(f32(eps))))
    d.zero_()


@torch.no_grad()
def update_network(model: "Darknet", state: "TrainState", rate: float, batch: int) -> None:
    """One Darknet update with learning rate ``rate`` over a batch of ``batch`` images.

    With [net] ``adam=1`` the layers of :func:`adam_layers` take :func:`adam_update` (the
    CUDA code's Adam; ``t`` from :func:`adam_t`, kept in ``state.adam_t``), the others SGD.

    SGD, per tensor, in this order: ``updates -= grad`` (the gradient is then dropped),
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
    adam = set(adam_layers(model))
    if model.dialect.adam_t_counts_updates or adam:
        state.adam_t = adam_t(model, state, batch)
    rounds: List[_Round] = []
    seen: Dict[int, int] = {}
    alphas: Dict[float, float] = {}
    for name, param, decayed, scale in update_tensors(model):
        if not param.requires_grad:
            continue
        if int(name.split(".", 2)[1]) in adam:  # update_tensors' names: layers.{index}...
            _adam_tensor(model, state, name, param, decayed, rate, scale, batch)
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


def _adam_tensor(model: "Darknet", state: "TrainState", name: str, param: Tensor,
                 is_weights: bool, rate: float, scale: float, batch: int) -> None:
    """One tensor's part of update_convolutional_layer_gpu (pjreddie 300-316, AlexeyAB
    1261-1380), update_connected_layer_gpu or update_deconvolutional_layer_gpu with adam:
    ``learning_rate = a.learning_rate * l.learning_rate_scale`` (AlexeyAB: ``/ loss_scale``,
    its NaN fixes on the weights first and batch x get_sequence_value: the dialect's
    ``cuda_update_extras``), then :func:`adam_update` with [net] B1, B2, eps
    and decay. The momentum buffer stays at zero (adam_update_gpu zeroes it)."""
    net = model.net
    f32 = np.float32
    d = state.updates.get(name)
    d = (torch.zeros_like(param) if d is None else d.clone())
    if param.grad is not None:
        d.sub_(param.grad)
        param.grad = None
    lr = f32(f32(rate) * f32(scale))
    if model.dialect.cuda_update_extras:
        batch *= max(int(net.subdivisions) // max(int(net.sequential_subdivisions), 1), 1)
        lr = f32(lr / f32(net.loss_scale))
        if is_weights:
            # reset_nan_and_inf(l.weight_updates_gpu) / fix_nan_and_inf(l.weights_gpu)
            # (AlexeyAB blas_kernels.cu 1463-1502)
            d.masked_fill_(~torch.isfinite(d), 0.0)
            bad = ~torch.isfinite(param)
            if bool(bad.any()):
                index = torch.arange(param.numel(), device=param.device, dtype=torch.float32)
                param.copy_(torch.where(bad, (1.0 / (index + 1)).view_as(param).to(param.dtype),
                                        param))
    m = state.adam_m.get(name)
    if m is None:
        m = state.adam_m[name] = torch.zeros_like(param)
    v = state.adam_v.get(name)
    if v is None:
        v = state.adam_v[name] = torch.zeros_like(param)
    adam_update(param, d, m, v, net.B1, net.B2, net.eps, net.decay, float(lr), batch,
                state.adam_t)
    if name in state.updates:
        state.updates[name].zero_()


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
    if not (model.dialect.waitkey_extras and model.net.ema_alpha):
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
    if not (model.dialect.waitkey_extras and net.ema_alpha):
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


#: YOLO's LAYER_TYPE in AlexeyAB's darknet.h (reject_similar_weights skips the three layers
#: before one)
_AB_YOLO = 28


def reject_similar_step(model: "Darknet", state: "TrainState",
                        generator: Optional[torch.Generator] = None) -> List[Tuple[int, int]]:
    """train_network_waitkey's ``reject_similar_weights(net, 0.4)`` (AlexeyAB) when [net]
    ``weights_reject_freq`` divides the iteration and it is below 3/4 of max_batches: in
    every layer but the first and the three before a [yolo], the most similar pair of
    filters of a (non-linear) [convolutional] re-initialises the first of them
    (:meth:`~darknet_py.layers.base.DarknetLayer.reject_similar_weights`). Returns the
    (layer, filter) pairs re-initialised."""
    net = model.net
    freq = int(net.weights_reject_freq)
    it = state.iteration
    if not (model.dialect.waitkey_extras and freq and it < int(net.max_batches) * 3 // 4
            and it % freq == 0):
        return []
    layers = model.layers
    done = []
    for i in range(1, len(layers)):
        if any(layers[j].alexeyab_layer_type == _AB_YOLO
               for j in range(i + 1, min(i + 4, len(layers)))):
            continue
        k = layers[i].reject_similar_weights(0.4, generator)
        if k is not None:
            done.append((i, k))
    return done


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


__all__: List[str] = ["adam_layers", "adam_t", "adam_update", "ema_apply", "ema_initialized",
                      "ema_step", "ema_tensors", "ema_update", "ema_weights", "momentum_buffers",
                      "reject_similar_step", "update_network", "update_tensors", "updated_layers",
                      "zero_updates"]
