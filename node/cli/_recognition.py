"""CLI: ``huxin mapping install|list|retire`` — the node's governed tables (C3, H13).

* ``install --config NODE.toml FILE [--approval FILE]`` verifies the table (hash,
  the signatures its method needs, invariants against both schemes at their
  versions, the ``[mapping] min_reach`` floor) and the approval (signed by an
  authority of the node, covering exactly that table), then stores both;
  ``install --config NODE.toml --from-peer REGION`` does the same for every table
  the peer serves (``ListMappings`` over mutual TLS with the node's certificate),
  keeping a peer's approval only if it opens under this node's authorities.
* ``list --config NODE.toml [--json]``: every table of ``[mapping]`` and every
  installed one (retired included): id, version, method, source -> target
  versions, hash, the approval (authority, decision, effective dates) or "not
  approved: cannot issue", origin, retirement.
* ``retire --config NODE.toml HASH_OR_ID``: the table is never used again; its row
  stays for audit.

A serving node picks up an install or a retirement within a few seconds
(:mod:`node.recognition._follow`).  Exit status: 0 done; 1 a table or approval
refused by verification (``error: CODE: ...``, the code of
:mod:`node.recognition._verify`, e.g. ``HASH_MISMATCH``,
``MISSING_PARTY_SIGNATURE``, ``INCENTIVE_REACH_TOO_LOW`` with the figure); 2 bad
input (unreadable file, bad config, unknown table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from grpc import aio

from keys import KeysError, VerificationError
from mapping import MappingTable
from node.cli._main import CliError, SubParsers
from node.core._config import ConfigError, NodeConfig, load_config
from node.core._errors import NodeError
from node.core._secrets import load_secrets
from node.model._rollout import rollout_schemes
from node.recognition._governed import Approved, Governed, GovernedSet
from node.recognition._install import install, parse_hash_or_id, peer_tables, retire
from node.recognition._load import Verifier, config_part, read_file
from node.recognition._verify import MAX_APPROVAL_BYTES, MAX_TABLE_BYTES, TableRefused
from node.rpc._client import reason_of
from node.store import Connection, StorageError, connect
from node.store._mapping_tables import installed_rows

__all__ = ["register_tables"]

PEER_TIMEOUT = 15.0
_INPUT_CODES = frozenset({"FILE_NOT_READABLE", "FILE_TOO_LARGE", "BAD_ARGUMENT", "NOT_INSTALLED"})


def register_tables(group: SubParsers) -> None:
    """Add install/list/retire to the ``huxin mapping`` group."""
    p = group.add_parser("install", help="verify and install a table on the node")
    p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
    p.add_argument("file", nargs="?", type=Path, metavar="FILE")
    p.add_argument("--approval", type=Path, metavar="FILE", help="its approval envelope")
    p.add_argument("--from-peer", metavar="REGION", help="install the tables REGION serves")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_install)

    p = group.add_parser("list", help="the node's tables and their approvals")
    p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = group.add_parser("retire", help="stop using an installed table")
    p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
    p.add_argument("table", metavar="HASH_OR_ID")
    p.set_defaults(func=_retire)


def _refused(exc: TableRefused) -> CliError:
    return CliError(exc.code, str(exc), 2 if exc.code in _INPUT_CODES else 1)


def _config(path: Path) -> NodeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _held_trust(config: NodeConfig, now: int) -> Any:
    if config.federation is None:
        return None
    from node.catalogue._fetch import held_trust  # the catalogue room reaches node.disclosure

    try:
        return held_trust(config, now)
    except (NodeError, VerificationError, KeysError):
        return None  # no verified trust list: only the node's own keys verify anything


def _verifier(config: NodeConfig, conn: Connection, now: int) -> Verifier:
    try:
        secrets = load_secrets(config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    from scoring import load_scheme

    shipped = load_scheme(config.scheme)
    return Verifier.for_node(
        config,
        _held_trust(config, now),
        secrets.key_set,
        [shipped, *rollout_schemes(conn, shipped)],
    )


def _open(database: Path, *, create: bool) -> Connection:
    """The node's database, migrated as the node migrates it at start; without ``create``
    a node that never ran (no database) is ``DB_NOT_FOUND``."""
    try:
        return connect(database, create=create)
    except StorageError as exc:
        raise CliError(exc.code, str(exc)) from None


def _today() -> date:
    return datetime.now(UTC).date()


def _approval_text(a: Approved | None) -> str:
    if a is None:
        return "not approved: cannot issue"
    r = a.record
    until = datetime.fromtimestamp(r.expires, UTC).date().isoformat() if r.expires else "open-ended"
    since = datetime.fromtimestamp(r.effective_from, UTC).date().isoformat()
    return f"{r.decision} by {r.authority}, in force {since} .. {until}"


def _row(g: Governed, today: date) -> dict[str, Any]:
    t = g.table
    in_force = g.approval_on(today)
    shown = in_force or (g.approvals[0] if g.approvals else None)
    out: dict[str, Any] = {
        "id": t.id,
        "version": t.version,
        "method": t.method.value,
        "source": t.source.key,
        "target": t.target.key,
        "sha256": t.content_hash,
        "origin": g.origin,
        "retired_at": g.retired_at,
        "approved": in_force is not None,
        "approval": None,
    }
    if shown is not None:
        r = shown.record
        out["approval"] = {
            "authority": r.authority,
            "decision": r.decision,
            "effective_from": r.effective_from,
            "expires": r.expires,
            "reach_ppm": r.reach_ppm,
            "in_force_today": in_force is not None,
        }
    out["approval_text"] = (
        _approval_text(in_force)
        if in_force or not shown
        else f"not approved today ({g.why_not_approved(today)}): cannot issue"
    )
    return out


def _print_one(row: dict[str, Any]) -> None:
    retired = f"  retired {row['retired_at']}" if row["retired_at"] else ""
    print(
        f"{row['id']}@{row['version']}  {row['method']}  {row['source']} -> {row['target']}"
        f"  {row['sha256']}  origin {row['origin']}{retired}"
    )
    print(f"  {row['approval_text']}")


def _install(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.from_peer is None):
        raise CliError("USAGE", "give either FILE or --from-peer REGION")
    if args.from_peer is not None and args.approval is not None:
        raise CliError("USAGE", "--approval goes with FILE; a peer serves its own approvals")
    config = _config(args.config)
    now = int(time.time())
    now_iso = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    conn = _open(config.database, create=True)
    try:
        verifier = _verifier(config, conn, now)
        if args.file is not None:
            done = [
                _install_file(conn, verifier, args.file, args.approval, now=now, now_iso=now_iso)
            ]
            refused: list[TableRefused] = []
        else:
            done, refused = _install_peer(
                conn, config, verifier, args.from_peer, now=now, now_iso=now_iso
            )
    except TableRefused as exc:
        raise _refused(exc) from None
    finally:
        conn.close()
    today = _today()
    rows = [_row(g, today) for g in done]
    if args.json:
        print(json.dumps({"installed": rows, "refused": [_refusal(e) for e in refused]}))
    else:
        for row in rows:
            print("installed:", end=" ")
            _print_one(row)
        for e in refused:
            print(f"refused: {e.code}: {e}")
    if refused:
        first = refused[0]
        raise CliError(
            first.code, f"{len(refused)} table(s) or approval(s) from {args.from_peer} refused", 1
        )
    return 0


def _refusal(e: TableRefused) -> dict[str, str]:
    return {"code": e.code, "what": e.what, "message": e.message}


def _install_file(
    conn: Connection,
    verifier: Verifier,
    path: Path,
    approval_path: Path | None,
    *,
    now: int,
    now_iso: str,
) -> Governed:
    verified = verifier.table(read_file(path, MAX_TABLE_BYTES), str(path))
    approval = None
    if approval_path is not None:
        data = read_file(approval_path, MAX_APPROVAL_BYTES)
        approval = verifier.approval(data, str(approval_path))
        verifier.in_scope(approval, str(approval_path))
    install(conn, verified, approval, origin="file", now=now, now_iso=now_iso)
    return GovernedSet.of([(verified.table, "file")], [approval] if approval else []).tables[0]


def _install_peer(
    conn: Connection,
    config: NodeConfig,
    verifier: Verifier,
    peer: str,
    *,
    now: int,
    now_iso: str,
) -> tuple[list[Governed], list[TableRefused]]:
    try:
        served = asyncio.run(peer_tables(config, peer, now, timeout=PEER_TIMEOUT))
    except aio.AioRpcError as err:
        raise CliError(
            reason_of(err) or err.code().name, f"{peer}: {err.details() or ''}", 1
        ) from None
    except NodeError as exc:
        raise CliError(exc.code, exc.message) from None
    except OSError as exc:
        raise CliError("FILE_NOT_READABLE", f"{exc.filename}: {exc.strerror}") from None
    done: list[Governed] = []
    refused: list[TableRefused] = []
    origin = f"peer:{peer}"
    for i, item in enumerate(served):
        what = f"peer {peer} table {i}"
        try:
            verified = verifier.table(item.content, what)
        except TableRefused as exc:
            refused.append(exc)
            continue
        approval = None
        if item.approval:
            try:  # a peer's approval counts only under this node's own authorities
                approval = verifier.approval(item.approval, what)
                verifier.in_scope(approval, what)
            except TableRefused as exc:
                approval = None
                refused.append(exc)
        try:
            install(conn, verified, approval, origin=origin, now=now, now_iso=now_iso)
        except TableRefused as exc:
            refused.append(exc)
            if approval is None or exc.code != "MAPPING_NOT_APPROVED":
                continue  # the table itself cannot be installed (e.g. TOO_MANY_TABLES)
            # only the peer's approval does not cover it: the table is kept, unapproved
            install(conn, verified, None, origin=origin, now=now, now_iso=now_iso)
            approval = None
        done.append(
            GovernedSet.of([(verified.table, origin)], [approval] if approval else []).tables[0]
        )
    return done, refused


def _list(args: argparse.Namespace) -> int:
    config = _config(args.config)
    now = int(time.time())
    conn = _open(config.database, create=False)
    try:
        verifier = _verifier(config, conn, now)
        try:
            part = config_part(config, verifier)
        except ConfigError as exc:
            raise CliError(exc.code, str(exc)) from None
        rows = installed_rows(conn, retired=True)
    finally:
        conn.close()
    today = _today()
    out: list[dict[str, Any]] = []
    approvals = list(part.approvals)
    tables: list[tuple[MappingTable, str, str | None]] = [(t, "config", None) for t in part.tables]
    refused: list[dict[str, str]] = []
    for r in rows:
        what = f"installed {r.mapping_id}@{r.mapping_version}"
        try:
            tables.append((verifier.table(r.content, what).table, r.origin, r.retired_at))
        except TableRefused as exc:
            refused.append(_refusal(exc))
            continue
        if r.approval is not None:
            try:
                approvals.append(verifier.approval(r.approval, what))
            except TableRefused as exc:
                refused.append(_refusal(exc))
    for table, origin, retired_at in tables:
        g = GovernedSet.of([(table, origin)], approvals).tables[0]
        row = _row(g, today)
        row["retired_at"] = retired_at
        out.append(row)
    if args.json:
        print(json.dumps({"tables": out, "refused": refused}, ensure_ascii=False))
        return 0
    if not out:
        print("no mapping tables: nothing can be mapped (huxin mapping install)")
    for row in out:
        _print_one(row)
    for e in refused:
        print(f"refused: {e['code']}: {e['what']}: {e['message']}")
    return 0


def _retire(args: argparse.Namespace) -> int:
    config = _config(args.config)
    now_iso = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        key = parse_hash_or_id(args.table)
        conn = _open(config.database, create=False)
        try:
            done = retire(conn, key, now_iso)
        finally:
            conn.close()
    except TableRefused as exc:
        raise _refused(exc) from None
    for name in done:
        print(f"retired: {name} (a serving node stops using it within seconds)")
    return 0
