"""Darknet's ``train_network(net, d)`` on one batch: forward, loss, backward, update.

    state = TrainState.from_model(model)
    loss = train_network(model, state, X, y)   # X (B,C,H,W) in [0,1], y (B, rows, 5|6)

``X`` holds ``n`` mini-batches of ``batch/subdivisions`` images (``n`` = subdivisions for
one Darknet iteration); each is one ``train_network_datum``: ``seen += mini-batch``, a
train-mode forward (batch statistics in BN), every cost layer's deltas (``layer.loss``),
the backward of those deltas (PyTorch's autograd with Darknet's own batchnorm backward),
gradients summed over the mini-batches like Darknet's ``*_updates``. The update
(:func:`~darknet_py.train.optimizer.update_network`) runs when
``(seen/mini_batch) % subdivisions == 0`` (pjreddie) or once after all mini-batches
(AlexeyAB), at ``get_current_rate``; AlexeyAB then keeps its EMA (``ema_alpha``) and
re-initialises similar filters (``weights_reject_freq``). The return value is what Darknet's train_network
returns: the sum over mini-batches of ``*net->cost`` (the mean of the cost layers'
``*(l.cost)``) divided by the number of images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ..errors import CfgError
from ..layers.base import DeltaStats, LossStep
from ..layers.batchnorm import has_batchnorm
from .optimizer import ema_step, reject_similar_step, update_network
from .schedule import current_batch, current_rate

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Darknet


@dataclass
class TrainState:
    """What Darknet keeps between train_network calls besides the weights."""

    #: ``*net->seen``: images trained on (written into .weights headers)
    seen: int = 0
    #: updates done (AlexeyAB's ``*net->cur_iteration``; pjreddie's ``*net->t``)
    iteration: int = 0
    #: Darknet's ``*_updates`` momentum buffers, by parameter name
    updates: Dict[str, Tensor] = field(default_factory=dict)
    #: learning rate of the last update
    rate: float = 0.0
    #: AlexeyAB's ``weights_ema``/``biases_ema``/``scales_ema`` ([net] ema_alpha), by
    #: parameter name (:func:`~darknet_py.train.optimizer.ema_step`); empty until initialised
    ema: Dict[str, Tensor] = field(default_factory=dict)
    #: [net] adam=1: the first and second moment buffers (``l.m``/``l.v``,
    #: ``bias_m``/``bias_v``, ``scale_m``/``scale_v``), by parameter name
    #: (:func:`~darknet_py.train.optimizer.adam_update`); empty until the first update
    adam_m: Dict[str, Tensor] = field(default_factory=dict)
    adam_v: Dict[str, Tensor] = field(default_factory=dict)
    #: the ``t`` of the last Adam update's bias correction
    #: (:func:`~darknet_py.train.optimizer.adam_t`: pjreddie's ``*net->t``, which counts
    #: the updates since the network was made -- 0 after loading .weights)
    adam_t: int = 0
    #: ``*(l.cost)`` of each cost layer in the last mini-batch, by layer index
    costs: Dict[int, float] = field(default_factory=dict)
    #: ``*net->cost`` of each mini-batch of the last call
    net_costs: List[float] = field(default_factory=list)
    #: AlexeyAB's net-level rolling statistics of the heads' deltas (equidistant_point and
    #: bad-label rejection; :func:`~darknet_py.layers.yolo.reject_deltas`)
    delta_stats: DeltaStats = field(default_factory=DeltaStats)
    #: what :func:`~darknet_py.train.optimizer.ema_step` did in the last update ("init",
    #: "update", "apply", ... ; None: nothing)
    ema_event: Optional[str] = None
    #: (layer, filter) pairs weights_reject_freq's reject_similar_weights re-initialised in
    #: the last update
    rejected: List[Tuple[int, int]] = field(default_factory=list)
    #: called with the model right before each update (the trainer averages gradients
    #: over processes here); not part of the saved state
    before_update: Optional[Callable[["Darknet"], None]] = None

    @property
    def momentum(self) -> Dict[str, Tensor]:
        """The momentum buffers (Darknet's ``*_updates``): an alias of :attr:`updates`."""
        return self.updates

    @classmethod
    def from_model(cls, model: "Darknet") -> "TrainState":
        """Start where a loaded .weights file left off: its header's ``seen``, and the
        iteration ``seen / batch`` (AlexeyAB's load_weights sets ``*net->cur_iteration =
        get_current_batch(net)``)."""
        net = model.net
        seen = int(model.seen)
        return cls(seen=seen, iteration=seen // max(net.mini_batch * net.subdivisions, 1))

    def state_dict(self) -> dict:
        return {"seen": self.seen, "iteration": self.iteration, "rate": self.rate,
                "updates": {k: v.detach().clone() for k, v in self.updates.items()},
                "ema": {k: v.detach().clone() for k, v in self.ema.items()},
                "adam_m": {k: v.detach().clone() for k, v in self.adam_m.items()},
                "adam_v": {k: v.detach().clone() for k, v in self.adam_v.items()},
                "adam_t": self.adam_t}

    def load_state_dict(self, data: dict) -> None:
        self.seen = int(data["seen"])
        self.iteration = int(data["iteration"])
        self.rate = float(data.get("rate", 0.0))
        self.updates = {k: v.clone() for k, v in data.get("updates", {}).items()}
        self.ema = {k: v.clone() for k, v in data.get("ema", {}).items()}
        self.adam_m = {k: v.clone() for k, v in data.get("adam_m", {}).items()}
        self.adam_v = {k: v.clone() for k, v in data.get("adam_v", {}).items()}
        self.adam_t = int(data.get("adam_t", 0))


def mini_batch(model: "Darknet") -> int:
    """net->batch after parse_network_cfg: batch / subdivisions (at least 1)."""
    return model.net.mini_batch


def cost_layers(model: "Darknet") -> List[int]:
    return [i for i, layer in enumerate(model.layers) if layer.has_cost]


def forward_backward(model: "Darknet", X: Tensor, y: Tensor, seen: int = 0,
                     step: Optional[LossStep] = None) -> Dict[int, float]:
    """train_network_datum's forward_network + backward_network on one mini-batch:
    returns ``*(l.cost)`` per cost layer; gradients accumulate in ``p.grad``. ``step``: the
    iteration and net-level statistics the heads' losses read."""
    indices = cost_layers(model)
    if not indices:
        raise ValueError(f"{model.source}: no layer has a loss ([yolo], [region], ...); "
                         f"nothing to train")
    outs = model.outputs_of(X, indices)
    net_size = (X.shape[3], X.shape[2])
    surrogate: Optional[Tensor] = None
    costs: Dict[int, float] = {}
    layers = list(model.layers)
    for index, out in zip(indices, outs):
        layer = layers[index]
        delta, cost = layer.loss(out, y, net_size, seen=seen, step=step)
        costs[index] = float(cost)
        if model.cpu_backward_quirks and not layer.loss_reaches_input():
            continue
        delta = layer.input_delta(delta, out)
        # d(surrogate)/d(out) = -delta: Darknet's delta is the negative gradient
        term = -(delta.to(out.dtype) * out).sum()
        surrogate = term if surrogate is None else surrogate + term
    if surrogate is not None and surrogate.requires_grad:
        surrogate.backward()
    stop = [i for i, c in enumerate(model.common) if c.stopbackward]
    if stop:
        # backward_network: `if (l.stopbackward) break;` -- that layer and every one before it
        # get no gradient
        for layer in model.layers[:max(stop) + 1]:
            for p in layer.parameters():
                p.grad = None
    return costs


def check_trainable(model: "Darknet") -> None:
    """Refuse cfg settings whose training behaviour is not implemented, naming them."""
    net = model.net
    stops = [i for i, c in enumerate(model.common) if c.stopbackward]
    for index, (sec, layer) in enumerate(zip(model.sections[1:], model.layers)):
        if (model.dialect.update_needs_layer_train and stops and index < max(stops)
                and layer.ab_train and has_batchnorm(layer)):
            raise CfgError(f"batch_normalize=1 before the last stopbackward=1 (layer "
                           f"{max(stops)}): AlexeyAB builds these layers with train=0, without "
                           f"their BN buffers, and its CPU training forward segfaults there",
                           file=sec.file, line=sec.line, layer=index)
        why = layer.train_refusal()
        if not why and net.adam:
            why = layer.adam_refusal(model.dialect)
        if why:
            raise CfgError(why, file=sec.file, line=sec.line, layer=index)


def train_network(model: "Darknet", state: TrainState, X: Tensor, y: Tensor) -> float:
    """Darknet's train_network on ``X`` (B,C,H,W floats in [0,1]) and truths ``y``
    (B, rows, 5 pjreddie | 6 AlexeyAB: x,y,w,h,class[,track] relative; a zero row ends an
    image's list; a classifier's [softmax] or a [cost]: (B, outputs), e.g. one-hot labels or
    regression targets). Returns Darknet's reported loss."""
    net = model.net
    check_trainable(model)
    mini = mini_batch(model)
    if X.dim() != 4 or X.shape[0] % mini:
        raise ValueError(f"X must be (B, C, H, W) with B a multiple of the mini-batch "
                         f"batch/subdivisions = {mini}, got {tuple(X.shape)}")
    if y.dim() < 2 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be (B, rows, fields) (detection heads) or (B, truths) "
                         f"(a [softmax] or [cost] loss) with B = {X.shape[0]}, got "
                         f"{tuple(y.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    if not all(m.training for m in model.modules()):
        model.train()
    n = X.shape[0] // mini
    total = 0.0
    state.net_costs = []
    per_call = model.dialect.update_per_call
    try:
        for i in range(n):
            xb = X[i * mini:(i + 1) * mini].to(device)
            yb = y[i * mini:(i + 1) * mini].to(device)
            state.seen += mini
            costs = forward_backward(model, xb, yb, seen=state.seen,
                                     step=LossStep(state.iteration, net, state.delta_stats))
            state.costs = costs
            net_cost = float(torch.tensor(sum(costs.values()), dtype=torch.float32)
                             / len(costs))
            state.net_costs.append(net_cost)
            total += net_cost
            if not per_call and (state.seen // mini) % net.subdivisions == 0:
                _update(model, state)
        if per_call:
            _update(model, state)
    finally:
        if not was_training:
            model.train(False)
    major, minor, revision, _ = model.header
    model.header = (major, minor, revision, state.seen)
    return float(torch.tensor(total, dtype=torch.float32) / (n * mini))


def _update(model: "Darknet", state: TrainState) -> None:
    if state.before_update is not None:
        state.before_update(model)
    net = model.net
    batch_num = current_batch(state.seen, mini_batch(model), net.subdivisions)
    state.rate = current_rate(net, batch_num, model.dialect)
    state.iteration += 1
    update_network(model, state, state.rate, mini_batch(model) * net.subdivisions)
    state.ema_event = ema_step(model, state)
    state.rejected = reject_similar_step(model, state)
