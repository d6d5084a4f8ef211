"""A Darknet build's own activation functions, called in-process through ctypes.

AlexeyAB's Makefile compiles with ``-Ofast``: its vectorised activation loops call
glibc's vector ``expf`` (``_ZGVbN4v_expf``) and divide with ``rcpps`` (an approximate
reciprocal and one Newton step), while the last ``n % 4`` values of each call go
through the scalar ``expf`` and an exact division. Which bits an output gets thus
depends on the compiler, the libm and even on where a value sits in the array
Darknet hands the function; no formula in PyTorch gives them. :class:`BuildActivations`
loads that build's ``libdarknet.so`` and calls its ``activate_array*`` functions
with the same arrays (offset and length) as the fork's layers do, so
:func:`darknet_py.gemm_order.darknet_order` gets that build's bits.

Only AlexeyAB needs this (pjreddie's activations are scalar double formulas,
written out in :mod:`darknet_py.gemm_order`). A build without a shared library
(``libdarknet.a`` only) is refused with one line.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Dict

import torch
from torch import Tensor

from ..errors import BridgeError
from .build import DarknetBuild

_FLOAT_P = ctypes.POINTER(ctypes.c_float)

#: activations whose CPU forward AlexeyAB's forward_convolutional_layer calls through its
#: own function (x, n, saved input, output); every other one goes to
#: activate_array_cpu_custom (gemm.c), which itself calls activate() per value
_OWN_FUNCTION = {"swish": "activate_array_swish", "mish": "activate_array_mish",
                 "hard_mish": "activate_array_hard_mish"}
#: the normalize_channels* activations: (x, n, batch, channels, wh_step, output[, max_val])
_CHANNELS = {"normalize_channels": None, "normalize_channels_softmax": 0,
             "normalize_channels_softmax_maxval": 1}

_LOADED: Dict[Path, "BuildActivations"] = {}


def _shared_library(build: DarknetBuild) -> Path:
    lib = Path(build.lib)
    if lib.suffix == ".so":
        return lib
    candidate = lib.with_name("libdarknet.so")
    if candidate.is_file():
        return candidate
    raise BridgeError(f"this {build.fork} build has no shared library (libdarknet.so), which "
                      f"Darknet-order evaluation calls for the fork's activations; rebuild it "
                      f"with LIBSO=1 (darknet-py darknet build does)", file=build.folder)


class BuildActivations:
    """The ``activate_array*`` functions of one build's ``libdarknet.so``. Every method
    works in place on a contiguous CPU float32 tensor (its own storage: the caller clones)."""

    def __init__(self, build: DarknetBuild) -> None:
        path = _shared_library(build)
        try:
            self.lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise BridgeError(f"cannot load the build's library: {exc}", file=path) from None
        self.path = path
        lib = self.lib
        for name in ("activate_array", "activate_array_cpu_custom"):
            getattr(lib, name).argtypes = [_FLOAT_P, ctypes.c_int, ctypes.c_int]
            getattr(lib, name).restype = None
        for name in _OWN_FUNCTION.values():
            getattr(lib, name).argtypes = [_FLOAT_P, ctypes.c_int, _FLOAT_P, _FLOAT_P]
            getattr(lib, name).restype = None
        lib.activate_array_normalize_channels.argtypes = \
            [_FLOAT_P] + [ctypes.c_int] * 4 + [_FLOAT_P]
        lib.activate_array_normalize_channels_softmax.argtypes = \
            [_FLOAT_P] + [ctypes.c_int] * 4 + [_FLOAT_P, ctypes.c_int]
        lib.get_activation.argtypes = [ctypes.c_char_p]
        lib.get_activation.restype = ctypes.c_int
        self._codes: Dict[str, int] = {}

    def code(self, name: str) -> int:
        """The build's ACTIVATION enum value for ``name`` (its own get_activation)."""
        if name not in self._codes:
            self._codes[name] = int(self.lib.get_activation(name.encode()))
        return self._codes[name]

    @staticmethod
    def _ptr(x: Tensor, offset: int = 0):
        if x.dtype != torch.float32 or x.device.type != "cpu" or not x.is_contiguous():
            raise ValueError("a contiguous CPU float32 tensor is needed")
        return ctypes.cast(ctypes.c_void_p(x.data_ptr() + 4 * offset), _FLOAT_P)

    def activate_array(self, x: Tensor, offset: int, n: int, name: str) -> None:
        """activations.c:activate_array(x + offset, n, name), in place."""
        if offset < 0 or n < 0 or offset + n > x.numel():
            raise ValueError("segment outside the tensor")
        self.lib.activate_array(self._ptr(x, offset), n, self.code(name))

    def convolutional(self, x: Tensor, name: str, channels: int, spatial: int) -> None:
        """What forward_convolutional_layer (CPU) does to its whole output after the bias:
        its swish/mish/hard_mish function, normalize_channels*, or
        activate_array_cpu_custom, in place (``x``: the batch, NCHW, contiguous)."""
        n = x.numel()
        if name == "linear":
            return
        if name in _OWN_FUNCTION:
            saved = torch.empty_like(x)
            getattr(self.lib, _OWN_FUNCTION[name])(self._ptr(x), n, self._ptr(saved), self._ptr(x))
        elif name in _CHANNELS:
            batch = x.shape[0]
            args = [self._ptr(x), n, batch, channels, spatial, self._ptr(x)]
            if _CHANNELS[name] is None:
                self.lib.activate_array_normalize_channels(*args)
            else:
                self.lib.activate_array_normalize_channels_softmax(*args, _CHANNELS[name])
        else:
            self.lib.activate_array_cpu_custom(self._ptr(x), n, self.code(name))


def build_activations(build: DarknetBuild) -> BuildActivations:
    """The (cached) :class:`BuildActivations` of ``build``."""
    path = _shared_library(build).resolve()
    if path not in _LOADED:
        _LOADED[path] = BuildActivations(build)
    return _LOADED[path]
