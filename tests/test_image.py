"""Image input as Darknet's load_image_color + letterbox_image (darknet_py.image)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from darknet_py import DataError
from darknet_py.detect import prepare
from darknet_py.image import (as_image, decode_image, letterbox_image, letterbox_size,
                              resize_image, to_darknet_rgb, to_float)

F = np.float32


# -- a literal, per-pixel transcription of image.c:resize_image (float32 scalars) ------------
def resize_naive(im: np.ndarray, w: int, h: int) -> np.ndarray:
    c, H, W = im.shape
    part = np.zeros((c, H, w), F)
    resized = np.zeros((c, h, w), F)
    w_scale = F(W - 1) / F(w - 1) if w > 1 else F(0)
    h_scale = F(H - 1) / F(h - 1) if h > 1 else F(0)
    for k in range(c):
        for r in range(H):
            for col in range(w):
                if col == w - 1 or W == 1:
                    val = im[k, r, W - 1]
                else:
                    sx = F(col) * w_scale
                    ix = int(sx)
                    dx = F(sx - F(ix))
                    val = F(F(F(1) - dx) * im[k, r, ix]) + F(dx * im[k, r, ix + 1])
                part[k, r, col] = val
    for k in range(c):
        for r in range(h):
            sy = F(r) * h_scale
            iy = int(sy)
            dy = F(sy - F(iy))
            for col in range(w):
                resized[k, r, col] = F(F(1) - dy) * part[k, iy, col]
            if r == h - 1 or H == 1:
                continue
            for col in range(w):
                resized[k, r, col] = F(resized[k, r, col] + F(dy * part[k, iy + 1, col]))
    return resized


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 12), st.integers(1, 12),
       st.integers(0, 2 ** 31 - 1))
def test_resize_matches_darknet_loop_bit_for_bit(W, H, w, h, seed):
    im = np.random.default_rng(seed).random((3, H, W), dtype=np.float32)
    got, want = resize_image(im, w, h), resize_naive(im, w, h)
    assert got.dtype == np.float32 and got.shape == (3, h, w)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_resize_last_row_is_darknets():
    # 7 -> 5 rows: the last output row takes only (1-dy)*part[iy] (no second term)
    im = np.random.default_rng(3).random((1, 7, 4), dtype=np.float32)
    assert np.array_equal(resize_image(im, 3, 5), resize_naive(im, 3, 5))


@pytest.mark.parametrize("case", ["tiny-official-dog", "tiny-official-dog-416x256"])
def test_letterbox_equals_darknet_input_exactly(pj_cases, case):
    decoded = np.load(pj_cases / "tiny-official-dog" / "image_decoded_u8.npy")
    want = np.load(pj_cases / case / "input.npy")
    got = letterbox_image(to_float(decoded), want.shape[2], want.shape[1])
    assert got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_letterbox_geometry():
    assert letterbox_size(768, 576, 416, 416) == (416, 312)
    assert letterbox_size(768, 576, 416, 256) == (341, 256)
    assert letterbox_size(576, 768, 256, 416) == (256, 341)  # portrait network
    assert letterbox_size(10000, 20, 416, 416) == (416, 0)
    boxed = letterbox_image(np.zeros((3, 576, 768), F), 416, 416)
    # (416-312)/2 = 52 rows of 0.5 above and below
    assert (boxed[:, :52] == 0.5).all() and (boxed[:, 52:364] == 0).all()
    assert (boxed[:, 364:] == 0.5).all()
    odd = letterbox_image(np.zeros((3, 10, 3), F), 8, 8)  # new 2x8 at x offset 3
    assert (odd[:, :, 3:5] == 0).all() and (odd[:, :, :3] == 0.5).all()
    assert (odd[:, :, 5:] == 0.5).all()


def test_to_float_is_u8_over_255():
    v = np.arange(256, dtype=np.uint8).reshape(1, 1, 256)
    assert np.array_equal(to_float(v), (v.astype(np.float64) / 255.0).astype(F))


# -- decoding as stb_image with 3 channels requested -------------------------------------
def _png(w, h, color_type, depth, rows):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_grey_is_replicated(tmp_path):
    grey = np.array([[0, 100, 255]], np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    got = decode_image(tmp_path / "g.png")
    assert got.shape == (3, 1, 3) and (got == grey[None]).all()


def test_rgba_drops_alpha_without_compositing(tmp_path):
    px = np.array([[[10, 20, 30, 0], [200, 100, 50, 128]]], np.uint8)
    Image.fromarray(px, "RGBA").save(tmp_path / "a.png")
    got = decode_image(tmp_path / "a.png")
    assert got[:, 0, :].T.tolist() == [[10, 20, 30], [200, 100, 50]]


def test_grey_alpha_and_palette(tmp_path):
    la = Image.fromarray(np.array([[[7, 0], [9, 255]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    assert decode_image(tmp_path / "la.png")[:, 0, :].tolist() == [[7, 9]] * 3
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert decode_image(tmp_path / "p.png")[:, 0, :].T.tolist() == [[255, 0, 0], [0, 0, 255]]
    Image.new("1", (2, 1), 1).save(tmp_path / "b.png")
    assert decode_image(tmp_path / "b.png").tolist() == [[[255, 255]]] * 3


def test_16bit_png_keeps_high_byte(tmp_path):
    rgb = np.array([[[0x1234, 0xFF00, 0x00FF], [0xABCD, 0x0101, 0xFEFF]]], ">u2")
    (tmp_path / "rgb16.png").write_bytes(_png(2, 1, 2, 16, [rgb[0].tobytes()]))
    got = decode_image(tmp_path / "rgb16.png")
    assert got[:, 0, :].T.tolist() == (rgb[0] >> 8).tolist()
    grey = np.array([[0x1234, 0xFFF0, 0x00FF]], ">u2")
    (tmp_path / "g16.png").write_bytes(_png(3, 1, 0, 16, [grey[0].tobytes()]))
    assert decode_image(tmp_path / "g16.png")[:, 0, :].tolist() == [[0x12, 0xFF, 0x00]] * 3
    rgba = np.array([[[0x1234, 0xFF00, 0x00FF, 0x0000]]], ">u2")
    (tmp_path / "rgba16.png").write_bytes(_png(1, 1, 6, 16, [rgba[0].tobytes()]))
    assert decode_image(tmp_path / "rgba16.png")[:, 0, 0].tolist() == [0x12, 0xFF, 0x00]


def _exif_rotated_jpeg(path):
    px = np.zeros((2, 4, 3), np.uint8)
    px[:, :2] = 255  # left half white
    pil = Image.fromarray(px)
    exif = pil.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    pil.save(path, exif=exif.tobytes(), quality=100)


def test_exif_orientation_ignored_like_darknet_unless_asked(tmp_path):
    path = tmp_path / "rot.jpg"
    _exif_rotated_jpeg(path)
    assert decode_image(path).shape == (3, 2, 4)  # as stored, like stb
    assert decode_image(path, exif=True).shape == (3, 4, 2)
    assert as_image(path, exif=True).shape == (3, 4, 2)
    with Image.open(path) as pil:
        assert as_image(pil).shape == (3, 2, 4)


def test_as_image_accepts_pil_and_arrays(tmp_path):
    px = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(px).save(tmp_path / "x.png")
    ref = as_image(tmp_path / "x.png")
    assert ref.shape == (3, 5, 7)
    assert np.array_equal(as_image(str(tmp_path / "x.png")), ref)
    assert np.array_equal(as_image(Image.fromarray(px)), ref)
    assert np.array_equal(as_image(px), ref)
    assert np.array_equal(as_image(np.dstack([px, px[:, :, :1]])), ref)  # RGBA array
    assert np.array_equal(as_image(ref), ref)
    assert as_image(px[:, :, 0]).shape == (3, 5, 7)
    with pytest.raises(DataError):
        as_image(np.zeros((3, 4, 5, 6), np.uint8))
    with pytest.raises(TypeError):
        as_image(42)


# -- bad inputs: one clear line naming the file, or a correct result ---------------------
def _one_line(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert "\n" not in text and name in text


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        as_image(tmp_path / "nope.jpg")
    _one_line(err.value, "nope.jpg")


def test_truncated_jpeg(tmp_path, reference):
    data = (reference / "images" / "dog.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as err:
        as_image(tmp_path / "cut.jpg")
    _one_line(err.value, "cut.jpg")


@pytest.mark.parametrize("content", [b"", b"hello, not an image\n", b"\xff\xd8\xff" + b"\0" * 50,
                                     b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_not_an_image(tmp_path, content):
    (tmp_path / "junk.jpg").write_bytes(content)
    with pytest.raises(DataError) as err:
        as_image(tmp_path / "junk.jpg")
    _one_line(err.value, "junk.jpg")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(DataError) as err:
        as_image(tmp_path)
    _one_line(err.value, str(tmp_path))


def test_1x1_image_fills_the_letterbox(tmp_path):
    Image.new("RGB", (1, 1), (255, 0, 51)).save(tmp_path / "dot.png")
    x = prepare(as_image(tmp_path / "dot.png"), 416, 416)
    assert x.shape == (3, 416, 416)
    assert x[0].min() == 1.0 and x[1].max() == 0.0 and np.allclose(x[2], 0.2)


def test_10000x20_image_is_a_clear_error(tmp_path):
    Image.new("RGB", (10000, 20), (9, 9, 9)).save(tmp_path / "strip.png")
    im = as_image(tmp_path / "strip.png")
    assert im.shape == (3, 20, 10000)
    # Darknet letterboxes it to 416x0 pixels: it embeds nothing (all 0.5)...
    assert (letterbox_image(im, 416, 416) == 0.5).all()
    # ...and its boxes would be inf/NaN: darknet_py says so instead
    with pytest.raises(DataError) as err:
        prepare(im, 416, 416, source=str(tmp_path / "strip.png"))
    _one_line(err.value, "strip.png")
    assert "416x0" in str(err.value)
    # a plain resize (AlexeyAB's default) is fine
    assert prepare(im, 416, 416, letterbox=False).shape == (3, 416, 416)


def test_to_darknet_rgb_of_cmyk_and_float():
    assert to_darknet_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).tolist() == [[[255] * 2] * 2] * 3
    f = Image.fromarray(np.array([[0.0, 300.0]], np.float32), "F")
    assert to_darknet_rgb(f)[:, 0, :].tolist() == [[0, 255]] * 3


def test_jpeg_decode_close_to_stb(reference, pj_cases):
    """Pillow's JPEG decoder is not stb's: measured, a few levels at most on dog.jpg."""
    stb = np.load(pj_cases / "tiny-official-dog" / "image_decoded_u8.npy").astype(int)
    ours = decode_image(reference / "images" / "dog.jpg").astype(int)
    assert ours.shape == stb.shape
    diff = np.abs(ours - stb)
    assert diff.max() <= 4 and diff.mean() < 0.2
