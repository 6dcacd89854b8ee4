"""CLI: ``huxin mapping approve`` — the hub signs a table's approval record (批准或备案, H13).

``huxin mapping approve TABLE.json --key HUB_ROOT_KEYFILE --authority ID
--decision approved|filed [--min-reach 0.5] [--effective-from YYYY-MM-DD]
[--now TIME] --out FILE`` loads the table document (hash first), checks every
invariant and the incentive reach against the floor (:func:`mapping.approval_for`:
``INVARIANT_*``, ``INCENTIVE_REACH_TOO_LOW`` with the figure), signs the record
with the key (the hub root key, or a national authority's) and writes the
serialized envelope to ``--out`` (never over an existing file: ``OUTPUT_EXISTS``).
It prints the reach figure it recorded.  The hub puts records into its trust
bundle with ``huxin trust build --approval FILE`` (node/cli/_keys.py).

Both sides of the table must be shipped scheme versions (``SCHEME_MISMATCH``
otherwise: the reach is measured on that version's reference population).
Bounds: the table file at most 256 KiB and the key file at most 4 KiB
(``FILE_TOO_LARGE``); ``--authority`` 1-64 printable characters (the keys room refuses longer
ones, ``APPROVAL_INVALID``); ``--min-reach`` a share in [0, 1] (``BAD_FLOOR``).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

from keys import decode_private_key, is_encrypted_key
from mapping import table_from_document
from node.cli._main import CliError, SubParsers
from node.cli._verify import instant
from node.cli._verify_approval import DECISION_NAMES
from node.recognition._approvals import approve_table
from node.recognition._verify import MAX_TABLE_BYTES

__all__ = ["register_approve"]


def register_approve(group: SubParsers) -> None:
    p = group.add_parser("approve", help="sign a table's approval record (批准或备案) as the hub")
    p.add_argument("table", type=Path, metavar="TABLE.json")
    p.add_argument("--key", required=True, type=Path, metavar="KEYFILE", help="hub root key")
    p.add_argument("--passphrase-env", metavar="VAR", help="environment variable with it")
    p.add_argument("--authority", required=True, help="approving authority id (the hub's id)")
    p.add_argument("--decision", required=True, choices=sorted(DECISION_NAMES))
    p.add_argument("--min-reach", metavar="SHARE", help='refuse below this reach, e.g. "0.5"')
    p.add_argument("--effective-from", type=_date, metavar="YYYY-MM-DD")
    p.add_argument("--now", type=instant, help="ISO time or Unix seconds (default: clock)")
    p.add_argument("--out", required=True, type=Path, help="the signed record (envelope)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_approve)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


#: A key file (hex seed, or its encrypted form) is far below this.
MAX_KEY_FILE_BYTES = 4096


def _read(path: Path, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path`` (``FILE_TOO_LARGE`` beyond): an operator's
    wrong path to a huge file is refused without reading it into memory."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        raise CliError("FILE_NOT_READABLE", f"{what}: cannot read {str(path)!r}") from None
    if len(data) > limit:
        raise CliError("FILE_TOO_LARGE", f"{what}: {str(path)!r} is larger than {limit} bytes")
    return data


def _passphrase(var: str | None) -> bytes | None:
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise CliError("MISSING_PASSPHRASE", f"environment variable {var} is empty or unset")
    return value.encode("utf-8")


def _approve(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise CliError("OUTPUT_EXISTS", f"{str(args.out)!r} exists; approval records are kept")
    table = table_from_document(_read(args.table, "table", MAX_TABLE_BYTES))
    data = _read(args.key, "key file", MAX_KEY_FILE_BYTES)
    if is_encrypted_key(data) and not args.passphrase_env:
        raise CliError("BAD_PASSPHRASE", f"{args.key.name} is encrypted: pass --passphrase-env")
    key = decode_private_key(data, _passphrase(args.passphrase_env))
    now = args.now if args.now is not None else datetime.now(UTC)
    record = approve_table(
        table,
        key,
        authority=args.authority,
        decision=args.decision,
        issued_at=int(now.timestamp()),
        min_reach=args.min_reach,
        effective_from=args.effective_from,
    )
    try:  # "x": a record that appeared meanwhile is kept, never overwritten
        with args.out.open("xb") as fh:
            fh.write(record.to_bytes())
    except FileExistsError:
        raise CliError(
            "OUTPUT_EXISTS", f"{str(args.out)!r} exists; approval records are kept"
        ) from None
    a = record.approval
    ppm = a.reach_ppm
    reach = f"{ppm // 10_000}.{ppm % 10_000 // 100:02d}%"  # rounded down, like the record
    start = datetime.fromtimestamp(a.effective_from, UTC).date().isoformat()
    end = datetime.fromtimestamp(a.expires, UTC).date().isoformat() if a.expires else ""
    doc = {
        "table": f"{a.mapping_id}@{a.mapping_version}",
        "mapping_sha256": a.mapping_sha256.hex(),
        "source": f"{a.source_scheme_id}@{a.source_scheme_version}",
        "target": f"{a.target_scheme_id}@{a.target_scheme_version}",
        "decision": a.decision,
        "authority": a.authority,
        "effective_from": start,
        "expires": end or None,
        "reach_ppm": ppm,
        "reach_eligible": a.reach_eligible,
        "reach_kept": a.reach_kept,
        "key_id": key.key_id,
        "out": str(args.out),
    }
    if args.json:
        print(json.dumps(doc, sort_keys=True, ensure_ascii=False))
        return 0
    print(f"table    {doc['table']}  ({doc['source']} -> {doc['target']})")
    print(f"decision {a.decision} ({DECISION_NAMES[a.decision]}) by {a.authority}")
    print(f"in force from {start}" + (f" until {end}" if end else " (open-ended)"))
    print(f"reach    {reach} of the source's incentive-eligible residents stay eligible")
    print(f"wrote    {args.out}")
    return 0
