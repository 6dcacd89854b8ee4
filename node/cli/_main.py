"""The ``huxin`` command line: the only place that reads flags and the environment.

Each area registers its subcommands from its own module (``COMMAND_MODULES``),
each exposing ``register(subparsers)``; handlers take the parsed namespace and
return an exit code.  Domain errors are printed to stderr as
``error: <CODE>: <message>`` with a non-zero exit code (2 for bad input, 1 for
a failed check), never as a traceback: :data:`EXIT_CODES` maps the node's error
tree (node.core._errors) and the pure packages' errors to exit codes, as
node.rpc._status maps the same tree to gRPC status codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from keys import KeysError
from mapping import MappingError
from node.core._errors import HuxinError
from scoring import ScoringError

__all__ = [
    "EXIT_CODES",
    "CliError",
    "add_id_number_args",
    "exit_code_of",
    "id_number_arg",
    "main",
    "subgroup",
]

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
    "node.cli._request",
)


class CliError(HuxinError):
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


#: exit code by error class (the first class of an error's MRO listed here): the
#: command's input or the node's state refused it.  A :class:`CliError` carries its
#: own exit code (1 for a failed check).
EXIT_CODES: Mapping[type[Exception], int] = {
    HuxinError: 2,
    KeysError: 2,
    ScoringError: 2,
    MappingError: 2,
}
#: another library's error that names a stable ``code`` is a refusal as well
OTHER_CODED_EXIT = 2


def exit_code_of(exc: Exception) -> tuple[str, int] | None:
    """The printed code and the exit code of an error, or None for an error without a
    stable code (a bug: its traceback is shown)."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        return None
    if isinstance(exc, CliError):
        return code, exc.exit_code
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return code, EXIT_CODES[cls]
    return code, OTHER_CODED_EXIT


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
        known = exit_code_of(exc)
        if known is None:
            raise
        print(f"error: {known[0]}: {exc}", file=sys.stderr)
        return known[1]


if __name__ == "__main__":
    raise SystemExit(main())
