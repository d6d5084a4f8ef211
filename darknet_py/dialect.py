"""The two Darknet dialects and every numeric difference between them.

pjreddie/darknet is the YOLOv3 reference; AlexeyAB/darknet is the YOLOv4 fork.
Anything that differs between them lives in a :class:`Dialect`, so this file
answers "what is batchnorm's epsilon?" for both::

    >>> PJREDDIE.bn_eps, PJREDDIE.bn_eps_inside_sqrt
    (1e-06, False)
    >>> ALEXEYAB.bn_eps, ALEXEYAB.bn_eps_inside_sqrt
    (1e-05, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Dialect:
    name: str
    #: blas.c:normalize_cpu. pjreddie: (x-mean)/(sqrt(var)+1e-6); AlexeyAB: (x-mean)/sqrt(var+1e-5).
    bn_eps: float
    bn_eps_inside_sqrt: bool
    #: weight of the batch statistic in the rolling BN mean/variance update (train mode).
    bn_rolling_momentum: float
    #: revision written into a .weights header by save_weights.
    weights_revision: int
    #: backward_batchnorm_layer's normalize_delta_cpu divides the incoming delta by
    #: pjreddie sqrt(var+1e-5), AlexeyAB sqrt(var)+1e-5 (mean/variance deltas use var+1e-5 in both)
    bn_delta_eps_inside_sqrt: bool = True
    #: the CPU backward of a conv layer with batch_normalize computes bias_updates
    #: (pjreddie's backward_batchnorm_layer calls backward_bias; AlexeyAB's CPU one does not,
    #: so its CPU build never moves those biases -- its GPU build does)
    bn_bias_learns: bool = True
    #: update_network runs after every mini-batch whose (seen/batch) % subdivisions == 0
    #: (pjreddie train_network_datum) or once at the end of train_network (AlexeyAB)
    update_per_call: bool = False
    #: the [yolo] truth rows: x,y,w,h,class (5) or x,y,w,h,class,track_id (6, AlexeyAB)
    truth_size: int = 5
    #: a standalone [batchnorm] stores its biases (before the scales) in .weights
    #: (parser.c:load_batchnorm_weights); pjreddie's keeps them at zero, unsaved.
    batchnorm_layer_saves_biases: bool = False
    #: forward_convolutional_layer feeds a size-1 kernel's input to gemm as is (no im2col),
    #: whatever its stride and padding (pjreddie), or only when l.stride (= stride_x) is 1
    #: (AlexeyAB); the input is then read flat, as if it already had the output's size.
    conv1x1_skips_im2col_any_stride: bool = True
    #: the same weight in a BN [connected] layer (and the recurrent layers' inner ones):
    #: pjreddie's forward_batchnorm_layer (.01), AlexeyAB's forward_connected_layer .95/.05
    connected_bn_rolling_momentum: float = 0.01
    #: update_network skips layers whose ``l.train`` is 0 (AlexeyAB: only the make_*_layer
    #: calls given ``params.train`` set it -- convolutional, batchnorm, shortcut, crnn, maxpool
    #: -- and not for layers before the last ``stopbackward=1``); pjreddie updates every layer
    update_needs_layer_train: bool = False
    #: AlexeyAB's train_network_waitkey does more after update_network: an exponential
    #: moving average of the convolutional weights with [net] ema_alpha (ema_update /
    #: ema_apply) and reject_similar_weights with weights_reject_freq; pjreddie reads
    #: neither key
    waitkey_extras: bool = False
    #: a layer's ``onlyforward=1`` makes the CPU backward_network skip its backward
    #: (AlexeyAB's ``if (l.onlyforward) continue;``); pjreddie reads the key but only its
    #: CUDA [yolo]/[region] forward looks at it, so on the CPU it changes nothing
    onlyforward_skips_backward: bool = False
    #: [net] adam=1, which only the CUDA update_*_layer_gpu read: pjreddie's
    #: update_network_gpu passes ``a.t = ++*net->t`` (updates since the network was made,
    #: never saved) and its [connected], [deconvolutional] and the [rnn]/[gru]/[lstm] inner
    #: connected layers take the Adam branch too; AlexeyAB's sets ``l.t =
    #: get_current_batch(net)`` and only [convolutional] has ``l.adam``
    adam_t_counts_updates: bool = True
    adam_beyond_convolutional: bool = True
    #: what AlexeyAB's CUDA update adds (darknet_py applies it to its Adam layers, whose
    #: update follows the CUDA code): update_network_gpu's batch is batch*subdivisions *
    #: get_sequence_value (subdivisions / sequential_subdivisions; network_kernels.cu:283),
    #: update_convolutional_layer_gpu divides the rate by [net] loss_scale and, before
    #: either branch, reset_nan_and_inf on the weight updates (NaN/inf -> 0) and
    #: fix_nan_and_inf on the weights (-> 1/(index+1)) (convolutional_kernels.cu:1300,
    #: 1306-1307)
    cuda_update_extras: bool = False

    def __str__(self) -> str:
        return self.name


PJREDDIE = Dialect("pjreddie", bn_eps=1e-6, bn_eps_inside_sqrt=False,
                   bn_rolling_momentum=0.01, weights_revision=0)
ALEXEYAB = Dialect("alexeyab", bn_eps=1e-5, bn_eps_inside_sqrt=True,
                   bn_rolling_momentum=0.1, weights_revision=5,
                   bn_delta_eps_inside_sqrt=False, bn_bias_learns=False, update_per_call=True,
                   truth_size=6,
                   batchnorm_layer_saves_biases=True, conv1x1_skips_im2col_any_stride=False,
                   connected_bn_rolling_momentum=0.05, update_needs_layer_train=True,
                   waitkey_extras=True, onlyforward_skips_backward=True,
                   adam_t_counts_updates=False, adam_beyond_convolutional=False,
                   cuda_update_extras=True)

DIALECTS: Dict[str, Dialect] = {d.name: d for d in (PJREDDIE, ALEXEYAB)}


def get_dialect(name: "str | Dialect") -> Dialect:
    """``"pjreddie"``/``"alexeyab"`` (or a Dialect) -> Dialect."""
    if isinstance(name, Dialect):
        return name
    key = str(name).lower()
    if key in ("alexeyab", "ab", "yolov4"):
        return ALEXEYAB
    if key in ("pjreddie", "pj", "yolov3"):
        return PJREDDIE
    raise ValueError(f"unknown Darknet dialect {name!r}; use 'pjreddie' or 'alexeyab'")
