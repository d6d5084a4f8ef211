"""What each section type is checked against, per fork: the README's coverage table.

A cell says "real Darknet output" only where a test in ``tests/`` compares darknet_py with
output of the real Darknet C code for that section type, fork and kind of check:

* forward: ``tests/test_diff_darknet.py::test_each_section_type_matches_darknet`` runs, for
  every (fork, type) in :func:`darknet_py.testing.cfgs.kinds`, random cfgs containing that
  type through the live Darknet build, and fails if none had it;
* decode: the detect-mode reference cases that ``tests/test_core_compare.py`` compares
  (detections after get_network_boxes + do_nms_sort) and AlexeyAB's live ``detector test``
  (``tests/test_detect_alexeyab.py``), listed in :data:`DECODE`;
* forward of the recurrent types (which the generator does not draw):
  ``tests/test_recurrent_darknet.py``, listed in :data:`FORWARD`;
* train: :data:`TRAIN`, the tests that compare train mode (loss, deltas, every tensor's
  update over 3 iterations) with Darknet's own ``train_network``; :data:`TRAIN_NOTE` says
  where the real Darknet cannot train a type or darknet_py refuses to.

``python tools/coverage_table.py`` prints the table; ``tests/test_readme_coverage.py``
fails when README.md's copy is stale.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..layers.registry import section_dialect
from ..model import HEAD_KINDS
from .cfgs import FORKS, kinds

#: section types of README's "Section types" list, in its order (aliases left out)
SECTIONS = ["convolutional", "maxpool", "avgpool", "route", "shortcut", "upsample", "softmax",
            "dropout", "yolo", "batchnorm", "region", "reorg", "connected", "local", "crop",
            "cost", "activation", "logistic", "l2norm", "normalization", "deconvolutional",
            "detection", "sam", "scale_channels", "reorg3d", "empty", "local_avgpool",
            "implicit", "Gaussian_yolo", "contrastive", "rnn", "gru", "lstm", "crnn"]

_RECURRENT_FORWARD = "tests/test_recurrent_darknet.py::test_recurrent_forward_matches_darknet"
#: (fork, type) -> a test comparing forward output with Darknet's, for types outside kinds()
FORWARD: Dict[Tuple[str, str], str] = {
    (fork, kind): _RECURRENT_FORWARD
    for fork in ("pjreddie", "alexeyab") for kind in ("rnn", "gru", "lstm", "crnn")}

#: (fork, type) -> the test comparing decoded detections with Darknet's
DECODE: Dict[Tuple[str, str], str] = {
    ("pjreddie", "yolo"): "tests/test_core_compare.py::test_official_tiny_dog_matches_darknet",
    ("alexeyab", "yolo"): "tests/test_detect_alexeyab.py::test_yolov3_tiny_official_weights",
    ("alexeyab", "Gaussian_yolo"):
        "tests/test_detect_alexeyab.py::test_gaussian_yolov3_random_weights",
    ("alexeyab", "detection"):
        "tests/test_detect_alexeyab.py::test_yolov1_tiny_detection_layer_random_weights",
}
_RECURRENT_TRAIN = "tests/test_train_recurrent_darknet.py::test_recurrent_training_matches_darknet"
_CLASSIFIER_TRAIN = ("tests/test_train_recurrent_darknet.py::"
                     "test_softmax_classifier_training_matches_darknet")
#: (fork, type) -> the test comparing train-mode results with Darknet's
TRAIN: Dict[Tuple[str, str], str] = {
    **{(fork, kind): _CLASSIFIER_TRAIN
       for fork in ("pjreddie", "alexeyab") for kind in ("softmax", "connected")},
    ("alexeyab", "rnn"): _RECURRENT_TRAIN,
    ("pjreddie", "gru"): _RECURRENT_TRAIN,
    ("alexeyab", "gru"): _RECURRENT_TRAIN,
    ("pjreddie", "crnn"): _RECURRENT_TRAIN,
    ("alexeyab", "crnn"): _RECURRENT_TRAIN,
    ("alexeyab", "lstm"):
        "tests/test_train_recurrent_darknet.py::test_alexeyab_lstm_training_matches_darknet",
    **{(fork, "cost"): "tests/test_train_cost_darknet.py::"
                       "test_regression_cost_training_matches_darknet"
       for fork in ("pjreddie", "alexeyab")},
}
#: (fork, type) -> the train cell where Darknet cannot train it or darknet_py refuses to (the
#: first two checked by tests/test_train_recurrent_darknet.py), or a qualified claim
TRAIN_NOTE: Dict[Tuple[str, str], str] = {
    ("pjreddie", "rnn"): "Darknet crashes (l.state holds one step); trained with a warning",
    ("pjreddie", "lstm"): "Darknet has no CPU backward (crashes); refused",
    ("alexeyab", "lstm"): "real Darknet output (its missing CPU l.delta allocated)",
    ("pjreddie", "cost"): "real Darknet output (sse, seg, masked, smooth, L1; wgan, thresh=, "
                          "seg noobj= refused: CUDA only)",
    ("alexeyab", "cost"): "real Darknet output (sse, masked, smooth)",
}
#: (fork, type) -> why the real Darknet cannot be compared with at all
DARKNET_CANNOT = {
    ("pjreddie", "batchnorm"): "Darknet segfaults (l.x never allocated)",
}

REAL = "real Darknet output"
NONE = "not compared"
ABSENT = "—"
NA = "n/a"


def _in_fork(kind: str, fork: str) -> bool:
    only = section_dialect(kind)
    return only is None or only == fork


def cell(kind: str, fork: str, what: str) -> str:
    if not _in_fork(kind, fork):
        return ABSENT
    if what == "decode" and kind not in HEAD_KINDS:
        return NA
    if (fork, kind) in DARKNET_CANNOT:
        return DARKNET_CANNOT[(fork, kind)]
    if what == "forward":
        return REAL if kind in kinds(fork) or (fork, kind) in FORWARD else NONE
    if what == "decode":
        return REAL if (fork, kind) in DECODE else NONE
    if (fork, kind) in TRAIN_NOTE:
        return TRAIN_NOTE[(fork, kind)]
    return REAL if (fork, kind) in TRAIN else NONE


def table() -> List[str]:
    """README's coverage table, as markdown lines."""
    head = ["section"] + [f"{fork} {what}" for fork in FORKS for what in ("forward", "train", "decode")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in SECTIONS:
        cells = [cell(kind, fork, what) for fork in FORKS for what in ("forward", "train", "decode")]
        lines.append(f"| `[{kind}]` | " + " | ".join(cells) + " |")
    return lines


START = "<!-- coverage-table:start (generated by tools/coverage_table.py; do not edit) -->"
END = "<!-- coverage-table:end -->"


def readme_table(text: str) -> Optional[List[str]]:
    """The table lines between the markers in README text, or None without markers."""
    if START not in text or END not in text:
        return None
    body = text.split(START, 1)[1].split(END, 1)[0]
    return [line for line in body.strip().splitlines()]
