"""Build the integrators' reference (HTML from the protos, the code and docs/) into .gen/reference/ (never committed).

Run after `make proto`; the payment edge serves it under /docs/ and builds it itself on first use when missing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / ".gen")]

from servicekit.web.reference.build import DEFAULT_OUT, build  # noqa: E402 - needs the paths above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default .gen/reference)")
    out = build(parser.parse_args().out)
    pages = len(list((out / "vi").glob("*.html")))
    print(f"built the reference: {pages} pages per language in {out}")


if __name__ == "__main__":
    main()
