"""``darknet-py detector map|valid|calc_anchors``: Darknet's evaluation commands.

``detector map DATA CFG WEIGHTS [-points 0|11|101] [-iou_thresh 0.5] [-thresh 0.25]
[--coco]`` prints what AlexeyAB's ``./darknet detector map`` prints (see
:mod:`darknet_py.eval.map`); ``--coco`` adds pycocotools' COCOeval over the same
detections (:mod:`darknet_py.eval.coco`).
"""
from __future__ import annotations

import argparse
import sys


def _map(args: argparse.Namespace) -> int:
    from ..eval.map import validate_detector_map
    from .detect import resolve_weights
    if args.letter_box:
        print("note: AlexeyAB's validate_detector_map replaces -letter_box by the cfg's "
              "letter_box; so does darknet-py", file=sys.stderr)
    result, dets, dataset = validate_detector_map(
        args.data, args.cfg, resolve_weights(args.weights), thresh=args.thresh,
        iou_thresh=args.iou_thresh, points=args.points, batch_size=args.batch)
    sys.stdout.write(result.text())
    if args.coco:
        from ..eval.coco import coco_eval, format_stats
        stats = coco_eval(dets, dataset)
        sys.stdout.write("\n" + format_stats(stats))
    return 0


def _valid(args: argparse.Namespace) -> int:
    from ..eval.valid import validate_detector
    from .detect import resolve_weights
    for path in validate_detector(args.data, args.cfg, resolve_weights(args.weights),
                                  outfile=args.out, batch_size=args.batch):
        print(path)
    return 0


def _calc_anchors(args: argparse.Namespace) -> int:
    import time

    from ..eval.anchors import anchor_values, anchors_text, calc_anchors
    from ..io import atomic_write
    seed = int(time.time()) if args.seed is None else args.seed  # Darknet: srand(time(0))
    result = calc_anchors(args.data, args.num_of_clusters, args.width, args.height, seed=seed,
                          out=sys.stdout.write, init=args.init, restarts=args.restarts)
    atomic_write("anchors.txt", anchors_text(result.centers, args.width).encode())
    atomic_write("counters_per_class.txt",
                 ("counters_per_class = " + ", ".join(map(str, result.counters))).encode())
    if args.cfg:
        from ..cfg.variant import write_variant
        if not args.out_cfg:
            from ..errors import CfgError
            raise CfgError("--cfg needs --out-cfg (the variant to write)", file=args.cfg)
        write_variant(args.cfg, args.out_cfg, anchors=anchor_values(result.centers, args.width))
        print(f"{args.out_cfg}: anchors written")
    return 0


def register_detector(verbs) -> None:
    a = verbs.add_parser("calc_anchors", allow_abbrev=False,
                         help="k-means anchors over the train labels, as AlexeyAB's "
                              "`darknet detector calc_anchors`")
    a.add_argument("data", help=".data file (train=, classes=)")
    a.add_argument("-num_of_clusters", "--num-of-clusters", dest="num_of_clusters", type=int,
                   default=5)
    a.add_argument("-width", "--width", type=int, default=-1)
    a.add_argument("-height", "--height", type=int, default=-1)
    a.add_argument("-show", "--show", action="store_true", help="accepted; nothing is drawn")
    a.add_argument("--seed", type=int,
                   help="srand seed (default: the time, as Darknet); the same seed gives "
                        "Darknet's anchors")
    a.add_argument("--init", choices=("darknet", "kmeans++"), default="darknet",
                   help="starting centres: Darknet's random points (default) or k-means++ "
                        "(not Darknet; usually better anchors)")
    a.add_argument("--restarts", type=int, default=1,
                   help="runs with seeds seed, seed+1, ...; the best avg IoU wins (not Darknet)")
    a.add_argument("--cfg", help="also write these anchors into a variant of this cfg")
    a.add_argument("--out-cfg", dest="out_cfg", help="where to write that variant")
    a.set_defaults(func=_calc_anchors)

    v = verbs.add_parser("valid", allow_abbrev=False,
                         help="results files (COCO json or per-class VOC text), as "
                              "`darknet detector valid` of the cfg's fork")
    v.add_argument("data", help=".data file (valid=, names=, eval=coco|voc, results=)")
    v.add_argument("cfg")
    v.add_argument("weights")
    v.add_argument("-out", "--out", help="file name (coco: NAME.json; voc: NAME<class>.txt)")
    v.add_argument("--batch", type=int, default=8, help="images per forward pass")
    v.set_defaults(func=_valid)

    m = verbs.add_parser("map", allow_abbrev=False,
                         help="mean average precision, as AlexeyAB's `darknet detector map`",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("data", help=".data file (valid=, names=, optional difficult=)")
    m.add_argument("cfg")
    m.add_argument("weights")
    m.add_argument("-points", "--points", type=int, default=0, choices=(0, 11, 101),
                   help="0: area under the curve (default); 11: VOC2007; 101: COCO")
    m.add_argument("-iou_thresh", "--iou-thresh", dest="iou_thresh", type=float, default=0.5)
    m.add_argument("-thresh", "--thresh", type=float, default=0.25,
                   help="confidence for the TP/FP/precision/recall/F1/avg IoU lines")
    m.add_argument("-letter_box", "--letter-box", dest="letter_box", action="store_true",
                   help="accepted and ignored, as in AlexeyAB (the cfg's letter_box decides)")
    m.add_argument("--coco", action="store_true",
                   help="also pycocotools' COCOeval (AP, AP50, AP75, AP_S/M/L) on the same "
                        "detections")
    m.add_argument("--batch", type=int, default=8, help="images per forward pass")
    m.set_defaults(func=_map)
