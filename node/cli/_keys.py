"""CLI: ``huxin keys init|rotate|revoke``, ``huxin trust build``, ``huxin verify``.

Key directory layout (same as ``huxin init`` writes under ``keys/``)::

    root.key     region root key (0600; passphrase-encrypted with --passphrase-env)
    signing.key  current signing key (0600)
    keyset.bin   KeySet envelope signed by the root key (public)

``rotate`` certifies a fresh signing key (the old public key stays in the key
set with its validity, so old attestations still verify; the old secret file
is overwritten).  ``revoke`` records a revocation time.  ``trust build`` signs
a trust bundle with the hub root key (with ``--approval FILE``, repeatable, the
hub-signed list of approved mapping tables, each record opened under the hub key
or an ``--authority-key ID=HEX`` first).  ``verify`` checks an attestation
offline: exit 0 and the attestation printed when valid, exit 1 and
``error: REASON: ...`` (``--json``: ``{"valid": false, "reason": ...}``)
otherwise (node/cli/_verify.py).  Passphrases come from an environment
variable, never a flag.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keys import (
    MAX_APPROVAL_FIELD_CHARS,
    Envelope,
    KeyPair,
    KeySet,
    TrustedRegion,
    TrustList,
    decode_private_key,
    encode_private_key,
    is_encrypted_key,
    verify_key_set,
)
from keys.pb.v1 import attestation_pb2 as pb
from node.cli._main import CliError, SubParsers, subgroup
from node.cli._verify import instant, register_verify
from node.disclosure import shipped_catalogue
from node.recognition._approvals import approved_list
from node.recognition._load import hub_regions
from node.recognition._verify import MAX_APPROVAL_BYTES

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    keys = subgroup(sub, "keys", "region root and signing keys")
    p = keys.add_parser("init", help="create a root key, a signing key and the signed key set")
    p.add_argument("--region", required=True)
    p.add_argument("--out", required=True, type=Path, help="key directory to create")
    p.add_argument("--days", type=int, default=90, help="signing key lifetime (default 90)")
    p.add_argument("--passphrase-env", metavar="VAR", help="encrypt root.key with $VAR")
    p.add_argument("--now", type=instant, help="ISO time or Unix seconds (default: clock)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys_init)

    p = keys.add_parser("rotate", help="certify a new signing key; old keys stay published")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--passphrase-env", metavar="VAR")
    p.add_argument("--now", type=instant)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys_rotate)

    p = keys.add_parser("revoke", help="revoke a signing key from a time on")
    p.add_argument("key_id", metavar="KEY_ID")
    p.add_argument("--at", required=True, type=instant, help="ISO time or Unix seconds")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--reason", default="")
    p.add_argument("--passphrase-env", metavar="VAR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys_revoke)

    trust = subgroup(sub, "trust", "hub trust lists")
    p = trust.add_parser("build", help="sign a trust bundle over regions' key sets")
    p.add_argument("--hub-root", required=True, type=Path, help="hub root key file")
    p.add_argument("--issuer", required=True, help="hub id")
    p.add_argument("--region-dir", action="append", default=[], type=Path, required=True)
    p.add_argument("--scheme", action="append", default=[], metavar="REGION=ID@VERSION")
    p.add_argument("--endpoint", action="append", default=[], metavar="REGION=HOST:PORT")
    p.add_argument("--version", required=True, type=int)
    p.add_argument("--days", type=int, default=7, help="validity (anti-freeze), default 7")
    p.add_argument("--status", action="append", default=[], type=Path, help="status list env")
    p.add_argument(
        "--approval",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a mapping table's approval record (huxin mapping approve), at most 16 KiB; repeatable",
    )
    p.add_argument(
        "--authority-key",
        action="append",
        default=[],
        metavar="ID=HEX",
        help="a national approving authority's public key (the hub is one under --issuer)",
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--passphrase-env", metavar="VAR")
    p.add_argument("--now", type=instant)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_trust_build)

    register_verify(sub)


# --------------------------------------------------------------------- helpers


def _now(args: argparse.Namespace) -> datetime:
    return args.now if args.now is not None else datetime.now(UTC)


def _passphrase(args: argparse.Namespace) -> bytes | None:
    var = getattr(args, "passphrase_env", None)
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise CliError("MISSING_PASSPHRASE", f"environment variable {var} is empty or unset")
    return value.encode("utf-8")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read(path: Path, what: str, limit: int | None = None) -> bytes:
    """The file's bytes; with ``limit``, at most that many (``FILE_TOO_LARGE`` beyond,
    without reading the rest)."""
    try:
        if limit is None:
            return path.read_bytes()
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        raise CliError("FILE_NOT_READABLE", f"{what}: cannot read {str(path)!r}") from None
    if len(data) > limit:
        raise CliError("FILE_TOO_LARGE", f"{what}: {str(path)!r} is larger than {limit} bytes")
    return data


def _load_key(path: Path, args: argparse.Namespace) -> KeyPair:
    data = _read(path, "key file")
    passphrase = _passphrase(args) if is_encrypted_key(data) else None
    if is_encrypted_key(data) and passphrase is None:
        raise CliError("BAD_PASSPHRASE", f"{path.name} is encrypted: pass --passphrase-env VAR")
    return decode_private_key(data, passphrase)


def _emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, sort_keys=True) if args.json else text)


def _load_dir(directory: Path, args: argparse.Namespace) -> tuple[KeyPair, KeySet]:
    root = _load_key(directory / "root.key", args)
    ks = verify_key_set(_read(directory / "keyset.bin", "key set"), root.public_key)
    return root, ks


# -------------------------------------------------------------------- commands


def _keys_init(args: argparse.Namespace) -> int:
    out: Path = args.out
    if (out / "root.key").exists():
        raise CliError("ALREADY_EXISTS", f"{str(out / 'root.key')!r} exists; refusing to overwrite")
    now = _now(args)
    root, signing = KeyPair.generate(), KeyPair.generate()
    ks = KeySet.new(args.region, root.public_key, now).add_key(
        signing.public_key, now, now + timedelta(days=args.days)
    )
    _write_private(out / "root.key", encode_private_key(root, _passphrase(args)))
    _write_private(out / "signing.key", encode_private_key(signing))
    (out / "keyset.bin").write_bytes(ks.sign(root, now).to_bytes())
    doc = {"region": args.region, "root_key_id": root.key_id, "signing_key_id": signing.key_id}
    _emit(args, doc, f"region {args.region}: root {root.key_id}, signing {signing.key_id}")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    now = _now(args)
    root, ks = _load_dir(args.dir, args)
    new = KeyPair.generate()
    ks = ks.add_key(new.public_key, now, now + timedelta(days=args.days))
    (args.dir / "keyset.bin").write_bytes(ks.sign(root, now).to_bytes())
    _write_private(args.dir / "signing.key", encode_private_key(new))
    doc = {"region": ks.region, "signing_key_id": new.key_id, "version": ks.version}
    _emit(args, doc, f"region {ks.region}: new signing key {new.key_id} (key set v{ks.version})")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    root, ks = _load_dir(args.dir, args)
    ks = ks.revoke(args.key_id, args.at, args.reason)
    (args.dir / "keyset.bin").write_bytes(ks.sign(root, datetime.now(UTC)).to_bytes())
    doc = {"region": ks.region, "revoked": args.key_id, "at": args.at.isoformat()}
    _emit(args, doc, f"region {ks.region}: key {args.key_id} revoked from {args.at.isoformat()}")
    return 0


def _pairs(values: list[str], flag: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        region, sep, item = v.partition("=")
        if not sep or not region or not item:
            raise CliError("INVALID_ARGUMENT", f"{flag} {v!r}: expected REGION=VALUE")
        out.setdefault(region, []).append(item)
    return out


def _authority_keys(values: list[str]) -> dict[str, bytes]:
    """``--authority-key ID=HEX`` → {id: raw key}; ids 1-64 characters, keys 32 bytes."""
    out: dict[str, bytes] = {}
    for v in values:
        name, _, hex_key = v.partition("=")
        try:
            key = bytes.fromhex(hex_key)
        except ValueError:
            key = b""
        if not 0 < len(name) <= MAX_APPROVAL_FIELD_CHARS or len(key) != 32:
            raise CliError("INVALID_ARGUMENT", "--authority-key: expected ID=<64 hex chars>")
        out[name] = key
    return out


def _trust_build(args: argparse.Namespace) -> int:
    now = _now(args)
    hub = _load_key(args.hub_root, args)
    schemes, endpoints = _pairs(args.scheme, "--scheme"), _pairs(args.endpoint, "--endpoint")
    regions = []
    for d in args.region_dir:
        root_doc = json.loads(_read(d / "root.key", "root key"))
        root_pk = bytes.fromhex(root_doc["public_key"])
        env_bytes = _read(d / "keyset.bin", "key set")
        ks = verify_key_set(env_bytes, root_pk)
        regions.append(
            TrustedRegion(
                region=ks.region,
                root_public_key=root_pk,
                key_set=Envelope.from_bytes(env_bytes),
                name=ks.region,
                schemes=tuple(schemes.get(ks.region, ())),
                endpoints=tuple(endpoints.get(ks.region, ())),
            )
        )
    regions.sort(key=lambda r: r.region)
    issued = int(now.timestamp())
    tl = TrustList(args.issuer, args.version, issued, issued + args.days * 86400, tuple(regions))
    env = tl.sign(hub)
    catalogue = shipped_catalogue(args.issuer, issued, hub)  # offline verifiers' scenarios
    bundle = pb.TrustBundle(trust_list=env.to_proto(), scenarios=catalogue.to_proto())
    if args.approval:  # the tables a mapped grade may cite (H13, docs/adr/0206)
        authorities = {**_authority_keys(args.authority_key), args.issuer: hub.public_key}
        # one record is at most MAX_APPROVAL_BYTES (16 KiB), as the node reads it
        records = [(str(p), _read(p, "approval record", MAX_APPROVAL_BYTES)) for p in args.approval]
        mine = hub_regions(((r.region, r.endpoints) for r in regions), args.issuer, args.issuer)
        listed = approved_list(args.issuer, issued, records, authorities, hub, hub_regions=mine)
        bundle.mapping_approvals.CopyFrom(listed.to_proto())
    for path in args.status:
        bundle.status_lists.append(Envelope.from_bytes(_read(path, "status list")).to_proto())
    args.out.write_bytes(bundle.SerializeToString())
    doc = {
        "issuer": args.issuer,
        "version": args.version,
        "hub_key": hub.public_key.hex(),
        "regions": [r.region for r in regions],
        "approvals": len(args.approval),
    }
    _emit(args, doc, f"trust list v{args.version} by {args.issuer}: {len(regions)} regions")
    return 0
