"""Lint the contracts with buf and check them for breaking changes against the last commit on main."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
BUF = TOOLS / "node_modules" / ".bin" / "buf"


def ensure_buf() -> None:
    if not BUF.exists():
        # `npm install --no-save` rather than `npm ci`: the lock pins buf, but npm ci rejects a lock that lists
        # only this platform's optional binary package, which is what the registry here records.
        subprocess.run(["npm", "install", "--no-save", "--silent", "--no-audit", "--no-fund"], cwd=TOOLS, check=True)


def baseline_ref() -> str | None:
    """The commit to compare against: main's tip, or None when it has no contracts yet."""
    for ref in ("main", "HEAD"):
        probe = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], cwd=ROOT, capture_output=True)
        if probe.returncode == 0:
            listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "proto/"], cwd=ROOT,
                                     capture_output=True, text=True)
            return ref if ".proto" in listing.stdout else None
    return None


def main() -> int:
    ensure_buf()
    lint = subprocess.run([str(BUF), "lint"], cwd=ROOT / "proto")
    if lint.returncode != 0:
        print("proto lint failed: fix the lines above (buf STANDARD + COMMENTS rules)", file=sys.stderr)
        return lint.returncode
    ref = baseline_ref()
    if ref is None:
        print("proto breaking-change check: no contracts on main yet, nothing to compare")
        return 0
    against = f"{ROOT}/.git#ref={ref},subdir=proto"
    breaking = subprocess.run([str(BUF), "breaking", "--against", against], cwd=ROOT / "proto")
    if breaking.returncode != 0:
        print(f"proto breaking-change check failed against {ref}: add new fields instead of changing old ones",
              file=sys.stderr)
        return breaking.returncode
    print(f"proto lint and breaking-change check passed (against {ref})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
