"""Import-boundary check: the pure packages never reach for I/O; the rooms of node keep their walls.

* ``scoring``, ``mapping`` and ``keys`` must not import ``grpc`` (or its helper
  packages), ``aiosqlite``, ``sqlite3`` or any part of ``node`` other than the
  generated ``node.pb`` messages (DESIGN.md, "Layout");
* the rooms of ``node`` (docs/adr/0600): ``node.core`` imports no other room,
  ``node.store`` only ``node.core``; ``node.cli`` and ``node.demo`` are imported
  by nobody but themselves (and ``node.__main__``); ``node.synthetic`` only by
  ``cli``, ``demo`` and ``model`` (evaluation on a synthetic population);
* nobody imports another library's private name (``from x import _y``).

Exit status 1 lists every offending import with file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE_PACKAGES = ("scoring", "mapping", "keys")
FORBIDDEN_ROOTS = frozenset({"grpc", "grpc_health", "grpc_reflection", "aiosqlite", "sqlite3"})
ALLOWED_NODE_PREFIX = "node.pb"
PROJECT_ROOTS = frozenset({"node", "scoring", "mapping", "keys", "tools", "bench", "tests"})
#: room -> the rooms of node it may import (None: any); rooms not listed may import any
#: room except the ones guarded by IMPORTED_ONLY_BY.
ROOM_MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "store": frozenset({"core"}),
}
#: room -> the only rooms that may import it
IMPORTED_ONLY_BY: dict[str, frozenset[str]] = {
    "cli": frozenset({"cli", "demo", "__main__"}),
    "demo": frozenset({"demo", "cli"}),
    "synthetic": frozenset({"synthetic", "cli", "demo", "model"}),
}


def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _private_imports(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """``from <library> import _name``: another library's private name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".", maxsplit=1)[0] in PROJECT_ROOTS:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield node.lineno, node.module, alias.name


def room_of(filename: str) -> str | None:
    """The room of ``node`` a file belongs to (``__main__`` for node/__main__.py)."""
    parts = Path(filename).parts
    if len(parts) < 2 or parts[0] != "node":
        return None
    if len(parts) == 2:
        return Path(parts[1]).stem
    return parts[1]


def room_violation(room: str, module: str) -> str | None:
    """Why room ``room`` may not import ``module``, or None."""
    parts = module.split(".")
    if parts[0] != "node" or len(parts) < 2 or parts[1] in {"pb", room}:
        return None
    target = parts[1]
    allowed = ROOM_MAY_IMPORT.get(room)
    if allowed is not None and target not in allowed:
        return f"node.{room} may import only {sorted(allowed) or 'no room'} of node"
    importers = IMPORTED_ONLY_BY.get(target)
    if importers is not None and room not in importers:
        return f"node.{target} is imported only by {sorted(importers)}"
    return None


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
    """Problems of one pure-package file."""
    tree = ast.parse(source, filename=filename)
    problems = []
    for lineno, module in _imported_modules(tree):
        reason = violation(module)
        if reason:
            problems.append(f"{filename}:{lineno}: import {module}: {reason}")
    return problems


def check_node_source(source: str, filename: str) -> list[str]:
    """Problems of one file of ``node`` (``filename`` relative to the repository)."""
    tree = ast.parse(source, filename=filename)
    room = room_of(filename)
    problems = []
    if room is not None:
        for lineno, module in _imported_modules(tree):
            reason = room_violation(room, module)
            if reason:
                problems.append(f"{filename}:{lineno}: import {module}: {reason}")
    for lineno, module, name in _private_imports(tree):
        problems.append(f"{filename}:{lineno}: from {module} import {name}: a private name")
    return problems


def check_files(files: Iterable[Path]) -> list[str]:
    problems: list[str] = []
    for path in files:
        problems.extend(check_source(path.read_text(encoding="utf-8"), str(path)))
    return problems


def main() -> int:
    files = sorted(p for pkg in PURE_PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    problems = check_files(files)
    node_files = sorted(p for p in (ROOT / "node").rglob("*.py") if "pb" not in p.parts)
    for path in node_files:
        rel = str(path.relative_to(ROOT))
        problems.extend(check_node_source(path.read_text(encoding="utf-8"), rel))
    for line in problems:
        print(line)
    if problems:
        return 1
    print(
        f"import boundaries hold ({len(files)} files in {', '.join(PURE_PACKAGES)}, "
        f"{len(node_files)} in the rooms of node)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
