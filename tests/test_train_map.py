"""``detector train -map``: when the mAP is computed and which weights become
``_best.weights``, against AlexeyAB's own ``./darknet detector train -map``; the chart
draws it; the rule read off detector.c checked on its own numbers."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from darknet_py.train import checkpoint as C
from darknet_py.train import trainer as T

from test_train_loop import TINY, counting_step, darknet_exe, dataset, headers


def _cfg(folder: Path, burn_in: int) -> str:
    path = folder / "tiny.cfg"
    path.write_text(TINY.format(w=32, h=32, lr=0.001, max_batches=320, random=0)
                    .replace("policy=constant", f"policy=constant\nburn_in={burn_in}"))
    return str(path)


def _darknet_maps(stdout: str):
    """(iteration, mAP, new best) for each mAP AlexeyAB's train_detector printed."""
    out, iteration = [], None
    lines = stdout.replace("\r", "\n").split("\n")
    for k, line in enumerate(lines):
        m = re.match(r"\s*(\d+): [-\d.naif]+, [-\d.naif]+ avg loss", line)
        if m:
            iteration = int(m.group(1))
        m = re.match(r" mean_average_precision \(mAP@0\.50\) = ([\d.]+) $", line)
        if m:
            out.append((iteration, float(m.group(1)), lines[k + 1] == "New best mAP!"))
    return out


def _from_flags(maps):
    """mAP values that give Darknet's printed "New best mAP!" decisions under its rule
    (``mean_average_precision >= best_map``): a new best ties the best so far (>= holds),
    any other value is below it. Darknet's own values cannot be fed as printed: %f rounds
    to 6 digits (a printed tie may have been below the best), and its network trains
    differently from the counting step here anyway."""
    out, best = [], 0.0
    for _, _, new_best in maps:
        out.append(best if new_best else best - 0.25)
    return out


@pytest.mark.parametrize("burn_in,epochs", [(150, 30), (0, 4)])
def test_map_cadence_and_best_equal_alexeyab(tmp_path, monkeypatch, burn_in, epochs):
    """The real run (8 train images, batch 2, 320 iterations) prints its mAPs at some
    iterations; darknet-py's loop computes them at the same iterations, and fed Darknet's
    values (its network trains differently) keeps the same ``_best.weights`` (same seen) and
    writes the same backup files."""
    exe = darknet_exe("alexeyab")
    cfg = _cfg(tmp_path, burn_in)
    c_data = dataset(tmp_path / "c")
    run = subprocess.run([str(exe), "detector", "train", c_data, cfg, "-dont_show", "-map",
                          "-mAP_epochs", str(epochs)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    want = _darknet_maps(run.stdout)
    assert len(want) >= 3 and want[-1][0] == 320
    values = iter(_from_flags(want))
    monkeypatch.setattr(T, "_map_now", lambda *args: float(np.float32(next(values))))
    py_data = dataset(tmp_path / "py")
    result = T.train_detector(py_data, cfg, dialect="alexeyab", workers=0, seed=0, chart=None,
                              step=counting_step, stream=open(os.devnull, "w"), calc_map=True,
                              map_epochs=epochs)
    assert [i for i, _ in result.maps] == [i for i, _, _ in want]
    assert headers(tmp_path / "py" / "backup") == headers(tmp_path / "c" / "backup"), (
        want, run.stdout[-3000:])
    assert result.best == str(tmp_path / "py" / "backup" / "tiny_best.weights")


def test_map_cadence_reading_of_the_c():
    """calc_map_for_each = max(mAP_epochs * images / batch, 100) (ints),
    next = max(last + that, burn_in); also at max_batches; best when >= (floats)."""
    c = C.MapCadence.for_run(4, 1000, 64, 1000, 6000, 0)
    assert c.every == 100  # 4000 // 64 = 62 < 100
    assert [i for i in range(1, 6001) if c.due(i)][:3] == [1000, 1100, 1200]
    c = C.MapCadence.for_run(4, 10000, 64, 1000, 2000, 1500)  # resumed at 1500
    assert c.every == 625
    assert [i for i in range(1501, 2001) if c.due(i)] == [2000]
    assert c.is_best(0.0) and c.is_best(0.0) and not c.is_best(-0.5)
    assert c.is_best(0.5) and not c.is_best(0.49999)


def test_chart_draws_the_map_in_red(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image
    plain, marked = tmp_path / "a.png", tmp_path / "b.png"
    charts = [T.LossChart(str(p), 100, 20.0) for p in (plain, marked)]
    for chart in charts:
        for i in range(1, 51):
            chart.add(i, 10.0 / i)
    charts[1].add_map(50, 0.6)
    red = []
    for path in (plain, marked):
        px = np.asarray(Image.open(path).convert("RGB")).astype(int)
        red.append(int(((px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)).sum()))
    assert red[0] == 0 and red[1] > 20
