"""CLI: ``huxin catalogue show|fetch`` (N17; docs/adr/0511).

* ``huxin catalogue show --config node.toml [--json]`` prints the catalogue this
  node publishes (the scheme version in force, the operator's ``[catalogue]``
  version, date and guide): each scenario with the tier it requires, the grades
  that qualify and what the relying party sees, marked illustrative where the
  scheme's tiers are.  Nothing is signed and nothing is written.
* ``huxin catalogue fetch --config node.toml --peer REGION [--out FILE] [--json]``
  fetches ``REGION``'s signed catalogue over mutual TLS with this node's
  certificate, verifies it against the peer's key set from the trust material
  (:mod:`node.catalogue._fetch`), prints it, and with ``--out`` writes the
  envelope exactly as received (a serialised ``Envelope``; written to a
  temporary file and renamed, so a reader never sees half of it).

Exit 0 on success; 1 when the peer's catalogue does not verify or the peer
refuses (``error: REASON: ...``); 2 for bad input or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from grpc import aio

from keys import KeysError, VerificationError
from keys.pb.v1 import catalogue_pb2
from node.catalogue._fetch import fetch_catalogue
from node.catalogue._hub import hub_disagreements
from node.catalogue._publish import Publisher, catalogue_message
from node.catalogue._render import render_text
from node.cli._main import CliError, SubParsers, subgroup
from node.cli._storage import STORAGE_ERRORS, storage_failure
from node.core._config import ConfigError, NodeConfig, load_config
from node.core._errors import NodeError
from node.disclosure import trusted_scenarios
from node.rpc._client import reason_of
from scoring import load_scheme

__all__ = ["register"]

FETCH_TIMEOUT = 15.0  # seconds per call to the peer


def register(sub: SubParsers) -> None:
    group = subgroup(sub, "catalogue", "the incentive catalogue: this node's, or a peer's (N17)")
    p = group.add_parser("show", help="print the catalogue this node publishes")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
    p = group.add_parser("fetch", help="fetch a peer's signed catalogue and verify it")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--peer", required=True, metavar="REGION")
    p.add_argument("--out", type=Path, help="write the signed envelope as received")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_fetch)


def _config(path: Path) -> NodeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _as_json(cat: catalogue_pb2.Catalogue, **extra: object) -> str:
    doc = MessageToDict(
        cat, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    doc.update(extra)
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _show(args: argparse.Namespace) -> int:
    from node.cli._hub import scheme_in_force

    config = _config(args.config)
    shipped = load_scheme(config.scheme)
    today = datetime.now(UTC).date()
    file = config.storage.sqlite_path  # None on PostgreSQL: its database always exists
    held = file is None or file.exists()
    try:
        scheme = scheme_in_force(config.storage, shipped, today) if held else shipped
    except STORAGE_ERRORS as exc:
        raise storage_failure(config, exc) from None
    try:
        publisher = Publisher(config, scheme)
        cat = catalogue_message(publisher.catalogue(scheme))
    except (ConfigError, NodeError) as exc:
        raise CliError(exc.code, str(exc)) from None
    print(_as_json(cat) if args.json else render_text(cat), end="" if not args.json else "\n")
    return 0


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fetch(args: argparse.Namespace) -> int:
    config = _config(args.config)
    try:
        fetched = asyncio.run(
            fetch_catalogue(config, args.peer, int(time.time()), timeout=FETCH_TIMEOUT)
        )
    except aio.AioRpcError as err:
        raise CliError(
            reason_of(err) or err.code().name, f"{args.peer}: {err.details() or ''}", 1
        ) from None
    except (VerificationError, KeysError) as exc:
        raise CliError(exc.code, f"{args.peer}'s catalogue does not verify: {exc}", 1) from None
    except STORAGE_ERRORS as exc:  # the trust list it holds is read from [storage]
        raise storage_failure(config, exc) from None
    except NodeError as exc:
        raise CliError(exc.code, exc.message) from None
    except OSError as exc:
        raise CliError("FILE_NOT_READABLE", f"{exc.filename}: {exc.strerror}") from None
    if args.out is not None:
        try:
            _write(args.out, fetched.envelope.to_bytes())
        except OSError as exc:
            raise CliError("FILE_NOT_WRITABLE", f"{args.out}: {exc.strerror}") from None
    cat = fetched.catalogue
    differs = hub_disagreements(cat, trusted_scenarios())
    if args.json:
        print(
            _as_json(
                cat,
                signed_by=fetched.key_id,
                key_set_version=fetched.key_set_version,
                hub_disagreements=list(differs),
            )
        )
    else:
        print(render_text(cat), end="")
        print(f"verified: signed by {args.peer}'s key {fetched.key_id}", end="")
        print(f"; written to {args.out}" if args.out is not None else "")
        print(
            "the hub's scenario catalogue (what verifiers trust, docs/adr/0516): "
            + ("agrees" if not differs else f"{len(differs)} disagreement(s)")
        )
        for line in differs:
            print(f"  {line}")
    return 0
