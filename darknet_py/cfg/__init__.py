"""Reading and writing Darknet .cfg files."""
from .net import NetOptions
from .options import OptionReader, option
from .reader import Entry, Section, parse_cfg, read_cfg
from .writer import format_cfg, write_cfg

__all__ = ["Entry", "NetOptions", "OptionReader", "Section", "format_cfg", "option",
           "parse_cfg", "read_cfg", "write_cfg"]
