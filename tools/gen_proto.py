"""Regenerate (or check) the Python code generated from ``proto/``.

Two homes, one proto package (``huxin.v1``, so the wire is the same whichever home
a message lives in; docs/adr/0604):

* ``proto/keys/pb/v1`` -> ``keys/pb/v1``: the messages the pure core verifies
  (attestations, envelopes, trust and status lists, the catalogue).  They declare
  no service, so only ``*_pb2.py`` and ``.pyi`` stubs are generated: ``keys.pb``
  imports nothing but protobuf (no grpc), and ``keys`` stands without ``node``;
* ``proto/node/pb/v1`` -> ``node/pb/v1``: the node's messages and services (plus
  ``*_pb2_grpc.py``); they import ``keys/pb/v1/attestation.proto``, so the
  generated ``node_pb2`` imports ``keys.pb.v1.attestation_pb2``.

protoc runs with ``-I proto`` so each output lands importable under its package.
``--check`` regenerates into a temporary directory and fails if anything differs
from what is committed.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["HOMES", "generate", "main"]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
#: output directory (relative to the repository and to ``proto/``) -> whether its
#: protos get gRPC service stubs
HOMES: dict[Path, bool] = {Path("keys/pb/v1"): False, Path("node/pb/v1"): True}
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"protoc plugin {name!r} not found; run 'make' to install dev extras")
    return found


def _protoc(out: Path, protos: list[str], with_grpc: bool) -> None:
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--python_out={out}",
        f"--mypy_out={out}",
    ]
    if with_grpc:
        cmd += [
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
        ]
    subprocess.run([*cmd, *protos], check=True)


def generate(out: Path) -> None:
    """Generate every home's code under ``out`` (``out/keys/pb/v1``, ``out/node/pb/v1``)."""
    for home, with_grpc in HOMES.items():
        source = PROTO_ROOT / home
        protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in source.glob("*.proto"))
        if protos:
            _protoc(out, protos, with_grpc)


def _generated(directory: Path) -> set[str]:
    if not directory.exists():
        return set()
    return {p.name for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}


def _stale(fresh_dir: Path, target: Path) -> list[str]:
    fresh, current = _generated(fresh_dir), _generated(target)
    return sorted(
        str(target.relative_to(ROOT) / name)
        for name in fresh | current
        if name not in fresh
        or name not in current
        or not filecmp.cmp(fresh_dir / name, target / name, shallow=False)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        if args.check:
            stale = [name for home in HOMES for name in _stale(Path(tmp) / home, ROOT / home)]
            if stale:
                print("generated code is stale (run 'make proto'):", *stale, sep="\n  ")
                return 1
            count = sum(len(_generated(Path(tmp) / home)) for home in HOMES)
            print(f"generated code is up to date ({count} files)")
            return 0
        for home in HOMES:
            fresh_dir, target = Path(tmp) / home, ROOT / home
            fresh = _generated(fresh_dir)
            target.mkdir(parents=True, exist_ok=True)
            for name in _generated(target) - fresh:
                (target / name).unlink()
            for name in sorted(fresh):
                shutil.copyfile(fresh_dir / name, target / name)
            print(f"wrote {len(fresh)} files to {home}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
