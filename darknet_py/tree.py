"""YOLO9000's softmax tree (``tree.c``): the hierarchy file, its grouped softmax, and the
walks Darknet's decode does over it.

A tree file has one line per class, ``<name> <parent>`` (parent -1: a root), read as
``read_tree`` reads it: consecutive lines with the same parent form one *group*; the
group index grows by one whenever the parent changes (group 0 holds the leading roots,
and is empty when the first line's parent is not -1); ``child[p]`` is the last group whose
parent is ``p``; a class is a leaf when no line names it as parent. The hierarchical
softmax is a plain softmax over each group's contiguous entries, group after group.

    >>> t = Tree.parse(["animal -1", "plant -1", "dog 0", "cat 0", "fern 1"])
    >>> t.group_offset, t.group_size, t.child, t.leaf
    ((0, 2, 4), (2, 2, 1), (1, 2, -1, -1, -1), (False, False, True, True, True))
    >>> import torch
    >>> [round(v, 4) for v in hier_softmax(torch.tensor([0., 0., 1., 1., 7.]), t).tolist()]
    [0.5, 0.5, 0.5, 0.5, 1.0]

Cfgs name these files relative to Darknet's working directory (``tree=data/9k.tree``);
:func:`resolve_data_file` looks there first, then under ``$DARKNET_PY_DATA`` and the
reference data folder (``$DARKNET_PY_REFERENCE/data``).
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .errors import CfgError

#: read_tree's ``calloc(256)`` name buffer: sscanf("%s") writes past it beyond 255 chars
MAX_NAME = 255
#: env var naming a folder to look in for cfg-relative data files (``data/9k.tree``)
DATA_ENV = "DARKNET_PY_DATA"

_F32 = np.float32
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Tree:
    """``tree`` of darknet.h: per class its name, parent, group and leaf flag; per group
    its offset and size; ``child[c]``: the (last) group whose parent is ``c``, else -1."""

    name: Tuple[str, ...]
    parent: Tuple[int, ...]
    child: Tuple[int, ...]
    group: Tuple[int, ...]
    leaf: Tuple[bool, ...]
    group_offset: Tuple[int, ...]
    group_size: Tuple[int, ...]
    file: Optional[str] = None

    def __repr__(self) -> str:
        return f"Tree({self.n} classes, {self.groups} groups, file={self.file!r})"

    @property
    def n(self) -> int:
        return len(self.parent)

    @property
    def groups(self) -> int:
        return len(self.group_size)

    @classmethod
    def parse(cls, lines: Iterable[str], file: Optional[str] = None) -> "Tree":
        """``read_tree``: ``sscanf(line, "%s %d")`` per line (a missing or non-numeric parent
        is -1, a blank line a class with an empty name, as in Darknet)."""
        names: List[str] = []
        parent: List[int] = []
        child: List[int] = []
        group: List[int] = []
        offsets: List[int] = []
        sizes: List[int] = []
        last_parent, group_size, groups = -1, 0, 0
        for lineno, line in enumerate(lines, 1):
            fields = line.split()
            name = fields[0] if fields else ""
            if len(name) > MAX_NAME:
                raise CfgError(f"name of {len(name)} characters: Darknet's read_tree keeps at "
                               f"most {MAX_NAME} (it would overflow its buffer)", file=file,
                               line=lineno)
            p = -1
            if len(fields) > 1:
                m = _INT.match(fields[1])
                if m:
                    p = int(m.group())
            n = len(parent)
            if p >= n:
                raise CfgError(f"parent {p} is not an earlier line (0..{n - 1}): Darknet's "
                               f"read_tree would write outside its child table", file=file,
                               line=lineno)
            names.append(name)
            parent.append(p)
            child.append(-1)
            if p != last_parent:
                groups += 1
                offsets.append(n - group_size)
                sizes.append(group_size)
                group_size = 0
                last_parent = p
            group.append(groups)
            if p >= 0:
                child[p] = groups
            group_size += 1
        if not parent:
            raise CfgError("empty tree file: no classes", file=file)
        offsets.append(len(parent) - group_size)
        sizes.append(group_size)
        leaf = [True] * len(parent)
        for p in parent:
            if p >= 0:
                leaf[p] = False
        return cls(tuple(names), tuple(parent), tuple(child), tuple(group), tuple(leaf),
                   tuple(offsets), tuple(sizes), file)

    def path(self, c: int) -> Tuple[int, ...]:
        """``c``, its parent, ..., up to a root (empty for a negative ``c``): the walk of
        ``get_hierarchy_probability`` and the hierarchical ``delta_region_class``."""
        out = []
        while c >= 0:
            out.append(c)
            c = self.parent[c]
        return tuple(out)

    def class_targets(self, c: int) -> Tuple[Tuple[int, ...], Tuple[float, ...]]:
        """What the hierarchical ``delta_region_class`` (both forks) writes for class ``c``:
        walking from ``c`` up to its root, every entry of the node's group gets ``0 - p``,
        then the node ``1 - p``. Returns (entries, targets) in writing order, each entry
        once (the groups on one path are disjoint ranges); nothing for ``c < 0``."""
        cache = self._targets_cache
        if c not in cache:
            entries: List[int] = []
            targets: List[float] = []
            for node in self.path(c):
                g = self.group[node]
                off, size = self.group_offset[g], self.group_size[g]
                entries += range(off, off + size)
                targets += [1.0 if e == node else 0.0 for e in range(off, off + size)]
            cache[c] = (tuple(entries), tuple(targets))
        return cache[c]

    @functools.cached_property
    def _targets_cache(self) -> dict:
        return {}

    # -- index tensors for the vectorised softmax --------------------------------------
    @functools.cached_property
    def _segments(self) -> Tuple[Tensor, Tensor, Tensor]:
        cpu = torch.device("cpu")  # not the meta device a model may be built under
        sizes = torch.tensor(self.group_size, dtype=torch.int64, device=cpu)
        offsets = torch.tensor(self.group_offset, dtype=torch.int64, device=cpu)
        seg = torch.repeat_interleave(torch.arange(self.groups, device=cpu), sizes)
        return offsets, sizes, seg


@functools.lru_cache(maxsize=8)
def _read_tree_cached(path: str, mtime_ns: int, size: int) -> Tree:
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise CfgError(f"cannot read tree file ({exc.strerror})", file=path) from None
    lines = text.split("\n")  # fgetl: lines end at '\n' only (a '\r' is sscanf's whitespace)
    if lines and lines[-1] == "":
        lines.pop()
    return Tree.parse(lines, file=path)


def read_tree(path: "str | os.PathLike[str]") -> Tree:
    """The tree file at ``path`` (cached while the file is unchanged)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise CfgError(f"cannot read tree file ({exc.strerror})", file=p) from None
    return _read_tree_cached(str(p), st.st_mtime_ns, st.st_size)


def data_roots() -> List[Path]:
    """Where cfg-relative data files are looked for after the working directory:
    ``$DARKNET_PY_DATA``, then ``$DARKNET_PY_REFERENCE/data``."""
    roots = []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    if os.environ.get("DARKNET_PY_REFERENCE"):
        roots.append(Path(os.environ["DARKNET_PY_REFERENCE"]) / "data")
    return roots


def data_candidates(value: str) -> List[Path]:
    """The paths :func:`resolve_data_file` tries for a cfg value, in order: as Darknet's
    ``fopen`` opens it (relative to the working directory), then for a relative value
    each data root joined with it and with its file name (``data/9k.tree`` ->
    ``ROOT/data/9k.tree``, ``ROOT/9k.tree``)."""
    p = Path(value)
    out = [p]
    if not p.is_absolute():
        for root in data_roots():
            for c in (root / p, root / p.name):
                if c not in out:
                    out.append(c)
    return out


def resolve_data_file(value: str) -> Optional[Path]:
    """The first of :func:`data_candidates` that is a file, or None."""
    for c in data_candidates(value):
        if c.is_file():
            return c
    return None


def tree_option(reader, value: str, key: str = "tree") -> Tree:
    """The tree a cfg's ``tree=value`` names (resolved by :func:`resolve_data_file`), or a
    one-line CfgError at that cfg line: the file not found (with the places looked in),
    or what is wrong in it."""
    path = resolve_data_file(value)
    if path is None:
        looked = ", ".join(str(c) for c in data_candidates(value)[1:])
        where = (f"nor in {looked}" if looked else
                 f"set ${DATA_ENV} to the folder holding it (or run from Darknet's folder)")
        raise reader.error(f"tree file {value} not found: not in the working directory "
                           f"{os.getcwd()}, {where}", key)
    try:
        return read_tree(path)
    except CfgError as exc:
        raise reader.error(f"bad tree file: {exc}", key) from None


def read_map(path: "str | os.PathLike[str]") -> Tuple[int, ...]:
    """``read_map`` (utils.c): one ``atoi`` per line of a class map file (``map=``, e.g.
    ``data/coco9k.map``: the tree class of each dataset class); a line that does not start
    with a number is 0, as in Darknet."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise CfgError(f"cannot read map file ({exc.strerror})", file=p) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        m = _INT.match(line.lstrip(" \t\r\v\f"))
        out.append(int(m.group()) if m else 0)
    return tuple(out)


def fill_hierarchy(truth: np.ndarray, tree: Tree) -> np.ndarray:
    """``fill_hierarchy`` (data.c, both forks), which Darknet's classifier loader applies to
    each label row when the net has a ``[softmax]`` with a tree: every ancestor of a
    non-zero entry is set to 1, then every group with no non-zero entry is set to
    ``SECRET_NUM`` (-1234). Rows (..., classes) of one-hot labels -> a new float32 array.

    The CPU ``forward_softmax_layer`` (both forks) takes these rows as they are
    (``softmax_x_ent_cpu``: delta ``-1234 - p`` and loss ``-log p`` on the masked groups;
    only the CUDA forward masks them with ``mask_gpu``), a ``[cost] type=masked`` after it
    (darknet9000.cfg) gives them delta and loss 0.

        >>> t = Tree.parse(["animal -1", "plant -1", "dog 0", "cat 0", "fern 1"])
        >>> fill_hierarchy(np.array([0, 0, 0, 1, 0.]), t).tolist()
        [1.0, 0.0, 0.0, 1.0, -1234.0]
    """
    out = np.array(truth, dtype=_F32, copy=True)
    n = tree.n
    if out.shape[-1] < n:
        raise ValueError(f"fill_hierarchy: rows of {out.shape[-1]} values, the tree has {n} "
                         f"classes")
    flat = out.reshape(-1, out.shape[-1])
    for j in range(n):  # parents come before their children: one pass, in Darknet's order
        rows = flat[:, j] != 0
        p = tree.parent[j]
        if p >= 0 and rows.any():
            for a in tree.path(p):
                flat[rows, a] = 1
    for off, size in zip(tree.group_offset, tree.group_size):
        if size:
            empty = ~(flat[:, off:off + size] != 0).any(axis=1)
            flat[empty, off:off + size] = SECRET_NUM
    return flat.reshape(out.shape)


#: darknet.h's SECRET_NUM: the truth value of a group that is not on the label's path
SECRET_NUM = -1234.0


# =====================================================================================
# The grouped softmax
# =====================================================================================
def hier_softmax(x: Tensor, tree: Tree, temperature: float = 1.0) -> Tensor:
    """``softmax`` (blas.c) of each group of ``tree`` over the first ``tree.n`` entries of
    the last dimension of ``x``, temperature ``t``: ``e = exp(x/t - max/t)`` (float
    operands, C's double ``exp``, stored as float), summed in float in Darknet's order,
    then ``e / sum``. Entries past ``tree.n`` are returned as 0 (Darknet never writes
    them)."""
    n = tree.n
    if x.shape[-1] < n:
        raise ValueError(f"hier_softmax: {x.shape[-1]} entries, the tree has {n} classes")
    offsets, sizes, seg = (v.to(x.device) for v in tree._segments)
    v = x[..., :n]
    t = torch.tensor(float(_F32(temperature)), dtype=v.dtype)
    lead = v.shape[:-1]
    # classes first (rows of a group are then whole rows of memory)
    flat = v.reshape(-1, n).t().contiguous()
    cols = flat.shape[1]
    largest = torch.full((tree.groups, cols), -float(np.finfo(_F32).max), dtype=v.dtype,
                         device=v.device)
    largest = largest.scatter_reduce(0, seg[:, None].expand(n, cols), flat, "amax")
    e = torch.exp((flat / t - largest[seg] / t).double()).to(v.dtype)
    total = torch.zeros_like(largest)
    for k in range(int(sizes.max()) if n else 0):  # float sums in Darknet's order
        live = (sizes > k).nonzero().flatten()
        total.index_add_(0, live, e[offsets[live] + k])
    out = (e / total[seg]).t().reshape(lead + (n,))
    if x.shape[-1] > n:
        out = torch.cat([out, torch.zeros(lead + (x.shape[-1] - n,), dtype=x.dtype,
                                          device=x.device)], dim=-1)
    return out


# =====================================================================================
# Decode walks (numpy, float32, one row per detection candidate)
# =====================================================================================
def hierarchy_predictions(pred: np.ndarray, tree: Tree, only_leaves: bool = False) -> np.ndarray:
    """``hierarchy_predictions`` on rows of class scores (rows, classes), in place and
    returned: for j in order, ``p[j] *= p[parent[j]]`` (float32; a parent before its
    child is already a product), then non-leaves zeroed with ``only_leaves``."""
    for j, parent in enumerate(tree.parent[:pred.shape[1]]):
        if parent >= 0:
            pred[:, j] *= pred[:, parent]
    if only_leaves:
        pred[:, [not leaf for leaf in tree.leaf[:pred.shape[1]]]] = 0
    return pred


def hierarchy_top_prediction(pred: np.ndarray, tree: Tree, thresh: float) -> int:
    """``hierarchy_top_prediction`` of one row: from group 0, take the group's largest
    entry (the first of equals; only values > 0 count, else index 0); while the running
    product with it stays above ``thresh`` descend into its child group (a leaf: return
    it); else return that entry at the top level, or the parent of the group reached."""
    th = _F32(thresh)
    p = _F32(1)
    group = 0
    while True:
        off, size = tree.group_offset[group], tree.group_size[group]
        vals = pred[off:off + size]
        best, max_i = _F32(0), 0
        if size:
            k = int(np.argmax(np.where(vals > 0, vals, _F32(-1))))
            if vals[k] > 0:
                best, max_i = vals[k], off + k
        if _F32(p * best) > th:
            p = _F32(p * best)
            group = tree.child[max_i]
            if group < 0:
                return max_i
        elif group == 0:
            return max_i
        else:
            return tree.parent[tree.group_offset[group]]


def leaf_first_above(pred: np.ndarray, thresh: float = 0.5) -> np.ndarray:
    """AlexeyAB's ``get_region_boxes`` tree branch, on rows (rows, classes): walking the
    classes from the last to the first, keep the first value > ``thresh`` and zero the rest.
    Returns the new array."""
    above = pred > _F32(thresh)
    rev = above[:, ::-1]
    has = rev.any(axis=1)
    keep = pred.shape[1] - 1 - rev.argmax(axis=1)
    out = np.zeros_like(pred)
    rows = np.nonzero(has)[0]
    out[rows, keep[rows]] = pred[rows, keep[rows]]
    return out

