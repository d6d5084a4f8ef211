"""Classifier training data (darknet_py.train.classifier_data) against the real Darknet C:
each fork's ``load_data_augment`` and ``fill_truth`` called through ctypes on the same
images and the same glibc ``rand()`` stream, and the bad-input rules."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from darknet_py.errors import DataError
from darknet_py.train import classifier_data as C
from test_train_data import Data, GlibcRand, darknet_lib

LABELS = ["zebra", "otter", "heron"]


def _images(tmp_path):
    from PIL import Image as PILImage
    rng = np.random.default_rng(21)
    out = []
    for name, (h, w) in zip(["a_zebra.png", "b_otter.png", "c_heron.png"],
                            [(45, 70), (60, 40), (33, 33)]):
        path = tmp_path / name
        PILImage.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return out


def _c_strings(items):
    arr = (ctypes.c_char_p * len(items))(*[s.encode() for s in items])
    return arr


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
@pytest.mark.parametrize("angle", [0.0, 7.0])
def test_load_data_augment_equals_darknet_draw_for_draw(tmp_path, fork, angle):
    """load_data_augment (random_augment_image: aspect, crop side, angle, offsets;
    rotate_crop_image; flip; random_distort_image; AlexeyAB's resize to w x h and
    fill_truth_smooth) with the same glibc rand() stream as the C: the same images and
    truth rows. Pixels to 2e-5: the HSV round trip differs by ulps (rcpps, see
    test_train_data) and the -Ofast build may contract rotate_crop_image's double
    expressions; truths exactly."""
    lib = ctypes.CDLL(str(darknet_lib(fork)))
    paths = _images(tmp_path)
    n = 6
    f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    fn = lib.load_data_augment
    fn.restype = Data
    cpaths, clabels = _c_strings(paths), _c_strings(LABELS)
    if fork == "pjreddie":
        w = h = size = 32
        fn.argtypes = [p, i, i, p, i, p, i, i, i, f, f, f, f, f, i]
        ctypes.CDLL(None).srand(31)
        d = fn(cpaths, n, len(paths), clabels, 3, None, 24, 48, size, angle, 1.3, 0.1, 1.5,
               1.5, 0)
        eps = 0.0
    else:
        w, h, eps = 40, 32, 0.1
        fn.argtypes = [p, i, i, p, i, p, i, i, i, i, i, f, f, f, f, f, i, i, i, f, i, i]
        ctypes.CDLL(None).srand(31)
        d = fn(cpaths, n, len(paths), clabels, 3, None, 1, 24, 48, w, h, angle, 1.3, 0.1,
               1.5, 1.5, 0, 0, 0, eps, 0, 0)
    source = GlibcRand(31)
    order = [source.rand() % len(paths) for _ in range(n)]  # get_random_paths
    aug = C.ClassifierAugment(dialect=fork, w=w, h=h, min=24, max=48, size=max(w, h),
                              angle=angle, aspect=1.3, hue=0.1, saturation=1.5, exposure=1.5,
                              flip=True, smooth_eps=eps)
    ds = C.ClassifierDataset(paths, LABELS, aug)
    for k, idx in enumerate(order):
        x, y, problems = ds[(idx, w, h, source, False)]
        assert not problems
        cx = np.ctypeslib.as_array(d.X.vals[k], shape=(3, h, w))
        cy = np.ctypeslib.as_array(d.y.vals[k], shape=(3,))
        np.testing.assert_array_equal(y, cy, err_msg=f"truth {k}")
        np.testing.assert_allclose(x, cx, rtol=0, atol=2e-5, err_msg=f"image {k} ({fork})")
    # the stream is in step at the end: the next draw is the C's next rand()
    assert source.rand() == ctypes.CDLL(None).rand()


@pytest.mark.parametrize("mixup", [1, 2, 3, 4])
def test_alexeyab_mixup_cutmix_mosaic_equal_darknet(tmp_path, mixup):
    """AlexeyAB load_data_augment with use_mixup 1 (mixup), 2 (CutMix), 3 (Mosaic), 4 (either)
    for one image at a time, the same glibc rand() stream: the batch coin rand_int(0, 1),
    the partners' paths and augmentation, the cut draws -- the same image and truth."""
    lib = ctypes.CDLL(str(darknet_lib("alexeyab")))
    paths = _images(tmp_path)
    f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    fn = lib.load_data_augment
    fn.restype = Data
    fn.argtypes = [p, i, i, p, i, p, i, i, i, i, i, f, f, f, f, f, i, i, i, f, i, i]
    cpaths, clabels = _c_strings(paths), _c_strings(LABELS)
    w, h = 40, 32
    aug = C.ClassifierAugment(dialect="alexeyab", w=w, h=h, min=24, max=48, size=40,
                              angle=5.0, aspect=1.3, hue=0.1, saturation=1.5, exposure=1.5,
                              flip=True, smooth_eps=0.1, mixup=mixup)
    ds = C.ClassifierDataset(paths, LABELS, aug)
    mixed = 0
    for seed in range(1, 9):
        ctypes.CDLL(None).srand(seed)
        d = fn(cpaths, 1, len(paths), clabels, 3, None, 1, 24, 48, w, h, 5.0, 1.3, 0.1, 1.5,
               1.5, mixup, 0, 0, 0.1, 0, 0)
        source = GlibcRand(seed)
        x, y = ds.sample(source.rand() % len(paths), source, [])
        if source.integers(2):
            mixed += 1
            x, y = ds.mix(x, y, source, [])
        cx = np.ctypeslib.as_array(d.X.vals[0], shape=(3, h, w))
        cy = np.ctypeslib.as_array(d.y.vals[0], shape=(3,))
        np.testing.assert_allclose(y, cy, rtol=0, atol=1e-7, err_msg=f"truth, seed {seed}")
        np.testing.assert_allclose(x, cx, rtol=0, atol=2e-5, err_msg=f"image, seed {seed}")
        assert source.rand() == ctypes.CDLL(None).rand()
    assert mixed >= 2


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_fill_truth_equals_darknet(fork):
    """fill_truth's strstr rule: every label whose name occurs anywhere in the path is set
    (several, none, an empty name matching everything), as the C fills the row."""
    lib = ctypes.CDLL(str(darknet_lib(fork)))
    labels = ["cat", "dog", "catdog", "", "bird"]
    lib.fill_truth.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    for path in ["x/cat_1.png", "x/dog/2.jpg", "x/catdog.jpg", "x/none.jpg", "birdcat.png"]:
        for k in (3, 5):
            row = np.full(k, 7, dtype=np.float32)
            lib.fill_truth(path.encode(), _c_strings(labels[:k]), k,
                           row.ctypes.data_as(ctypes.c_void_p))
            mine, count = C.label_truth(path, labels[:k])
            np.testing.assert_array_equal(mine, row, err_msg=path)
            assert count == int(row.sum())


def test_rotate_crop_image_equals_darknet():
    """rotate_crop_image alone (pjreddie): rotation, scale, offsets, aspect, 0 outside."""
    from test_train_data import Image
    lib = ctypes.CDLL(str(darknet_lib("pjreddie")))
    lib.rotate_crop_image.restype = Image
    f = ctypes.c_float
    lib.rotate_crop_image.argtypes = [Image, f, f, ctypes.c_int, ctypes.c_int, f, f, f]
    im = np.random.default_rng(3).random((3, 21, 30), dtype=np.float32)
    ptr = im.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    for rad, s, w, h, dx, dy, aspect in [(0.0, 1.0, 30, 21, 0.0, 0.0, 1.0),
                                        (0.3, 0.7, 25, 19, 3.5, -2.25, 1.2),
                                        (-1.1, 1.9, 40, 40, -9.0, 4.0, 0.8)]:
        out = lib.rotate_crop_image(Image(30, 21, 3, ptr), rad, s, w, h, dx, dy, aspect)
        c = np.ctypeslib.as_array(out.data, shape=(3, h, w)).copy()
        mine = C.rotate_crop_image(im, rad, s, w, h, dx, dy, aspect)
        np.testing.assert_allclose(mine, c, rtol=0, atol=1e-5)


def test_hierarchy_rows_and_bad_inputs(tmp_path):
    """A path with no label name is reported and another image drawn; several names are
    reported and kept (Darknet trains the row with both set); a tree fills ancestors and
    masks the other groups (fill_hierarchy); an unreadable image is reported and skipped."""
    from PIL import Image as PILImage
    from darknet_py.tree import SECRET_NUM, Tree
    good = tmp_path / "dog_1.png"
    PILImage.new("RGB", (20, 20), (200, 10, 10)).save(good)
    both = tmp_path / "dog_cat.png"
    PILImage.new("RGB", (20, 20), (10, 200, 10)).save(both)
    none = tmp_path / "fish.png"
    PILImage.new("RGB", (20, 20), (10, 10, 200)).save(none)
    broken = tmp_path / "cat_broken.png"
    broken.write_bytes(b"not a png")
    labels = ["animal", "plant", "dog", "cat", "fern"]
    tree = Tree.parse(["animal -1", "plant -1", "dog 0", "cat 0", "fern 1"])
    aug = C.ClassifierAugment(dialect="pjreddie", w=16, h=16, min=16, max=32, size=16)
    ds = C.ClassifierDataset([str(none), str(broken), str(good), str(both)],
                             labels[2:], aug)
    x, y, problems = ds[(0, 16, 16, 5, False)]
    kinds = {kind for kind, _, _ in problems}
    assert "no label name in the image path" in kinds
    assert x.shape == (3, 16, 16)
    ds_all = C.ClassifierDataset([str(broken)], labels[2:], aug)
    with pytest.raises(DataError, match="no usable image"):
        ds_all[(0, 16, 16, 5, False)]
    _, _, problems = ds_all.__class__([str(broken), str(good)], labels[2:], aug)[
        (0, 16, 16, 1, False)]
    assert any(kind == "unusable image" for kind, _, _ in problems)
    row, count = C.label_truth(str(both), labels[2:])
    assert count == 2 and row.tolist() == [1, 1, 0]
    _, _, problems = ds[(3, 16, 16, 5, False)]
    assert any(kind.startswith("several label names") for kind, _, _ in problems)
    tds = C.ClassifierDataset([str(good)], labels, aug, hierarchy=tree)
    _, y, _ = tds[(0, 16, 16, 5, False)]
    assert y.tolist() == [1, 0, 1, 0, SECRET_NUM]


def test_read_classifier_data_defaults_and_errors(tmp_path):
    (tmp_path / "a.data").write_text("train = t.list\nlabels=l.txt\n")
    dc = C.read_classifier_data(tmp_path / "a.data")
    assert (dc.classes, dc.backup, dc.top, dc.labels) == (2, "/backup/", 5, "l.txt")
    (tmp_path / "l.txt").write_text("one\n")
    with pytest.raises(DataError, match="1 label names for classes=2"):
        C.read_labels(str(tmp_path / "l.txt"), 2)
    (tmp_path / "t.data").write_text("tag=1\n")
    with pytest.raises(DataError, match="tag=1"):
        C.read_classifier_data(tmp_path / "t.data")
    (tmp_path / "b.data").write_text("classes=two\n")
    with pytest.raises(DataError, match="classes='two'"):
        C.read_classifier_data(tmp_path / "b.data")
