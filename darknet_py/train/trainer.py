"""The training loop: Darknet's ``train_detector`` around :func:`engine.train_network`.

:func:`train_detector` does what ``darknet detector train DATA CFG [WEIGHTS]`` does:
read the ``.data`` file and its image list, build the network (optionally loading
weights, possibly a partial backbone; ``clear`` restarts ``seen``), then until
``max_batches``: a batch of ``batch`` images (:mod:`.data`), at the size the
fork's ``random=`` rule picks every 10 batches (:func:`pjreddie_random_size`,
:func:`alexeyab_random_size`), one ``train_network``, Darknet's running average
``avg = 0.9*avg + 0.1*loss`` (first value = the first loss), a progress line
(iteration, loss, avg, rate, seconds, images/s, ETA; a tqdm bar on a terminal),
the loss chart (``chart.png``, when matplotlib is installed), checkpoints by the
fork's cadence (:mod:`.checkpoint`) and ``_final.weights`` at the end. With [net]
``ema_alpha`` (AlexeyAB), each ``_last.weights`` is followed by ``_ema.weights`` once the
EMA is initialised: the convolutional weights, biases and BN scales replaced by their EMA
(the rolling statistics and every other layer's values as they are), as ``train_detector``
writes it with ``save_weights_upto(net, buff, net.n, 1)``.

A non-finite loss stops the run (:class:`TrainingStopped`) naming the iteration;
nothing is saved after it, so the last checkpoint on disk is the last good one.

Several processes (``torchrun``): by default the cfg batch is split across them
(each runs ``subdivisions/world`` of the mini-batches; gradients are averaged
with ``torch.distributed.all_reduce`` before each update), which gives the
weights of one process on the whole batch. ``scheme="darknet"`` is Darknet's
own multi-GPU training: each process trains a whole batch at ``learning_rate *
world`` and the weights are averaged every 4 iterations (``train_networks``).
"""
from __future__ import annotations

import io
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import DarknetError, DataError
from . import data as D
from .checkpoint import Cadence, MapCadence, basecfg, load_for_training, save_checkpoint
from .optimizer import ema_initialized, ema_weights

F32 = np.float32


class TrainingStopped(DarknetError):
    """Training stopped on purpose (non-finite loss); the message says where and why."""


# -- random=1 resizing -------------------------------------------------------------------
def pjreddie_random_size(rng: np.random.Generator, batch_num: int, max_batches: int,
                         width: int, height: int) -> Tuple[int, int]:
    """examples/detector.c: ``dim = (rand() % 10 + 10) * 32`` (320..608), 608 for the
    last 200 batches; square."""
    dim = (int(rng.integers(10)) + 10) * 32
    if batch_num + 200 > max_batches:
        dim = 608
    return dim, dim


def _roundl(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def alexeyab_random_size(rng: np.random.Generator, iteration: int, max_batches: int,
                         width: int, height: int, random: float, resize_step: int,
                         first: bool) -> Tuple[int, int]:
    """src/detector.c: scale by ``rand_scale(coef)`` (coef = random, 1.4 for random=1),
    round to ``resize_step``; the largest size on the first resize and in the last 100
    iterations."""
    coef = F32(1.4) if random == 1.0 else F32(random)
    scale = F32(rng.random()) * (coef - F32(1)) + F32(1)  # rand_uniform(1, coef)
    val = scale if rng.integers(2) else F32(1) / scale    # rand_scale
    step = F32(resize_step)
    dim_w = _roundl(float(val * F32(width) / step + F32(1))) * resize_step
    dim_h = _roundl(float(val * F32(height) / step + F32(1))) * resize_step
    if val < 1 and (dim_w > width or dim_h > height):
        dim_w, dim_h = width, height
    max_w = _roundl(float(coef * F32(width) / step + F32(1))) * resize_step
    max_h = _roundl(float(coef * F32(height) / step + F32(1))) * resize_step
    if first or iteration > max_batches - 100:
        dim_w, dim_h = max_w, max_h
    return max(dim_w, resize_step), max(dim_h, resize_step)


def size_rule(model, start_batch: int, seed: int, augment: bool) -> D.SizeFn:
    """The (w, h) of the k-th batch of a run starting at ``start_batch``: the cfg size, or
    with the head's ``random`` set, a new random size at k = 0, 10, 20... (Darknet's
    ``count++ % 10 == 0``). A pure function of k (prefetching workers ask ahead)."""
    net = model.net
    head = model.layers[len(model.layers) - 1 if model.dialect.name == "pjreddie"
                        else model.heads[-1]]
    random = float(getattr(head.opts, "random", 0.0))
    w, h = model.input_shape.w, model.input_shape.h
    if not random or not augment:
        return lambda k: (w, h)
    ab = model.dialect.name == "alexeyab"

    def size(k: int) -> Tuple[int, int]:
        at = 10 * (k // 10)
        rng = np.random.default_rng([seed, 7, at])
        if ab:
            return alexeyab_random_size(rng, start_batch + at, net.max_batches, w, h, random,
                                        net.resize_step, first=at == 0)
        return pjreddie_random_size(rng, start_batch + at, net.max_batches, w, h)
    return size


# -- progress and chart ------------------------------------------------------------------
@dataclass
class Progress:
    """One line per iteration like Darknet's, or a tqdm bar on a terminal."""
    max_batches: int
    start: int
    images: int
    stream: object = sys.stdout
    bar: Optional[object] = None
    began: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        isatty = getattr(self.stream, "isatty", lambda: False)()
        if isatty:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=self.max_batches, initial=self.start, unit="it",
                                file=self.stream, dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def update(self, i: int, loss: float, avg: float, rate: float, seconds: float) -> str:
        done = i - self.start
        elapsed = time.perf_counter() - self.began
        per = elapsed / max(done, 1)
        eta = per * max(self.max_batches - i, 0)
        ips = self.images * done / max(elapsed, 1e-9)
        line = (f"{i}: {loss:f}, {avg:f} avg, {rate:f} rate, {seconds:f} seconds, "
                f"{i * self.images} images, {ips:.1f} images/s, ETA {_hms(eta)}")
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.3f} avg {avg:.3f} rate {rate:g} "
                                     f"{ips:.1f} img/s", refresh=False)
            self.bar.update(i - self.bar.n)
        else:
            print(line, file=self.stream, flush=True)
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LossChart:
    """Darknet's chart.png: average loss against iteration (x up to max_batches, y up to
    [net] max_chart_loss), redrawn every ``every`` iterations. Needs matplotlib."""

    def __init__(self, path: str, max_batches: int, max_loss: float, every: int = 10) -> None:
        import matplotlib
        matplotlib.use("Agg")
        self.path, self.max_batches, self.max_loss, self.every = path, max_batches, max_loss, every
        self.points: List[Tuple[int, float]] = []
        self.maps: List[Tuple[int, float]] = []

    def add(self, i: int, avg: float) -> None:
        self.points.append((i, avg))
        if i % self.every == 0 or i >= self.max_batches:
            self.draw()

    def add_map(self, i: int, value: float) -> None:
        """An mAP (0..1) at iteration ``i``: drawn in red against a 0..100 % axis, as
        AlexeyAB's draw_train_loss draws the "mAP%" points; redraws now."""
        self.maps.append((i, value))
        self.draw()

    def draw(self) -> None:
        import matplotlib.pyplot as plt
        from ..io import atomic_write
        import io
        fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
        if self.points:
            xs, ys = zip(*self.points)
            ax.plot(xs, ys, color="blue", linewidth=1)
            ax.set_title(f"iteration {xs[-1]}  avg loss {ys[-1]:.4f}")
        ax.set_xlim(0, max(self.max_batches, 1))
        ax.set_ylim(0, self.max_loss)
        ax.set_xlabel("iteration")
        ax.set_ylabel("avg loss")
        ax.grid(True, alpha=0.4)
        if self.maps:
            right = ax.twinx()
            xs, ms = zip(*self.maps)
            right.plot(xs, [100 * m for m in ms], color="red", marker="o", linewidth=1)
            right.set_ylim(0, 100)
            right.set_ylabel("mAP%", color="red")
            ax.set_title(ax.get_title() + f"  mAP {100 * ms[-1]:.2f}%  best "
                         f"{100 * max(ms):.2f}%")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        atomic_write(self.path, buf.getvalue())


# -- distributed ---------------------------------------------------------------------------
def _dist():
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d
    return None


def init_distributed(device: "str | torch.device" = "cpu") -> Tuple[int, int]:
    """(rank, world) from torchrun's environment, initialising the process group
    (gloo on CPU, nccl on CUDA) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    d = torch.distributed
    if not d.is_initialized():
        d.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
        _OWNED.append(True)
    return d.get_rank(), d.get_world_size()


_OWNED: List[bool] = []  # a process group train_detector created (and must close)


def close_distributed() -> None:
    """Wait for every process, then close the process group train_detector opened (a
    process leaving while its peers still talk makes gloo abort them)."""
    d = _dist()
    if d is not None and _OWNED:
        d.barrier()
        d.destroy_process_group()
        _OWNED.clear()


def average_gradients(model) -> None:
    """all_reduce every gradient and divide by the world size (what DDP does)."""
    d = _dist()
    if d is None:
        return
    world = d.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            d.all_reduce(p.grad)
            p.grad.div_(world)


def average_weights(model) -> None:
    """Darknet's sync_nets for scheme="darknet": average every weight (and BN rolling
    statistics) over the processes."""
    d = _dist()
    if d is None:
        return
    world = d.get_world_size()
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if torch.is_floating_point(t):
                d.all_reduce(t)
                t.div_(world)


# -- the loop ---------------------------------------------------------------------------
@dataclass
class TrainResult:
    iterations: int
    seen: int
    losses: List[float]
    avg_losses: List[float]
    checkpoints: List[str]
    final: Optional[str]
    problems: Dict[str, int]
    seconds: float
    data_wait: float = 0.0
    #: ``-map``: (iteration, mAP) of each evaluation, and the ``_best.weights`` path
    maps: List[Tuple[int, float]] = field(default_factory=list)
    best: Optional[str] = None


Step = Callable[..., float]


def stop_if_not_finite(loss: float, i: int, written: List[str], cfg,
                       resume_name: "str | None" = None) -> None:
    """A NaN/inf loss stops the run (nothing saved after it), naming the iteration and the
    last good checkpoint among ``written`` (``resume_name``: the file a resume reads, when
    it was among them)."""
    if math.isfinite(loss):
        return
    last = [p for p in written if os.path.exists(p)]
    if resume_name is not None and resume_name in last:  # the file to resume from
        last.append(resume_name)
    raise TrainingStopped(
        f"loss is {loss} at iteration {i}; stopped without saving. The last good "
        f"checkpoint is {last[-1] if last else 'none (nothing was saved yet)'}; "
        f"lower learning_rate or check the data", file=cfg)


def train_detector(data: str, cfg: str, weights: Optional[str] = None, *, clear: bool = False,
                   dialect: str = "auto", augment: bool = True, workers: int = 2,
                   device: "str | torch.device" = "cpu", seed: Optional[int] = None,
                   max_batches: Optional[int] = None, chart: Optional[str] = "chart.png",
                   stream=None, step: Optional[Step] = None, scheme: str = "split",
                   model=None, callback: Optional[Callable[..., bool]] = None,
                   calc_map: bool = False, map_epochs: int = 4, thresh: float = 0.25,
                   iou_thresh: float = 0.5) -> TrainResult:
    """Train ``cfg`` on the ``.data`` file ``data`` as ``darknet detector train``.

    ``augment=False`` turns all augmentation and random resizing off (side-by-side
    runs). ``max_batches`` overrides the cfg's (for short runs). ``chart`` is the loss
    chart path (None: no chart; skipped with a note when matplotlib is missing).
    ``step`` replaces :func:`engine.train_network` (tests). ``scheme`` is "split"
    (default: the batch split over processes) or "darknet" (lr x processes, weights
    averaged every 4 iterations). ``callback(iteration, model, loss, avg_loss)`` runs after
    each iteration's checkpoints (evaluation, early stop): returning True stops the run
    (the final weights are still written). ``model`` trains a prebuilt network instead of
    building ``cfg`` (``cfg`` still names the checkpoints).

    ``calc_map`` (``-map``): AlexeyAB's mAP during training -- the ``valid`` list (else
    ``train``) checked before anything is written, then ``detector map``'s evaluation
    (``-points 0``, ``thresh``/``iou_thresh``, at the cfg's initial size) at the
    :class:`~darknet_py.train.checkpoint.MapCadence` (every ``map_epochs`` epochs, at
    least 100 iterations apart, and at max_batches), printed as Darknet prints it,
    kept in ``base_best.weights`` when it is the best so far and drawn on the chart.
    """
    from .. import load
    from .engine import TrainState, train_network
    stream = stream or sys.stdout
    rank, world = init_distributed(device)
    is_main = rank == 0
    out = stream if is_main else open(os.devnull, "w")
    step = step or train_network
    dc = D.read_data(data)
    paths = D.read_image_list(dc.resolve(dc.train))
    if model is None:
        model = load(cfg, dialect=dialect, warn_unused=False)
    net = model.net
    map_set = None
    if calc_map and is_main:  # every problem of the valid set before anything is written
        from ..eval.map import load_dataset
        if not model.heads:
            raise DataError("-map: the network has no detection layer", file=cfg)
        map_set = load_dataset(data, model.layers[model.heads[-1]].classes, default=dc.train)
    if max_batches is not None:
        net.max_batches = int(max_batches)
    loaded = None
    if weights is not None:
        loaded = load_for_training(model, weights, clear=clear)
    elif clear:
        model.header = (0, 2, model.dialect.weights_revision, 0)
    model.to(device)
    if world > 1:  # every process starts from rank 0's weights (as DDP does)
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                torch.distributed.broadcast(t.data, 0)
    state = TrainState.from_model(model)
    batch = net.batch  # the cfg's batch = mini-batch * subdivisions
    subdivisions = net.subdivisions
    if scheme not in ("split", "darknet"):
        raise ValueError(f"scheme must be 'split' or 'darknet', got {scheme!r}")
    if world > 1 and scheme == "split":
        if subdivisions % world:
            raise ValueError(f"subdivisions={subdivisions} does not split over {world} "
                             f"processes (the cfg batch is split by whole mini-batches)")
        net.subdivisions = subdivisions // world  # the same mini-batch, fewer of them
        net.batch = batch // world
        state.seen //= world  # each process counts its share; x world when saved
    if world > 1 and scheme == "darknet":
        net.learning_rate *= world
    images = batch * (world if scheme == "darknet" else 1)
    start = (state.seen * (world if scheme == "split" else 1)) // batch
    state.iteration = start
    backup = dc.backup
    os.makedirs(backup, exist_ok=True)
    cadence = Cadence.from_data(model.dialect.name, backup, cfg, net.max_batches, start,
                                dc.options, source=dc.path)
    map_cadence = MapCadence.for_run(map_epochs, len(paths), batch, int(net.burn_in),
                                     net.max_batches, start)
    initial = (model.input_shape.w, model.input_shape.h)
    maps: List[Tuple[int, float]] = []
    best_path = None
    seed = int(seed if seed is not None else time.time_ns() % 2 ** 31)
    if world > 1:
        t = torch.tensor([seed], dtype=torch.int64)
        torch.distributed.broadcast(t, 0)
        seed = int(t.item())
    aug = D.Augment.from_model(model, augment)
    dataset = D.DetectionDataset(paths, aug)
    sizes = size_rule(model, start, seed, augment)
    plan_rank, plan_world = (rank, world) if scheme == "split" else (0, 1)
    plan = D.BatchPlan(len(paths), batch, sizes, seed=seed + (rank if scheme == "darknet" else 0),
                       start=start, mosaic=aug.mosaic and augment, rank=plan_rank,
                       world=plan_world, iterations=max(net.max_batches - start, 0))
    loader = D.make_loader(dataset, plan, workers=workers)
    problems = D.DataProblems(report=lambda line: print(line, file=sys.stderr, flush=True)
                              if is_main else None)
    print(f"{basecfg(cfg)}: {len(paths)} images, batch {batch} (subdivisions {subdivisions})"
          f"{f' x {world} processes ({scheme})' if world > 1 else ''}, max_batches "
          f"{net.max_batches}, {model.dialect.name}"
          + (f"; from {loaded['path']} (seen {loaded['seen']}"
             + (f", layers 0..{loaded['upto'] - 1}" if loaded["upto"] else "") + ")"
             if loaded else ""), file=out, flush=True)
    chart_obj = None
    if chart and is_main:
        try:
            chart_obj = LossChart(chart, net.max_batches, float(net.max_chart_loss))
        except ImportError:
            print("darknet-py: no loss chart (pip install matplotlib)", file=out)
    progress = Progress(net.max_batches, start, images, stream=out)
    avg_loss = -1.0
    losses: List[float] = []
    avgs: List[float] = []
    written: List[str] = []
    current = (model.input_shape.w, model.input_shape.h)
    began = time.perf_counter()
    i = start

    def seen_total() -> int:
        return state.seen * (world if scheme == "split" else 1)

    if world > 1 and scheme == "split":  # what DDP does: mean gradient before the update
        state.before_update = average_gradients
    waited = 0.0  # seconds spent waiting for the loader (Darknet's "Loaded: %lf seconds")
    t_wait = time.perf_counter()
    try:
        for X, y, found in loader:
            waited += time.perf_counter() - t_wait
            problems.add(found)
            w, h = X.shape[3], X.shape[2]
            if (w, h) != current:
                model.resize(w, h)
                current = (w, h)
            t0 = time.perf_counter()
            loss = float(step(model, state, X, y))
            if world > 1:  # Darknet reports the mean over its GPUs (train_networks)
                t = torch.tensor([loss], dtype=torch.float64)
                torch.distributed.all_reduce(t)
                loss = float(t.item() / world)
            seconds = time.perf_counter() - t0
            i = seen_total() // batch
            stop_if_not_finite(loss, i, written, cfg, cadence.resume_name)
            if avg_loss < 0:
                avg_loss = loss
            avg_loss = avg_loss * 0.9 + loss * 0.1
            losses.append(loss)
            avgs.append(avg_loss)
            progress.update(i, loss, avg_loss, float(state.rate), seconds)
            if chart_obj is not None:
                chart_obj.add(i, avg_loss)
            if scheme == "darknet" and world > 1 and i % 4 == 0:
                average_weights(model)
            if map_set is not None and map_cadence.due(i):
                if current != initial:  # "Resizing to initial size"
                    model.resize(*initial)
                    current = initial
                value = _map_now(model, data, cfg, map_set, thresh, iou_thresh, out)
                maps.append((i, value))
                if map_cadence.is_best(value):
                    print("New best mAP!", file=out, flush=True)
                    best_path = cadence.path("_best.weights")
                    save_checkpoint(model, best_path, seen_total())
                if chart_obj is not None:
                    chart_obj.add_map(i, value)
            for path in cadence.due(i):
                if scheme == "darknet" and world > 1:
                    average_weights(model)
                if is_main:
                    save_checkpoint(model, path, seen_total())
                    written.append(path)
                    if path == cadence.path("_last.weights") and ema_initialized(model, state):
                        # AlexeyAB: with each _last, the EMA weights once initialised
                        ema_path = cadence.path("_ema.weights")
                        with ema_weights(model, state):
                            save_checkpoint(model, ema_path, seen_total())
                        print(f" EMA weights are saved to the file: {ema_path}", file=out,
                              flush=True)
                        written.append(ema_path)
            if callback is not None and callback(i, model, loss, avg_loss):
                break
            if i >= net.max_batches:
                break
            t_wait = time.perf_counter()
    finally:
        progress.close()
    if scheme == "darknet" and world > 1:
        average_weights(model)
    final = cadence.final()
    if is_main:
        save_checkpoint(model, final, seen_total())
        written.append(final)
        total = time.perf_counter() - began
        print(f"Saved {final}; waited {waited:.1f} s of {total:.1f} s for data "
              f"({100 * waited / max(total, 1e-9):.0f}%); {problems.summary()}",
              file=out, flush=True)
    close_distributed()
    return TrainResult(iterations=i - start, seen=seen_total(), losses=losses, avg_losses=avgs,
                       checkpoints=written, final=final if is_main else None,
                       problems=dict(problems.counts), seconds=time.perf_counter() - began,
                       data_wait=waited, maps=maps, best=best_path)


# -- classifier ------------------------------------------------------------------------------
def pjreddie_classifier_size(seed: int, k: int, width: int) -> Tuple[int, int]:
    """examples/classifier.c with [net] random=1: every 40 iterations (``count++ % 40 ==
    0``, the first included) a square side ``(rand() % 11 + 4) * 32`` (128..448)."""
    rng = np.random.default_rng([seed, 11, k // 40])
    dim = (int(rng.integers(11)) + 4) * 32
    return dim, dim


def train_classifier(data: str, cfg: str, weights: Optional[str] = None, *, clear: bool = False,
                     dialect: str = "auto", augment: bool = True, workers: int = 2,
                     device: "str | torch.device" = "cpu", seed: Optional[int] = None,
                     max_batches: Optional[int] = None, stream=None,
                     step: Optional[Step] = None, model=None,
                     callback: Optional[Callable[..., bool]] = None,
                     calc_topk: bool = False) -> TrainResult:
    """Train ``cfg`` on the classifier ``.data`` file ``data`` as ``darknet classifier train``.

    Each iteration: ``batch`` images drawn as ``get_random_paths`` from the ``train`` list,
    augmented and labelled as :mod:`.classifier_data` (the truth from the label names of
    ``labels=`` found in each path), one ``train_network``, ``avg = 0.9*avg + 0.1*loss``,
    Darknet's progress line ``i, epoch: loss, avg avg, rate rate, s seconds, seen images``,
    checkpoints by :class:`~darknet_py.train.checkpoint.ClassifierCadence` (pjreddie: per
    epoch, ``.backup`` every 1000, ``base.weights`` at the end; AlexeyAB: numbered every
    1000, ``_last`` every 100, ``_final``). pjreddie with [net] ``random=1`` trains at a
    new square size every 40 iterations. ``.data`` ``classes`` must equal the last layer's
    outputs (AlexeyAB's check). A non-finite loss stops the run (:class:`TrainingStopped`);
    images that cannot be read or name no label are reported once and replaced.
    ``augment=False``: plain resizes, nothing random; ``max_batches`` overrides the cfg's.
    ``calc_topk`` (AlexeyAB's ``-topk``): ``classifier valid``'s top-k (k = the .data
    ``top``, default 5, at most ``classes``) on the ``valid`` list when ``i >= max(last +
    2 * images / batch, burn_in, 100)`` (``last`` first the start iteration) and at
    ``max_batches``, printed ``accuracy topK = a``; kept in ``TrainResult.maps``.
    """
    from .. import load
    from .. import tree as _tree
    from . import classifier_data as CD
    from .checkpoint import ClassifierCadence
    from .engine import TrainState, train_network
    out = stream or sys.stdout
    step = step or train_network
    dc = CD.read_classifier_data(data)
    paths = D.read_image_list(dc.resolve(dc.train))
    labels = CD.read_labels(dc.resolve(dc.labels), dc.classes)
    if model is None:
        model = load(cfg, dialect=dialect, warn_unused=False)
    net = model.net
    outputs = model.layers[len(model.layers) - 1].out_shape.numel
    if outputs != dc.classes:
        raise DataError(f"classes={dc.classes}, but the network's last layer has {outputs} "
                        f"outputs (one per class)", file=dc.path, key="classes")
    ab = model.dialect.name == "alexeyab"
    if dc.tree and not ab:  # pjreddie: .data tree= replaces net->hierarchy
        hierarchy = _tree.read_tree(dc.resolve(dc.tree))
    else:
        hierarchy = CD.hierarchy_of(model)
    if max_batches is not None:
        net.max_batches = int(max_batches)
    if net.max_batches <= 0:
        raise DataError("max_batches=0: Darknet's classifier train then never stops; set "
                        "max_batches (or pass --max-batches)", file=cfg, key="max_batches")
    loaded = None
    if weights is not None:
        loaded = load_for_training(model, weights, clear=clear)
    elif clear:
        model.header = (0, 2, model.dialect.weights_revision, 0)
    model.to(device)
    state = TrainState.from_model(model)
    batch = net.batch
    start = state.seen // batch
    state.iteration = start
    os.makedirs(dc.backup, exist_ok=True)
    cadence = ClassifierCadence(model.dialect.name, dc.backup, basecfg(cfg), len(paths), start,
                                state.seen)
    seed = int(seed if seed is not None else time.time_ns() % 2 ** 31)
    aug = CD.ClassifierAugment.from_model(model, augment)
    dataset = CD.ClassifierDataset(paths, labels, aug, hierarchy)
    w0, h0 = aug.w, aug.h
    if not ab and net.random and augment:
        def sizes(k: int) -> Tuple[int, int]:
            return pjreddie_classifier_size(seed, k, w0)
    else:
        sizes = D.fixed_size(w0, h0)
    plan = D.BatchPlan(len(paths), batch, sizes, seed=seed, start=start,  # mosaic: the
                       mosaic=bool(aug.mixup) and augment,  # batch's mixing coin
                       iterations=max(net.max_batches - start, 0))
    loader = D.make_loader(dataset, plan, workers=workers)
    problems = D.DataProblems(report=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{basecfg(cfg)}: {len(paths)} images, {dc.classes} classes, batch {batch} "
          f"(subdivisions {net.subdivisions}), max_batches {net.max_batches}, "
          f"{model.dialect.name}" + (", hierarchy" if hierarchy is not None else "")
          + (f"; from {loaded['path']} (seen {loaded['seen']}"
             + (f", layers 0..{loaded['upto'] - 1}" if loaded["upto"] else "") + ")"
             if loaded else ""), file=out, flush=True)
    avg_loss = -1.0
    losses: List[float] = []
    avgs: List[float] = []
    written: List[str] = []
    topks: List[Tuple[int, float]] = []
    iter_topk = start
    topk_k = int(dc.options.get("top", "5")) if calc_topk else 5
    current = (model.input_shape.w, model.input_shape.h)
    began = time.perf_counter()
    waited = 0.0
    i = start
    t_wait = time.perf_counter()
    for X, y, found in loader:
        waited += time.perf_counter() - t_wait
        problems.add(found)
        w, h = X.shape[3], X.shape[2]
        if (w, h) != current:
            model.resize(w, h)
            current = (w, h)
        t0 = time.perf_counter()
        loss = float(step(model, state, X, y))
        seconds = time.perf_counter() - t0
        i = state.seen // batch
        stop_if_not_finite(loss, i, written, cfg)
        if avg_loss < 0:
            avg_loss = loss
        avg_loss = avg_loss * 0.9 + loss * 0.1
        losses.append(loss)
        avgs.append(avg_loss)
        print(f"{i}, {state.seen / len(paths):.3f}: {loss:f}, {avg_loss:f} avg, "
              f"{float(state.rate):f} rate, {seconds:f} seconds, {state.seen} images",
              file=out, flush=True)
        if calc_topk:
            due_at = max(iter_topk + 2 * len(paths) // batch, int(net.burn_in), 100)
            if i >= due_at or i == net.max_batches:
                from ..eval.classifier import validate_classifier
                iter_topk = i
                got = validate_classifier(data, cfg, model=model, stream=io.StringIO(),
                                          k=topk_k)
                print(f"\n accuracy top{got.k} = {got.topk:f} ", file=out, flush=True)
                topks.append((i, got.topk))
        for path in cadence.due(i, state.seen):
            save_checkpoint(model, path, state.seen)
            written.append(path)
        if callback is not None and callback(i, model, loss, avg_loss):
            break
        if i >= net.max_batches:
            break
        t_wait = time.perf_counter()
    final = cadence.final()
    save_checkpoint(model, final, state.seen)
    written.append(final)
    total = time.perf_counter() - began
    print(f"Saved {final}; waited {waited:.1f} s of {total:.1f} s for data "
          f"({100 * waited / max(total, 1e-9):.0f}%); {problems.summary()}", file=out,
          flush=True)
    return TrainResult(iterations=i - start, seen=state.seen, losses=losses, avg_losses=avgs,
                       checkpoints=written, final=final, problems=dict(problems.counts),
                       seconds=total, data_wait=waited, maps=topks)


def _map_now(model, data, cfg, dataset, thresh: float, iou_thresh: float, out) -> float:
    """validate_detector_map on the network being trained (inference mode, then back),
    printed as train_detector prints it; the mAP as the C float it is kept in."""
    from ..eval.map import validate_detector_map
    was = model.training
    model.eval()
    try:
        result, _, _ = validate_detector_map(data, cfg, model=model, dataset=dataset,
                                             thresh=thresh, iou_thresh=iou_thresh, points=0)
    finally:
        model.train(was)
    value = float(np.float32(result.mean_ap))
    out.write(result.text())
    print("\n mean_average_precision (mAP@%0.2f) = %f " % (float(np.float32(iou_thresh)), value),
          file=out, flush=True)
    return value


__all__ = ["LossChart", "Progress", "TrainResult", "TrainingStopped", "alexeyab_random_size",
           "average_gradients", "average_weights", "init_distributed", "pjreddie_random_size",
           "pjreddie_classifier_size", "size_rule", "train_classifier",
           "train_detector"]
