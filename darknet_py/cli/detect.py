"""``darknet-py detector test`` and ``darknet-py detect``: Darknet's detection commands.

``detector test DATA CFG WEIGHTS IMAGE...`` does what ``darknet detector test``
does, for each image, in the dialect's own way (``--dialect``, default: from the
cfg and weights): pjreddie prints ``IMAGE: Predicted in X seconds.`` and
Darknet's ``name: NN%`` lines; AlexeyAB prints `` Detection layer: N - type = T``
per head, ``IMAGE: Predicted in X milli-seconds.`` and ``draw_detections_v3``'s
lines. Both write the annotated image. ``detect CFG WEIGHTS IMAGE...`` is
Darknet's shortcut with ``cfg/coco.data``. See :data:`TEST_HELP`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional, Sequence

from .. import zoo
from ..errors import DataError
from ..io import atomic_write


def expand_inputs(items: Sequence[str]) -> Iterator[str]:
    """Image paths from files, folders (sorted, non-recursive) and .txt list files."""
    from ..image import is_image_name  # numpy: not for --help
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_name(p))
            if not found:
                raise DataError("no image files in this folder", file=item)
            yield from (os.fspath(p) for p in found)
        elif path.suffix.lower() == ".txt" and path.is_file():
            with open(path, "r", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    name = line.strip()
                    if not name or name.startswith("#"):
                        continue
                    if not os.path.isabs(name) and not os.path.exists(name):
                        beside = path.parent / name
                        if beside.exists():
                            name = os.fspath(beside)
                    yield name
        else:
            yield item


COMMON_HELP = """\
IMAGE may be image files, folders (their images, sorted by name) or .txt list
files (one path a line, relative to the current folder or to the list); `-`
reads paths from standard input, one a line. With no IMAGE at a terminal,
darknet-py asks for paths like Darknet ("Enter Image Path:"). WEIGHTS may be
the name of official weights (darknet-py weights list): fetched once and
verified. Images run --batch N at a time; the seconds printed are each
image's share of its batch's forward pass. Several images show a progress bar
on stderr when it is a terminal."""

TEST_HELP = """\
Darknet's `detector test`: for each image, print "IMAGE: Predicted in X
seconds." and Darknet's "name: NN%" lines, and write the annotated image
(-out NAME, default predictions -> predictions.jpg; with several images
NAME_<image stem>.jpg). DATA's names= gives the class names. An AlexeyAB
model (--dialect, default: from the cfg and the weights header) runs as
AlexeyAB's detector test does: batchnorm fused into the convolutions,
threshold .25 (.24 for `detect`), resized input unless -letter_box, the last
head's nms_kind; it prints " Detection layer: N - type = T" per head,
"IMAGE: Predicted in X milli-seconds." and draw_detections_v3's lines
(-ext_output adds the pixel box); -out FILE writes its JSON and the image goes
to predictions.jpg.

""" + COMMON_HELP

DETECT_HELP = """\
Darknet's `detect`: `detector test cfg/coco.data CFG WEIGHTS IMAGE...`, with
./cfg/coco.data when it is there (as in Darknet), else the COCO names built in.

""" + COMMON_HELP

WEIGHTS_HELP = ".weights file, or official weights by name (darknet-py weights list)"
TEST_USAGE = "darknet-py detector test DATA CFG WEIGHTS IMAGE..."
DETECT_USAGE = "darknet-py detect CFG WEIGHTS IMAGE..."


def _prompt() -> Iterator[str]:
    """Darknet's interactive loop (at a terminal only): ask, detect, ask again."""
    while True:
        print("Enter Image Path: ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield line.strip()


def resolve_weights(weights: str) -> str:
    """A weights path, or the name of official weights (fetched and verified)."""
    return zoo.resolve(weights)


def _stdin_paths() -> Iterator[str]:
    """``-``: image paths from standard input; none at all is an error, not a silent exit."""
    seen = False
    for line in sys.stdin:
        if line.strip():
            seen = True
            yield line.strip()
    if not seen:
        raise DataError("IMAGE '-': no image paths on standard input")


def _inputs(images: Sequence[str], usage: str) -> "tuple[Iterable[str], Optional[int]]":
    """(image paths, their count when known in advance)."""
    if not images:
        if sys.stdin is not None and sys.stdin.isatty():
            return _prompt(), None
        raise DataError(f"no IMAGE given: pass image files, folders or .txt lists, or - to "
                        f"read paths from standard input (usage: {usage})")
    if list(images) == ["-"]:
        return _stdin_paths(), None
    paths = list(expand_inputs(images))
    return paths, len(paths)


def _progress(total: Optional[int]):
    """A tqdm bar on stderr for several images, shown only when stderr is a terminal."""
    if not total or total < 2:
        return None
    from tqdm import tqdm
    bar = tqdm(total=total, unit="img", file=sys.stderr, disable=None, leave=False,
               mininterval=0)  # every image drawn: fast runs still show N/N
    if bar.disable:
        bar.close()
        return None
    return bar


class OutputNames:
    """Darknet's ``save_image(im, NAME)`` -> NAME.jpg; with several images NAME_<stem>.jpg.

    >>> names = OutputNames("predictions", several=True)
    >>> [names.next(s) for s in ["a/dog.jpg", "b/dog.png", "cat.jpg"]]
    ['predictions_dog.jpg', 'predictions_dog_2.jpg', 'predictions_cat.jpg']
    """

    def __init__(self, out: str, several: bool) -> None:
        self.out, self.several = out, several
        self.seen: Dict[str, int] = {}

    def next(self, source: str) -> str:
        if not self.several:
            return f"{self.out}.jpg"
        stem = Path(source).stem
        self.seen[stem] = self.seen.get(stem, 0) + 1
        suffix = "" if self.seen[stem] == 1 else f"_{self.seen[stem]}"
        return f"{self.out}_{stem}{suffix}.jpg"


def run_test(data: Optional[str], cfg: str, weights: str, images: Sequence[str],
             args: argparse.Namespace, usage: str = TEST_USAGE) -> int:
    """Darknet's ``test_detector`` over every image; 2 if any image could not be used."""
    import darknet_py
    from PIL import Image, ImageOps

    from .. import sniff
    from ..gemm_order import darknet_order
    from ..detect import (default_thresh, detection_to_json, draw_detections, line_v3,
                          names_from_data, resolve_names, run_detector)

    # arguments in the wrong order or one missing: say so before loading anything
    for path, role in [(data, "data"), (cfg, "cfg"), (weights, "weights"),
                       (images[0] if images else None, "image")]:
        if path is not None:
            sniff.expect(path, role, usage)
    inputs, count = _inputs(images, usage)
    model = darknet_py.load(cfg, resolve_weights(weights), dialect=args.dialect)
    alexeyab = model.dialect.name == "alexeyab"
    if alexeyab:
        model.fuse_batchnorm()  # test_detector: load_weights, then fuse_conv_batchnorm
    model = model.to(getattr(args, "device", None) or "cpu")
    classes = model.layers[model.heads[0]].classes if model.heads else 0
    names = resolve_names(names_from_data(data) if data else None, classes, source=data)
    several = len(images) > 1 or any(Path(i).is_dir() or i.endswith(".txt") for i in images)
    json_out = args.out if alexeyab and args.out is not None else None
    image_name = "predictions" if alexeyab or args.out is None else args.out
    outputs = OutputNames(image_name, several)
    listed = [model.layers[i] for i in model.heads if model.layers[i].alexeyab_layer_type]
    darknet_json = []
    failed = []
    records = []
    bar = _progress(count)

    def say(line: str, stream=None) -> None:
        stream = stream or sys.stdout
        if bar is None:
            print(line, file=stream)
        else:  # keeps the bar (stderr) off the lines printed
            bar.write(line, file=stream)

    def on_error(exc: Exception, image) -> None:
        failed.append(image)
        say(f"darknet-py: error: {exc}", sys.stderr)
        if bar is not None:
            bar.update(1)

    batch = 1 if count is None else max(1, args.batch)
    thresh = default_thresh(model) if args.thresh is None else args.thresh
    if args.thresh is None and alexeyab and getattr(args, "verb_default_thresh", None):
        thresh = args.verb_default_thresh  # AlexeyAB's `darknet detect`: -thresh default .24

    def _show(result) -> None:
        if alexeyab:
            for layer in listed:
                say(f" Detection layer: {layer.index} - type = {layer.alexeyab_layer_type} ")
            say(f"{result.source}: Predicted in {result.seconds * 1000:f} milli-seconds.")
            for det in result.detections:
                say(line_v3(det, result.width, result.height, args.ext_output))
            if json_out is not None:
                darknet_json.append(detection_to_json(result.dets, names,
                                                      len(darknet_json) + 1, result.source))
        else:
            say(f"{result.source}: Predicted in {result.seconds:f} seconds.")
            for det in result.detections:
                say(det.line)
        sys.stdout.flush()
        records.extend(d.to_json() for d in result.detections)
        if not args.no_image and result.source is not None:
            target = outputs.next(result.source)
            with Image.open(result.source) as pil:
                pil = ImageOps.exif_transpose(pil) if args.exif else pil
                drawn = draw_detections(pil.convert("RGB"), result.dets, names, thresh)
            drawn.save(target, quality=80)
        if bar is not None:
            bar.update(1)

    build = _decoder(args)
    # --darknet BUILD: that build's pixels and its arithmetic (darknet_py.gemm_order)
    evaluation = contextlib.nullcontext() if build is None else darknet_order(build)
    try:
        with evaluation:
            results = run_detector(model, inputs, thresh=thresh, nms=args.nms,
                                   hier_thresh=args.hier, names=names, batch_size=batch,
                                   letterbox=True if args.letter_box else None, exif=args.exif,
                                   on_error=on_error, decoder=build,
                                   workers=0 if count is None else 2)
            for result in results:
                _show(result)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(records, handle, indent=1)
            handle.write("\n")
    if json_out is not None:
        atomic_write(json_out, ("[\n" + ", \n".join(darknet_json) + "\n]").encode())
    return 2 if failed else 0


def _decoder(args: argparse.Namespace):
    """--darknet BUILD: that Darknet build (its stb_image decodes the images)."""
    if not getattr(args, "darknet", None):
        return None
    from ..darknet import resolve_build
    return resolve_build(args.darknet)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dialect", choices=("auto", "pjreddie", "alexeyab"), default="auto",
                   help="which fork's detector test to be (default: from the cfg and the "
                        "weights header)")
    p.add_argument("-thresh", "--thresh", type=float, default=None,
                   help="probability threshold (default: pjreddie 0.5, AlexeyAB 0.25)")
    p.add_argument("-hier", "--hier", type=float, default=0.5,
                   help="hierarchy threshold: accepted like Darknet, matters only for "
                        "softmax-tree [region] layers (default 0.5)")
    p.add_argument("-nms", "--nms", type=float, default=0.45,
                   help="per-class NMS IoU threshold, 0 disables NMS (default 0.45)")
    p.add_argument("-out", "--out", default=None,
                   help="pjreddie: annotated image name without .jpg (default predictions); "
                        "AlexeyAB: its JSON results file")
    p.add_argument("-letter_box", "--letter-box", dest="letter_box", action="store_true",
                   help="letterbox even for AlexeyAB cfgs (pjreddie always letterboxes)")
    p.add_argument("-ext_output", "--ext-output", dest="ext_output", action="store_true",
                   help="AlexeyAB: print each box in pixels after its line")
    p.add_argument("-dont_show", "--dont-show", dest="dont_show", action="store_true",
                   help="accepted for AlexeyAB's command line (darknet-py never opens a window)")
    p.add_argument("--json", metavar="FILE",
                   help="write the detections as a JSON array, one object per printed line")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="images per forward pass (default 1)")
    p.add_argument("--no-image", action="store_true", help="do not write annotated images")
    p.add_argument("--exif", action="store_true",
                   help="apply EXIF orientation (Darknet ignores it)")
    p.add_argument("--darknet", metavar="BUILD",
                   help="be this Darknet build (a folder from `darknet-py darknet build`): "
                        "decode images with its own stb_image and evaluate in its arithmetic "
                        "order (darknet_py.gemm_order; CPU, ~20-50x slower): its exact lines")


def _detector(args: argparse.Namespace) -> int:
    return run_test(args.data, args.cfg, args.weights, args.images, args)


def _detect(args: argparse.Namespace) -> int:
    data = os.path.join("cfg", "coco.data")
    return run_test(data if os.path.isfile(data) else None, args.cfg, args.weights,
                    args.images, args, usage=DETECT_USAGE)


def register(sub) -> None:
    p = sub.add_parser("detector", help="Darknet's detector commands: test, train, map, valid, "
                                        "calc_anchors",
                       description="Darknet's `detector` commands.")
    verbs = p.add_subparsers(dest="detector_verb", metavar="ACTION")
    verbs.required = True
    t = verbs.add_parser("test", allow_abbrev=False,
                         help="detect objects in images, as `darknet detector test`",
                         description=TEST_HELP, usage=TEST_USAGE + " [options]")
    t.add_argument("data", help=".data file (its names= gives the class names)")
    t.add_argument("cfg", help=".cfg file")
    t.add_argument("weights", help=WEIGHTS_HELP)
    t.add_argument("images", nargs="*", metavar="IMAGE",
                   help="images, folders, .txt lists, or - for paths on standard input")
    _add_options(t)
    t.set_defaults(func=_detector)
    from .train import add_to_detector
    add_to_detector(verbs)

    from .evaluate import register_detector  # map, valid, calc_anchors
    register_detector(verbs)

    d = sub.add_parser("detect", allow_abbrev=False,
                       help="detect with COCO names, as `darknet detect`",
                       description=DETECT_HELP, usage=DETECT_USAGE + " [options]")
    d.add_argument("cfg", help=".cfg file")
    d.add_argument("weights", help=WEIGHTS_HELP)
    d.add_argument("images", nargs="*", metavar="IMAGE",
                   help="images, folders, .txt lists, or - for paths on standard input")
    _add_options(d)
    d.set_defaults(func=_detect, verb_default_thresh=0.24)


__all__ = ["OutputNames", "expand_inputs", "register", "resolve_weights", "run_test"]
