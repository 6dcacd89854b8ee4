"""Regenerate (or check) the Python code generated from ``proto/``.

``.proto`` files live under ``proto/node/pb/v1``; protoc runs with ``-I proto``
so the output lands importable at ``node/pb/v1/*_pb2.py`` (+ ``.pyi`` stubs and
``*_pb2_grpc.py``).  ``--check`` regenerates into a temporary directory and fails
if anything differs from what is committed.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_SUBDIR = Path("node/pb/v1")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"protoc plugin {name!r} not found; run 'make' to install dev extras")
    return found


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        return
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    subprocess.run(cmd, check=True)


def _generated(directory: Path) -> set[str]:
    if not directory.exists():
        return set()
    return {p.name for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args(argv)
    target = ROOT / OUT_SUBDIR
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh_dir = Path(tmp) / OUT_SUBDIR
        fresh = _generated(fresh_dir)
        if args.check:
            current = _generated(target)
            stale = sorted(
                name
                for name in fresh | current
                if name not in fresh
                or name not in current
                or not filecmp.cmp(fresh_dir / name, target / name, shallow=False)
            )
            if stale:
                print("generated code is stale (run 'make proto'):", *stale, sep="\n  ")
                return 1
            print(f"generated code is up to date ({len(fresh)} files)")
            return 0
        target.mkdir(parents=True, exist_ok=True)
        for name in _generated(target) - fresh:
            (target / name).unlink()
        for name in sorted(fresh):
            shutil.copyfile(fresh_dir / name, target / name)
        print(f"wrote {len(fresh)} files to {OUT_SUBDIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
