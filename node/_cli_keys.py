"""CLI: ``huxin keys init|rotate|revoke``, ``huxin trust build``, ``huxin verify``.

Key directory layout (same as ``huxin init`` writes under ``keys/``)::

    root.key     region root key (0600; passphrase-encrypted with --passphrase-env)
    signing.key  current signing key (0600)
    keyset.bin   KeySet envelope signed by the root key (public)

``rotate`` certifies a fresh signing key (the old public key stays in the key
set with its validity, so old attestations still verify; the old secret file
is overwritten).  ``revoke`` records a revocation time.  ``trust build`` signs
a trust bundle with the hub root key.  ``verify`` checks an attestation
offline: exit 0 and the attestation printed when valid, exit 1 and
``error: REASON: ...`` (``--json``: ``{"valid": false, "reason": ...}``)
otherwise.  Passphrases come from an environment variable, never a flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keys import (
    Envelope,
    KeyPair,
    KeysError,
    KeySet,
    Trust,
    TrustedRegion,
    TrustList,
    VerificationError,
    decode_private_key,
    encode_private_key,
    is_encrypted_key,
    load_trust,
    verify_attestation,
    verify_key_set,
    verify_status_list,
)
from node.pb.v1 import attestation_pb2 as pb

from ._cli import CliError, SubParsers, add_id_number_args, id_number_arg, subgroup

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    keys = subgroup(sub, "keys", "region root and signing keys")
    p = keys.add_parser("init", help="create a root key, a signing key and the signed key set")
    p.add_argument("--region", required=True)
    p.add_argument("--out", required=True, type=Path, help="key directory to create")
    p.add_argument("--days", type=int, default=90, help="signing key lifetime (default 90)")
    p.add_argument("--passphrase-env", metavar="VAR", help="encrypt root.key with $VAR")
    p.add_argument("--now", type=_instant, help="ISO time or Unix seconds (default: clock)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys_init)

    p = keys.add_parser("rotate", help="certify a new signing key; old keys stay published")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--passphrase-env", metavar="VAR")
    p.add_argument("--now", type=_instant)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys_rotate)

    p = keys.add_parser("revoke", help="revoke a signing key from a time on")
    p.add_argument("key_id", metavar="KEY_ID")
    p.add_argument("--at", required=True, type=_instant, help="ISO time or Unix seconds")
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
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--passphrase-env", metavar="VAR")
    p.add_argument("--now", type=_instant)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_trust_build)

    p = sub.add_parser("verify", help="verify an attestation offline with a trust bundle")
    p.add_argument("file", type=Path, metavar="FILE", help="SignedAttestation bytes")
    p.add_argument("--trust", required=True, type=Path, metavar="BUNDLE")
    p.add_argument(
        "--hub-key",
        help="hub root public key: hex, or a key file; default: pinned in --state",
    )
    p.add_argument("--state", type=Path, help="JSON file pinning hub key and highest version")
    p.add_argument("--audience", required=True)
    p.add_argument("--nonce", help="expected nonce (UTF-8 text, or hex: prefix)")
    p.add_argument(
        "--no-nonce",
        action="store_true",
        help="UNSAFE: accept without checking a nonce (replays go unnoticed)",
    )
    add_id_number_args(p, "subject-id")
    p.add_argument("--salt", metavar="HEX", help="binding salt from the consent")
    p.add_argument("--status", type=Path, help="status list envelope file")
    p.add_argument(
        "--no-status-check",
        action="store_true",
        help="UNSAFE: accept without a status list (revocation and withdrawal go unnoticed)",
    )
    p.add_argument("--allow-stale", action="store_true", help="accept an expired trust list")
    p.add_argument("--now", type=_instant)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_verify)


# --------------------------------------------------------------------- helpers


def _instant(text: str) -> datetime:
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), tz=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time or Unix seconds") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise CliError("FILE_NOT_READABLE", f"{what}: cannot read {str(path)!r}") from None


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
    bundle = pb.TrustBundle(trust_list=env.to_proto())
    for path in args.status:
        bundle.status_lists.append(Envelope.from_bytes(_read(path, "status list")).to_proto())
    args.out.write_bytes(bundle.SerializeToString())
    doc = {
        "issuer": args.issuer,
        "version": args.version,
        "hub_key": hub.public_key.hex(),
        "regions": [r.region for r in regions],
    }
    _emit(args, doc, f"trust list v{args.version} by {args.issuer}: {len(regions)} regions")
    return 0


def _hub_key(args: argparse.Namespace, state: dict[str, Any]) -> bytes:
    text: str | None = args.hub_key
    if text is None:
        if "hub_key" not in state:
            raise CliError("HUB_KEY_REQUIRED", "pass --hub-key (hex or key file) or --state")
        text = str(state["hub_key"])
    path = Path(text)
    if path.exists():
        try:
            text = str(json.loads(_read(path, "hub key"))["public_key"])
        except (ValueError, KeyError, TypeError):  # binary, not JSON, no public_key
            raise CliError(
                "INVALID_ARGUMENT",
                f"--hub-key: {str(path)!r} is not a hub key file (JSON with 'public_key', "
                "as `huxin init federation` writes to trust/<hub>.hubkey)",
            ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise CliError("INVALID_ARGUMENT", "--hub-key must be hex or a key file") from None
    if len(key) != 32:
        raise CliError("INVALID_ARGUMENT", "--hub-key: an Ed25519 public key is 32 bytes (64 hex)")
    if "hub_key" in state and state["hub_key"] != key.hex():
        raise CliError("HUB_KEY_CHANGED", "hub key differs from the one pinned in --state", 1)
    return key


def _nonce(text: str | None) -> bytes | None:
    if text is None:
        return None
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode("utf-8")


def _verify(args: argparse.Namespace) -> int:
    """Fail closed: a nonce and a status list are required unless explicitly waived."""
    now = _now(args)
    state: dict[str, Any] = {}
    if args.state is not None and args.state.exists():
        state = json.loads(_read(args.state, "state"))
    bundle_bytes = _read(args.trust, "trust bundle")
    try:
        trust: Trust = load_trust(
            bundle_bytes,
            _hub_key(args, state),
            now,
            min_version=int(state.get("version", 0)),
            allow_stale=args.allow_stale,
        )
        bundle = pb.TrustBundle()
        bundle.ParseFromString(bundle_bytes)
        status = [verify_status_list(e, trust, now) for e in bundle.status_lists]
        if args.status is not None:
            status.append(verify_status_list(_read(args.status, "status list"), trust, now))
        if not status and not args.no_status_check:
            raise CliError(
                "STATUS_REQUIRED",
                "--status: no status list in the bundle or given (or --no-status-check)",
            )
        if args.nonce is None and not args.no_nonce:
            raise CliError("NONCE_REQUIRED", "--nonce: give the nonce you sent (or --no-nonce)")
        salt = bytes.fromhex(args.salt) if args.salt else None
        result = verify_attestation(
            _read(args.file, "attestation"),
            trust,
            now,
            args.audience,
            nonce=_nonce(args.nonce),
            subject_id=id_number_arg(args, "subject-id"),
            binding_salt=salt,
            status=status or None,
        )
    except (VerificationError, KeysError, ValueError) as exc:
        code = exc.code if isinstance(exc, KeysError) else "INVALID_ARGUMENT"
        if args.json:
            print(json.dumps({"valid": False, "reason": code}))
        print(f"error: {code}: {exc}", file=sys.stderr)
        return 1
    if args.state is not None:
        state.update(hub_key=_hub_key(args, state).hex(), version=max(trust.version, 0))
        args.state.write_text(json.dumps(state, sort_keys=True) + "\n", encoding="utf-8")
    a = result.attestation
    doc: dict[str, Any] = {
        "valid": True,
        "key_id": result.key_id,
        "batched": result.batched,
        "status": result.status,
        "trust_stale": result.trust_stale,
        "trust_version": trust.version,
        "attestation": {
            "attestation_id": a.attestation_id,
            "issuer_region": a.issuer_region,
            "scheme": f"{a.scheme_id}@{a.scheme_version}",
            "grade": a.grade,
            "score": a.score,
            "period": a.period,
            "model_version": a.model_version,
            "issued_at": a.issued_at,
            "expires_at": a.expires_at,
            "audience": a.audience,
            "purpose": a.purpose,
            "consent_id": a.consent_id,
            "mapped": None
            if a.mapped is None
            else {
                "grade": a.mapped.grade,
                "scheme": f"{a.mapped.scheme_id}@{a.mapped.scheme_version}",
                "mapping": f"{a.mapped.mapping_id}@{a.mapped.mapping_version}",
                "mapping_sha256": a.mapped.mapping_sha256.hex(),
                "method": a.mapped.method,
            },
        },
    }
    stale = " (STALE trust list accepted)" if result.trust_stale else ""
    if args.no_status_check and not status:
        stale += " (status NOT checked)"
    if args.nonce is None:
        stale += " (nonce NOT checked)"
    doc["nonce_checked"] = args.nonce is not None
    native = f"{a.scheme_id}@{a.scheme_version} grade {a.grade}" + (
        f" score {a.score}" if a.score is not None else ""
    )
    m = a.mapped
    grade = (  # the grade asked for first: a mapped grade is what mutual recognition means
        native
        if m is None
        else f"{m.scheme_id}@{m.scheme_version} grade {m.grade} (mapped from {native} by "
        f"{m.mapping_id}@{m.mapping_version}, sha256 {m.mapping_sha256.hex()[:16]}…)"
    )
    text = (
        f"VALID{stale}: {a.issuer_region} {grade}"
        + f" period {a.period}, for {a.audience} ({a.purpose}), status {result.status}"
    )
    _emit(args, doc, text)
    return 0
