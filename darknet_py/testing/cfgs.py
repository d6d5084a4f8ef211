"""Small random Darknet cfgs of both dialects, for differential tests against the real Darknet.

:func:`cfgs` is a hypothesis strategy of cfg texts: a ``[net]`` with an odd or
non-square size and 1-4 channels, then a few sections drawn from every section
type darknet_py builds for that fork (:data:`SECTIONS`), each with its options
drawn over their range and their edge values (strides, paddings, groups,
activations, anchors, masks...). Sections are added one by one; a section
darknet_py refuses (``CfgError``: a shape Darknet cannot make) is dropped and
another drawn, so every cfg produced builds. The networks stay tiny (a few
thousand floats per layer) so that Darknet and darknet_py run one in milliseconds.

    >>> from hypothesis import given, settings
    >>> texts = []
    >>> @settings(max_examples=3, derandomize=True, database=None)
    ... @given(cfgs("pjreddie"))
    ... def collect(text):
    ...     texts.append(text)
    >>> collect()
    >>> all(t.startswith("[net]") for t in texts)
    True

Needs ``hypothesis`` (the ``test`` extra); nothing else in darknet_py imports this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hypothesis import strategies as st

from ..cfg import parse_cfg
from ..errors import CfgError
from ..layers.base import Shape

FORKS = ("pjreddie", "alexeyab")

#: activations each fork's get_activation knows (activations.c).
ACTIVATIONS = {
    "pjreddie": ["logistic", "loggy", "relu", "elu", "selu", "relie", "ramp", "leaky", "tanh",
                 "plse", "stair", "hardtan", "lhtan", "linear"],
    "alexeyab": ["logistic", "loggy", "relu", "relu6", "elu", "selu", "gelu", "relie", "ramp",
                 "leaky", "revleaky", "tanh", "plse", "stair", "hardtan", "lhtan", "linear",
                 "swish", "mish", "hard_mish"],
}
#: AlexeyAB's [convolutional] alone applies these (forward_convolutional_layer).
CONV_ONLY_ACTIVATIONS = ["normalize_channels", "normalize_channels_softmax",
                         "normalize_channels_softmax_maxval"]

#: sections whose weights that fork cannot load: pjreddie's make_deconvolutional_layer
#: leaves l.groups at 0 and load_convolutional_weights divides by it (SIGFPE). Such cfgs use
#: the harness's own random init (no load_weights) instead of darknet_py-written weights.
CANNOT_LOAD_WEIGHTS = {"pjreddie": {"deconvolutional"}, "alexeyab": set()}

#: sections after which Darknet has no image size (their make_*_layer sets no
#: out_c/out_h/out_w, so the next layer sees 0x0x0): it refuses any spatial layer after them
#: ("Layer before convolutional layer must output image") and [l2norm] there does nothing.
#: darknet_py builds such layers; the cfgs here end at these sections.
NO_IMAGE = {"softmax", "cost", "detection", "logistic", "contrastive"}

#: keeps every example tiny
MAX_ELEMENTS = 4096
#: [net] widths and heights: mostly odd and small, with the edges 1 and 2
SIDES = [7, 5, 9, 13, 6, 8, 11, 3, 4, 16, 1, 2]
#: sections after which (almost) nothing spatial fits: drawn only last
FLATTENING = {"avgpool", "connected", "detection", "cost", "softmax"}


@dataclass
class State:
    fork: str
    net: Shape
    sections: List[Tuple[str, Dict[str, object]]] = field(default_factory=list)
    shapes: List[Shape] = field(default_factory=list)
    kinds: List[str] = field(default_factory=list)
    #: the last section leaves Darknet without an image size (see NO_IMAGE): stop there
    terminal: bool = False

    @property
    def shape(self) -> Shape:
        return self.shapes[-1] if self.shapes else self.net

    @property
    def index(self) -> int:
        return len(self.shapes)


Emitter = Callable[..., List[Tuple[str, Dict[str, object]]]]
SECTIONS: Dict[str, Tuple[Tuple[str, ...], Emitter]] = {}


def emitter(kind: str, forks: Sequence[str] = FORKS):
    def deco(fn: Emitter) -> Emitter:
        SECTIONS[kind] = (tuple(forks), fn)
        return fn
    return deco


#: AlexeyAB's CPU activate() has no case for these, so it returns 0 for every element: only
#: [convolutional] (swish, mish, hard_mish) and [shortcut] (swish, mish) call their own
#: functions. darknet_py computes the functions; the cfgs here leave those cases out.
ALEXEYAB_CPU_ZERO = {"conv": {"relu6"}, "shortcut": {"relu6", "hard_mish"},
                     "other": {"relu6", "swish", "mish", "hard_mish"}}


def _activation(draw, s: State, conv: bool = False, where: str = "other") -> str:
    names = ACTIVATIONS[s.fork] + (CONV_ONLY_ACTIVATIONS if conv and s.fork == "alexeyab" else [])
    if s.fork == "alexeyab":
        zero = ALEXEYAB_CPU_ZERO["conv" if conv else where]
        names = [n for n in names if n not in zero]
    return draw(st.sampled_from(names))


def _divisors(n: int) -> List[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _earlier(draw, s: State, same_hw: bool = False, same_shape: bool = False) -> Optional[int]:
    """A relative (negative) reference to an earlier layer, or None if there is none fit."""
    here = s.shape
    fit = [i for i, sh in enumerate(s.shapes)
           if (not same_hw or (sh.h, sh.w) == (here.h, here.w)) and (not same_shape or sh == here)]
    if not fit:
        return None
    return draw(st.sampled_from(fit)) - s.index


@emitter("convolutional")
def _conv(draw, s: State):
    c = s.shape.c
    groups = draw(st.sampled_from(_divisors(c)))
    filters = groups * draw(st.integers(1, max(1, 6 // groups)))
    size = draw(st.sampled_from([1, 1, 2, 3, 3, 4, 5]))
    opts: Dict[str, object] = {"filters": filters, "size": size, "groups": groups,
                               "activation": _activation(draw, s, conv=True),
                               "batch_normalize": draw(st.sampled_from([0, 1]))}
    if draw(st.booleans()):
        opts["pad"] = 1
    else:
        opts["padding"] = draw(st.integers(0, size))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    opts["stride"] = stride
    if s.fork == "alexeyab":
        if draw(st.integers(0, 3)) == 0:
            opts["stride_x"] = draw(st.integers(1, 3))
            opts["stride_y"] = draw(st.integers(1, 3))
        if size > 1 and draw(st.integers(0, 4)) == 0:
            opts["dilation"] = 2
    return [("convolutional", opts)]


@emitter("stem", [])
def _stem(draw, s: State):
    size = draw(st.sampled_from([1, 3]))
    return [("convolutional", {"filters": draw(st.integers(1, 4)), "size": size, "pad": 1,
                               "activation": _activation(draw, s, conv=True)})]


@emitter("maxpool")
def _maxpool(draw, s: State):
    opts: Dict[str, object] = {}
    if s.fork == "alexeyab" and draw(st.integers(0, 5)) == 0:
        return [("maxpool", {"maxpool_depth": 1, "out_channels": draw(st.integers(1, 4)),
                             "size": 1, "stride": 1})]
    if draw(st.integers(0, 4)):
        opts["size"] = draw(st.integers(1, 4))
    opts["stride"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 2)) == 0:
        opts["padding"] = draw(st.integers(0, 3))
    if s.fork == "alexeyab" and draw(st.integers(0, 3)) == 0:
        opts["stride_x"] = draw(st.integers(1, 3))
        opts["stride_y"] = draw(st.integers(1, 3))
    return [("maxpool", opts)]


@emitter("local_avgpool", ["alexeyab"])
def _local_avgpool(draw, s: State):
    opts: Dict[str, object] = {"size": draw(st.integers(1, 4)), "stride": draw(st.integers(1, 3))}
    if draw(st.booleans()):
        opts["padding"] = draw(st.integers(0, 3))
    if draw(st.integers(0, 3)) == 0:
        opts["stride_x"] = draw(st.integers(1, 3))
        opts["stride_y"] = draw(st.integers(1, 3))
    return [("local_avgpool", opts)]


@emitter("avgpool")
def _avgpool(draw, s: State):
    return [("avgpool", {})]


@emitter("route")
def _route(draw, s: State):
    first = _earlier(draw, s)
    if first is None:
        return []
    target = s.shapes[s.index + first]
    same = [i - s.index for i, sh in enumerate(s.shapes) if (sh.h, sh.w) == (target.h, target.w)]
    layers = [first] + draw(st.lists(st.sampled_from(same), max_size=2))
    opts: Dict[str, object] = {"layers": ",".join(str(v) for v in layers)}
    if s.fork == "alexeyab" and draw(st.booleans()):
        groups = draw(st.sampled_from([1, 2, 2, 3, 4]))
        opts["groups"] = groups
        opts["group_id"] = draw(st.integers(0, groups - 1))
    return [("route", opts)]


@emitter("shortcut")
def _shortcut(draw, s: State):
    ref = _earlier(draw, s, same_shape=draw(st.booleans()))
    if ref is None:
        return []
    opts: Dict[str, object] = {"from": ref, "activation": _activation(draw, s, where="shortcut")}
    if s.fork == "pjreddie":
        if draw(st.booleans()):
            opts["alpha"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
            opts["beta"] = draw(st.sampled_from([0.0, 0.5, 1.0, -1.0]))
    else:
        if draw(st.integers(0, 3)) == 0:
            more = _earlier(draw, s)
            opts["from"] = f"{ref},{more}"
        if draw(st.integers(0, 2)) == 0:
            opts["weights_type"] = draw(st.sampled_from(["per_feature", "per_channel"]))
            # parse_shortcut exits on weights_normalization=none (its default!) when
            # weights_type is set: it tests weights_type_str where it means the other
            opts["weights_normalization"] = draw(st.sampled_from(["relu", "softmax", "avg_relu"]))
    return [("shortcut", opts)]


@emitter("upsample")
def _upsample(draw, s: State):
    opts: Dict[str, object] = {"stride": draw(st.sampled_from([1, 2, 2, 3, -2]))}
    if draw(st.integers(0, 3)) == 0:
        opts["scale"] = draw(st.sampled_from([0.5, 2.0]))
    return [("upsample", opts)]


@emitter("softmax")
def _softmax(draw, s: State):
    n = s.shape.numel
    opts: Dict[str, object] = {"groups": draw(st.sampled_from(_divisors(n)[:6]))}
    if draw(st.booleans()):
        opts["temperature"] = draw(st.sampled_from([0.5, 2.0, 1.0]))
    return [("softmax", opts)]


@emitter("dropout")
def _dropout(draw, s: State):
    return [("dropout", {"probability": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))})]


# pjreddie's [batchnorm] segfaults on the CPU whatever the cfg: make_batchnorm_layer never
# allocates l.x, which forward_batchnorm_layer copies into (Darknet's own bug).
@emitter("batchnorm", ["alexeyab"])
def _batchnorm(draw, s: State):
    return [("batchnorm", {})]


@emitter("activation")
def _activation_layer(draw, s: State):
    return [("activation", {"activation": _activation(draw, s)})]


@emitter("logistic", ["pjreddie"])
def _logistic(draw, s: State):
    return [("logistic", {})]


@emitter("l2norm", ["pjreddie"])
def _l2norm(draw, s: State):
    return [("l2norm", {})]


@emitter("normalization")
def _normalization(draw, s: State):
    return [("normalization", {"size": draw(st.sampled_from([1, 3, 5])),
                               "alpha": draw(st.sampled_from([0.0001, 0.01, 1.0])),
                               "beta": draw(st.sampled_from([0.75, 0.5, 1.0])),
                               "kappa": draw(st.sampled_from([1.0, 2.0]))})]


@emitter("reorg")
def _reorg(draw, s: State):
    opts: Dict[str, object] = {"stride": draw(st.sampled_from([1, 2, 2, 3]))}
    if draw(st.integers(0, 2)) == 0:
        opts["reverse"] = 1
    if s.fork == "pjreddie" and draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            opts["flatten"] = 1
        else:
            opts["extra"] = draw(st.integers(1, 3))
    return [("reorg", opts)]


@emitter("reorg3d", ["alexeyab"])
def _reorg3d(draw, s: State):
    opts: Dict[str, object] = {"stride": draw(st.sampled_from([1, 2, 2]))}
    if draw(st.integers(0, 2)) == 0:
        opts["reverse"] = 1
    return [("reorg3d", opts)]


@emitter("connected")
def _connected(draw, s: State):
    return [("connected", {"output": draw(st.integers(1, 12)), "activation": _activation(draw, s),
                           "batch_normalize": draw(st.sampled_from([0, 1]))})]


@emitter("local")
def _local(draw, s: State):
    # Darknet's [local] im2col writes out_h*out_w*size*size*c floats into net.workspace,
    # which parse_network_cfg sizes in bytes from l.workspace_size -- counted in floats by
    # pjreddie's make_local_layer, not set at all by AlexeyAB's: alone, [local] overflows the
    # heap (it overwrote the next layer's biases in the differential run). A convolution of
    # the same size on >= c channels right after it makes the workspace big enough.
    size = draw(st.sampled_from([1, 2, 3]))
    pad = draw(st.sampled_from([0, 0, (size - 1) // 2]))
    filters = s.shape.c + draw(st.integers(0, 2))
    return [("local", {"filters": filters, "size": size,
                       "stride": draw(st.integers(1, 2)), "pad": pad,
                       "activation": _activation(draw, s)}),
            ("convolutional", {"filters": draw(st.integers(1, 3)), "size": size, "pad": 1,
                               "activation": "linear"})]


@emitter("deconvolutional", ["pjreddie"])
def _deconv(draw, s: State):
    # two [deconvolutional] in one network: the first one's output no longer matches its own
    # saved weights (memory corruption during the harness's random init, the only way
    # pjreddie runs them: CANNOT_LOAD_WEIGHTS); one per cfg
    if "deconvolutional" in s.kinds:
        return []
    size = draw(st.integers(1, 4))
    # no batch_normalize: the harness's init does not calibrate a deconvolution's BN
    # (rolling variance stays 0), so its outputs come out near float32's overflow
    opts: Dict[str, object] = {"filters": draw(st.integers(1, 4)), "size": size,
                               "stride": draw(st.integers(1, 3)),
                               "activation": _activation(draw, s), "batch_normalize": 0}
    if draw(st.booleans()):
        opts["pad"] = 1
    else:
        opts["padding"] = draw(st.integers(0, max(0, (size - 1) // 2)))
    return [("deconvolutional", opts)]


@emitter("crop")
def _crop(draw, s: State):
    h, w = s.shape.h, s.shape.w
    return [("crop", {"crop_height": draw(st.integers(1, h)), "crop_width": draw(st.integers(1, w)),
                      "flip": draw(st.sampled_from([0, 1])),
                      "exposure": draw(st.sampled_from([1.0, 1.5])),
                      "saturation": draw(st.sampled_from([1.0, 1.5]))})]


@emitter("empty", ["alexeyab"])
def _empty(draw, s: State):
    return [(draw(st.sampled_from(["empty", "silence"])), {})]


@emitter("sam", ["alexeyab"])
def _sam(draw, s: State):
    ref = _earlier(draw, s, same_shape=True)
    if ref is None:
        return []
    return [("sam", {"from": ref, "activation": _activation(draw, s)})]


@emitter("scale_channels", ["alexeyab"])
def _scale_channels(draw, s: State):
    if draw(st.booleans()):  # [avgpool] then scale the channels of the layer before it
        return [("avgpool", {}), ("scale_channels", {"from": -2,
                                                     "activation": _activation(draw, s)})]
    # scale_wh: a 1-channel map of the same size scales every channel
    return [("convolutional", {"filters": 1, "size": 1, "activation": "logistic"}),
            ("scale_channels", {"from": -2, "scale_wh": 1, "activation": _activation(draw, s)})]


@emitter("implicit", ["alexeyab"])
def _implicit(draw, s: State):
    return [("implicit", {"filters": draw(st.integers(1, 8)), "atoms": draw(st.integers(1, 3)),
                          "mean": draw(st.sampled_from([0.0, 1.0])),
                          "std": draw(st.sampled_from([0.02, 0.2]))})]


def _anchors(draw, num: int) -> str:
    values = draw(st.lists(st.integers(1, 30), min_size=2 * num, max_size=2 * num))
    return ",".join(str(v) for v in values)


@emitter("yolo")
def _yolo(draw, s: State):
    num = draw(st.integers(1, 4))
    mask = sorted(set(draw(st.lists(st.integers(0, num - 1), min_size=1, max_size=num))))
    classes = draw(st.integers(1, 3))
    opts: Dict[str, object] = {"mask": ",".join(map(str, mask)), "anchors": _anchors(draw, num),
                               "classes": classes, "num": num}
    if s.fork == "alexeyab":
        if draw(st.booleans()):
            opts["scale_x_y"] = draw(st.sampled_from([1.0, 1.05, 1.1, 2.0]))
        if draw(st.integers(0, 3)) == 0:
            opts["new_coords"] = 1
    conv = {"filters": len(mask) * (classes + 5), "size": 1,
            "activation": "logistic" if opts.get("new_coords") else "linear"}
    return [("convolutional", conv), ("yolo", opts)]


@emitter("Gaussian_yolo", ["alexeyab"])
def _gaussian_yolo(draw, s: State):
    num = draw(st.integers(1, 3))
    mask = sorted(set(draw(st.lists(st.integers(0, num - 1), min_size=1, max_size=num))))
    classes = draw(st.integers(1, 3))
    opts: Dict[str, object] = {"mask": ",".join(map(str, mask)), "anchors": _anchors(draw, num),
                               "classes": classes, "num": num}
    if draw(st.booleans()):
        opts["scale_x_y"] = draw(st.sampled_from([1.05, 1.2]))
    conv = {"filters": len(mask) * (classes + 9), "size": 1, "activation": "linear"}
    return [("convolutional", conv), ("Gaussian_yolo", opts)]


@emitter("region")
def _region(draw, s: State):
    num = draw(st.integers(1, 3))
    classes = draw(st.integers(1, 3))
    coords = 4 if s.fork == "alexeyab" else draw(st.sampled_from([4, 4, 2, 5]))
    opts: Dict[str, object] = {"num": num, "classes": classes, "coords": coords,
                               "anchors": _anchors(draw, num),
                               "softmax": draw(st.sampled_from([0, 1]))}
    conv = {"filters": num * (coords + classes + 1), "size": 1, "activation": "linear"}
    return [("convolutional", conv), ("region", opts)]


@emitter("detection")
def _detection(draw, s: State):
    side = draw(st.integers(1, 3))
    num = draw(st.integers(1, 2))
    classes = draw(st.integers(1, 3))
    coords = draw(st.sampled_from([4, 4, 2]))
    outputs = side * side * ((1 + coords) * num + classes)
    opts: Dict[str, object] = {"side": side, "num": num, "classes": classes, "coords": coords,
                               "softmax": draw(st.sampled_from([0, 1])),
                               "sqrt": draw(st.sampled_from([0, 1]))}
    return [("connected", {"output": outputs, "activation": "linear"}), ("detection", opts)]


@emitter("cost")
def _cost(draw, s: State):
    types = ["sse", "masked", "smooth"] + (["L1"] if s.fork == "pjreddie" else [])
    return [("cost", {"type": draw(st.sampled_from(types))})]


@emitter("contrastive", ["alexeyab"])
def _contrastive(draw, s: State):
    # a [yolo] with embedding_layer= then [contrastive] on the embedding, as yolov4-tiny_contrastive
    classes = draw(st.integers(1, 3))
    emb = draw(st.integers(1, 4))
    return [("convolutional", {"filters": emb, "size": 1, "activation": "linear"}),
            ("route", {"layers": -2}),
            ("convolutional", {"filters": classes + 5, "size": 1, "activation": "linear"}),
            ("yolo", {"mask": "0", "anchors": "3,4", "classes": classes, "num": 1,
                      "embedding_layer": -3}),
            ("route", {"layers": -3}),
            ("contrastive", {"classes": classes, "yolo_layer": -2})]


def kinds(fork: str) -> List[str]:
    """Section types the generator draws for ``fork``."""
    return sorted(k for k, (forks, _) in SECTIONS.items() if fork in forks)


def format_sections(net: Shape, sections: Sequence[Tuple[str, Dict[str, object]]]) -> str:
    lines = ["[net]", "batch=1", f"width={net.w}", f"height={net.h}", f"channels={net.c}", ""]
    for kind, opts in sections:
        lines.append(f"[{kind}]")
        lines += [f"{k}={v}" for k, v in opts.items()]
        lines.append("")
    return "\n".join(lines)


def _shapes(fork: str, text: str) -> Optional[List[Shape]]:
    """Output shapes of every layer if darknet_py builds ``text`` small enough, else None."""
    import warnings
    from ..limits import override
    from ..model import Darknet
    try:
        with warnings.catch_warnings(), override(max_layer_elements=MAX_ELEMENTS,
                                                 max_parameters=1 << 16):
            warnings.simplefilter("ignore")
            model = Darknet(parse_cfg(text), dialect=fork)
    except CfgError:
        return None
    return [layer.out_shape for layer in model.layers]


@st.composite
def cfgs(draw, fork: str, max_sections: int = 6, kinds_: Optional[Sequence[str]] = None,
         focus: Optional[str] = None) -> str:
    """A cfg text for ``fork`` with 1..``max_sections`` drawn sections (plus their helpers).

    ``kinds_`` limits the section types drawn; ``focus`` names one that every cfg gets
    at least once when it fits anywhere (about every other section is that one).
    """
    side = st.sampled_from(SIDES if fork == "pjreddie" else [v for v in SIDES if v > 1])
    net = Shape(draw(st.integers(1, 4)), draw(side), draw(side))
    s = State(fork, net)
    if fork == "alexeyab":
        # AlexeyAB's parse_network_cfg divides by the number of layers whose input is wider
        # and higher than 1 (avg_outputs / avg_counter: SIGFPE without one), and [cost],
        # [dropout]... have no l.w: open with a convolution on the >= 2x2 input
        _add(draw, s, "stem")
    allowed = list(kinds_) if kinds_ else kinds(fork)
    inner = [k for k in allowed if k not in FLATTENING] or allowed
    wanted = draw(st.integers(1 if focus is None else 2, max_sections))
    tries = 0
    while len(s.kinds) < wanted and tries < 4 * max_sections:
        tries += 1
        if s.terminal:
            break
        last = len(s.kinds) == wanted - 1
        if focus is not None and (draw(st.booleans()) or (last and focus not in s.kinds)):
            kind = focus
        else:
            kind = draw(st.sampled_from(allowed if last else inner))
        _add(draw, s, kind)
    for _ in range(4 if focus is not None and focus not in s.kinds else 0):
        if _add(draw, s, focus):
            break
    if not s.sections:  # nothing fit: one plain convolution always does
        s.sections = [("convolutional", {"filters": 2, "size": 1, "activation": "leaky"})]
    return format_sections(net, s.sections)


def _add(draw, s: State, kind: str) -> bool:
    """Draw one ``kind`` emission and keep it if darknet_py builds the result."""
    new = SECTIONS[kind][1](draw, s)
    if not new:
        return False
    candidate = s.sections + new
    shapes = _shapes(s.fork, format_sections(s.net, candidate))
    if shapes is None:
        return False
    s.sections, s.shapes = candidate, shapes
    s.kinds.append(kind)
    last_kind, last_opts = new[-1]
    s.terminal = last_kind in NO_IMAGE or (last_kind == "reorg" and "extra" in last_opts)
    return True
