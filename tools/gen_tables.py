"""Generate the published anchored mapping tables (mapping/tables/*.json).

    python tools/gen_tables.py          # (re)write the files
    python tools/gen_tables.py --check  # exit 1 if the committed files drift

The tables are derived only from the shipped scheme files, so anyone can
regenerate them and compare content hashes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mapping import build_published  # noqa: E402

TABLES_DIR = ROOT / "mapping" / "tables"


def drift(directory: Path = TABLES_DIR) -> list[str]:
    """Names of files that are missing, different or stale in ``directory``."""
    wanted = build_published()
    problems = []
    for name, data in sorted(wanted.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.read_bytes() != data:
            problems.append(f"{name}: differs from the generator's output")
    for path in sorted(directory.glob("*.json")):
        if path.name not in wanted:
            problems.append(f"{path.name}: not produced by the generator (stale)")
    return problems


def write(directory: Path = TABLES_DIR) -> list[str]:
    wanted = build_published()
    for path in directory.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
    for name, data in wanted.items():
        (directory / name).write_bytes(data)
    return sorted(wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files drift")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run: python tools/gen_tables.py", file=sys.stderr)
            return 1
        print(f"{len(build_published())} published tables up to date")
        return 0
    names = write()
    print(f"wrote {len(names)} tables to {TABLES_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
