"""``darknet-py darknet build|dump``: a real Darknet next to darknet_py.

``darknet build [SRC] [--fork pjreddie|alexeyab] [--gpu]`` builds a CPU Darknet
from a source tarball or tree (default: the fork's tarball in
``../shared/darknet-src`` or ``$DARKNET_PY_DARKNET_SRC``) into the cache, or
reuses it; ``darknet build --lib libdarknet.so --include DIR`` registers a build
you made. The LAST line printed is the build folder: the BUILD of the other
commands.

``darknet dump BUILD CFG [WEIGHTS] [--image IMG | --input NPY | --seed N]
[--mode forward|detect|train] -o CASE_DIR`` runs that Darknet on CFG and writes
a case folder (``darknet-py compare CASE_DIR`` reads it). Without WEIGHTS the
network is initialised at random from ``--seed`` as the reference cases are.
"""
from __future__ import annotations

import argparse

from ..errors import BridgeError


def _build(args: argparse.Namespace) -> int:
    from ..darknet.build import build_darknet, from_existing
    if args.lib or args.include:
        if not (args.lib and args.include) or args.src:
            raise BridgeError("--lib and --include go together, without SRC")
        build = from_existing(args.lib, args.include, fork=args.fork)
    else:
        build = build_darknet(args.src, fork=args.fork, gpu=args.gpu, log=True)
    print(f"{build.fork} Darknet: lib {build.lib}, include {build.include}"
          + (f", exe {build.exe}" if build.exe else ""))
    print(build.folder)
    return 0


def _dump(args: argparse.Namespace) -> int:
    from ..darknet.dump import dump_case
    mode = args.mode or ("detect" if args.image else "train" if args.X else "forward")
    out = dump_case(args.build, args.cfg, args.weights, mode=mode, out_dir=args.out,
                    image=args.image, input=args.input, seed=args.seed, input_seed=args.input_seed,
                    thresholds=args.thresh or (0.5, 0.005), letterbox=args.letter_box,
                    iterations=args.iterations, X=args.X, y=args.y, deltas=args.deltas,
                    timeout=args.timeout)
    print(out)
    return 0


def register(sub) -> None:
    p = sub.add_parser("darknet", help="build a real Darknet and dump case folders with it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="darknet_verb", metavar="ACTION")
    verbs.required = True
    b = verbs.add_parser("build", help="build (or reuse) a CPU Darknet; prints its folder last")
    b.add_argument("src", nargs="?", help="Darknet source tarball or folder "
                                         "(default: the fork's tarball in shared/darknet-src)")
    b.add_argument("--fork", choices=("pjreddie", "alexeyab"),
                   help="which Darknet (default: detected from the source)")
    b.add_argument("--gpu", action="store_true", help="build with GPU=1 (needs CUDA)")
    b.add_argument("--lib", help="use your own build: its libdarknet.so or libdarknet.a")
    b.add_argument("--include", help="with --lib: the folder holding its darknet.h")
    b.set_defaults(func=_build)

    d = verbs.add_parser("dump", help="run Darknet on a cfg and write a case folder")
    d.add_argument("build", help="build folder (the last line of `darknet-py darknet build`)")
    d.add_argument("cfg", help=".cfg file")
    d.add_argument("weights", nargs="?", help=".weights file (default: random init from --seed)")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--image", help="detect mode: the image (decoded by Darknet's stb_image)")
    src.add_argument("--input", help="forward mode: network input .npy, (C,H,W) float32")
    d.add_argument("--seed", type=int, help="random init seed (default 1)")
    d.add_argument("--input-seed", type=int, help="seed of the random input or train batch "
                                                  "(default seed+1)")
    d.add_argument("--mode", choices=("forward", "detect", "train"),
                   help="default: detect with --image, train with -X, else forward")
    d.add_argument("--thresh", type=float, action="append",
                   help="detect: a threshold (repeatable; default 0.5 and 0.005)")
    d.add_argument("--letter-box", action="store_true",
                   help="detect, AlexeyAB: letterbox as `detector test -letter_box`")
    d.add_argument("-X", help="train: batch images .npy (B,C,H,W) in [0,1]")
    d.add_argument("-y", help="train: truth .npy (B, boxes, 5 pjreddie | 6 AlexeyAB)")
    d.add_argument("--iterations", type=int, default=3, help="train: train_network calls (default 3)")
    d.add_argument("--deltas", action="store_true",
                   help="train: also every layer's l.delta after iteration 1 (iter1_delta_NNN.npy)")
    d.add_argument("--timeout", type=float, default=600, help="seconds before Darknet is "
                                                              "stopped (default 600)")
    d.add_argument("-o", "--out", required=True, help="case folder to write")
    d.set_defaults(func=_dump)
