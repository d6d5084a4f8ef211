"""The ``[net]``/``[network]`` section: input size and training hyper-parameters.

Defaults are Darknet's (``parser.c:parse_net_options``); keys only AlexeyAB's
fork reads are here too so that they are not reported as unused.

    >>> from darknet_py.cfg.reader import parse_cfg
    >>> from darknet_py.cfg.options import OptionReader
    >>> sec = parse_cfg("[net]\\nwidth=416\\nheight=256\\nchannels=3\\n")[0]
    >>> net = OptionReader(sec, "pjreddie").read(NetOptions)
    >>> net.width, net.height, net.batch, net.policy
    (416, 256, 1, 'constant')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from .options import option

NET_SECTIONS = ("net", "network")
POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random", "sgdr")


@dataclass
class NetOptions:
    batch: int = option(1)
    subdivisions: int = option(1)
    time_steps: int = option(1)
    width: int = option(0)
    height: int = option(0)
    channels: int = option(0)
    inputs: Optional[int] = option(None, doc="default height*width*channels")
    # optimisation
    learning_rate: float = option(0.001)
    momentum: float = option(0.9)
    decay: float = option(0.0001)
    adam: int = option(0)
    B1: float = option(0.9)
    B2: float = option(0.999)
    eps: float = option(0.0000001, alexeyab=0.000001)
    policy: str = option("constant")
    burn_in: int = option(0)
    power: float = option(4.0)
    step: int = option(1)
    scale: float = option(1.0)
    steps: List[int] = option([])
    scales: List[float] = option([])
    gamma: float = option(1.0)
    max_batches: int = option(0)
    learning_rate_min: float = option(0.00001)
    sgdr_cycle: Optional[int] = option(None)
    sgdr_mult: int = option(2)
    # augmentation
    max_crop: Optional[int] = option(None, doc="default 2*width")
    min_crop: Optional[int] = option(None, doc="default width")
    max_ratio: Optional[float] = option(None)
    min_ratio: Optional[float] = option(None)
    center: int = option(0)
    clip: float = option(0.0)
    angle: float = option(0.0)
    aspect: float = option(1.0)
    saturation: float = option(1.0)
    exposure: float = option(1.0)
    hue: float = option(0.0)
    random: int = option(0)
    notruth: int = option(0)
    # AlexeyAB-only training switches (read so they are not reported unused)
    letter_box: int = option(0)
    mosaic: int = option(0)
    cutmix: int = option(0)
    mixup: int = option(0)
    flip: int = option(1)
    blur: int = option(0)
    gaussian_noise: int = option(0)
    mosaic_bound: int = option(0)
    label_smooth_eps: float = option(0.0)
    track: int = option(0)
    augment_speed: int = option(2)
    sequential_subdivisions: Optional[int] = option(None)
    try_fix_nan: int = option(0)
    weights_reject_freq: int = option(0)
    equidistant_point: int = option(0)
    badlabels_rejection_percentage: float = option(0.0)
    num_sigmas_reject_badlabels: float = option(0.0)
    ema_alpha: float = option(0.0)
    use_cuda_graph: int = option(0)
    loss_scale: float = option(1.0)
    dynamic_minibatch: int = option(0)
    optimized_memory: int = option(0)
    workspace_size_limit_MB: float = option(1024.0)
    unsupervised: int = option(0)
    resize_step: int = option(32)
    attention: int = option(0)
    adversarial_lr: float = option(0.0)
    max_chart_loss: float = option(20.0)
    contrastive: int = option(0)
    contrastive_jit_flip: int = option(0)
    contrastive_color: int = option(0)
    show_receptive_field: int = option(0)

    def resolve(self, dialect) -> None:
        if self.inputs is None:
            self.inputs = self.height * self.width * self.channels
        if self.max_crop is None:
            self.max_crop = self.width * 2
        if self.min_crop is None:
            self.min_crop = self.width
        if self.sgdr_cycle is None:
            self.sgdr_cycle = self.max_batches
        if self.sequential_subdivisions is None:
            self.sequential_subdivisions = self.subdivisions
        if self.subdivisions < 1:
            raise ValueError(f"subdivisions must be >= 1, got {self.subdivisions}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown learning-rate policy {self.policy!r} "
                             f"(one of {', '.join(POLICIES)})")
        if self.policy == "steps":
            if not self.steps:
                raise ValueError("policy=steps needs steps=")
            if dialect.name == "alexeyab":
                self.scales = list(self.scales) + [1.0] * (len(self.steps) - len(self.scales))
            if len(self.scales) != len(self.steps):
                raise ValueError(f"policy=steps has {len(self.steps)} steps but "
                                 f"{len(self.scales)} scales")

    @property
    def mini_batch(self) -> int:
        """Images per forward pass while training: batch / subdivisions (* time_steps)."""
        return max(1, self.batch // self.subdivisions) * self.time_steps
