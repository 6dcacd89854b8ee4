"""The ``huxin`` command line: the only place that reads flags and the environment.

Each area registers its subcommands from its own module (``COMMAND_MODULES``),
each exposing ``register(subparsers)``; handlers take the parsed namespace and
return an exit code.  Domain errors are printed to stderr as
``error: <CODE>: <message>`` with a non-zero exit code (2 for bad input, 1 for
a failed check), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

__all__ = ["CliError", "add_id_number_args", "id_number_arg", "main", "subgroup"]

COMMAND_MODULES: tuple[str, ...] = (
    "node.cli._scoring",
    "node.cli._mapping",
    "node.cli._batch",
    "node.demo._main",
    "node.cli._node",
    "node.cli._status",
    "node.cli._cert",
    "node.cli._client",
    "node.cli._keys",
    "node.cli._review",
    "node.cli._hub",
    "node.cli._backup",
    "node.cli._population",
    "node.cli._catalogue",
    "node.cli._derived",
)


class CliError(Exception):
    """A user-facing failure: printed as ``error: CODE: message``."""

    def __init__(self, code: str, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


class _Registrar(Protocol):
    def register(self, sub: SubParsers) -> None: ...


Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction

_GROUPS_ATTR = "_huxin_groups"


def subgroup(sub: SubParsers, name: str, help_text: str) -> SubParsers:
    """The subcommand group ``name`` (e.g. ``score``), created once per parser and shared.

    Several modules may add commands to one group (``score explain`` here,
    ``score run`` there) without knowing about each other.  The groups are kept
    on ``sub`` itself: a table keyed by ``id(sub)`` would hand a new parser the
    group of a collected one whose id was reused.
    """
    groups: dict[str, SubParsers] = sub.__dict__.setdefault(_GROUPS_ATTR, {})
    if name not in groups:
        parser = sub.add_parser(name, help=help_text)
        groups[name] = parser.add_subparsers(
            dest=f"{name}_command", required=True, metavar="ACTION"
        )
    return groups[name]


def add_id_number_args(
    parser: argparse.ArgumentParser, flag: str, *, required: bool = False
) -> None:
    """``--FLAG ID_NUMBER`` or ``--FLAG-file FILE`` (``-`` = stdin), one of them.

    The file form keeps a citizen's ID number out of argv (``ps``) and shell
    history; the plain form stays for scripts and tests.
    """
    who = parser.add_mutually_exclusive_group(required=required)
    who.add_argument(f"--{flag}", metavar="ID_NUMBER", help=f"prefer --{flag}-file")
    who.add_argument(
        f"--{flag}-file",
        type=Path,
        metavar="FILE",
        help="read the ID number from FILE ('-' = stdin), keeping it out of argv and history",
    )


def id_number_arg(args: argparse.Namespace, flag: str) -> str | None:
    """The ID number given by :func:`add_id_number_args` (not yet validated)."""
    attr = flag.replace("-", "_")
    path: Path | None = getattr(args, f"{attr}_file")
    if path is None:
        value: str | None = getattr(args, attr)
        return value
    if str(path) == "-":
        return sys.stdin.readline().strip() or None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        raise CliError("FILE_NOT_READABLE", f"--{flag}-file: cannot read {str(path)!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huxin",
        description="Huxin (互信): federated gateway for mutual recognition of integrity scores",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module: _Registrar = importlib.import_module(name)
        module.register(sub)
    return parser


def _error_code(exc: Exception) -> tuple[str, int] | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code, 2
    return None


def main(argv: Sequence[str] | None = None) -> int:
    # Everything huxin creates (database, WAL, logs, keys, backups, configs) is the
    # operator's alone: it holds subjects' records and consents.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except CliError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `huxin schemes show heihe | head`
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        known = _error_code(exc)
        if known is None:
            raise
        print(f"error: {known[0]}: {exc}", file=sys.stderr)
        return known[1]


if __name__ == "__main__":
    raise SystemExit(main())
