#!/usr/bin/env python3
"""Generate darknet_py's own copies of the classic Darknet (pjreddie) cfg files.

The networks are described here as Python -- Darknet-53's residual stages, the
three-scale YOLOv3 head, the SPP block, the tiny detector and the ImageNet
classifier -- and written out as cfg text with comments explaining each block.
The *effective* sections, keys and values match the pjreddie/darknet cfgs, so
the official ``.weights`` load into them and Darknet's numbers are reproduced
(``tests/test_project_cfgs.py`` checks this against the reference cfgs).

    python tools/make_cfgs.py            # (re)write cfg/*.cfg
    python tools/make_cfgs.py --check    # exit 1 if a cfg/*.cfg is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "cfg"

Value = Union[int, float, str, Sequence[Union[int, float]]]

# -- COCO YOLOv3 constants ---------------------------------------------------------------
COCO_CLASSES = 80
#: the nine k-means anchors of YOLOv3 (w, h in input pixels), small to large
YOLOV3_ANCHORS = [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119),
                  (116, 90), (156, 198), (373, 326)]
#: the six anchors of YOLOv3-tiny
TINY_ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]


def fmt_value(value: Value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(fmt_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class Block:
    """One cfg section: kind, ordered options and the comment lines printed above it."""

    def __init__(self, kind: str, options: Iterable[Tuple[str, Value]] = (),
                 comment: Union[str, Sequence[str], None] = None) -> None:
        self.kind = kind
        self.options: List[Tuple[str, Value]] = list(options)
        if comment is None:
            self.comment: List[str] = []
        elif isinstance(comment, str):
            self.comment = [comment]
        else:
            self.comment = list(comment)
        #: lines printed (as comments) after the options, e.g. alternative settings
        self.trailer: List[str] = []

    def text(self, index: Optional[int]) -> str:
        lines = [f"# {c}" if c else "#" for c in self.comment]
        # Darknet reads a '#' only at the start of a line (a trailing one would become
        # part of the header or value), so the layer number gets a line of its own.
        if index is not None:
            lines.append(f"# layer {index}")
        lines.append(f"[{self.kind}]")
        width = max((len(k) for k, _ in self.options), default=0)
        for key, value in self.options:
            lines.append(f"{key:<{width}} = {fmt_value(value)}")
        lines.extend(self.trailer)
        return "\n".join(lines) + "\n"


# -- layer helpers ----------------------------------------------------------------------
def conv(filters: int, size: int, stride: int = 1, *, bn: bool = True,
         activation: str = "leaky", comment=None) -> Block:
    """A convolution; Darknet's ``pad=1`` means 'same' padding (size // 2)."""
    opts: List[Tuple[str, Value]] = []
    if bn:
        opts.append(("batch_normalize", 1))
    opts += [("filters", filters), ("size", size), ("stride", stride), ("pad", 1),
             ("activation", activation)]
    return Block("convolutional", opts, comment)


def shortcut(offset: int = -3, comment=None) -> Block:
    return Block("shortcut", [("from", offset), ("activation", "linear")], comment)


def route(*layers: int, comment=None) -> Block:
    return Block("route", [("layers", list(layers))], comment)


def upsample(stride: int = 2, comment=None) -> Block:
    return Block("upsample", [("stride", stride)], comment)


def maxpool(size: int, stride: int, comment=None) -> Block:
    return Block("maxpool", [("size", size), ("stride", stride)], comment)


def yolo(mask: Sequence[int], anchors: Sequence[Tuple[int, int]], comment=None) -> Block:
    pairs = ",  ".join(f"{w},{h}" for w, h in anchors)  # blanks vanish when Darknet reads it
    return Block("yolo", [
        ("mask", list(mask)),
        ("anchors", pairs),
        ("classes", COCO_CLASSES),
        ("num", len(anchors)),
        ("jitter", 0.3),
        ("ignore_thresh", 0.7),
        ("truth_thresh", 1),
        ("random", 1),
    ], comment)


# -- [net] -------------------------------------------------------------------------------
def detector_net(size: int, train_subdivisions: int, training: bool) -> Block:
    """[net] of the COCO detectors. pjreddie ships yolov3.cfg set up for training
    (batch 64) and yolov3-tiny/-spp for inference (batch 1); we keep each as shipped."""
    batch, subdivisions = (64, train_subdivisions) if training else (1, 1)
    if training:
        note = ["Input and training hyper-parameters. batch/subdivisions are set for",
                f"training (64 images in {train_subdivisions} chunks); to run on single",
                "images, use batch=1 and subdivisions=1."]
    else:
        note = ["Input and training hyper-parameters. batch/subdivisions are set for",
                "inference (one image at a time); to train, use",
                f"batch=64 and subdivisions={train_subdivisions}."]
    net = Block("net", [
        ("batch", batch),
        ("subdivisions", subdivisions),
        ("width", size),
        ("height", size),
        ("channels", 3),
        ("momentum", 0.9),
        ("decay", 0.0005),
        ("angle", 0),
        ("saturation", 1.5),
        ("exposure", 1.5),
        ("hue", 0.1),
        ("learning_rate", 0.001),
        ("burn_in", 1000),
        ("max_batches", 500200),
        ("policy", "steps"),
        ("steps", [400000, 450000]),
        ("scales", [0.1, 0.1]),
    ], note + [
        "Augmentation: random saturation/exposure in [1/1.5, 1.5], hue +-0.1.",
        "Schedule: 1000 warm-up batches, then lr 1e-3, x0.1 at 400k and 450k.",
    ])
    return net


def classifier_net() -> Block:
    """[net] of the ImageNet Darknet-53 classifier, set up for inference (batch 1)."""
    return Block("net", [
        ("batch", 1),
        ("subdivisions", 1),
        ("height", 256),
        ("width", 256),
        ("min_crop", 128),
        ("max_crop", 448),
        ("channels", 3),
        ("momentum", 0.9),
        ("decay", 0.0005),
        ("burn_in", 1000),
        ("learning_rate", 0.1),
        ("policy", "poly"),
        ("power", 4),
        ("max_batches", 800000),
        ("angle", 7),
        ("hue", 0.1),
        ("saturation", 0.75),
        ("exposure", 0.75),
        ("aspect", 0.75),
    ], [
        "ImageNet set-up. batch/subdivisions are set for inference; to train, use",
        "batch=128 and subdivisions=4. 256x256 input, random crops 128..448,",
        "polynomial (power 4) learning-rate decay from 0.1 over 800k batches,",
        "rotation +-7 degrees, colour and aspect-ratio jitter.",
    ])


# -- Darknet-53 --------------------------------------------------------------------------
DARKNET53_STAGES = [(64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)]


def darknet53_backbone() -> List[Block]:
    """Darknet-53's 52 convolutions: a 3x3/32 stem, then five stages, each a stride-2
    3x3 convolution doubling the channels followed by N residual blocks
    (1x1 to half the channels, 3x3 back, shortcut to the block input).
    Layers 0..74; the stage outputs at 36 (stride 8) and 61 (stride 16) feed YOLO."""
    blocks = [conv(32, 3, comment=["=" * 70, "Darknet-53 backbone", "=" * 70,
                                   "stem: 3x3 convolution, 32 filters"])]
    for number, (channels, repeats) in enumerate(DARKNET53_STAGES, start=1):
        blocks.append(conv(channels, 3, 2, comment=[
            "-" * 70,
            f"stage {number}: downsample x2 to {channels} channels, "
            f"then {repeats} residual block{'s' if repeats > 1 else ''}",
            "-" * 70]))
        for r in range(repeats):
            blocks.append(conv(channels // 2, 1, comment=f"residual {number}.{r + 1}: "
                               f"1x1 squeeze to {channels // 2}"))
            blocks.append(conv(channels, 3, comment=f"3x3 expand back to {channels}"))
            blocks.append(shortcut(-3, comment="add the block input (3 layers back)"))
    return blocks


def yolo_scale(width: int, mask: Sequence[int], first: Optional[List[Block]] = None,
               title: str = "") -> List[Block]:
    """One detection scale: alternating 1x1 (width) / 3x3 (2*width) convolutions,
    a linear 1x1 convolution to 3*(5+80)=255 outputs, and the [yolo] layer.

    ``first`` replaces the opening 1x1/3x3/1x1 triple's tail (SPP is inserted there)."""
    n_out = len(mask) * (5 + COCO_CLASSES)
    blocks: List[Block] = [conv(width, 1, comment=["=" * 70, title, "=" * 70])]
    if first is not None:
        blocks += first
    else:
        blocks += [conv(2 * width, 3), conv(width, 1), conv(2 * width, 3), conv(width, 1)]
    blocks.append(conv(2 * width, 3))
    blocks.append(conv(n_out, 1, bn=False, activation="linear",
                       comment=f"predictions: {len(mask)} anchors x (4 box + 1 objectness "
                               f"+ {COCO_CLASSES} classes) = {n_out}"))
    blocks.append(yolo(mask, YOLOV3_ANCHORS,
                       comment=f"decode boxes with anchors {', '.join(map(str, mask))}"))
    return blocks


def spp_first(width: int) -> List[Block]:
    """The opening of yolov3-spp's first scale: 3x3, 1x1, then Spatial Pyramid Pooling
    (max-pools 5, 9, 13 at stride 1 concatenated with their input), then 1x1, 3x3, 1x1."""
    return [
        conv(2 * width, 3),
        conv(width, 1),
        maxpool(5, 1, comment=["-" * 70, "SPP: max-pool the same map at 5x5, 9x9 and 13x13",
                               "(stride 1, so the size is kept) and concatenate", "-" * 70]),
        route(-2, comment="back to the SPP input"),
        maxpool(9, 1),
        route(-4, comment="back to the SPP input"),
        maxpool(13, 1),
        route(-1, -3, -5, -6, comment="concat: pool13, pool9, pool5, input (4 x 512 channels)"),
        conv(width, 1, comment=["-" * 70, "end of SPP", "-" * 70]),
        conv(2 * width, 3),
        conv(width, 1),
    ]


def yolov3_head(spp: bool = False) -> List[Block]:
    blocks = yolo_scale(512, [6, 7, 8], spp_first(512) if spp else None,
                        "YOLO scale 1: stride 32, largest anchors")
    blocks += [
        route(-4, comment="take the 512-channel 1x1 output of scale 1"),
        conv(256, 1),
        upsample(2, comment="to stride 16"),
        route(-1, 61, comment="concat with the backbone's stride-16 output (layer 61)"),
    ]
    blocks += yolo_scale(256, [3, 4, 5], None, "YOLO scale 2: stride 16, middle anchors")
    blocks += [
        route(-4, comment="take the 256-channel 1x1 output of scale 2"),
        conv(128, 1),
        upsample(2, comment="to stride 8"),
        route(-1, 36, comment="concat with the backbone's stride-8 output (layer 36)"),
    ]
    blocks += yolo_scale(128, [0, 1, 2], None, "YOLO scale 3: stride 8, smallest anchors")
    return blocks


# -- the four networks -------------------------------------------------------------------
def yolov3() -> List[Block]:
    return [detector_net(608, 16, training=True)] + darknet53_backbone() + yolov3_head()


def yolov3_spp() -> List[Block]:
    return [detector_net(608, 16, training=False)] + darknet53_backbone() + yolov3_head(spp=True)


def yolov3_tiny() -> List[Block]:
    blocks: List[Block] = [detector_net(416, 2, training=False)]
    for i, filters in enumerate([16, 32, 64, 128, 256, 512]):
        first = ["=" * 70, "YOLOv3-tiny backbone: 3x3 convolution + 2x2 max-pool, x6",
                 "=" * 70] if i == 0 else None
        blocks.append(conv(filters, 3, comment=first))
        if filters < 512:
            blocks.append(maxpool(2, 2))
        else:
            blocks.append(maxpool(2, 1, comment="stride 1: keeps 13x13"))
    blocks.append(conv(1024, 3))
    blocks.append(conv(256, 1, comment=["=" * 70, "YOLO scale 1: stride 32, larger anchors",
                                        "=" * 70]))
    blocks.append(conv(512, 3))
    blocks.append(conv(255, 1, bn=False, activation="linear",
                       comment="predictions: 3 x (4 + 1 + 80) = 255"))
    blocks.append(yolo([3, 4, 5], TINY_ANCHORS))
    blocks += [
        route(-4, comment=["=" * 70, "YOLO scale 2: stride 16, smaller anchors", "=" * 70,
                           "take the 256-channel 1x1 output"]),
        conv(128, 1),
        upsample(2),
        route(-1, 8, comment="concat with the stride-16 256-channel conv (layer 8)"),
        conv(256, 3),
        conv(255, 1, bn=False, activation="linear"),
        yolo([0, 1, 2], TINY_ANCHORS),
    ]
    return blocks


def darknet53_classifier() -> List[Block]:
    return [classifier_net()] + darknet53_backbone() + [
        Block("avgpool", [], ["=" * 70, "ImageNet classifier head", "=" * 70,
                              "global average pool to 1x1x1024"]),
        conv(1000, 1, bn=False, activation="linear", comment="1000 class scores"),
        Block("softmax", [("groups", 1)]),
    ]


# -- YOLOv2 (pjreddie): [region] heads ---------------------------------------------------
VOC_CLASSES = 20
#: the five anchors of each YOLOv2 cfg, in units of the 32-pixel output cells
YOLOV2_ANCHORS = {
    "coco": [0.57273, 0.677385, 1.87446, 2.06253, 3.33843, 5.47434, 7.88282, 3.52778,
             9.77052, 9.16828],
    "voc": [1.3221, 1.73145, 3.19275, 4.00944, 5.05587, 8.09892, 9.47112, 4.84053,
            11.2364, 10.0071],
    "tiny-voc": [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52],
}


def region(anchors: Sequence[float], classes: int, jitter: float, rescore: int,
           comment=None) -> Block:
    """YOLOv2's detection layer: 5 anchors x (4 box + 1 objectness + classes), softmax
    over the classes; the loss weights are the training set-up of the official cfg."""
    return Block("region", [
        ("anchors", ", ".join(str(a) for a in anchors)), ("bias_match", 1),
        ("classes", classes), ("coords", 4), ("num", 5), ("softmax", 1), ("jitter", jitter),
        ("rescore", rescore), ("object_scale", 5), ("noobject_scale", 1), ("class_scale", 1),
        ("coord_scale", 1), ("absolute", 1), ("thresh", 0.6), ("random", 1),
    ], comment)


def v2_voc_net(max_batches: int, steps: Sequence[int], scales: Sequence[float],
               burn_in: bool) -> Block:
    """[net] of the VOC YOLOv2 cfgs: as the COCO ones, with a shorter schedule."""
    net = detector_net(416, 2, training=False)
    net.options = [(k, v) for k, v in net.options
                   if k not in ("max_batches", "steps", "scales")
                   and (burn_in or k != "burn_in")]
    net.options += [("max_batches", max_batches), ("steps", list(steps)),
                    ("scales", list(scales))]
    net.comment = net.comment[:3] + [
        f"Schedule (Pascal VOC): {max_batches} batches, steps {', '.join(map(str, steps))}."]
    return net


def predictions(classes: int) -> Block:
    n = 5 * (5 + classes)
    return conv(n, 1, bn=False, activation="linear",
                comment=f"predictions: 5 anchors x (4 + 1 + {classes}) = {n}")


def yolov2_tiny(voc: bool = False) -> List[Block]:
    """Six 3x3 convolutions each followed by a 2x2 max-pool (the last at stride 1), a
    1024-wide 3x3 convolution, another 3x3 one (512 wide for COCO, 1024 for VOC) and the
    [region] head."""
    net = (v2_voc_net(40200, [-1, 100, 20000, 30000], [0.1, 10, 0.1, 0.1], burn_in=False)
           if voc else detector_net(416, 2, training=False))
    blocks: List[Block] = [net]
    for i, filters in enumerate([16, 32, 64, 128, 256, 512]):
        first = ["=" * 70, "YOLOv2-tiny: 3x3 convolution + 2x2 max-pool, x6", "=" * 70] \
            if i == 0 else None
        blocks.append(conv(filters, 3, comment=first))
        blocks.append(maxpool(2, 2 if filters < 512 else 1,
                              comment="stride 1: keeps 13x13" if filters == 512 else None))
    blocks.append(conv(1024, 3))
    if voc:
        blocks += [conv(1024, 3), predictions(VOC_CLASSES),
                   region(YOLOV2_ANCHORS["tiny-voc"], VOC_CLASSES, 0.2, 1)]
    else:
        blocks += [conv(512, 3), predictions(COCO_CLASSES),
                   region(YOLOV2_ANCHORS["coco"], COCO_CLASSES, 0.2, 0)]
    return blocks


def yolov2(voc: bool = False) -> List[Block]:
    """Darknet-19's convolutions (3x3 doubling, 1x1 halving, max-pools), a passthrough
    from the 26x26 map (1x1 to 64, reorg 2 -> 13x13x256) and the [region] head."""
    net = (v2_voc_net(80200, [40000, 60000], [0.1, 0.1], burn_in=True) if voc
           else detector_net(608, 16, training=False))
    blocks: List[Block] = [net]
    plan = [[32], [64], [128, 64, 128], [256, 128, 256], [512, 256, 512, 256, 512],
            [1024, 512, 1024, 512, 1024]]
    for stage, widths in enumerate(plan):
        for j, filters in enumerate(widths):
            first = (["=" * 70, "Darknet-19 backbone", "=" * 70] if stage == 0 else
                     f"stage {stage + 1}: 3x3 / 1x1 bottlenecks") if j == 0 else None
            blocks.append(conv(filters, 3 if j % 2 == 0 else 1, comment=first))
        if stage < len(plan) - 1:
            blocks.append(maxpool(2, 2))
    classes = VOC_CLASSES if voc else COCO_CLASSES
    blocks += [
        conv(1024, 3, comment=["=" * 70, "detection head", "=" * 70]),
        conv(1024, 3),
        route(-9, comment="passthrough: back to the 26x26x512 map (layer 16)"),
        conv(64, 1),
        Block("reorg", [("stride", 2)], "space-to-depth: 26x26x64 -> 13x13x256"),
        route(-1, -4, comment="concat with the 13x13x1024 map"),
        conv(1024, 3),
        predictions(classes),
        region(YOLOV2_ANCHORS["voc" if voc else "coco"], classes, 0.3, 1,
               comment="decode boxes with the 5 anchors"),
    ]
    return blocks


# -- YOLOv4 (AlexeyAB) ----------------------------------------------------------------------
YOLOV4_ANCHORS = [(12, 16), (19, 36), (40, 28), (36, 75), (76, 55), (72, 146), (142, 110),
                  (192, 243), (459, 401)]
TINY4_ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]


def yolo4(mask: Sequence[int], anchors: Sequence[Tuple[int, int]],
          options: Sequence[Tuple[str, Value]], comment=None) -> Block:
    """An AlexeyAB [yolo] layer: YOLOv3's plus box scaling (scale_x_y), the CIoU loss
    and greedy NMS settings of the official cfgs."""
    return Block("yolo", [
        ("mask", list(mask)),
        ("anchors", ",  ".join(f"{w},{h}" for w, h in anchors)),
        ("classes", COCO_CLASSES),
        ("num", len(anchors)),
    ] + list(options), comment)


def yolov4_net(size: int, batch: int, subdivisions: int, momentum: float,
               rate: float, max_batches: int, steps: Sequence[int],
               extra: Sequence[Tuple[str, Value]] = ()) -> Block:
    return Block("net", [
        ("batch", batch), ("subdivisions", subdivisions), ("width", size), ("height", size),
        ("channels", 3), ("momentum", momentum), ("decay", 0.0005), ("angle", 0),
        ("saturation", 1.5), ("exposure", 1.5), ("hue", 0.1), ("learning_rate", rate),
        ("burn_in", 1000), ("max_batches", max_batches), ("policy", "steps"),
        ("steps", list(steps)), ("scales", [0.1, 0.1]),
    ] + list(extra), [
        "Input and training hyper-parameters, as AlexeyAB ships them (set up for",
        f"training: {batch} images in {subdivisions} chunk(s); batch does not change",
        "inference in darknet_py).",
    ])


def route_half(comment=None) -> Block:
    """AlexeyAB's grouped route: the second half of the previous layer's channels."""
    return Block("route", [("layers", -1), ("groups", 2), ("group_id", 1)], comment)


def yolov4_tiny() -> List[Block]:
    blocks: List[Block] = [yolov4_net(416, 64, 1, 0.9, 0.00261, 2000200, [1600000, 1800000])]
    blocks += [conv(32, 3, 2, comment=["=" * 70, "CSPDarknet53-tiny backbone", "=" * 70]),
               conv(64, 3, 2)]
    for stage, width in enumerate([64, 128, 256]):
        blocks += [
            conv(width, 3, comment=f"CSP stage {stage + 1}: {width} channels"),
            route_half("the second half of the channels"),
            conv(width // 2, 3),
            conv(width // 2, 3),
            route(-1, -2),
            conv(width, 1),
            route(-6, -1, comment="concat with the stage input"),
            maxpool(2, 2),
        ]
    tiny = [("jitter", 0.3), ("scale_x_y", 1.05), ("cls_normalizer", 1.0),
            ("iou_normalizer", 0.07), ("iou_loss", "ciou"), ("ignore_thresh", 0.7),
            ("truth_thresh", 1), ("random", 0), ("resize", 1.5), ("nms_kind", "greedynms"),
            ("beta_nms", 0.6)]
    blocks += [
        conv(512, 3),
        conv(256, 1, comment=["=" * 70, "YOLO scale 1: stride 32", "=" * 70]),
        conv(512, 3),
        conv(255, 1, bn=False, activation="linear",
             comment="predictions: 3 x (4 + 1 + 80) = 255"),
        yolo4([3, 4, 5], TINY4_ANCHORS, tiny),
        route(-4, comment=["=" * 70, "YOLO scale 2: stride 16", "=" * 70]),
        conv(128, 1),
        upsample(2),
        route(-1, 23, comment="concat with the stage-3 1x1 output (layer 23)"),
        conv(256, 3),
        conv(255, 1, bn=False, activation="linear"),
        yolo4([1, 2, 3], TINY4_ANCHORS, tiny,
              comment="mask 1,2,3 (not 0,1,2) as in the official cfg the weights were "
                      "trained with"),
    ]
    return blocks


def csp_stage(channels: int, repeats: int, part: int, inner: Tuple[int, int],
              number: int) -> List[Block]:
    """A CSPDarknet53 stage (mish): downsample, split into two 1x1 parts, residual blocks
    on one part, 1x1, concat with the other part, 1x1 transition."""
    m = "mish"
    blocks = [conv(channels, 3, 2, activation=m, comment=[
        "-" * 70, f"CSP stage {number}: downsample to {channels} channels, "
        f"{repeats} residual block{'s' if repeats > 1 else ''}", "-" * 70]),
        conv(part, 1, activation=m, comment="part 1"),
        route(-2, comment="back to the downsampled map"),
        conv(part, 1, activation=m, comment="part 2: through the residual blocks")]
    for _ in range(repeats):
        blocks += [conv(inner[0], 1, activation=m), conv(inner[1], 3, activation=m),
                   shortcut(-3)]
    blocks += [conv(part, 1, activation=m),
               route(-1, -(3 * repeats + 4), comment="concat with part 1"),
               conv(channels, 1, activation=m, comment="transition")]
    return blocks


def yolov4_head_scale(width: int, mask: Sequence[int], scale: float,
                      random: bool) -> List[Block]:
    options: List[Tuple[str, Value]] = [("jitter", 0.3), ("ignore_thresh", 0.7),
                                        ("truth_thresh", 1)]
    if random:
        options.append(("random", 1))
    options += [("scale_x_y", scale), ("iou_thresh", 0.213), ("cls_normalizer", 1.0),
                ("iou_normalizer", 0.07), ("iou_loss", "ciou"), ("nms_kind", "greedynms"),
                ("beta_nms", 0.6), ("max_delta", 5)]
    return [
        conv(width, 1), conv(2 * width, 3), conv(width, 1), conv(2 * width, 3),
        conv(width, 1), conv(2 * width, 3),
        conv(255, 1, bn=False, activation="linear",
             comment="predictions: 3 x (4 + 1 + 80) = 255"),
        yolo4(mask, YOLOV4_ANCHORS, options),
    ]


def yolov4() -> List[Block]:
    blocks: List[Block] = [yolov4_net(608, 64, 8, 0.949, 0.0013, 500500, [400000, 450000],
                                      [("mosaic", 1)])]
    blocks.append(conv(32, 3, activation="mish",
                       comment=["=" * 70, "CSPDarknet53 backbone (mish)", "=" * 70]))
    blocks += csp_stage(64, 1, 64, (32, 64), 1)
    for number, (channels, repeats) in enumerate([(128, 2), (256, 8), (512, 8), (1024, 4)],
                                                 start=2):
        blocks += csp_stage(channels, repeats, channels // 2, (channels // 2, channels // 2),
                            number)
    blocks += [conv(512, 1, comment=["=" * 70, "neck: SPP + PANet (leaky)", "=" * 70]),
               conv(1024, 3), conv(512, 1)]
    blocks += spp_first(512)[2:8]  # the three max-pools and their concat
    blocks += [
        conv(512, 1), conv(1024, 3), conv(512, 1),
        conv(256, 1, comment="top-down path: to stride 16"),
        upsample(2),
        route(85, comment="the stride-16 backbone output (layer 85)"),
        conv(256, 1),
        route(-1, -3),
        conv(256, 1), conv(512, 3), conv(256, 1), conv(512, 3), conv(256, 1),
        conv(128, 1, comment="to stride 8"),
        upsample(2),
        route(54, comment="the stride-8 backbone output (layer 54)"),
        conv(128, 1),
        route(-1, -3),
    ]
    # stride 8 (small anchors): five convs continue the path, then the head
    scale1 = yolov4_head_scale(128, [0, 1, 2], 1.2, False)
    scale1[0].comment = ["=" * 70, "YOLO scale 1: stride 8, smallest anchors", "=" * 70]
    blocks += scale1
    blocks += [route(-4, comment="bottom-up path: back to the 128-channel map"),
               conv(256, 3, 2), route(-1, -16, comment="concat with the stride-16 path")]
    blocks += yolov4_head_scale(256, [3, 4, 5], 1.1, False)
    blocks += [route(-4), conv(512, 3, 2), route(-1, -37, comment="concat with the SPP path")]
    blocks += yolov4_head_scale(512, [6, 7, 8], 1.05, True)
    return blocks


HEADERS: Dict[str, List[str]] = {
    "yolov3.cfg": [
        "YOLOv3 (Redmon & Farhadi, 2018) for the 80 COCO classes.",
        "Darknet-53 backbone + three detection scales (strides 32, 16, 8).",
        "Same weights layout as the official yolov3.weights.",
    ],
    "yolov3-spp.cfg": [
        "YOLOv3-SPP: YOLOv3 with a Spatial Pyramid Pooling block in the",
        "stride-32 branch. Same weights layout as the official yolov3-spp.weights.",
    ],
    "yolov3-tiny.cfg": [
        "YOLOv3-tiny: a 7-convolution backbone with max-pooling and two",
        "detection scales (strides 32, 16). Loads the official yolov3-tiny.weights.",
    ],
    "yolov2.cfg": [
        "YOLOv2 (Redmon & Farhadi, 2017) for the 80 COCO classes: Darknet-19,",
        "a passthrough (reorg) layer and a [region] head. Loads yolov2.weights.",
    ],
    "yolov2-tiny.cfg": [
        "YOLOv2-tiny: 9 convolutions and 6 max-pools, and a [region] head.",
        "Loads the official yolov2-tiny.weights.",
    ],
    "yolov2-voc.cfg": [
        "YOLOv2 for the 20 Pascal VOC classes (416x416). Loads the official",
        "yolo-voc.weights.",
    ],
    "yolov2-tiny-voc.cfg": [
        "YOLOv2-tiny for the 20 Pascal VOC classes. Loads the official",
        "yolov2-tiny-voc.weights.",
    ],
    "yolov4.cfg": [
        "YOLOv4 (Bochkovskiy, Wang & Liao, 2020; AlexeyAB's Darknet) for the 80",
        "COCO classes: CSPDarknet53 (mish), SPP, PANet, three [yolo] scales.",
        "Loads yolov4.weights (and yolov4.conv.137 with upto=137).",
    ],
    "yolov4-tiny.cfg": [
        "YOLOv4-tiny (AlexeyAB's Darknet): CSPDarknet53-tiny with grouped routes",
        "and two [yolo] scales. Loads yolov4-tiny.weights (and yolov4-tiny.conv.29).",
    ],
    "darknet53.cfg": [
        "Darknet-53 ImageNet classifier (1000 classes): the YOLOv3 backbone",
        "followed by global average pooling, a 1x1 convolution and softmax.",
        "Same weights layout as the official darknet53.weights.",
    ],
}

NETWORKS = {
    "yolov3.cfg": yolov3,
    "yolov3-spp.cfg": yolov3_spp,
    "yolov3-tiny.cfg": yolov3_tiny,
    "darknet53.cfg": darknet53_classifier,
    "yolov2.cfg": yolov2,
    "yolov2-tiny.cfg": yolov2_tiny,
    "yolov2-voc.cfg": lambda: yolov2(voc=True),
    "yolov2-tiny-voc.cfg": lambda: yolov2_tiny(voc=True),
    "yolov4.cfg": yolov4,
    "yolov4-tiny.cfg": yolov4_tiny,
}


def render(name: str) -> str:
    blocks = NETWORKS[name]()
    out = ["#" * 78]
    out += [f"# {line}" for line in HEADERS[name]]
    out += [
        "#",
        "# Written by darknet_py (tools/make_cfgs.py) from a description of the",
        "# architecture; regenerate rather than edit. Sections, keys and values",
        "# are those Darknet's own cfg uses.",
        "#" * 78,
        "",
    ]
    for i, block in enumerate(blocks):
        out.append(block.text(None if i == 0 else i - 1))
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (cfg/)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a file differs from what would be written")
    args = parser.parse_args(argv)
    stale = []
    for name in NETWORKS:
        text = render(name)
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
