"""The graph executor: a Darknet cfg as one ``torch.nn.Module``.

``Darknet(sections)`` asks the registry for one builder per section, in cfg
order, and keeps the resulting layer modules in ``self.layers`` (index ``i`` is
Darknet's layer ``i``). ``forward`` runs them in order, keeping only the
outputs later layers still need; ``layer_outputs`` keeps every one, laid out
as Darknet's ``l.output``.

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> net = Darknet(parse_cfg("[net]\\nwidth=8\\nheight=8\\nchannels=3\\n"
    ...                         "[convolutional]\\nfilters=2\\nsize=3\\npad=1\\nactivation=leaky\\n"
    ...                         "[maxpool]\\nsize=2\\nstride=2\\n"))
    >>> [tuple(o.shape) for o in net.layer_outputs(torch.zeros(1, 3, 8, 8))]
    [(1, 2, 8, 8), (1, 2, 4, 4)]
"""
from __future__ import annotations

import contextlib
import gc
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .cfg.net import NET_SECTIONS, NetOptions
from .cfg.options import OptionReader, dialect_keys
from .cfg.reader import Section, read_cfg
from .dialect import ALEXEYAB, PJREDDIE, Dialect, get_dialect
from .errors import CfgError, CfgWarning
from . import fast as _fast
from . import limits as _limits
from .layers import activations
from .layers.base import (BuildContext, CommonOptions, DarknetLayer, ResizeError, Shape,
                          StaleDelta, delta_probe)
from .layers.registry import get_builder, options_class, section_dialect
from .limits import Limits

#: section kinds whose outputs are detections (forward() returns these).
HEAD_KINDS = ("yolo", "region", "detection", "Gaussian_yolo")


def detect_dialect(sections: Sequence[Section]) -> Optional[Dialect]:
    """The dialect a cfg needs, from what it uses; None when both read it alike.

    AlexeyAB if it has a section, key or activation only that fork knows;
    pjreddie if it uses a key only pjreddie reads.
    """
    found: Optional[Dialect] = None
    for sec in sections:
        only = section_dialect(sec.kind)
        if only is not None:
            return get_dialect(only)
        if sec.get("activation") in activations.ALEXEYAB_ONLY:
            return ALEXEYAB
        cls = options_class(sec.kind)
        keys = set(sec.keys())
        if cls is not None:
            if keys & dialect_keys(cls, "alexeyab"):
                return ALEXEYAB
            if keys & dialect_keys(cls, "pjreddie"):
                found = PJREDDIE
    return found


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic GC off for the block (as it was after): building allocates many objects and
    frees none, so a collection there finds nothing and only walks the heap."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _resolve_dialect(sections: Sequence[Section], dialect: "str | Dialect | None") -> Dialect:
    if dialect is not None and str(dialect) != "auto":
        return get_dialect(dialect)
    return detect_dialect(sections) or PJREDDIE


@contextlib.contextmanager
def _fp32_precision(strict: bool) -> Iterator[None]:
    """Keep CUDA convolutions and matmuls in full float32 (no TF32), as Darknet computes.

    PyTorch lets cuDNN use TF32 by default on Ampere+ GPUs, which moves layer
    outputs by ~1e-3 relative -- 10x the parity tolerance.
    """
    if not strict:
        yield
        return
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul
    old = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                         deterministic=cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        matmul.allow_tf32 = old


class Darknet(nn.Module):
    """A Darknet network built from cfg sections.

    Parameters
    ----------
    sections:
        output of :func:`darknet_py.cfg.read_cfg` (first one ``[net]``), or the path of a
        cfg file, which is read with it.
    dialect:
        ``"pjreddie"``, ``"alexeyab"`` or ``"auto"`` (decided from the cfg, see
        :func:`detect_dialect`; pjreddie when nothing tells them apart).
    warn_unused:
        warn (:class:`CfgWarning`) about keys no parser read, like Darknet's
        "Unused field".
    limits:
        resource caps (:class:`darknet_py.limits.Limits`); default
        :func:`darknet_py.limits.current`. Every size is checked before anything
        is allocated; a cfg over a cap is a :class:`CfgError` naming its line.
    """

    #: let CUDA use TF32 for speed (outputs then drift ~1e-3 from Darknet); off by default.
    allow_tf32: bool = False
    #: take the inference fast path in eval mode without gradients (:mod:`darknet_py.fast`);
    #: False forces the plain path, as does ``with darknet_py.fast.plain():``.
    fast: bool = True
    #: memory layout of the fast path: "auto" (channels-last for CPU batches > 1),
    #: None (the input's) or a torch.memory_format
    fast_layout: "Optional[torch.memory_format | str]" = "auto"
    #: train like Darknet's CPU build: (1) a [convolutional] whose backward overwrites its
    #: input's delta (AlexeyAB: all; pjreddie: 1x1) drops the gradient routes/shortcuts sent
    #: to that input; (2) AlexeyAB only: layers its forward_network does not clear
    #: (:attr:`~darknet_py.layers.base.DarknetLayer.ab_forward_zeroes_delta` False: route,
    #: upsample, ...) add every earlier backward's delta to the current one. False: every
    #: consumer's gradient adds up once (the exact gradient of the graph).
    cpu_backward_quirks: bool = True

    def __init__(self, sections: "Sequence[Section] | os.PathLike[str] | str",
                 dialect: "str | Dialect | None" = "auto",
                 *, warn_unused: bool = True, limits: Optional[Limits] = None) -> None:
        super().__init__()
        if isinstance(sections, (str, os.PathLike)):  # a cfg file's path: read it
            sections = read_cfg(sections)
        if not sections:
            raise CfgError("no sections")
        first = sections[0]
        if first.kind not in NET_SECTIONS:
            raise CfgError(f"first section must be [net] or [network], got [{first.kind}]",
                           file=first.file, line=first.line)
        self.source = first.file
        self.sections = [s.copy() for s in sections]
        self.dialect = _resolve_dialect(sections, dialect)
        net_reader = OptionReader(first, self.dialect)
        self.net: NetOptions = net_reader.read(NetOptions)
        n = self.net
        if n.width > 0 or n.height > 0 or n.channels > 0:
            net_reader.check(n.width > 0 and n.height > 0 and n.channels > 0,
                             f"width, height and channels must all be > 0, got "
                             f"{n.width}x{n.height}x{n.channels}")
            self.input_shape = Shape(n.channels, n.height, n.width)
        else:
            net_reader.check(n.inputs is not None and n.inputs > 0,
                             "needs width, height and channels (or inputs)")
            self.input_shape = Shape(int(n.inputs or 0), 1, 1)
        self.limits = _limits.current() if limits is None else limits
        if self.input_shape.numel > self.limits.max_input_elements:
            raise net_reader.error(
                f"input {self.input_shape.w}x{self.input_shape.h}x{self.input_shape.c} has "
                f"{self.input_shape.numel} values, over the limit of "
                f"{self.limits.max_input_elements} (${_limits.ENV['max_input_elements']})",
                "width" if first.find("width") else "inputs")
        if len(sections) - 1 > self.limits.max_layers:
            over = sections[self.limits.max_layers + 1]
            raise CfgError(f"more than {self.limits.max_layers} layers "
                           f"(${_limits.ENV['max_layers']})", file=over.file, line=over.line)
        # no cyclic garbage collection while the graph is built: a fresh process that
        # imported torch holds ~170k objects, and the full collection the build's
        # allocations would trigger costs more than the build (~0.1 s vs ~0.02 s)
        with _gc_paused():
            params = 0
            readers = [net_reader]
            layers: List[DarknetLayer] = []
            shapes: List[Shape] = []
            self.common: List[CommonOptions] = []
            for index, sec in enumerate(sections[1:]):
                if sec.kind in NET_SECTIONS:
                    raise CfgError(f"[{sec.kind}] must be the first section only",
                                   file=sec.file, line=sec.line)
                builder = get_builder(sec.kind)
                if builder is None:
                    raise CfgError(f"unsupported section [{sec.kind}] (layer {index}): darknet_py "
                                   f"has no builder for it", file=sec.file, line=sec.line)
                only = section_dialect(sec.kind)
                if only is not None and only != self.dialect.name:
                    label = {"alexeyab": "AlexeyAB", "pjreddie": "pjreddie"}
                    raise CfgError(f"[{sec.kind}] is a {label[only]}-only section; "
                                   f"{label[self.dialect.name]}'s Darknet does not know it "
                                   f"(use dialect='{only}' or 'auto')", file=sec.file, line=sec.line)
                reader = OptionReader(sec, self.dialect)
                ctx = BuildContext(index=index, reader=reader, net=self.net, dialect=self.dialect,
                                   shapes=shapes, layers=layers,
                                   input_shape=shapes[-1] if shapes else self.input_shape,
                                   limits=self.limits, params_before=params)
                layer = builder(ctx)
                params += layer.weight_count()
                if params > self.limits.max_parameters:
                    raise ctx.error(f"the network reaches {params} parameters, over the limit of "
                                    f"{self.limits.max_parameters} "
                                    f"(${_limits.ENV['max_parameters']})")
                common = reader.read(CommonOptions)
                layer.dontloadscales = bool(common.dontloadscales)
                layer.skips_backward = (bool(common.onlyforward)
                                        and self.dialect.onlyforward_skips_backward)
                layers.append(layer)
                shapes.append(layer.out_shape)
                self.common.append(common)
                readers.append(reader)
        if not layers:
            raise CfgError("the cfg has a [net] section but no layers", file=first.file,
                           line=first.line)
        self.layers = nn.ModuleList(layers)
        self.unused = [(r.section, e) for r in readers for e in r.unused()]
        #: one line per unused key: where it is and the read key it resembles
        self.unused_notes: List[str] = []
        for r in readers:
            for e in r.unused():
                hint = r.suggestion(e.key)
                self.unused_notes.append(f"{r.section.file}:{e.line} [{r.section.kind}] {e.key}"
                                         + (f" (did you mean {hint}?)" if hint else ""))
        if warn_unused:
            for note in self.unused_notes:
                warnings.warn(CfgWarning(f"unused cfg key: {note}"), stacklevel=2)
        # which outputs must be kept, and until when
        self._last_use: Dict[int, int] = {}
        for layer in layers:
            for ref in layer.refs:
                self._last_use[ref] = max(self._last_use.get(ref, -1), layer.index)
        self.heads = [l.index for l in layers if l.kind in HEAD_KINDS]
        #: the network's output layer: the last one that is not a [cost] layer
        #: (network.c:get_network_output skips trailing cost layers)
        self.output_index = max([l.index for l in layers if l.kind != "cost"], default=0)
        #: .weights header (major, minor, revision, seen) of the last load, kept for saving
        self.header: Tuple[int, int, int, int] = (0, 2, self.dialect.weights_revision, 0)
        #: layer output shapes per input (h, w) other than input_shape's, computed on demand
        self._shape_cache: Dict[Tuple[int, int], List[Shape]] = {}
        self.eval()

    # -- construction helpers ---------------------------------------------------------
    @classmethod
    def from_cfg(cls, path: "os.PathLike[str] | str", dialect: "str | Dialect | None" = "auto",
                 **kwargs) -> "Darknet":
        return cls(read_cfg(path), dialect, **kwargs)

    @property
    def width(self) -> int:
        return self.input_shape.w

    @property
    def height(self) -> int:
        return self.input_shape.h

    @property
    def seen(self) -> int:
        return self.header[3]

    # -- resizing (network.c:resize_network) -----------------------------------------
    def _walk_shapes(self, h: int, w: int) -> List[Shape]:
        shapes: List[Shape] = []
        prev = Shape(self.input_shape.c, h, w)
        for layer in self.layers:
            out = Shape(*layer.resize(prev, [shapes[r] for r in layer.refs]))
            if out.c <= 0 or out.h <= 0 or out.w <= 0:
                raise ResizeError(f"layer {layer.index} [{layer.kind}] would have an empty "
                                  f"{out.w}x{out.h}x{out.c} output")
            shapes.append(out)
            prev = out
        return shapes

    def _fits(self, h: int, w: int) -> bool:
        try:
            self._walk_shapes(h, w)
            return True
        except ResizeError:
            return False

    def _nearest_sizes(self, value: int, other: int, is_width: bool) -> List[int]:
        """Side lengths near ``value`` that work with the other side at ``other``."""
        found: List[int] = []
        below = next((v for v in range(value - 1, 0, -1)
                      if self._fits(*((other, v) if is_width else (v, other)))), None)
        above = next((v for v in range(value + 1, 2 * value + 64)
                      if self._fits(*((other, v) if is_width else (v, other)))), None)
        for v in (below, above):
            if v is not None:
                found.append(v)
        return found

    def shapes_for(self, w: int, h: int) -> List[Shape]:
        """Every layer's (c, h, w) output for a ``w`` x ``h`` input, by each layer's
        ``resize_*_layer`` arithmetic (as ``resize_network``), without changing the model.

        A size the graph cannot take is a :class:`~darknet_py.errors.CfgError` (a
        ValueError) naming the layer and the nearest widths/heights that would work.
        """
        if (h, w) == (self.input_shape.h, self.input_shape.w):
            return [l.out_shape for l in self.layers]
        cached = self._shape_cache.get((h, w))
        if cached is not None:
            return cached
        if h < 1 or w < 1:
            raise ValueError(f"{self.source}: cannot resize to {w}x{h}")
        try:
            shapes = self._walk_shapes(h, w)
        except ResizeError as err:
            hint = []
            base_h, base_w = self.input_shape.h, self.input_shape.w
            if not self._fits(base_h, w):
                near = self._nearest_sizes(w, base_h, True)
                hint += [f"width {' or '.join(map(str, near))}"] if near else []
            if not self._fits(h, base_w):
                near = self._nearest_sizes(h, base_w, False)
                hint += [f"height {' or '.join(map(str, near))}"] if near else []
            sizes = f"; sizes that would work: {', '.join(hint)}" if hint else ""
            raise CfgError(f"the network cannot take a {w}x{h} input: {err}{sizes}",
                           file=self.source) from None
        if len(self._shape_cache) > 64:
            self._shape_cache.clear()
        self._shape_cache[(h, w)] = shapes
        return shapes

    def resize(self, w: int, h: int) -> None:
        """Darknet's ``resize_network(net, w, h)``: a new input size for every layer.

        Updates ``input_shape`` (and the [net] width/height) and every layer's
        ``out_shape`` as each ``resize_*_layer`` does; weights are untouched. (One Darknet
        quirk is not copied: ``resize_yolo_layer``/``resize_region_layer`` leave
        ``l.out_w``/``l.out_h`` at the build size while their output is the new w x h;
        ``out_shape`` here is the output's real shape.)
        """
        shapes = self.shapes_for(w, h)
        for layer, shape in zip(self.layers, shapes):
            layer.out_shape = Shape(*shape)
        self.input_shape = Shape(self.input_shape.c, h, w)
        self.net.width, self.net.height = w, h
        self._shape_cache.clear()

    # -- execution -------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() == 2 and self.input_shape.h == 1:
            x = x.view(x.shape[0], -1, 1, 1)
        if x.dim() != 4 or x.shape[1] != self.input_shape.c:
            raise ValueError(f"{self.source}: expected input of shape (batch, "
                             f"{self.input_shape.c}, H, W), got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise ValueError(f"{self.source}: expected a float input in [0, 1] (Darknet's "
                             f"image/255), got dtype {x.dtype}")
        param = next(self.parameters(), None)
        if param is not None and x.dtype != param.dtype:
            x = x.to(param.dtype)
        # the memory layout picks the conv algorithm, which moves results by ~1e-5
        return x.contiguous()

    def _run(self, x: Tensor, upto: Optional[int] = None, keep_all: bool = False,
             keep: Optional[Sequence[int]] = None) -> List[Tensor]:
        """Run layers 0..upto; returns every output if ``keep_all``, those of the layers in
        ``keep`` if given, else the heads' + last."""
        x = self._check_input(x)
        with _fp32_precision(x.is_cuda and not self.allow_tf32):
            return self._run_layers(x, upto, keep_all, keep)

    def outputs_of(self, x: Tensor, indices: Sequence[int]) -> List[Tensor]:
        """The outputs of layers ``indices`` (ascending) for input ``x``, running only as far
        as the last of them."""
        if not indices:
            return []
        return self._run(x, upto=max(indices), keep=indices)

    def _run_layers(self, x: Tensor, upto: Optional[int], keep_all: bool,
                    keep: Optional[Sequence[int]] = None) -> List[Tensor]:
        wanted = set(keep) if keep is not None else None
        saved: Dict[int, Tensor] = {}
        kept: List[Tensor] = []
        shapes = (self.shapes_for(x.shape[3], x.shape[2]) if self.input_shape.h > 1 or x.shape[2] > 1
                  else [l.out_shape for l in self.layers])
        fast = _fast.enabled(self)
        if fast:
            x = _fast.prepare(self, x)
        out = final = first = x
        last = len(self.layers) - 1 if upto is None else upto
        output_index = self.output_index if upto is None else upto
        reuse = False  # may layer i overwrite x (the previous output)? never the caller's input
        layers = list(self.layers)
        for i, layer in enumerate(layers):
            if i > last:
                break
            refs = [saved[r] for r in layer.refs]
            if fast:  # eval, no gradients: nothing below applies (no requires_grad)
                out = layer.infer(x, refs, reuse)
            else:
                if layer.skips_backward and self.training and torch.is_grad_enabled():
                    # onlyforward=1: backward_network skips this layer (no gradient to its
                    # inputs or tensors); later layers' gradient still stops at its l.delta.
                    # (detached: a layer may hand its input itself on, a one-input [route])
                    with torch.no_grad():
                        out = layer(x, refs).detach()
                else:
                    out = layer(x, refs)
                probe = delta_probe()
                if probe is not None and torch.is_grad_enabled():
                    # its own node (a route may return its input itself); a leaf where nothing
                    # before needs a gradient (a detached input): Darknet's l.delta is still set
                    out = out.view_as(out) if out.requires_grad else out.detach().requires_grad_()
                    probe.record(i, out)
            cut = (self.cpu_backward_quirks and out.requires_grad and i + 1 < len(layers)
                   and layers[i + 1].overwrites_input_delta()
                   and not layers[i + 1].skips_backward)
            if (self.cpu_backward_quirks and out.requires_grad and not cut
                    and self.dialect.name == "alexeyab" and not layer.ab_forward_zeroes_delta):
                out = StaleDelta.apply(out, layer)
            if i <= output_index:
                final = out
            # a flat output (softmax) reaches later layers as its c x h x w
            x = out.view(out.shape[0], *shapes[i]) if layer.flat else out
            if keep_all:
                kept.append(out)
            elif wanted is not None:
                if i in wanted:
                    kept.append(out)
            elif i in self.heads:
                kept.append(out)
            if i in self._last_use:
                # Darknet's CPU backward: when the next layer overwrites this layer's delta,
                # what its other consumers sent back is lost (see overwrites_input_delta)
                saved[i] = x.detach() if cut else x
            for r in layer.refs:
                if self._last_use[r] == i:
                    saved.pop(r, None)
            # overwriting out in layer i+1 is safe only if no one else holds its memory
            reuse = (fast and not keep_all and i not in self._last_use and i not in self.heads
                     and i != output_index and (wanted is None or i not in wanted)
                     and _fast.owns(out, first, kept, saved.values()))
        if not keep_all and wanted is None and (not self.heads or upto is not None):
            kept.append(final)
        return _fast.finish(kept) if fast else kept

    def forward(self, x: Tensor) -> Union[Tensor, List[Tensor]]:
        """Outputs of the detection heads (a list) if there are any, else the network's
        output (the last layer that is not a [cost] layer, as Darknet's)."""
        outs = self._run(x)
        if self.heads:
            return outs
        return outs[-1]

    def layer_outputs(self, x: Tensor, upto: Optional[int] = None) -> List[Tensor]:
        """Every layer's output, one tensor per cfg section, as Darknet's ``l.output``
        (batch first; flat (batch, N) for softmax-like layers)."""
        outs = self._run(x, upto, keep_all=True)
        return [o.reshape(o.shape[0], -1) if self.layers[i].flat else o
                for i, o in enumerate(outs)]

    def reset_state(self) -> None:
        """Zero the state recurrent layers keep from one inference forward to the next
        (as a freshly parsed Darknet network starts)."""
        for layer in self.layers:
            layer.reset_state()

    # -- .weights --------------------------------------------------------------------
    def load_weights(self, path: "os.PathLike[str] | str", upto: Optional[int] = None, *,
                     mmap: bool = False) -> None:
        """Load a .weights file, or official weights by name (:func:`darknet_py.zoo.resolve`);
        ``mmap=True`` maps the file instead of reading it (:func:`darknet_py.weights.load_weights`)."""
        from . import zoo
        from .weights import load_weights
        if upto is None:
            upto = zoo.default_upto(path)
        load_weights(self, zoo.resolve(path), upto=upto, mmap=mmap)

    def save_weights(self, path: "os.PathLike[str] | str", upto: Optional[int] = None) -> None:
        from .weights import save_weights
        save_weights(self, path, upto=upto)

    def fuse_batchnorm(self) -> "Darknet":
        """AlexeyAB's ``fuse_conv_batchnorm`` (its ``detector test`` runs it after
        ``load_weights``): every convolution folds its batchnorm into weights and bias,
        in place. Outputs move by float rounding only (~1e-6 relative). Returns self."""
        for layer in self.layers:
            layer.fuse_batchnorm()
        return self

    def calculate_binary_weights(self, calculated: bool = True) -> "Darknet":
        """AlexeyAB's ``calculate_binary_weights`` (every Darknet inference command runs it
        after loading, after ``fuse_conv_batchnorm``): its ``xnor=1`` convolutions then take
        the bit-packed path. darknet_py's models start so; ``calculated=False`` gives
        Darknet's ``network_predict`` without it (the float path, defined for xnor layers
        of one filter only). pjreddie's dialect has no such step. Returns self."""
        for layer in self.layers:
            layer.calculate_binary_weights(calculated)
        return self

    # -- reporting --------------------------------------------------------------------
    #: the header line ``parse_network_cfg`` prints before the layers
    TABLE_HEADER = "layer     filters    size              input                output"

    def layer_table(self) -> List[str]:
        """The table pjreddie's ``parse_network_cfg`` prints: the header line, then one
        ``"%5d "``-prefixed line per layer, each the ``fprintf`` of its ``make_*_layer``
        (conv lines end in their BFLOPs; :meth:`bflops` is their sum)."""
        lines = [self.TABLE_HEADER]
        prev = self.input_shape
        for layer in self.layers:
            lines.append(f"{layer.index:5d} {layer.table_line(prev)}")
            prev = layer.out_shape
        return lines

    def bflops(self) -> float:
        total, prev = 0.0, self.input_shape
        for layer in self.layers:
            total += layer.flops(prev)
            prev = layer.out_shape
        return total / 1e9

    # -- detection --------------------------------------------------------------------
    def detect(self, images, thresh: "float | None" = None, nms: float = 0.45, hier_thresh: float = 0.5,
               names=None, **kwargs):
        """Darknet's ``detector test`` on one image or a list of them.

        Returns typed detections (see :func:`darknet_py.detect.detect`).
        """
        from .detect import detect
        return detect(self, images, thresh=thresh, nms=nms, hier_thresh=hier_thresh,
                      names=names, **kwargs)
