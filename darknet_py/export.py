"""Ship a model: ONNX, TorchScript, Darknet ``.weights`` and ``.cfg``.

* :func:`export_onnx` -- the graph with a dynamic batch axis (and, with
  ``dynamic_size=True``, dynamic height and width: every layer computes its
  shapes from its input), ``[upsample]`` as one nearest ``Resize``, and
  optionally the decode of every ``[yolo]`` head inside the graph (boxes,
  objectness, scores, honouring each head's ``scale_x_y`` and ``new_coords``).
* :func:`export_torchscript` -- the same graph as a traced TorchScript module.
  ``torch.jit.script`` cannot compile the model (its layers hold plain Python
  objects such as the :class:`~darknet_py.dialect.Dialect`); tracing records
  the operations one input runs, and since no layer takes a size from its
  build-time shape (they read ``x.shape``, which the tracer records as shape
  operations), the trace is valid at other batch sizes and input sizes. The
  tests run the traced module at batch 1 and 4 and two sizes against the model.
* :func:`export_weights` / :func:`export_cfg` -- Darknet's own files.

``upto=N`` everywhere keeps the first N layers (0..N-1), as ``darknet partial
cfg weights out N`` and ``load_weights(upto=N)`` count them.

Outputs of the exported graph (names in ONNX):

* without decode: one tensor per detection head (``head_<index>``, laid out as
  Darknet's ``l.output``), or the network's output (``output``) when it has no
  head; with ``upto=N``, layer N-1's output (``layer_<N-1>``);
* with decode: ``boxes`` (B, N, 4) x, y, w, h relative to the network input
  (Darknet's boxes before the letterbox correction), ``objectness`` (B, N),
  ``scores`` (B, N, classes) = objectness * class probability, rows in
  Darknet's order (heads in layer order; per head cell by cell, anchor by anchor).
  Thresholds and NMS stay outside the graph.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .cfg.writer import format_cfg
from .errors import CfgError
from .io import atomic_write

FORMATS = ("onnx", "torchscript", "weights", "cfg")
#: the ONNX opset written by default (Resize-11 semantics; TensorRT 8+ and onnxruntime run it)
DEFAULT_OPSET = 17


class ExportGraph(nn.Module):
    """The model with plain tensor outputs, for tracing (see the module docstring)."""

    def __init__(self, model, decode: bool = False, upto: Optional[int] = None) -> None:
        super().__init__()
        self.model = model
        self.upto = upto
        self.decode = decode
        if upto is not None and not 1 <= upto <= len(model.layers):
            raise CfgError(f"upto={upto}: the network has layers 0..{len(model.layers) - 1}; "
                           f"upto keeps the first N of them (1..{len(model.layers)})",
                           file=model.source)
        heads = [model.layers[i] for i in model.heads] if upto is None else []
        if decode:
            if not heads:
                raise CfgError("decode needs detection heads; the network has none"
                               + (" up to the layer asked" if upto is not None else ""),
                               file=model.source)
            for head in heads:
                if not head.decodes_in_graph:
                    sec = model.sections[head.index + 1]
                    raise CfgError(f"layer {head.index} [{head.kind}]: decoding inside the "
                                   f"graph is implemented for [yolo] heads only (export without "
                                   f"decode to get this head's raw output)",
                                   file=sec.file, line=sec.line)
            if len({h.classes for h in heads}) != 1:
                raise CfgError("decode needs every head to have the same number of classes",
                               file=model.source)
        self.heads = heads
        if upto is not None:
            self.output_names = [f"layer_{upto - 1}"]
        elif decode:
            self.output_names = ["boxes", "objectness", "scores"]
        elif heads:
            self.output_names = [f"head_{h.index}" for h in heads]
        else:
            self.output_names = ["output"]

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if self.upto is not None:
            return (self.model.layer_outputs(x, upto=self.upto - 1)[self.upto - 1],)
        out = self.model(x)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if not self.decode:
            return tuple(outs)
        net_h, net_w = x.shape[2], x.shape[3]
        parts = [head.decode(o, net_w, net_h) for head, o in zip(self.heads, outs)]
        return tuple(torch.cat([p[i] for p in parts], dim=1) for i in range(3))


def _example(model, batch: int = 1, size: Optional[Tuple[int, int]] = None) -> Tensor:
    c, h, w = model.input_shape
    if size is not None:
        w, h = size
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    return torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(0)).to(device, dtype)


@contextlib.contextmanager
def _quiet_fds():
    """Silence the C++ exporter, which prints whole graphs to stdout/stderr on failure."""
    saved = []
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real file descriptors (embedded)
        pass
    try:
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _blame(model, run: Callable[[Optional[int]], None], exc: Exception) -> CfgError:
    """A failure while tracing/exporting, as one line naming the first layer whose prefix
    of the network does not export (found by bisection over ``upto``)."""
    text = " ".join(str(exc).split())
    text = text[:200] + ("..." if len(text) > 200 else "")
    lo, hi = 0, len(model.layers)  # prefix of hi layers fails; of lo layers (none) works
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            run(mid)
        except Exception:  # noqa: BLE001
            hi = mid
        else:
            lo = mid
    sec = model.sections[hi]
    name = f"layer {hi - 1} [{sec.kind}]"
    text = text[len(name) + 2:] if text.startswith(name + ": ") else text  # said once
    return CfgError(f"{name} cannot be exported: {text}",
                    file=sec.file, line=sec.line)


def _traced(model, trace: Callable[[ExportGraph, Tensor], object], decode: bool,
            upto: Optional[int], size: Optional[Tuple[int, int]]):
    """Run ``trace(graph, example)`` in eval mode, no grad, quietly; errors name the layer."""
    graph = ExportGraph(model, decode=decode, upto=upto).eval()
    was_training = model.training
    model.eval()

    def run(graph: ExportGraph):
        with warnings.catch_warnings(), torch.no_grad(), _quiet_fds():
            warnings.simplefilter("ignore")
            return trace(graph, _example(model, 1, size))
    try:
        return graph, run(graph)
    except Exception as exc:  # noqa: BLE001 -- any tracing/ONNX failure, named by layer
        raise _blame(model, lambda n: run(ExportGraph(model, upto=n).eval()), exc) from None
    finally:
        model.train(was_training)


def _write(path, data: bytes) -> None:
    if isinstance(path, io.BytesIO):
        path.write(data)
    else:
        atomic_write(path, data)


def export_onnx(model, path: "os.PathLike[str] | str | io.BytesIO", *, decode: bool = False,
                dynamic_batch: bool = True, dynamic_size: bool = False,
                upto: Optional[int] = None, opset: int = DEFAULT_OPSET,
                size: Optional[Tuple[int, int]] = None) -> List[str]:
    """Write ``model`` as ONNX to ``path`` (atomically) or a BytesIO; returns the output names.

    The input is ``images`` (B, C, H, W) float in [0, 1] (Darknet's image/255, already
    resized or letterboxed to the network size, or any size with ``dynamic_size``).
    ``size`` (w, h) is the size traced (default the cfg's). A layer that cannot be
    exported is a :class:`CfgError` naming its section.
    """
    names = ExportGraph(model, decode=decode, upto=upto).output_names
    axes = {}
    if dynamic_batch or dynamic_size:
        spec = {}
        if dynamic_batch:
            spec[0] = "batch"
        if dynamic_size:
            spec.update({2: "height", 3: "width"})
        axes["images"] = spec
        for name in names:
            axes[name] = {0: "batch"} if dynamic_batch else {}

    def trace(graph: ExportGraph, x: Tensor) -> bytes:
        buffer = io.BytesIO()
        outputs = graph.output_names
        torch.onnx.export(graph, (x,), buffer, dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=outputs,
                          dynamic_axes={k: v for k, v in axes.items()
                                        if k == "images" or k in outputs} or None,
                          do_constant_folding=True)
        return buffer.getvalue()
    _, data = _traced(model, trace, decode, upto, size)
    _write(path, data)
    return names


def export_torchscript(model, path: "os.PathLike[str] | str | io.BytesIO", *,
                       decode: bool = False, upto: Optional[int] = None,
                       size: Optional[Tuple[int, int]] = None) -> torch.jit.ScriptModule:
    """Trace ``model`` (see the module docstring for why tracing) and save it; returns it.

    The saved module takes (B, C, H, W) and returns a tuple of tensors
    (:class:`ExportGraph`'s outputs).
    """
    def trace(graph: ExportGraph, x: Tensor):
        return torch.jit.trace(graph, (x,), check_trace=False)
    _, traced = _traced(model, trace, decode, upto, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, not gone
        torch.jit.save(traced, buffer)
    _write(path, buffer.getvalue())
    return traced


def export_weights(model, path: "os.PathLike[str] | str", *, upto: Optional[int] = None) -> None:
    """Darknet's ``.weights`` (header as loaded, or this dialect's for a new model) of the
    first ``upto`` layers (all by default), as Darknet's ``partial``."""
    if upto is not None:
        ExportGraph(model, upto=upto)  # the range check
    model.save_weights(path, upto=upto)


def cfg_sections(model, upto: Optional[int] = None):
    """The model's cfg sections ([net] + the first ``upto`` layers)."""
    sections = model.sections
    if upto is not None:
        ExportGraph(model, upto=upto)  # the range check
    return sections if upto is None else sections[:upto + 1]


def export_cfg(model, path: "os.PathLike[str] | str", *, upto: Optional[int] = None) -> None:
    """The model's cfg ([net] and the first ``upto`` layers), written atomically.

    Keeps the model's sections as read (values as written, comments dropped); for an
    edited cfg that keeps comments see :mod:`darknet_py.cfg.variant`.
    """
    atomic_write(path, format_cfg(cfg_sections(model, upto)).encode("utf-8"))


def export(model, path, fmt: str, **kwargs):
    """Dispatch on ``fmt`` (one of :data:`FORMATS`)."""
    writers = {"onnx": export_onnx, "torchscript": export_torchscript,
               "weights": export_weights, "cfg": export_cfg}
    if fmt not in writers:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    return writers[fmt](model, path, **kwargs)
