"""``[shortcut]`` (``shortcut_layer.c``): add an earlier layer, then activate.

pjreddie: ``out = act(alpha*prev + beta*from)`` where the two overlap; when
their sizes differ the from-layer is subsampled (or the output strided) as in
``blas.c:shortcut_cpu``. AlexeyAB: ``from`` may list several layers, each added
over the flat-index prefix they share with the output
(``shortcut_multilayer_cpu``), optionally weighted (``weights_type``), and the
weights are stored in .weights. A from-layer of another width/height, on which
AlexeyAB's ``parse_shortcut`` asserts (aborts), is read with pjreddie's strided rule
and a :class:`CfgWarning` (the resnet cfgs AlexeyAB's repo copied from pjreddie's).

    >>> import torch
    >>> from darknet_py.cfg import parse_cfg
    >>> from darknet_py.model import Darknet
    >>> cfg = "[net]\\nwidth=2\\nheight=1\\nchannels=1\\n[avgpool]\\n[upsample]\\nstride=1\\n"
    >>> cfg += "[shortcut]\\nfrom=-2\\nactivation=leaky\\n"
    >>> net = Darknet(parse_cfg(cfg))
    >>> net.layers[2].refs
    [0]
    >>> net(torch.tensor([[[[-1.0, -3.0]]]])).flatten().tolist()  # leaky(-2 + -2)
    [-0.4000000059604645]
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor, nn

from ..cfg.options import option
from ..errors import CfgWarning
from . import activations
from .base import BuildContext, DarknetLayer, ResizeError, Shape, filled, table_shape
from .registry import register

WEIGHTS_TYPES = {"none": 0, "per_feature": 1, "per_layer": 1, "per_channel": 2}
NORMALIZATIONS = {"none": 0, "relu": 1, "avg_relu": 1, "softmax": 2}


@dataclass
class ShortcutOptions:
    from_: List[int] = option(key="from", required=True)
    activation: str = option("linear", choices=activations.names)
    alpha: float = option(1.0, only="pjreddie", doc="weight of the previous layer")
    beta: float = option(1.0, only="pjreddie", doc="weight of the from-layer")
    weights_type: str = option("none", only="alexeyab")
    weights_normalization: str = option("none", only="alexeyab")


class ShortcutLayer(DarknetLayer):
    kind = "shortcut"
    ab_forward_zeroes_delta = True
    ab_train = True

    def __init__(self, index: int, out_shape: Shape, refs: List[int], ref_shapes: List[Shape],
                 opts: ShortcutOptions, alexeyab: bool, strided: bool = False) -> None:
        super().__init__(index, out_shape, refs)
        #: pjreddie's strided sum (shortcut_cpu) in the AlexeyAB dialect: a from-layer of
        #: another width/height, on which AlexeyAB's parse_shortcut aborts (see build)
        self.strided = strided
        self.activation = opts.activation
        self._act = activations.get(opts.activation, "alexeyab" if alexeyab else "pjreddie")
        self.alpha, self.beta = opts.alpha, opts.beta
        self.alexeyab = alexeyab
        self.ref_shapes = [Shape(*s) for s in ref_shapes]
        self.weights_type = WEIGHTS_TYPES[opts.weights_type]
        self.normalization = NORMALIZATIONS[opts.weights_normalization]
        n_inputs = len(refs) + 1
        per = {0: 0, 1: 1, 2: out_shape.c}[self.weights_type]
        self.weights = nn.Parameter(filled(n_inputs * per, value=1.0)) if per else None

    # -- pjreddie -------------------------------------------------------------
    def _pjreddie(self, x: Tensor, add: Tensor) -> Tensor:
        if add.shape == x.shape:
            if self.alpha == 1.0 and self.beta == 1.0:
                return x + add
            return self.alpha * x + self.beta * add
        (c1, h1, w1), (c2, h2, w2) = add.shape[1:], x.shape[1:]
        stride, sample = max(w1 // w2, 1), max(w2 // w1, 1)
        minc, minh, minw = min(c1, c2), min(h1, h2), min(w1, w2)
        src = add[:, :minc, ::stride, ::stride][:, :, :minh, :minw]
        if sample == 1:  # every position of x is summed; only the channel counts differ
            mixed = self.alpha * x[:, :minc] + self.beta * src
            return torch.cat([mixed, x[:, minc:]], dim=1) if minc < c2 else mixed
        out = x.clone()
        view = out[:, :minc, ::sample, ::sample][:, :, :minh, :minw]
        out[:, :minc, ::sample, ::sample][:, :, :minh, :minw] = self.alpha * view + self.beta * src
        return out

    # -- AlexeyAB ---------------------------------------------------------------
    def _input_weights(self) -> List[Tensor]:
        """Per input (own first), a weight broadcastable to (C,1,1)."""
        assert self.weights is not None
        w = self.weights.view(len(self.refs) + 1, -1)
        if self.normalization == 1:
            w = torch.relu(w)
            w = w / (0.0001 + w.sum(dim=0, keepdim=True))
        elif self.normalization == 2:
            e = torch.exp(w - w.max(dim=0, keepdim=True).values)
            w = e / (0.0001 + e.sum(dim=0, keepdim=True))
        return [row.view(-1, 1, 1) for row in w]

    def _alexeyab(self, x: Tensor, adds: List[Tensor]) -> Tensor:
        weights = self._input_weights() if self.weights is not None else None
        out = x * weights[0] if weights is not None else x
        if all(add.shape == x.shape for add in adds):
            # the usual case, without flattening: the same sums, and no size fixed in a
            # traced/exported graph
            for i, add in enumerate(adds):
                out = out + (add * weights[i + 1] if weights is not None else add)
            return out
        batch, n = x.shape[0], x[0].numel()
        flat = out.reshape(batch, n)
        for i, add in enumerate(adds):
            if weights is not None:
                add = add * weights[i + 1] if add.shape[1:] == x.shape[1:] else add
            a = add.reshape(batch, -1)
            m = min(a.shape[1], n)
            if m == n:
                flat = flat + a[:, :n]
            else:
                flat = torch.cat([flat[:, :m] + a[:, :m], flat[:, m:]], dim=1)
        return flat.view_as(x)

    def forward(self, x: Tensor, refs: List[Tensor]) -> Tensor:
        y = (self._alexeyab(x, refs) if self.alexeyab and not self.strided
             else self._pjreddie(x, refs[0]))
        return self._act(self.mark_delta(y))

    def infer(self, x: Tensor, refs: List[Tensor], reuse: bool) -> Tensor:
        # unweighted sum of same-shaped inputs: add into x when x is ours to overwrite
        if (reuse and self.weights is None and (self.alexeyab or self.alpha == self.beta == 1.0)
                and all(r.shape == x.shape for r in refs)):
            for r in refs:
                x = x.add_(r)
            return activations.activate_(x, self.activation,
                                         "alexeyab" if self.alexeyab else "pjreddie")
        return self.forward(x, refs)

    def resize(self, in_shape: Shape, ref_shapes) -> Shape:
        """resize_shortcut_layer: the output takes the input's w x h, and Darknet then reads
        the from-layers as that size too (AlexeyAB asserts it; pjreddie assumes it)."""
        for ref, s in zip(self.refs, ref_shapes):
            if (s.h, s.w) != (in_shape.h, in_shape.w):
                raise ResizeError(f"layer {self.index} [shortcut]: layer {ref} would be "
                                  f"{s.w}x{s.h} but the previous layer {in_shape.w}x{in_shape.h}")
        return Shape(*in_shape)

    def weight_tensors(self) -> List[Tensor]:
        return [] if self.weights is None else [self.weights]

    def reset_parameters(self) -> None:
        if self.weights is not None:
            with torch.no_grad():
                self.weights.fill_(1.0)

    def describe(self, in_shape: Shape) -> str:
        return " " + " ".join(str(i) for i in self.refs)

    def table_line(self, in_shape: Shape) -> str:
        # make_shortcut_layer: the from-layer's index and shape, then the output's
        return (f"res  {self.refs[0]:3d}                {table_shape(self.ref_shapes[0])}   ->  "
                f"{table_shape(self.out_shape)}")


@register("shortcut", options=ShortcutOptions)
def build(ctx: BuildContext) -> ShortcutLayer:
    r = ctx.reader
    o = r.read(ShortcutOptions)
    r.check(o.weights_type in WEIGHTS_TYPES, f"unknown weights_type {o.weights_type!r} "
            f"(one of {', '.join(WEIGHTS_TYPES)})", "weights_type")
    r.check(o.weights_normalization in NORMALIZATIONS, "unknown weights_normalization "
            f"{o.weights_normalization!r} (one of {', '.join(NORMALIZATIONS)})",
            "weights_normalization")
    alexeyab = ctx.dialect.name == "alexeyab"
    r.check(alexeyab or len(o.from_) == 1,
            "several layers in from= need the AlexeyAB dialect", "from")
    refs = [ctx.layer_index(v, "from") for v in o.from_]
    shapes = [ctx.shapes[i] for i in refs]
    i = ctx.input_shape
    # parse_shortcut (AlexeyAB): assert(params.w == l.out_w && params.h == l.out_h) -- an
    # abort, for every input size, on pjreddie's strided shortcuts (resnet50.cfg & co. in
    # AlexeyAB's cfg folder). One from-layer without weights: read as pjreddie's Darknet reads
    # the same cfg (shortcut_cpu's stride/sample), with a warning saying so.
    strided = alexeyab and any((s.h, s.w) != (i.h, i.w) for s in shapes)
    if strided:
        ref, s = next((f, s) for f, s in zip(refs, shapes) if (s.h, s.w) != (i.h, i.w))
        r.check(len(refs) == 1 and o.weights_type == "none",
                f"layer {ref} is {s.w}x{s.h} but the previous layer is {i.w}x{i.h}; AlexeyAB's "
                f"Darknet aborts unless they have the same width and height (pjreddie's strided "
                f"rule needs a single from-layer and no weights_type)", "from")
    if not alexeyab or strided:
        s = shapes[0]
        ok = all(v >= 1 for v in (s.w // i.w or i.w // s.w, s.h // i.h or i.h // s.h))
        r.check(ok and (max(s.w // i.w, 1) == max(s.h // i.h, 1))
                and (max(i.w // s.w, 1) == max(i.h // s.h, 1)),
                f"layer {refs[0]} ({s.w}x{s.h}) and the previous layer ({i.w}x{i.h}) "
                f"differ by a non-uniform scale", "from")
    if strided:
        s = shapes[0]
        entry = r.section.find("from")
        where = f"{r.section.file}:{entry.line if entry is not None else r.section.line}"
        warnings.warn(CfgWarning(
            f"{where}: [shortcut] layer {refs[0]} is {s.w}x{s.h} but the previous layer is "
            f"{i.w}x{i.h}: AlexeyAB's Darknet aborts here (assert in parse_shortcut); "
            f"pjreddie's strided shortcut (shortcut_cpu) is used"), stacklevel=2)
    if o.weights_type != "none" and any(s != ctx.input_shape for s in shapes):
        raise r.error("weights_type needs the from-layers to have the output's shape", "weights_type")
    # AlexeyAB's parse_network_cfg: use_bin_output = 0 on the previous layer and l.index
    for ref in {ctx.index - 1, refs[0]} - {-1}:
        ctx.layers[ref].clear_bin_output()
    return ShortcutLayer(ctx.index, ctx.input_shape, refs, shapes, o, alexeyab, strided)
