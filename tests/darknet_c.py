"""Loop-for-loop Python transliterations of Darknet C routines, shared by the layer tests.

They are slow and only for tiny tensors: the point is that their index arithmetic
reads exactly like the C source, so the vectorised layers can be checked against it.
"""
from __future__ import annotations


def reorg_cpu(x: list, w: int, h: int, c: int, batch: int, stride: int, forward: bool,
              out: "list | None" = None) -> list:
    """blas.c:reorg_cpu (same in pjreddie and AlexeyAB): a permutation of the flat buffer,
    written into ``out`` (a new list of None when not given), which is returned."""
    if out is None:
        out = [None] * len(x)
    out_c = c // (stride * stride)
    for b in range(batch):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2 = k % out_c
                    offset = k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    if forward:
                        out[out_index] = x[in_index]
                    else:
                        out[in_index] = x[out_index]
    return out
