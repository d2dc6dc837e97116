"""Run every benchmark, print figures and ratios against the raw limits, and save them as JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from pathlib import Path

from bench.report import Report

ROOT = Path(__file__).resolve().parent.parent
CASE_MODULES = ["bench.baselines", "bench.identity_cases", "bench.payment_cases", "bench.wallet_cases",
                "bench.asyncio_probe"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "5")),
                        help="measuring window of each throughput figure")
    parser.add_argument("--only", default="", help="comma-separated case modules (e.g. baselines,payment_cases)")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench.json"))
    args = parser.parse_args()
    report = Report(seconds=args.seconds)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    for module_name in CASE_MODULES:
        if wanted and module_name.split(".")[-1] not in wanted:
            continue
        module = importlib.import_module(module_name)
        started = time.monotonic()
        module.run(report)
        print(f"[{module_name} took {time.monotonic() - started:.0f}s]", flush=True)
    print()
    print(report.table())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                               **report.as_dict()}, indent=2))
    print(f"\nsaved {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
