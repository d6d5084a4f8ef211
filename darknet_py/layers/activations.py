"""Darknet's activation functions (``activations.h`` / ``activations.c``), by name.

Each one is the exact formula Darknet uses on the CPU, so ``leaky`` has slope
0.1 and ``mish`` uses Darknet's softplus threshold of 20::

    >>> import torch
    >>> activate(torch.tensor([-1.0, 2.0]), "leaky")
    tensor([-0.1000,  2.0000])

Unknown names are errors here (Darknet silently falls back to relu).
"""
from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn.functional as F
from torch import Tensor

ActivationFn = Callable[[Tensor], Tensor]

_ACTIVATIONS: Dict[str, ActivationFn] = {}
#: activations only AlexeyAB's fork knows.
ALEXEYAB_ONLY = {"swish", "mish", "hard_mish", "normalize_channels", "normalize_channels_softmax",
                 "normalize_channels_softmax_maxval", "relu6", "gelu", "revleaky"}


def _register(*names: str):
    def deco(fn: ActivationFn) -> ActivationFn:
        for name in names:
            _ACTIVATIONS[name] = fn
        return fn
    return deco


@_register("linear")
def linear(x: Tensor) -> Tensor:
    return x


@_register("logistic")
def logistic(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


@_register("loggy")
def loggy(x: Tensor) -> Tensor:
    return 2.0 / (1.0 + torch.exp(-x)) - 1.0


@_register("relu")
def relu(x: Tensor) -> Tensor:
    return torch.relu(x)


@_register("relu6")
def relu6(x: Tensor) -> Tensor:
    return torch.clamp(x, 0.0, 6.0)


@_register("elu")
def elu(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x, torch.exp(x) - 1.0)


@_register("selu")
def selu(x: Tensor) -> Tensor:
    return torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * (torch.exp(x) - 1.0))


@_register("gelu")
def gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(0.797885 * x + 0.035677 * x * x * x))


@_register("relie")
def relie(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, 0.01 * x)


@_register("ramp")
def ramp(x: Tensor) -> Tensor:
    return x * (x > 0) + 0.1 * x


@_register("leaky", "revleaky")
def leaky(x: Tensor) -> Tensor:
    # bit-identical to torch.where(x > 0, x, 0.1 * x), in one pass
    return F.leaky_relu(x, 0.1)


@_register("tanh")
def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


@_register("plse")
def plse(x: Tensor) -> Tensor:
    return torch.where(x < -4, 0.01 * (x + 4), torch.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5))


@_register("hardtan")
def hardtan(x: Tensor) -> Tensor:
    return torch.clamp(x, -1.0, 1.0)


@_register("lhtan")
def lhtan(x: Tensor) -> Tensor:
    return torch.where(x < 0, 0.001 * x, torch.where(x > 1, 0.001 * (x - 1) + 1, x))


@_register("stair")
def stair(x: Tensor) -> Tensor:
    n = torch.floor(x)
    half = torch.floor(x / 2.0)
    return torch.where(torch.remainder(n, 2) == 0, half, (x - n) + half)


@_register("swish")
def swish(x: Tensor) -> Tensor:
    return x * logistic(x)


def _softplus(x: Tensor, threshold: float = 20.0) -> Tensor:
    return torch.where(x > threshold, x,
                       torch.where(x < -threshold, torch.exp(x), torch.log(torch.exp(x) + 1.0)))


@_register("mish")
def mish(x: Tensor) -> Tensor:
    # activations.c:activate_array_mish: x * tanh_activate(softplus(x, 20)),
    # with AlexeyAB's tanh_activate(y) = 2/(1+exp(-2y)) - 1.
    sp = _softplus(x)
    return x * (2.0 / (1.0 + torch.exp(-2.0 * sp)) - 1.0)


@_register("hard_mish")
def hard_mish(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, torch.where(x > -2, x * x / 2 + x, torch.zeros_like(x)))


@_register("normalize_channels")
def normalize_channels(x: Tensor) -> Tensor:
    pos = torch.clamp(x, min=0.0)
    return pos / (0.0001 + pos.sum(dim=1, keepdim=True))


@_register("normalize_channels_softmax")
def normalize_channels_softmax(x: Tensor) -> Tensor:
    e = torch.exp(x)
    return e / (0.0001 + e.sum(dim=1, keepdim=True))


@_register("normalize_channels_softmax_maxval")
def normalize_channels_softmax_maxval(x: Tensor) -> Tensor:
    e = torch.exp(x - x.max(dim=1, keepdim=True).values)
    return e / (0.0001 + e.sum(dim=1, keepdim=True))


#: in-place forms (same operations, same order, so the same values) for the inference
#: fast path; an activation missing here is applied out of place.
_INPLACE: Dict[str, ActivationFn] = {
    "linear": lambda x: x,
    "logistic": lambda x: x.neg_().exp_().add_(1.0).reciprocal_(),
    "relu": torch.relu_,
    "leaky": lambda x: F.leaky_relu_(x, 0.1),
    "revleaky": lambda x: F.leaky_relu_(x, 0.1),
    "tanh": torch.tanh_,
}


def _leaky_(x: Tensor) -> Tensor:
    return F.leaky_relu_(x, 0.1)


def _linear_(x: Tensor) -> Tensor:
    return x


#: in-place forms autograd can differentiate (their backward needs only the output, and
#: leaky's slope is positive), module-level functions so that a model still pickles: for a
#: fresh tensor in training, one allocation fewer
_INPLACE_AUTOGRAD: Dict[str, ActivationFn] = {"linear": _linear_, "relu": torch.relu_,
                                              "leaky": _leaky_, "revleaky": _leaky_}


def get_inplace_autograd(name: str, dialect: "object | None" = None) -> "ActivationFn | None":
    """The in-place form of ``name`` that may run under autograd on a tensor nobody else
    holds (same values as :func:`get`), or None where there is none."""
    if name in _DIALECT_ACTIVATIONS.get(str(dialect), {}):
        return None
    return _INPLACE_AUTOGRAD.get(name)


def activate_(x: Tensor, name: str, dialect: "object | None" = None) -> Tensor:
    """``activate(x, name)`` (as ``dialect`` computes it, when given), overwriting ``x`` where
    an in-place form exists (``x`` must be the caller's alone and need no gradient)."""
    if dialect is not None and name in _DIALECT_ACTIVATIONS.get(str(dialect), {}):
        return get(name, dialect)(x)
    fn = _INPLACE.get(name)
    return fn(x) if fn is not None else _ACTIVATIONS[name](x)


def names() -> list:
    """Every activation name darknet_py knows."""
    return sorted(_ACTIVATIONS)


def _tanh_alexeyab(x: Tensor) -> Tensor:
    # AlexeyAB's activations.h tanh_activate: 2/(1+expf(-2x)) - 1 in float, which cancels for
    # tiny |x| (1e-4: ~1e-3 relative); pjreddie's (exp(2x)-1)/(exp(2x)+1) in double is exact
    return 2.0 / (1.0 + torch.exp(-2.0 * x)) - 1.0


#: per-dialect formulas that differ from the shared one
_DIALECT_ACTIVATIONS: Dict[str, Dict[str, ActivationFn]] = {"alexeyab": {"tanh": _tanh_alexeyab}}


def get(name: str, dialect: "object | None" = None) -> ActivationFn:
    """The activation called ``name`` (as ``dialect`` computes it, when given); KeyError for
    names Darknet does not know."""
    if dialect is not None:
        fn = _DIALECT_ACTIVATIONS.get(str(dialect), {}).get(name)
        if fn is not None:
            return fn
    return _ACTIVATIONS[name]


def activate(x: Tensor, name: str) -> Tensor:
    return _ACTIVATIONS[name](x)
