"""One module per Darknet section type; see :mod:`.registry`."""
from .base import BuildContext, CommonOptions, DarknetLayer, Shape
from .registry import get_builder, register, section_names

__all__ = ["BuildContext", "CommonOptions", "DarknetLayer", "Shape", "get_builder", "register",
           "section_names"]
