"""Run every benchmark, print its table and record it in BENCHMARKS.md.

Each module in ``MODULES`` exposes ``run(args) -> str`` returning a Markdown
section (a table of figures measured in this run, with ratios against a
baseline measured in the same run).  The section replaces the text between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in BENCHMARKS.md.
``--only NAME`` runs one; ``--quick`` shrinks sizes for a smoke run (not
recorded).  Exchange, scoring and sync measure the node on PostgreSQL next to
SQLite in the same run (issue 18: a throwaway local server, ``bench/_pg.py``);
``--sqlite-only`` leaves those rows out; ``pg_drivers`` is the driver comparison
behind docs/adr/0701.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import re
import sys
import time
from pathlib import Path
from typing import Protocol

MODULES: tuple[str, ...] = (
    "bench.scoring",
    "bench.crypto",
    "bench.exchange",
    "bench.sync",
    "bench.population",
    "bench.pg_drivers",
)
BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


class _Bench(Protocol):
    def run(self, args: argparse.Namespace) -> str: ...


def record(name: str, section: str, command: str) -> None:
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    stamp = time.strftime("%Y-%m-%d")
    body = (
        f"<!-- bench:{name} -->\n{section.strip()}\n\n"
        f"Measured {stamp} on {platform.machine()}, Python {platform.python_version()}: "
        f"`{command}`.\n"
        f"<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = (
        pattern.sub(lambda _m: body, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{body}\n"
    )
    BENCHMARKS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=[m.rsplit(".", 1)[-1] for m in MODULES])
    parser.add_argument("--quick", action="store_true", help="small sizes; results not recorded")
    parser.add_argument(
        "--sqlite-only", action="store_true", help="leave out the PostgreSQL rows (issue 18)"
    )
    args = parser.parse_args(argv)
    for module_name in MODULES:
        name = module_name.rsplit(".", 1)[-1]
        if args.only and args.only != name:
            continue
        module: _Bench = importlib.import_module(module_name)
        print(f"== {name} ==", flush=True)
        section = module.run(args)
        print(section, flush=True)
        if not args.quick:
            command = "make bench" if not args.only else f"python -m bench --only {name}"
            record(name, section, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
