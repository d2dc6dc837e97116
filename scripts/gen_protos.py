"""Generate Python gRPC stubs and .pyi type stubs from proto/ into .gen/ (never committed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / ".gen"


def main() -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    if not protos:
        raise SystemExit("no .proto files under proto/")
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir()
    well_known = str(resources.files("grpc_tools") / "_proto")
    bin_dir = Path(sys.executable).parent
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{well_known}",
        f"--python_out={OUT_DIR}", f"--grpc_python_out={OUT_DIR}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={OUT_DIR}", f"--mypy_grpc_out={OUT_DIR}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_DIR)
    # Regular packages (not namespace packages) so mypy and importers resolve dvc.* the same way.
    for directory in [p for p in OUT_DIR.rglob("*") if p.is_dir()]:
        (directory / "__init__.py").touch()
    (OUT_DIR / "py.typed").touch()
    print(f"generated stubs for {len(protos)} proto files in {OUT_DIR.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
