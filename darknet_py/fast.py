"""The inference fast path: Darknet's numbers up to float rounding, with less work.

Chosen automatically when the model is in eval mode, gradients are off
(``torch.no_grad()`` / ``torch.inference_mode()``) and ``model.fast`` is True
(the default). Each layer module owns its fast form
(:meth:`~darknet_py.layers.base.DarknetLayer.infer`); the executor in
``model.py`` only tells a layer whether it may overwrite its input:

* ``[convolutional]``: batchnorm folded into the weights and bias (``w*s``,
  ``bias - mean*s`` with ``s = scales/std``, std = ``sqrt(var)+1e-6`` for
  pjreddie, ``sqrt(var+1e-5)`` for AlexeyAB), computed in float64, cached until a
  parameter changes; on the CPU the folded weight is reordered once into oneDNN's
  blocked layout (as ``torch.compile``'s freezing does) and each call is one oneDNN
  convolution with the bias and leaky/relu fused (measured under load, not a benchmark:
  0.55-0.8x the time of the dense-weight calls, which reorder the weight on every
  call); other activations applied in place;
* ``[shortcut]``: the sum written into the previous output when nothing else
  reads it; ``[upsample]``: one nearest-neighbour copy;
* everything else: the plain forward.

Never while tracing (``darknet_py.export``): exported graphs are the plain path.

The plain path (Darknet's operation order: conv, normalize, scale, bias,
activation as separate passes) stays for training, for gradients and for strict
comparisons. Force it with ``model.fast = False`` or, for a block of code::

    with darknet_py.fast.plain():
        outs = model.layer_outputs(x)

The two paths differ by float rounding only (folding reassociates the BN
arithmetic); ``tests/test_fast.py`` measures it on every reference case against
the compare tolerance. oneDNN's convolutions on prepacked weights return
channels-last tensors, so the layers after them run in that memory;
``fast_layout`` (``torch.channels_last``) also puts the input there; outputs are
returned contiguous either way.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterable, Iterator, List

import torch
from torch import Tensor

_PLAIN = contextvars.ContextVar("darknet_py_plain", default=False)


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Run every model on the plain path inside this block."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def enabled(model: torch.nn.Module) -> bool:
    """True when ``model``'s forward takes the fast path now. Never while tracing (ONNX /
    TorchScript export): an exported graph is the plain path, portable ops only."""
    return (bool(getattr(model, "fast", False)) and not model.training
            and not torch.is_grad_enabled() and not _PLAIN.get()
            and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())


def prepare(model: torch.nn.Module, x: Tensor) -> Tensor:
    """The network input in the fast path's memory layout: ``model.fast_layout``, or with
    ``"auto"`` channels-last for batches > 1 on the CPU (measured: at batch 8 oneDNN's
    channels-last convolutions are up to 2x faster; at batch 1 NCHW is as fast or faster)."""
    layout = getattr(model, "fast_layout", None)
    if layout == "auto":
        layout = torch.channels_last if x.dim() == 4 and x.shape[0] > 1 and not x.is_cuda else None
    if layout is not None and x.dim() == 4:
        return x.contiguous(memory_format=layout)
    return x


def finish(outs: List[Tensor]) -> List[Tensor]:
    """Outputs as the plain path returns them: contiguous."""
    return [o.contiguous() for o in outs]


def owns(out: Tensor, *held: "Tensor | Iterable[Tensor]") -> bool:
    """True when no tensor in ``held`` shares ``out``'s memory (a layer may hand back its
    input or a reference unchanged: route of one layer, dropout, linear)."""
    ptr = out.untyped_storage().data_ptr()
    for group in held:
        for t in ([group] if isinstance(group, Tensor) else group):
            if t.untyped_storage().data_ptr() == ptr:
                return False
    return True
