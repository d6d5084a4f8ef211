"""Training data: label paths, box correction, truths and augmentation against the real
Darknet C (each fork's libdarknet.so called through ctypes), and bad inputs."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from darknet_py.errors import DataError
from darknet_py.train import data as D
from darknet_py.train.synthetic import make_shapes

BUILDS = Path(os.environ.get("DARKNET_PY_BUILDS", "/work/darknet-builds"))
LIBS = {"pjreddie": BUILDS / "darknet-pjreddie-f6afaab" / "libdarknet.so",
        "alexeyab": BUILDS / "darknet-alexeyab-59596d7" / "libdarknet.so"}


class Image(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int), ("h", ctypes.c_int), ("c", ctypes.c_int),
                ("data", ctypes.POINTER(ctypes.c_float))]


class BoxPJ(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int)] + [(k, ctypes.c_float) for k in
                                          "x y w h left right top bottom".split()]


class BoxAB(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int), ("track_id", ctypes.c_int)] + [
        (k, ctypes.c_float) for k in "x y w h left right top bottom".split()]


@pytest.fixture(scope="module", params=["pjreddie", "alexeyab"])
def lib(request):
    path = LIBS[request.param]
    if not path.is_file():
        pytest.skip(f"no Darknet build at {path} (set DARKNET_PY_BUILDS)")
    handle = ctypes.CDLL(str(path))
    handle.fork = request.param
    return handle


def c_image(arr: np.ndarray):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    c, h, w = arr.shape
    return Image(w, h, c, arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))), arr


def c_correct_boxes(lib, rows, dx, dy, sx, sy, flip):
    box = BoxPJ if lib.fork == "pjreddie" else BoxAB
    arr = (box * len(rows))()
    for b, (cid, x, y, w, h) in zip(arr, rows):
        b.id, b.x, b.y, b.w, b.h = int(cid), x, y, w, h
        b.left, b.right = np.float32(x) - np.float32(w) / 2, np.float32(x) + np.float32(w) / 2
        b.top, b.bottom = np.float32(y) - np.float32(h) / 2, np.float32(y) + np.float32(h) / 2
    f = ctypes.c_float
    lib.correct_boxes.argtypes = [ctypes.c_void_p, ctypes.c_int, f, f, f, f, ctypes.c_int]
    lib.correct_boxes(ctypes.addressof(arr), len(rows), dx, dy, sx, sy, int(flip))
    return np.array([(b.id, b.x, b.y, b.w, b.h) for b in arr], dtype=np.float32)


def test_correct_boxes_equals_darknet(lib):
    rng = np.random.default_rng(3)
    rows = np.column_stack([rng.integers(0, 5, 200), rng.uniform(-0.1, 1.1, (200, 2)),
                            rng.uniform(0.001, 1, (200, 2))]).astype(np.float32)
    rows[:3, 1:3] = 0  # the (0, 0) marker
    for _ in range(20):
        dx, dy = rng.uniform(-0.3, 0.3, 2).astype(np.float32)
        sx, sy = rng.uniform(0.5, 1.6, 2).astype(np.float32)
        flip = bool(rng.integers(2))
        want = c_correct_boxes(lib, rows, dx, dy, sx, sy, flip)
        got = D.correct_boxes(rows, dx, dy, sx, sy, flip, lib.fork == "alexeyab")
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)


def _c_fill_truth(lib, image_path, max_boxes, classes, flip, dx, dy, sx, sy, net=(416, 416)):
    size = 5 if lib.fork == "pjreddie" else 6
    truth = np.zeros(max_boxes * size, dtype=np.float32)
    ptr = truth.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    f = ctypes.c_float
    path = str(image_path).encode()
    if lib.fork == "pjreddie":
        lib.fill_truth_detection.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                                             ctypes.c_int, ctypes.c_int, f, f, f, f]
        lib.fill_truth_detection(ctypes.create_string_buffer(path, 4096), max_boxes, ptr,
                                 classes, int(flip), dx, dy, sx, sy)
    else:
        lib.fill_truth_detection.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                             ctypes.c_void_p, ctypes.c_int, ctypes.c_int, f, f,
                                             f, f, ctypes.c_int, ctypes.c_int]
        lib.fill_truth_detection(path, max_boxes, size, ptr, classes, int(flip), dx, dy, sx, sy,
                                 net[0], net[1])
    return truth.reshape(max_boxes, size)


@pytest.mark.parametrize("rel", ["set/images/a.jpg", "set/JPEGImages/b.JPEG", "set/raw/c.png",
                                 "set/images/train2017/d.jpg", "set/JPEGImages/e.jpg",
                                 "set/f.png", "set/g.bmp", "set/images/x/images/h.JPG"])
def test_label_path_is_where_darknet_reads(lib, tmp_path, rel):
    image = tmp_path / rel
    lp = Path(D.label_path(str(image), lib.fork))
    lp.parent.mkdir(parents=True, exist_ok=True)
    if lp.suffix != ".txt":
        pytest.skip(f"{lib.fork} finds no label name for {rel}")
    lp.write_text("1 0.5 0.4 0.2 0.3\n")
    truth = _c_fill_truth(lib, image, 4, 5, False, 0, 0, 1, 1)
    assert truth[0, :5].tolist() == pytest.approx([0.5, 0.4, 0.2, 0.3, 1], abs=1e-6), \
        f"Darknet did not read {lp}"


def test_fill_truth_equals_darknet(lib, tmp_path):
    rng = np.random.default_rng(5)
    aug = D.Augment(dialect=lib.fork, classes=4, max_boxes=6)
    for k in range(30):
        n = int(rng.integers(1, 9))
        rows = np.column_stack([rng.integers(0, 4, n), rng.uniform(0.01, 0.99, (n, 2)),
                                rng.uniform(0.0005, 0.6, (n, 2))])
        image = tmp_path / f"im{k}.jpg"
        (tmp_path / f"im{k}.txt").write_text(
            "".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows))
        dx, dy = rng.uniform(-0.2, 0.2, 2).astype(np.float32)
        sx, sy = rng.uniform(0.7, 1.4, 2).astype(np.float32)
        flip = bool(rng.integers(2))
        want = _c_fill_truth(lib, image, 6, 4, flip, dx, dy, sx, sy)
        lp, parsed, _ = D.DetectionDataset([str(image)], aug).labels(str(image))
        track = (D.custom_hash(lp) % 4000) * 4000 + np.arange(len(parsed))
        if n <= 6:  # Darknet shuffles the boxes: the same set, in any order
            got = D.fill_truth(D.correct_boxes(parsed, dx, dy, sx, sy, flip,
                                               lib.fork == "alexeyab"), track, aug, 416, 416)
            key = lambda a: sorted(map(tuple, np.round(np.asarray(a, dtype=float), 5).tolist()))  # noqa: E731
            assert key(got) == key(want)
        else:  # more boxes than max: the count kept matches
            assert (want[:, 2] > 0).sum() <= 6


def test_distort_image_equals_darknet(lib):
    rng = np.random.default_rng(7)
    im = rng.random((3, 17, 23), dtype=np.float32)
    im[:, 0, :5] = 0.4  # grey pixels (delta == 0)
    im[:, 1, :3] = 0.0
    for hue, sat, val in [(0.1, 1.5, 0.7), (-0.3, 0.5, 1.4), (0.0, 1.0, 1.0)]:
        c, keep = c_image(im.copy())
        f = ctypes.c_float
        lib.distort_image.argtypes = [Image, f, f, f]
        lib.distort_image(c, hue, sat, val)
        np.testing.assert_allclose(D.distort_image(im, hue, sat, val), keep, rtol=0, atol=1e-6)


def test_place_image_equals_darknet(lib):
    if lib.fork != "pjreddie":
        pytest.skip("place_image is pjreddie's augmentation")
    rng = np.random.default_rng(8)
    src = rng.random((3, 31, 45), dtype=np.float32)
    for w, h, dx, dy in [(40, 27, 3, -2), (80, 64, -5, 10), (13, 50, 0, 0)]:
        canvas = np.full((3, 60, 70), 0.5, dtype=np.float32)
        c_src, _k1 = c_image(src)
        c_canvas, out = c_image(canvas.copy())
        lib.place_image.argtypes = [Image] + [ctypes.c_int] * 4 + [Image]
        lib.place_image(c_src, w, h, dx, dy, c_canvas)
        mine = canvas.copy()
        D.place_image(src, w, h, dx, dy, mine)
        np.testing.assert_allclose(mine, out, rtol=0, atol=1e-6)


def test_custom_hash_equals_darknet():
    path = LIBS["alexeyab"]
    if not path.is_file():
        pytest.skip(f"no Darknet build at {path}")
    lib = ctypes.CDLL(str(path))
    lib.custom_hash.restype = ctypes.c_ulong
    for text in ["a", "data/labels/x.txt", "/tmp/very/long/" * 20 + "z.txt"]:
        assert D.custom_hash(text) == lib.custom_hash(text.encode())


# -- pure Python: data files and bad inputs ---------------------------------------------
def test_read_data_defaults_and_errors(tmp_path):
    p = tmp_path / "x.data"
    p.write_text("classes = 3\n# comment\ntrain=a.txt\n")
    cfg = D.read_data(p)
    assert (cfg.classes, cfg.train, cfg.valid, cfg.names, cfg.backup) == \
        (3, "a.txt", "a.txt", "data/names.list", "/backup/")
    with pytest.raises(DataError, match="no such image list"):
        D.read_image_list(tmp_path / "a.txt")
    (tmp_path / "a.txt").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        D.read_image_list(tmp_path / "a.txt")
    p.write_text("classes=x\n")
    with pytest.raises(DataError, match="classes"):
        D.read_data(p)


def _bad_dataset(tmp_path):
    data = make_shapes(tmp_path / "ds", train=6, valid=0, size=48, seed=2)
    paths = D.read_image_list(D.read_data(data).train)
    folder = Path(paths[0]).parent
    Path(paths[0]).unlink()                                        # missing image
    Path(paths[1]).with_suffix(".txt").unlink()                    # missing label file
    Path(paths[2]).with_suffix(".txt").write_text("")              # empty label file
    Path(paths[3]).with_suffix(".txt").write_text(
        "0 0.5 0.5 0.2 0.2\n1 0.5 nope 0.1\n7 0.5 0.5 0.1 0.1\n2 1.5 0.5 0.1 0.1\n"
        "0 0.5 0.5 0 0.1\n")                                       # malformed / out of range
    Path(paths[4]).write_bytes(b"not an image")                    # undecodable image
    paths.append(str(folder / "never_there.png"))                  # listed, absent
    return paths


@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_bad_inputs_are_counted_reported_once_and_skipped(tmp_path, dialect):
    paths = _bad_dataset(tmp_path)
    aug = D.Augment(dialect=dialect, classes=3, max_boxes=10, jitter=0.2, hue=0.1,
                    saturation=1.5, exposure=1.5, mosaic=dialect == "alexeyab")
    lines = []
    problems = D.DataProblems(report=lines.append)
    ds = D.DetectionDataset(paths, aug)
    plan = D.BatchPlan(len(ds), 8, D.fixed_size(64, 64), seed=0, mosaic=aug.mosaic,
                       iterations=12)
    for X, y, probs in D.make_loader(ds, plan, workers=0):
        problems.add(probs)
        assert X.shape == (8, 3, 64, 64) and torch.isfinite(X).all()
        assert y.shape == (8, 10, aug.truth_size)
    kinds = problems.counts
    assert kinds["unusable image"] == 2
    assert kinds["missing label file"] == 2  # the deleted one and the one never there
    assert kinds["malformed label row"] == 1
    assert kinds["label row out of range"] == 3
    assert kinds["empty label file (used as a negative image)"] == 1
    assert len(lines) == sum(kinds.values())  # each reported once
    assert len(set(lines)) == len(lines)


def test_no_usable_image_is_one_clear_error(tmp_path):
    aug = D.Augment(dialect="pjreddie", classes=3, max_boxes=4)
    ds = D.DetectionDataset([str(tmp_path / "gone.jpg")], aug)
    with pytest.raises(DataError, match="no usable image"):
        ds[(0, 32, 32, 1, False)]


def test_no_augmentation_is_a_plain_resize(tmp_path):
    data = make_shapes(tmp_path / "ds", train=2, valid=0, size=40, seed=4)
    paths = D.read_image_list(D.read_data(data).train)
    for dialect in ("pjreddie", "alexeyab"):
        aug = D.Augment(dialect=dialect, classes=3, max_boxes=5, jitter=0.3, hue=0.1,
                        saturation=1.5, exposure=1.5, enabled=False)
        ds = D.DetectionDataset(paths, aug)
        x1, y1, _ = ds[(0, 64, 48, 1, False)]
        x2, y2, _ = ds[(0, 64, 48, 99, True)]
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
        from darknet_py.image import as_image, resize_image
        assert np.array_equal(x1, resize_image(as_image(paths[0]), 64, 48))
        rows = np.loadtxt(Path(paths[0]).with_suffix(".txt"), ndmin=2)
        got = y1[:len(rows), [4, 0, 1, 2, 3]]
        key = lambda a: sorted(map(tuple, np.round(np.asarray(a, dtype=float), 4).tolist()))  # noqa: E731
        assert key(got) == key(rows)


def test_augmented_truths_stay_on_the_shapes(tmp_path):
    """Each augmented truth box covers pixels of its shape's colour (the geometry of image
    and boxes agree), for both forks and for mosaic."""
    data = make_shapes(tmp_path / "ds", train=8, valid=0, size=64, max_objects=2, seed=6)
    paths = D.read_image_list(D.read_data(data).train)
    for dialect, mosaic in (("pjreddie", False), ("alexeyab", False), ("alexeyab", True)):
        aug = D.Augment(dialect=dialect, classes=3, max_boxes=10, jitter=0.25, mosaic=mosaic,
                        mosaic_bound=mosaic)
        ds = D.DetectionDataset(paths, aug)
        checked = 0
        for seed in range(48 if mosaic else 16):
            x, y, _ = ds[(seed % 8, 96, 80, seed, mosaic)]
            inside = ((y[:, 0] - y[:, 2] / 2 > 0.01) & (y[:, 0] + y[:, 2] / 2 < 0.99)
                      & (y[:, 1] - y[:, 3] / 2 > 0.01) & (y[:, 1] + y[:, 3] / 2 < 0.99))
            keep = (y[:, 2] > 0.1) & (y[:, 3] > 0.1) & inside
            if mosaic:  # clipped to a quadrant: any part of a square is still the square
                keep &= y[:, 4] == 0
            for row in y[keep]:
                cx, cy = int(row[0] * 96), int(row[1] * 80)
                channel = int(row[4])  # class 0 red, 1 green, 2 blue
                px = x[:, cy, cx]
                assert px[channel] == px.max(), (dialect, mosaic, seed, row)
                checked += 1
        assert checked > 5


class Matrix(ctypes.Structure):
    _fields_ = [("rows", ctypes.c_int), ("cols", ctypes.c_int),
                ("vals", ctypes.POINTER(ctypes.POINTER(ctypes.c_float)))]


class Data(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int), ("h", ctypes.c_int), ("X", Matrix), ("y", Matrix),
                ("shallow", ctypes.c_int), ("num_boxes", ctypes.c_void_p),
                ("boxes", ctypes.c_void_p)]


def _c_load_data_detection(lib, path, n, w, h, boxes, classes, letter_box=False):
    paths = (ctypes.c_char_p * 1)(str(path).encode())
    f, i = ctypes.c_float, ctypes.c_int
    fn = lib.load_data_detection
    fn.restype = Data
    if lib.fork == "pjreddie":
        fn.argtypes = [i, ctypes.c_void_p, i, i, i, i, i, f, f, f, f]
        d = fn(n, paths, 1, w, h, boxes, classes, 0.0, 0.0, 1.0, 1.0)
        size = 5
    else:
        fn.argtypes = [i, ctypes.c_void_p, i, i, i, i, i, i, i, i, i, i, i, f, f, f, f, f,
                       i, i, i, i, i, i, i, i, i]
        size = 6
        d = fn(n, paths, 1, w, h, 3, boxes, size, classes, 1, 0, 0, 0, 0.0, 1.0, 0.0, 1.0,
               1.0, n, 0, 2, int(letter_box), 0, 0, 0, 0, 0)
    xs = [np.ctypeslib.as_array(d.X.vals[k], shape=(3, h, w)).copy() for k in range(n)]
    ys = [np.ctypeslib.as_array(d.y.vals[k], shape=(boxes, size)).copy() for k in range(n)]
    return xs, ys


def _rows(y):
    return sorted(map(tuple, np.round(np.asarray(y[y[:, 2] > 0], dtype=float), 5).tolist()))


@pytest.mark.parametrize("shape", [(48, 48), (64, 40)])
def test_load_data_detection_equals_darknet_without_randomness(lib, tmp_path, shape):
    """Darknet's own load_data_detection with jitter 0, hue 0, saturation and exposure 1
    (what is left random: the flip, and the box order): each image it returns equals one of
    ours, pixels and truths. pjreddie's placement is random unless the image is square."""
    if lib.fork == "pjreddie" and shape[0] != shape[1]:
        pytest.skip("pjreddie places a non-square image at a random offset even at jitter 0")
    from PIL import Image as PILImage
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, size=(shape[1], shape[0], 3), dtype=np.uint8)
    path = tmp_path / "one.png"
    PILImage.fromarray(pixels).save(path)
    (tmp_path / "one.txt").write_text("0 0.3 0.4 0.2 0.3\n2 0.7 0.6 0.3 0.2\n1 0.5 0.5 0.1 0.1\n")
    nh = 64 if lib.fork == "pjreddie" else 56  # pjreddie: a random offset unless square
    ctypes.CDLL(None).srand(7)  # glibc's rand(), which both forks draw from here
    xs, ys = _c_load_data_detection(lib, path, 6, 64, nh, 10, 3)
    aug = D.Augment(dialect=lib.fork, classes=3, max_boxes=10, jitter=0.0)
    ds = D.DetectionDataset([str(path)], aug)
    mine = [ds[(0, 64, nh, seed, False)][:2] for seed in range(12)]
    flips = set()
    for x, y in zip(xs, ys):
        match = [k for k, (mx, my) in enumerate(mine)
                 if np.abs(mx - x).max() <= 1e-6 and _rows(my) == _rows(y)]
        assert match, "Darknet's image matches none of ours"
        flips.add(bool(np.array_equal(mine[match[0]][0], mine[0][0])))
    assert len(flips) == 2  # both flips were among Darknet's draws
    if lib.fork == "alexeyab":  # letter_box: the same truths (its non-OpenCV crop clamps
        xs, ys = _c_load_data_detection(lib, path, 4, 64, 56, 10, 3, letter_box=True)
        aug.letter_box = True  # the edges where the OpenCV build fills the mean colour)
        mine = [_rows(ds[(0, 64, 56, seed, False)][1]) for seed in range(12)]
        assert all(_rows(y) in mine for y in ys)


class GlibcRand:
    """glibc's rand() (random_r TYPE_3: additive feedback, degree 31, separation 3), as a
    random source for the data pipeline: random() = (float)rand()/RAND_MAX in float32,
    integers(n) = rand() % n."""
    RAND_MAX = 2147483647

    def __init__(self, seed: int) -> None:
        seed = seed or 1
        r = [seed]
        for _ in range(1, 31):
            hi, lo = divmod(r[-1], 127773)
            word = 16807 * lo - 2836 * hi
            r.append(word + 2147483647 if word < 0 else word)
        r += [r[0], r[1], r[2]]  # i = 31..33: r[i - 31]
        for i in range(34, 344):
            r.append((r[i - 31] + r[i - 3]) & 0xFFFFFFFF)
        self.r = r

    def rand(self) -> int:
        r = self.r
        nxt = (r[-31] + r[-3]) & 0xFFFFFFFF
        r.append(nxt)
        del r[0]
        return nxt >> 1

    def random(self):
        return np.float32(self.rand()) / np.float32(self.RAND_MAX)

    def integers(self, n: int) -> int:
        return self.rand() % n


def test_glibc_rand_emulation_is_glibcs():
    libc = ctypes.CDLL(None)
    libc.srand(12345)
    mine = GlibcRand(12345)
    assert [libc.rand() for _ in range(1000)] == [mine.rand() for _ in range(1000)]


@pytest.mark.parametrize("net", [(64, 64), (80, 48)])
@pytest.mark.parametrize("colour", [False, True])
def test_pjreddie_augmentation_equals_darknet_draw_for_draw(tmp_path, net, colour):
    """pjreddie's load_data_detection with jitter, flip (and hue, saturation, exposure), fed
    the same glibc rand() stream: the same images and truths (box order included).

    Placement is bit-exact (place_image as Darknet's -Ofast machine code computes it). The
    HSV round trip is not: that build vectorises rgb_to_hsv's divisions as rcpps (an
    approximate reciprocal whose bits depend on the CPU) plus a Newton step, which moves h
    and s by an ulp or so: pixels agree to 5e-7 without colour changes, 2e-6 with."""
    path = LIBS["pjreddie"]
    if not path.is_file():
        pytest.skip(f"no Darknet build at {path}")
    lib = ctypes.CDLL(str(path))
    lib.fork = "pjreddie"
    from PIL import Image as PILImage
    rng = np.random.default_rng(12)
    pixels = rng.integers(0, 256, size=(45, 70, 3), dtype=np.uint8)
    image = tmp_path / "one.png"
    PILImage.fromarray(pixels).save(image)
    (tmp_path / "one.txt").write_text("0 0.3 0.4 0.2 0.3\n2 0.7 0.6 0.3 0.2\n1 0.5 0.5 0.1 0.1\n"
                                      "1 0.1 0.9 0.15 0.1\n")
    n, w, h = 5, net[0], net[1]
    paths = (ctypes.c_char_p * 1)(str(image).encode())
    f, i = ctypes.c_float, ctypes.c_int
    lib.load_data_detection.restype = Data
    lib.load_data_detection.argtypes = [i, ctypes.c_void_p, i, i, i, i, i, f, f, f, f]
    ctypes.CDLL(None).srand(99)
    hue, sat = (0.1, 1.5) if colour else (0.0, 1.0)
    d = lib.load_data_detection(n, paths, 1, w, h, 8, 3, 0.3, hue, sat, sat)
    source = GlibcRand(99)
    for _ in range(n):  # get_random_paths: rand() % m per image
        source.rand()
    aug = D.Augment(dialect="pjreddie", classes=3, max_boxes=8, jitter=0.3, hue=hue,
                    saturation=sat, exposure=sat)
    ds = D.DetectionDataset([str(image)], aug)
    for k in range(n):
        x, y, _ = ds[(0, w, h, source, False)]
        cx = np.ctypeslib.as_array(d.X.vals[k], shape=(3, h, w))
        cy = np.ctypeslib.as_array(d.y.vals[k], shape=(8, 5))
        np.testing.assert_allclose(x, cx, rtol=0, atol=2e-6 if colour else 5e-7,
                                   err_msg=f"image {k}")
        np.testing.assert_allclose(y, cy, rtol=0, atol=1e-6, err_msg=f"truths {k}")


@pytest.mark.parametrize("letter_box", [False, True])
def test_alexeyab_augmentation_equals_darknet_draw_for_draw(tmp_path, letter_box):
    """AlexeyAB's load_data_detection (its build without OpenCV: edge pixels repeated
    outside the image) with jitter, resize, flip, hue/saturation/exposure and letter_box,
    fed the same glibc rand() stream: the same images and truths (track ids included).
    Pixels to 2e-6 (the rcpps HSV round trip, see the pjreddie test)."""
    path = LIBS["alexeyab"]
    if not path.is_file():
        pytest.skip(f"no Darknet build at {path}")
    lib = ctypes.CDLL(str(path))
    lib.fork = "alexeyab"
    from PIL import Image as PILImage
    rng = np.random.default_rng(13)
    pixels = rng.integers(0, 256, size=(45, 70, 3), dtype=np.uint8)
    image = tmp_path / "one.png"
    PILImage.fromarray(pixels).save(image)
    (tmp_path / "one.txt").write_text("0 0.3 0.4 0.2 0.3\n2 0.7 0.6 0.3 0.2\n1 0.5 0.5 0.1 0.1\n"
                                      "1 0.1 0.9 0.15 0.1\n")
    n, w, h = 5, 64, 48
    paths = (ctypes.c_char_p * 1)(str(image).encode())
    f, i = ctypes.c_float, ctypes.c_int
    fn = lib.load_data_detection
    fn.restype = Data
    fn.argtypes = [i, ctypes.c_void_p, i, i, i, i, i, i, i, i, i, i, i, f, f, f, f, f,
                   i, i, i, i, i, i, i, i, i]
    ctypes.CDLL(None).srand(5)
    d = fn(n, paths, 1, w, h, 3, 8, 6, 3, 1, 0, 0, 0, 0.3, 1.5, 0.1, 1.5, 1.5, n, 0, 2,
           int(letter_box), 0, 0, 0, 0, 0)
    source = GlibcRand(5)
    for _ in range(n + 1):  # random_index, then get_random_paths_custom
        source.rand()
    aug = D.Augment(dialect="alexeyab", classes=3, max_boxes=8, jitter=0.3, hue=0.1,
                    saturation=1.5, exposure=1.5, resize=1.5, letter_box=letter_box,
                    opencv=False)
    ds = D.DetectionDataset([str(image)], aug)
    for k in range(n):
        x, y, _ = ds[(0, w, h, source, False)]
        cx = np.ctypeslib.as_array(d.X.vals[k], shape=(3, h, w))
        cy = np.ctypeslib.as_array(d.y.vals[k], shape=(8, 6))
        np.testing.assert_allclose(y, cy, rtol=0, atol=1e-6, err_msg=f"truths {k}")
        np.testing.assert_allclose(x, cx, rtol=0, atol=2e-6, err_msg=f"image {k}")
