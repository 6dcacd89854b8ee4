"""Import-boundary check: the pure packages never reach for I/O.

``scoring``, ``mapping`` and ``keys`` must not import ``grpc`` (or its helper
packages), ``aiosqlite``, ``sqlite3`` or any part of ``node`` other than the
generated ``node.pb`` messages (DESIGN.md, "Layout").  Exit status 1 lists
every offending import with file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE_PACKAGES = ("scoring", "mapping", "keys")
FORBIDDEN_ROOTS = frozenset({"grpc", "grpc_health", "grpc_reflection", "aiosqlite", "sqlite3"})
ALLOWED_NODE_PREFIX = "node.pb"


def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violation(module: str) -> str | None:
    """Why importing ``module`` from a pure package is forbidden, or None."""
    root = module.split(".", maxsplit=1)[0]
    if root in FORBIDDEN_ROOTS:
        return f"pure packages must not import {root!r}"
    if root == "node" and not (
        module == ALLOWED_NODE_PREFIX or module.startswith(ALLOWED_NODE_PREFIX + ".")
    ):
        return "pure packages may import only node.pb from node"
    return None


def check_source(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename=filename)
    problems = []
    for lineno, module in _imported_modules(tree):
        reason = violation(module)
        if reason:
            problems.append(f"{filename}:{lineno}: import {module}: {reason}")
    return problems


def check_files(files: Iterable[Path]) -> list[str]:
    problems: list[str] = []
    for path in files:
        problems.extend(check_source(path.read_text(encoding="utf-8"), str(path)))
    return problems


def main() -> int:
    files = sorted(p for pkg in PURE_PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    problems = check_files(files)
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"import boundaries hold ({len(files)} files in {', '.join(PURE_PACKAGES)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
