"""The learning rate Darknet uses at a batch: ``network.c:get_current_rate``.

``batch_num`` is ``get_current_batch`` = seen / (batch * subdivisions) (the cfg's batch).
Burn-in comes first (``rate * (batch_num/burn_in)^power`` while batch_num < burn_in), then
the cfg's ``policy``. Arithmetic follows the C's float/double mix so the rate is the same
float32 Darknet computes:

    >>> from darknet_py.cfg.net import NetOptions
    >>> net = NetOptions(learning_rate=0.001, burn_in=2, power=4.0, policy="steps",
    ...                  steps=[400000, 450000], scales=[0.1, 0.1])
    >>> [f"{current_rate(net, b):.9g}" for b in (1, 2, 400000)]  # float32 values
    ['6.2500003e-05', '0.00100000005', '0.000100000005']
"""
from __future__ import annotations

import math
import random as _random
from typing import Optional

import numpy as np

from ..dialect import Dialect, PJREDDIE

f32 = np.float32


def _out(value: float) -> float:
    """The C returns a float: round the double to float32, give it back as a Python float."""
    return float(f32(value))


def current_rate(net, batch_num: int, dialect: Optional[Dialect] = None,
                 rng: Optional[_random.Random] = None) -> float:
    """get_current_rate of [net] options ``net`` (:class:`~darknet_py.cfg.net.NetOptions`)
    at ``batch_num``. ``dialect`` only matters for ``sgdr`` (AlexeyAB only); ``policy=random``
    draws from ``rng`` (Python's generator, not C's rand())."""
    dialect = dialect or PJREDDIE
    lr = f32(net.learning_rate)
    if batch_num < net.burn_in:
        return _out(float(lr) * math.pow(float(f32(batch_num) / f32(net.burn_in)),
                                         float(f32(net.power))))
    policy = net.policy
    if policy == "constant":
        return _out(lr)
    if policy == "step":
        return _out(float(lr) * math.pow(float(f32(net.scale)), batch_num // net.step))
    if policy == "steps":
        rate = lr
        for step, scale in zip(net.steps, net.scales):
            if step > batch_num:
                return _out(rate)
            rate = f32(rate * f32(scale))
        return _out(rate)
    if policy == "exp":
        return _out(float(lr) * math.pow(float(f32(net.gamma)), batch_num))
    if policy == "poly":
        frac = f32(1) - f32(batch_num) / f32(net.max_batches)
        return _out(float(lr) * math.pow(float(frac), float(f32(net.power))))
    if policy == "random":
        u = (rng or _random).random()
        return _out(float(lr) * math.pow(u, float(f32(net.power))))
    if policy == "sigmoid":
        diff = batch_num - net.step
        if dialect.name == "pjreddie":
            # pjreddie's batch_num is a size_t: before `step` the difference wraps to ~2^64
            diff %= 1 << 64
        with np.errstate(over="ignore"):
            arg = f32(f32(net.gamma) * f32(diff))
        if arg > 709:  # exp overflows to inf in C: the rate becomes 0
            return 0.0
        return _out(float(lr) * (1.0 / (1.0 + math.exp(float(arg)))))
    if policy == "sgdr":
        if dialect.name != "alexeyab":
            # pjreddie's get_policy: "Couldn't find policy sgdr, going with constant"
            return _out(lr)
        start, cycle = 0, int(net.sgdr_cycle or net.max_batches)
        if cycle <= 0:
            raise ValueError("policy=sgdr needs sgdr_cycle or max_batches > 0")
        while start + cycle < batch_num:
            start += cycle
            cycle *= int(net.sgdr_mult)
        lmin = f32(net.learning_rate_min)
        cosine = math.cos(float(f32(batch_num - start)) * 3.14159265 / cycle)
        return _out(float(lmin) + 0.5 * float(lr - lmin) * (1.0 + cosine))
    raise ValueError(f"unknown learning-rate policy {policy!r}")


def current_batch(seen: int, batch: int, subdivisions: int) -> int:
    """get_current_batch: seen / (mini-batch * subdivisions)."""
    return seen // (batch * subdivisions)
