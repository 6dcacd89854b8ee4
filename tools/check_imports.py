"""Import-boundary check: the pure packages never reach for I/O; the rooms of node keep their walls.

* ``scoring``, ``mapping`` and ``keys`` must not import ``grpc`` (or its helper
  packages), ``aiosqlite``, ``sqlite3`` or any part of ``node`` (DESIGN.md,
  "Layout"); the generated messages they verify live in ``keys.pb`` (docs/adr/0604),
  so ``keys`` verifies offline without ``node`` installed;
* the generated ``keys.pb`` imports only protobuf and ``keys.pb`` itself, so that
  home of the messages depends on nothing else of the project;
* the rooms of ``node`` (docs/adr/0600): ``node.core`` imports no other room,
  ``node.store`` only ``node.core``; ``node.cli`` and ``node.demo`` are imported
  by nobody but themselves (and ``node.__main__``); ``node.synthetic`` only by
  ``cli``, ``demo`` and ``model`` (evaluation on a synthetic population);
  ``node.core`` and ``node.store`` import no transport (``grpc``): the error tree
  carries reasons, and only the RPC edge (``node.rpc._status``) knows status codes;
* nobody imports another library's private name (``from x import _y``);
* no module of ``node`` outside ``node.store`` (and the generated ``node.pb``) holds an
  SQL statement in a string literal (:func:`sql_literals`): storage is reached through
  the store's repositories (DESIGN.md, docs/adr/0600).

Exit status 1 lists every offending import with file and line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE_PACKAGES = ("scoring", "mapping", "keys")
FORBIDDEN_ROOTS = frozenset({"grpc", "grpc_health", "grpc_reflection", "aiosqlite", "sqlite3"})
#: the home of the pure core's generated messages, and what it may import
KEYS_PB = "keys.pb"
KEYS_PB_MAY_IMPORT = ("google.protobuf", KEYS_PB)
PROJECT_ROOTS = frozenset({"node", "scoring", "mapping", "keys", "tools", "bench", "tests"})
#: room -> the rooms of node it may import (None: any); rooms not listed may import any
#: room except the ones guarded by IMPORTED_ONLY_BY.
ROOM_MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "store": frozenset({"core"}),
    "web": frozenset({"core", "http"}),  # the citizen pages: static files and their routes
}
#: room -> libraries it may not import: the error tree and storage know no transport
ROOM_FORBIDDEN_LIBRARIES: dict[str, frozenset[str]] = {
    "core": frozenset({"grpc", "grpc_health", "grpc_reflection"}),
    "store": frozenset({"grpc", "grpc_health", "grpc_reflection"}),
}
#: room -> the only rooms that may import it
IMPORTED_ONLY_BY: dict[str, frozenset[str]] = {
    "cli": frozenset({"cli", "demo", "__main__"}),
    "demo": frozenset({"demo", "cli"}),
    "synthetic": frozenset({"synthetic", "cli", "demo", "model"}),
    # the HTTP channel (docs/adr/0800): started by the CLI, extended by the pages and console
    "http": frozenset({"http", "cli", "demo", "web", "console"}),
    "console": frozenset({"console", "http", "cli", "demo"}),
}


#: The rooms of node whose string literals may hold SQL.
SQL_ROOMS = frozenset({"store", "pb"})
#: The start of an SQL statement as the project writes it: keywords in capitals (all of
#: node.store does), followed by what the statement needs, so that English prose
#: beginning "Replace", "with --db" or "create a key" is not taken for SQL.
_SQL_STATEMENT = re.compile(
    r"""\s*(?:
        SELECT\s+\S
      | (?:INSERT|REPLACE)(?:\s+OR\s+[A-Z]+)?\s+INTO\s
      | UPDATE\s+(?:OR\s+[A-Z]+\s+)?\S+\s+SET\s
      | DELETE\s+FROM\s
      | (?:CREATE|DROP)\s+(?:UNIQUE\s+|TEMP\s+|TEMPORARY\s+|VIRTUAL\s+)?
        (?:TABLE|INDEX|VIEW|TRIGGER)\s
      | ALTER\s+TABLE\s
      | WITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\s*\(
      | PRAGMA\s+\w
      | (?:ATTACH|DETACH)\s+DATABASE\s
      | SAVEPOINT\s+\w
      | RELEASE\s+(?:SAVEPOINT\s+)?\w+\s*;?\s*$
      | BEGIN\s+(?:(?:DEFERRED|IMMEDIATE|EXCLUSIVE)(?:\s+TRANSACTION)?|TRANSACTION)\s*(?:;|$)
      | BEGIN\s*;
      | (?:COMMIT|ROLLBACK)\s+TRANSACTION\s*;?\s*$
      | ROLLBACK\s+(?:TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?\w+\s*;?\s*$
    )""",
    re.VERBOSE,
)
#: A bare keyword is SQL only where it is executed: ``"ROLLBACK"`` is also a reason code.
_SQL_WORD = re.compile(r"\s*(?:BEGIN|COMMIT|ROLLBACK|END|VACUUM|REINDEX|ANALYZE)\s*;?\s*$")
_EXECUTE = frozenset({"execute", "executemany", "executescript", "fetchone", "fetchall"})


def _docstrings(tree: ast.AST) -> set[int]:
    """``id`` of every docstring constant: prose about SQL is not SQL."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def sql_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of each string literal that starts an SQL statement, or is a bare
    transaction keyword given to ``execute``.  An f-string is read whole, its fields as
    ``{}`` (so ``f"SELECT {cols} FROM t"`` is one statement, counted once); implicitly
    joined literals are one literal already."""
    skip = _docstrings(tree)
    executed = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in _EXECUTE
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            text = "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                for v in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in skip:
                continue
            text = node.value
        else:
            continue
        if _SQL_STATEMENT.match(text) or (id(node) in executed and _SQL_WORD.match(text)):
            yield node.lineno, " ".join(text.split())[:60]


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
    if parts[0] in ROOM_FORBIDDEN_LIBRARIES.get(room, frozenset()):
        return f"node.{room} must not import {parts[0]!r}"
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
    if root == "node":
        return "pure packages import no part of node (their messages are keys.pb)"
    return None


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def keys_pb_violation(module: str) -> str | None:
    """Why importing ``module`` from the generated ``keys.pb`` is forbidden, or None."""
    if any(_within(module, allowed) for allowed in KEYS_PB_MAY_IMPORT):
        return None
    return f"keys.pb may import only {' and '.join(KEYS_PB_MAY_IMPORT)}"


def _is_keys_pb(filename: str) -> bool:
    """True for a file of ``keys/pb`` (relative to the repository, or absolute in it)."""
    path = Path(filename)
    if path.is_absolute():
        if not path.is_relative_to(ROOT):
            return False
        path = path.relative_to(ROOT)
    parts = path.parts
    return len(parts) >= 2 and parts[:2] == ("keys", "pb")


def check_source(source: str, filename: str) -> list[str]:
    """Problems of one pure-package file."""
    tree = ast.parse(source, filename=filename)
    problems = []
    for lineno, module in _imported_modules(tree):
        reason = violation(module)
        if reason is None and _is_keys_pb(filename):
            reason = keys_pb_violation(module)
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
    if room is not None and room not in SQL_ROOMS:
        for lineno, text in sql_literals(tree):
            problems.append(f"{filename}:{lineno}: SQL outside node.store: {text!r}")
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
        f"{len(node_files)} in the rooms of node); no SQL outside node.store"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
