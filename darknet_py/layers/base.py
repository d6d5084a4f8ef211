"""What every layer builder gets and returns.

A builder is ``build(ctx: BuildContext) -> DarknetLayer``. The context gives
the section's typed option reader, the network options, the dialect and the
output shapes of all earlier layers; the layer it returns knows its output
shape, which earlier layers it reads (``refs``) and, if it has parameters, the
order in which a ``.weights`` file stores them (``weight_tensors``).
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from .. import limits as _limits
from ..cfg.options import OptionReader, option
from ..dialect import Dialect

if TYPE_CHECKING:  # pragma: no cover
    from ..cfg.net import NetOptions

#: default cap on one layer's output (per image) / weights, in floats; the cap in force is
#: ``ctx.limits.max_layer_elements`` (see :mod:`darknet_py.limits`).
MAX_LAYER_ELEMENTS = _limits.DEFAULT.max_layer_elements


class ResizeError(ValueError):
    """An input size a layer cannot take (see :meth:`DarknetLayer.resize`)."""


class Shape(NamedTuple):
    """Darknet's (out_c, out_h, out_w) of a layer, per image."""

    c: int
    h: int
    w: int

    @property
    def numel(self) -> int:
        return self.c * self.h * self.w

    def __str__(self) -> str:
        return f"{self.w} x{self.h:>4} x{self.c:>5}"


@dataclass
class BuildContext:
    """Everything a builder may look at."""

    index: int
    reader: OptionReader
    net: "NetOptions"
    dialect: Dialect
    shapes: List[Shape]
    layers: List["DarknetLayer"] = field(default_factory=list)
    input_shape: Shape = Shape(0, 0, 0)
    #: resource caps in force for this build (:mod:`darknet_py.limits`)
    limits: _limits.Limits = field(default_factory=_limits.current)
    #: parameters (floats) of the layers built before this one
    params_before: int = 0

    def error(self, message: str, key: Optional[str] = None):
        return self.reader.error(message, key)

    def check_elements(self, count: int, what: str, key: Optional[str] = None) -> None:
        """Refuse ``count`` floats of ``what`` (one tensor) above ``max_layer_elements``."""
        cap = self.limits.max_layer_elements
        if count > cap:
            raise self.error(f"{what} of {count} floats exceeds the limit of {cap} per layer "
                             f"(${_limits.ENV['max_layer_elements']})", key)

    def check_weights(self, count: int, key: Optional[str] = None) -> None:
        """Refuse ``count`` new weights before allocating them (per-layer and total caps)."""
        self.check_elements(count, "weights", key)
        cap = self.limits.max_parameters
        if self.params_before + count > cap:
            raise self.error(f"{count} weights bring the network to {self.params_before + count} "
                             f"parameters, over the limit of {cap} "
                             f"(${_limits.ENV['max_parameters']})", key)

    def layer_index(self, value: int, key: str) -> int:
        """Resolve a cfg layer reference: negative = relative to this layer, else absolute."""
        index = self.index + value if value < 0 else value
        if not 0 <= index < self.index:
            raise self.error(f"refers to layer {value} (= {index}), but only layers 0.."
                             f"{self.index - 1} come before layer {self.index}", key)
        return index


class DarknetLayer(nn.Module):
    """Base class of every layer module.

    ``forward(x, refs)`` gets the previous layer's output ``x`` and the outputs
    of the layers listed in ``self.refs`` (in that order), and returns this
    layer's output laid out as Darknet's ``l.output`` with a batch dimension.
    """

    kind: str = "layer"
    #: the cfg key that sets this layer's output channels (``filters``, ``output``), if one does
    channels_key: Optional[str] = None
    #: the output has the input's shape whatever its size (activations, BN, heads...):
    #: :meth:`resize` then needs nothing more
    elementwise: bool = False
    #: forward reads ``x``, the previous layer's output (False: only ``refs``, as [route]);
    #: with ``refs`` the layers whose outputs (and so deltas) this layer's depends on
    reads_previous: bool = True
    #: Darknet's per-layer ``dontloadscales`` (set from the section by the model): the
    #: .weights file lacks this layer's BN values (read by the layers that have BN)
    dontloadscales: bool = False

    def __init__(self, index: int, out_shape: Shape, refs: Sequence[int] = ()) -> None:
        super().__init__()
        self.index = index
        self.out_shape = Shape(*out_shape)
        self.refs: List[int] = list(refs)
        #: True when Darknet's l.output is a flat vector (softmax, connected).
        self.flat = False

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def infer(self, x: Tensor, refs: List[Tensor], reuse: bool) -> Tensor:
        """Inference fast path (eval mode, no gradients; see :mod:`darknet_py.fast`): the
        output of :meth:`forward` up to float rounding. ``reuse``: ``x`` is nobody else's
        and may be overwritten. The default is :meth:`forward` itself."""
        return self.forward(x, refs)

    def darknet_indexes(self, x: Tensor) -> Optional[Tensor]:
        """Darknet's ``l.indexes`` of a train-mode forward on ``x`` (the input cell each
        output's delta goes back to, -1: none), for layers whose backward routes deltas by
        them ([maxpool]); None for the others."""
        return None

    def resize(self, in_shape: Shape, ref_shapes: Sequence[Shape]) -> Shape:
        """Darknet's ``resize_*_layer``: this layer's output shape for input ``in_shape``
        (and the current shapes of the layers in ``self.refs``), by Darknet's arithmetic.

        Raises :class:`ResizeError` when the layer cannot take that input. Does not
        change the layer (:meth:`darknet_py.model.Darknet.resize` stores the result).
        """
        if self.elementwise:
            return Shape(*in_shape)
        raise ResizeError(f"layer {self.index} [{self.kind}] cannot be resized (its weights "
                          f"or Darknet's resize_network fix its input size)")

    def reset_state(self) -> None:
        """Forget the state a recurrent layer keeps between inference calls (Darknet's
        ``l.state``); nothing for the others."""

    def set_weights_transposed(self, transposed: bool) -> None:
        """Told by the .weights loader whether the file stores [connected] matrices as
        [inputs][outputs] (header major or minor > 1000, ``load_connected_weights``): the
        layers holding such matrices follow it; nothing for the others."""

    def weight_tensors(self) -> List[Tensor]:
        """Parameters/buffers in the order a .weights file stores them (none by default)."""
        return []

    def reset_parameters(self) -> None:
        """Give every parameter and persistent buffer Darknet's initial value (none by default)."""

    # -- training ---------------------------------------------------------------------
    #: Darknet allocates ``l.cost`` for this layer: it counts in ``calc_network_cost``'s mean
    has_cost: bool = False

    def loss(self, output: Tensor, truth: Tensor, net_size: "tuple[int, int]", seen: int = 0,
             step: "Optional[LossStep]" = None) -> "tuple[Tensor, Tensor]":
        """Darknet's train-mode forward of a layer with a cost: ``(delta, cost)``.

        ``delta`` is ``l.delta`` (shape of ``output``, the *negative* gradient Darknet's
        backward adds into the previous layer), ``cost`` is ``*(l.cost)`` (a 0-d tensor).
        ``truth`` is ``net.truth`` as (batch, rows, fields); ``net_size`` the input's (w, h);
        ``seen`` Darknet's ``*net.seen`` during this forward (already counting this batch);
        ``step`` the iteration, [net] options and net-level delta statistics of the training
        step (None: none of what depends on them applies).
        """
        raise NotImplementedError(f"layer {self.index} [{self.kind}] has no loss")

    def train_refusal(self) -> Optional[str]:
        """Why darknet_py cannot train a network with this layer as Darknet does (None: it
        can); :func:`darknet_py.train.engine.check_trainable` refuses with it."""
        return None

    def input_delta(self, delta: Tensor, output: Tensor) -> Tensor:
        """The delta this layer's backward adds to the previous layer, from ``l.delta``
        (the same for every head but pjreddie's [region], see there)."""
        return delta

    def loss_buffers(self, output: Tensor, truth: Tensor) -> "tuple[Tensor, Optional[Tensor]]":
        """What Darknet's training forward with ``truth`` leaves in this layer's ``l.output``
        and in its input (the previous layer's ``l.output``; None: untouched), for comparing
        with its dumps: the heads' output is ``output`` itself ([cost]: its per-value loss)."""
        return output, None

    def loss_reaches_input(self) -> bool:
        """Whether Darknet's CPU backward of this layer adds its delta to the previous
        layer (pjreddie's backward_region_layer is empty: its loss trains nothing)."""
        return True

    #: AlexeyAB's CPU forward_network zeroes ``l.delta`` only for layers with ``l.train`` set
    #: (convolutional, batchnorm, maxpool/local_avgpool, shortcut; heads clear their own);
    #: the others (route, upsample, ...) keep adding every backward into the same buffer
    ab_forward_zeroes_delta: bool = False

    #: AlexeyAB's ``l.train``: its update_network skips the layers without it (only
    #: make_convolutional/batchnorm/shortcut/crnn/maxpool_layer get it; [connected], [rnn],
    #: [gru], [lstm], [local]... are never updated by its CPU build)
    ab_train: bool = False

    #: False where Darknet's ``l.delta`` after backward is no gradient :meth:`mark_delta`
    #: exposes (it aliases another layer's, or holds the input's gradient): compare skips it
    delta_comparable: bool = True

    def mark_delta(self, t: Tensor) -> Tensor:
        """``t``, the tensor whose negative gradient Darknet's backward leaves in this
        layer's ``l.delta`` when that is not the output's (a convolution's: before BN and
        activation); recorded only inside :func:`probe_deltas`. Tensors handed to
        :meth:`share_delta` before this forward receive that same gradient."""
        tie = self.__dict__.pop("_tie", None)
        if tie:
            t = Tie.apply(t, *tie)
        probe = _DELTA_PROBE.get()
        if probe is not None:
            probe.record(self.index, t, inner=True)
        return t

    def share_delta(self, *tensors: Tensor) -> None:
        """For this layer's next forward only: ``tensors`` (each of the shape of its l.delta)
        get the gradient of its l.delta after its backward, as a recurrent layer's backward
        copies an inner layer's l.delta to another's (:class:`Tie`)."""
        tied = [t for t in tensors if t.requires_grad]
        if tied:
            self.__dict__["_tie"] = tied

    def weight_grad_input(self, t: "Tensor | Later") -> None:
        """For this layer's next forward only: its weight gradient reads ``t`` (detached, of
        the input's shape; or a :class:`Later` filled before the backward) in place of the
        input, as ``backward_rnn_layer`` hands the output layer a state recomputed without the
        shortcut term. Layers with weights honour it."""
        self.__dict__["_weight_input"] = t if isinstance(t, Later) else t.detach()

    def pending_weight_input(self) -> "Tensor | Later | None":
        return self.__dict__.pop("_weight_input", None)

    def overwrites_input_delta(self) -> bool:
        """True when this layer's CPU backward *assigns* the previous layer's delta instead
        of adding to it, so that gradients other consumers (routes, shortcuts) put there
        first are lost. The graph then lets only this layer's gradient reach its input."""
        return False

    def rate_scale(self, cfg_scale: float) -> float:
        """The multiplier of the learning rate update_network applies to this layer's
        tensors: the section's ``learning_rate=`` (``l.learning_rate_scale``), by default."""
        return cfg_scale

    def uses_adam(self, dialect) -> bool:
        """Whether this layer's CUDA ``update_*_layer_gpu`` takes the Adam branch when [net]
        ``adam=1`` (:func:`darknet_py.train.optimizer.adam_update`); False: it keeps SGD with
        momentum. No layer by default."""
        return False

    def adam_refusal(self, dialect) -> Optional[str]:
        """Why the CUDA Darknet cannot train this layer with [net] ``adam=1`` (None: it can)."""
        return None

    def ema_tensors(self) -> "List[tuple[str, Tensor, bool]]":
        """(name, parameter, is_weights) of the tensors AlexeyAB's ema_update averages
        (``l.weights_ema``, ``l.biases_ema``, ``l.scales_ema``: only [convolutional] layers
        built with train=1 and no share_layer have them); none by default."""
        return []

    def reject_similar_weights(self, threshold: float, generator: "Optional[torch.Generator]"
                               = None) -> Optional[int]:
        """AlexeyAB's reject_similar_weights for this layer (only [convolutional] layers with
        an activation other than linear take part): the filter it re-initialised, or None."""
        return None

    #: Darknet's CPU backward_network skips this layer's backward (AlexeyAB's per-layer
    #: ``onlyforward=1``; set by the model from the section): nothing reaches its inputs or
    #: its own tensors from its output's delta
    skips_backward: bool = False

    def update_tensors(self) -> "List[tuple[str, Tensor, bool]]":
        """(name, parameter, decayed) in the order ``update_*_layer`` moves them; Darknet's
        weight decay applies to the weights only, never to biases or BN scales."""
        return [(name, p, name.rsplit(".", 1)[-1] in ("weight", "weights"))
                for name, p in self.named_parameters()]
    #: detection heads: which NMS AlexeyAB's ``detector test`` runs after decoding when
    #: this is the network's last head (``nms_kind``/``beta_nms``; 0 = calloc'd default)
    nms_kind: str = "default"
    beta_nms: float = 0.6
    #: True for the heads that :meth:`get_detections` decodes (the detection layers:
    #: their options carry the classes/max/jitter/resize train_detector reads)
    decodes: bool = False
    #: True for the heads whose box decoding can run inside an exported graph (``decode``)
    decodes_in_graph: bool = False
    #: whether the head's decode sets ``dets[i].classes`` (AlexeyAB's draw_detections_v3
    #: loops over it: a head that leaves it 0, [detection], prints no lines there)
    sets_det_classes: bool = True
    #: AlexeyAB's LAYER_TYPE number for the heads its ``detector test`` lists
    #: (" Detection layer: %d - type = %d"): REGION 27, YOLO 28, GAUSSIAN_YOLO 29
    alexeyab_layer_type: Optional[int] = None

    def get_detections(self, output: Tensor, im_w: int, im_h: int, net_w: int, net_h: int,
                       thresh: float, hier_thresh: float = 0.5, letterbox: bool = True):
        """A detection head's part of Darknet's ``get_network_boxes`` for one image's
        output (a :class:`darknet_py.postprocess.DetectionArrays`); heads override it."""
        raise NotImplementedError(f"layer {self.index} [{self.kind}] is not a detection head")

    def objectness_channels(self) -> List[int]:
        """Detection heads: the input channels that hold objectness logits (for
        :func:`darknet_py.init.random_init`'s ``objectness_bias``)."""
        return []

    def class_channels(self) -> List[int]:
        """Detection heads: the input channels that hold class logits."""
        return []

    def fuse_batchnorm(self) -> None:
        """AlexeyAB's ``fuse_conv_batchnorm`` for this layer (nothing to fuse by default)."""

    def calculate_binary_weights(self, calculated: bool) -> None:
        """AlexeyAB's ``calculate_binary_weights`` for this layer (``calculated``) or its
        absence (nothing by default; ``xnor=1`` convolutions override it)."""

    def clear_bin_output(self) -> None:
        """AlexeyAB's parser setting this layer's ``use_bin_output = 0`` because a later
        [route]/[shortcut]/[sam]/[scale_channels] reads its output (nothing by default)."""

    def weight_count(self) -> int:
        return sum(t.numel() for t in self.weight_tensors())

    def flops(self, in_shape: Shape) -> float:
        """Multiply-adds*2 for Darknet's BFLOPs column (0 for cheap layers)."""
        return 0.0

    def describe(self, in_shape: Shape) -> str:
        """The middle part of Darknet's layer table line."""
        return ""

    def table_line(self, in_shape: Shape) -> str:
        """This layer's line in the table Darknet prints while parsing (after ``"%5d "``).

        Layers with a pjreddie ``make_*_layer`` print override this with its exact
        ``fprintf``; the default is a generic line from kind, describe() and flops().
        """
        text = (f"{self.kind[:8]:<8}{self.describe(in_shape):<22}{table_shape(in_shape)}   ->  "
                f"{table_shape(self.out_shape)}")
        bflops = self.flops(in_shape) / 1e9
        return text + f"  {bflops:5.3f} BFLOPs" if bflops else text

    def extra_repr(self) -> str:
        return f"index={self.index}, out={tuple(self.out_shape)}"


@dataclass
class DeltaStats:
    """AlexeyAB's net-level ``*net.delta_rolling_avg``, ``delta_rolling_max``,
    ``delta_rolling_std`` and ``badlabels_reject_threshold`` (float32 values, 0 at the
    start of training): every [yolo] forward with equidistant_point or bad-label rejection
    moves them, in layer order, across iterations."""

    avg: float = 0.0
    max: float = 0.0
    std: float = 0.0
    reject_threshold: float = 0.0


@dataclass
class LossStep:
    """What a cost layer's train-mode forward reads from the network besides its input and
    the truths: ``*net.cur_iteration`` (updates done before this forward), the [net]
    options and the :class:`DeltaStats` it shares with the other heads."""

    iteration: int
    net: object
    stats: DeltaStats = field(default_factory=DeltaStats)


def flat_truth(layer: DarknetLayer, output: Tensor, truth: Tensor, what: str
               ) -> "tuple[Tensor, Tensor]":
    """``net.truth`` read flat against a layer's values (a classifier's or a regression's
    truths, [softmax] / [cost]): ``(values, truths)``, each (batch, n), detached, in the
    values' dtype. A truth row of another length is a ValueError naming the layer
    (``what``: the values, e.g. "outputs")."""
    b = output.shape[0]
    x = output.detach().reshape(b, -1)
    t = truth.reshape(b, -1).to(x.dtype)
    if t.shape[1] != x.shape[1]:
        raise ValueError(f"layer {layer.index} [{layer.kind}]: a truth row has {t.shape[1]} "
                         f"values, the layer {x.shape[1]} {what} (Darknet reads net.truth "
                         f"flat against them)")
    return x, t


class StaleDelta(torch.autograd.Function):
    """Identity forward; backward adds the layer's delta left from every earlier backward
    (AlexeyAB's CPU build never clears it for layers without ``l.train``) and keeps the sum.
    A layer whose backward transforms its l.delta in place (a [connected]'s activation and
    BN backward) replaces the kept sum with the transformed one from a hook of its own."""

    @staticmethod
    def forward(ctx, x: Tensor, holder: "DarknetLayer") -> Tensor:  # type: ignore[override]
        ctx.holder = holder
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        holder = ctx.holder
        old = getattr(holder, "_stale_delta", None)
        total = grad + old if old is not None and old.shape == grad.shape else grad
        holder._stale_delta = total.detach().clone()
        return total, None


class Tie(torch.autograd.Function):
    """``x`` forward; backward hands x's gradient to ``x`` and to every other argument too
    (each gets the same delta, as Darknet's recurrent backward copies one inner layer's
    l.delta into another's or adds it to an earlier step's)."""

    @staticmethod
    def forward(ctx, x: Tensor, *others: Tensor) -> Tensor:  # type: ignore[override]
        ctx.shapes = [o.shape for o in others]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return (grad,) + tuple(grad.reshape(s) for s in ctx.shapes)


class Later:
    """A tensor known only after it is used: ``value`` is set later in the same forward
    (read by a backward, e.g. :class:`AltWeightGrad`'s)."""

    def __init__(self) -> None:
        self.value: Optional[Tensor] = None


class AltWeightGrad(torch.autograd.Function):
    """``op(x, w)`` (linear in each) forward; backward: the input's gradient as usual, the
    weight's from ``alt`` (a tensor or a :class:`Later`) in place of ``x`` (see
    :meth:`DarknetLayer.weight_grad_input`). ``op`` is ``"linear"`` or a conv2d's (stride,
    padding, dilation, groups)."""

    @staticmethod
    def forward(ctx, x: Tensor, alt, w: Tensor, op) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.alt = alt
        ctx.op = op
        if op == "linear":
            return torch.nn.functional.linear(x, w)
        return torch.nn.functional.conv2d(x, w, None, *op)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        alt = ctx.alt.value if isinstance(ctx.alt, Later) else ctx.alt
        if ctx.op == "linear":
            return grad @ w, None, grad.t() @ alt.reshape(x.shape), None
        stride, padding, dilation, groups = ctx.op
        gx = torch.nn.grad.conv2d_input(x.shape, w, grad, stride, padding, dilation, groups)
        gw = torch.nn.grad.conv2d_weight(alt.reshape(x.shape), w.shape, grad, stride, padding,
                                         dilation, groups)
        return gx, None, gw, None


class PassDelta(torch.autograd.Function):
    """``y`` forward, the incoming gradient unchanged backward: a head's backward in Darknet
    (``backward_yolo_layer``: ``axpy(l.delta -> net.delta)``) skips its activation's gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return y.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def head_output(x: Tensor, fn) -> Tensor:
    """``fn(x)``, and when autograd is on, a gradient that passes to ``x`` untouched."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return fn(x)
    with torch.no_grad():
        y = fn(x)
    return PassDelta.apply(x, y)


def table_shape(shape: Shape) -> str:
    """Darknet's ``"%4d x%4d x%4d"`` of (w, h, c) in its layer table."""
    return f"{shape.w:4d} x{shape.h:4d} x{shape.c:4d}"


def check_shape(ctx: BuildContext, shape: Shape) -> Shape:
    """Refuse empty or absurdly large outputs before anything is allocated."""
    if shape.c <= 0 or shape.h <= 0 or shape.w <= 0:
        raise ctx.error(f"output shape would be {shape.c}x{shape.h}x{shape.w} (c x h x w) "
                        f"for input {ctx.input_shape.c}x{ctx.input_shape.h}x{ctx.input_shape.w}")
    ctx.check_elements(shape.numel, f"output {shape.c}x{shape.h}x{shape.w} (c x h x w)")
    return shape


def empty_param(*shape: int) -> nn.Parameter:
    return nn.Parameter(filled(*shape))


_INITIALISE = contextvars.ContextVar("darknet_py_initialise", default=True)


class DeltaProbe:
    """Each layer's ``l.delta`` as Darknet's backward leaves it: the negative gradient of
    the layer's output, or of the tensor the layer passed to :meth:`DarknetLayer.mark_delta`
    (the last backward's, by layer index)."""

    def __init__(self) -> None:
        self.deltas: dict = {}
        #: each layer's output of the last forward (train mode), by layer index
        self.outputs: dict = {}
        self._inner: set = set()

    def record(self, index: int, t: Tensor, inner: bool = False) -> None:
        if not inner:
            self.outputs[index] = t.detach()
        if not t.requires_grad:
            return
        if inner:
            self._inner.add(index)
        elif index in self._inner:
            return

        def keep(grad: Tensor) -> None:
            self.deltas[index] = (-grad).detach().clone()
        t.register_hook(keep)


_DELTA_PROBE: "contextvars.ContextVar[Optional[DeltaProbe]]" = contextvars.ContextVar(
    "darknet_py_delta_probe", default=None)


@contextlib.contextmanager
def probe_deltas():
    """Record every layer's Darknet ``l.delta`` in the backward passes of forwards run
    inside (:class:`DeltaProbe`; compare's per-layer delta check)."""
    probe = DeltaProbe()
    token = _DELTA_PROBE.set(probe)
    try:
        yield probe
    finally:
        _DELTA_PROBE.reset(token)


def delta_probe() -> Optional[DeltaProbe]:
    """The probe of the enclosing :func:`probe_deltas`, if any."""
    return _DELTA_PROBE.get()


@contextlib.contextmanager
def uninitialised():
    """Build layers whose parameters are left as ``torch.empty`` (no fill, no random init).

    For a ``.weights`` load that overwrites them: untouched memory costs no time and
    no resident pages. Whoever builds this way must give every parameter a value
    (:meth:`DarknetLayer.reset_parameters` for the ones the file does not hold).
    """
    token = _INITIALISE.set(False)
    try:
        yield
    finally:
        _INITIALISE.reset(token)


def initialising() -> bool:
    """False inside :func:`uninitialised`."""
    return _INITIALISE.get()


def filled(*shape: int, value: float = 0.0) -> Tensor:
    """A float tensor of ``shape`` holding ``value``; left empty inside :func:`uninitialised`."""
    t = torch.empty(*shape)
    return t.fill_(value) if _INITIALISE.get() else t


@dataclass
class CommonOptions:
    """Keys the network builder reads from every layer section (``parse_network_cfg``)."""

    truth: int = option(0, only="pjreddie")
    onlyforward: int = option(0)
    stopbackward: int = option(0)
    dontsave: int = option(0, only="pjreddie")
    dontload: int = option(0)
    numload: int = option(0, only="pjreddie")
    dontloadscales: int = option(0)
    learning_rate: float = option(1.0, doc="per-layer multiplier of the [net] rate")
    smooth: float = option(0.0, only="pjreddie")
    clip: float = option(0.0, only="alexeyab")
    dont_update: int = option(0, only="alexeyab")
    burnin_update: int = option(0, only="alexeyab")
    train_only_bn: int = option(0, only="alexeyab")
