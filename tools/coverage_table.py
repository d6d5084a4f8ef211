"""Print (or, with --write, update in README.md) the table of what each section type is
checked against: section type x fork x forward / train / decode, "real Darknet output" only
where a test compares with the real Darknet (see darknet_py/testing/coverage.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darknet_py.io import atomic_write  # noqa: E402
from darknet_py.testing.coverage import END, START, table  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = p.parse_args(argv)
    lines = table()
    if not args.write:
        print("\n".join(lines))
        return 0
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} markers", file=sys.stderr)
        return 2
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    atomic_write(readme, (before + START + "\n" + "\n".join(lines) + "\n" + END + after).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
