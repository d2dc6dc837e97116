"""The pages' own CSS, JavaScript and icon, served from this package (never from a CDN), with content hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"


def asset_versions() -> dict[str, str]:
    """File name → short hash of its content, appended to asset URLs so browsers may cache them for long."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in sorted(STATIC_DIR.iterdir()) if path.is_file()}
