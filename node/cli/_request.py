"""CLI: ``huxin request``, a bank asking its node for an attestation (issue 19).

::

    huxin request --node HOST:PORT|https://HOST:PORT --ca CA.pem --cert BANK.pem
        --key BANK.key --consent FILE --subject-id-file FILE --out ATTESTATION
        [--nonce TEXT|hex:HEX] [--salt HEX] [--purpose SCENARIO]
        [--target-scheme SCHEME] [--server-name NAME] [--timeout SECONDS] [--json]

The bank (an integrator of its region's node, with a client certificate the node
registered: ``huxin client issue``) holds what the citizen handed over — the
consent token and its binding salt — and the applicant's ID number, which it reads
from the ID card.  The command computes the subject binding ``HMAC(salt, ID)``
itself (the ID number never leaves the bank), sends the request with a nonce and
writes the signed attestation to ``--out`` exactly as received, for
``huxin verify OUT --nonce ... --salt ... --subject-id-file ...``; it prints that
nonce and salt (``--json``: as one object), never the ID number.

Channel: ``--node HOST:PORT`` is the node's peer port (gRPC over mutual TLS, as
every integrator client so far); ``--node https://HOST:PORT`` is the node's
mutual-TLS HTTP listener (``POST /api/v1/attestations``, JSON).  Both present the
client certificate and check the node against ``--ca``; the node answers with the
same reasons on both (docs/adr/0803).

``--consent FILE`` (``-``: stdin, at most 16 KiB) holds the citizen's handover in
any of its forms: the JSON of the citizen API's ``ConsentToken`` (``token`` the
serialised envelope in base64, ``consent_id``, ``binding_salt``; a ``preview`` is
ignored; protobuf's own JSON mapping is read too), the copyable text of
the citizen's page (``HUXIN-CONSENT-1:`` then the serialised ``ConsentToken`` in
base64url; the bare base64 or base64url is read too), or the serialised message.  ``--salt`` stands in for a handover without the salt;
``--purpose`` defaults to the consent's scenario.

Exit codes: 0 written; 2 bad input, refused here before anything is sent, or by
the node as malformed (``INVALID_ARGUMENT``), the message naming the flag; 1 the
node refused a well-formed request (a withdrawn or used-up consent, an unknown
client) or could not be reached.  Errors print ``error: REASON: --flag: message``
and never the ID number or the token.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError
from grpc import aio

from keys import subject_binding
from node.cli._main import CliError, SubParsers, add_id_number_args, id_number_arg
from node.core._errors import InvalidArgumentError
from node.exchange._request_form import NONCE_MAX, NONCE_MIN, check_attestation_request
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import field_of, peer_channel, reason_of
from scoring import RecordError, normalise_id_number

__all__ = ["CONSENT_MAX_BYTES", "HANDOVER_PREFIX", "decode_consent", "register"]

#: the largest ``--consent`` file read: a token is at most 4 KiB of payload plus
#: a few signatures (node/exchange/_request_form.py), whatever its encoding
CONSENT_MAX_BYTES = 16 * 1024
#: the salt the node hands out is 32 bytes; keys.subject_binding needs at least 16
SALT_MIN, SALT_MAX = 16, 64
DEFAULT_TIMEOUT = 30.0
#: the request field a node's refusal names -> the flag the bank set it with
_FLAG_OF = {
    "consent_token": "--consent",
    "subject_binding": "--subject-id/--salt",
    "nonce": "--nonce",
    "purpose": "--purpose",
    "target_scheme": "--target-scheme",
}
_API_PATH = "/api/v1/attestations"
#: the copyable text of the citizen's page (node/web/static/pages/grant.js): this
#: prefix, then the serialised ConsentToken in base64url
HANDOVER_PREFIX = b"HUXIN-CONSENT-1:"


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "request", help="a bank asks its node for an attestation with a citizen's consent"
    )
    p.add_argument(
        "--node",
        required=True,
        metavar="HOST:PORT|URL",
        help="the node's peer port (gRPC) or https://HOST:PORT of its mutual-TLS HTTP listener",
    )
    p.add_argument("--ca", required=True, type=Path, metavar="FILE", help="federation CA (PEM)")
    p.add_argument("--cert", required=True, type=Path, metavar="FILE", help="bank's certificate")
    p.add_argument("--key", required=True, type=Path, metavar="FILE", help="bank's private key")
    p.add_argument(
        "--consent",
        required=True,
        type=Path,
        metavar="FILE",
        help="the citizen's handover: JSON, copyable text or bytes ('-' = stdin)",
    )
    add_id_number_args(p, "subject-id", required=True)
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="attestation file")
    p.add_argument(
        "--nonce",
        help=f"UTF-8 text or hex:HEX, {NONCE_MIN}-{NONCE_MAX} bytes (default: 16 random bytes)",
    )
    p.add_argument("--salt", metavar="HEX", help="binding salt, if not in the handover")
    p.add_argument("--purpose", metavar="SCENARIO", help="default: the consent's scenario")
    p.add_argument("--target-scheme", default="", metavar="SCHEME", help="map the grade into")
    p.add_argument("--server-name", metavar="NAME", help="the name in the node's certificate")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_request)


# --------------------------------------------------------------------- inputs


def _read(path: Path, flag: str, limit: int | None = None) -> bytes:
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1 if limit else -1)
        else:
            with path.open("rb") as fh:
                data = fh.read(limit + 1 if limit else -1)
    except OSError:
        raise CliError("FILE_NOT_READABLE", f"{flag}: cannot read {str(path)!r}") from None
    if limit is not None and len(data) > limit:
        raise CliError("INVALID_ARGUMENT", f"{flag}: more than {limit} bytes")
    return data


def _bad_consent(message: str) -> CliError:
    return CliError("INVALID_CONSENT", f"--consent: {message}")


def _from_json(text: bytes) -> node_pb2.ConsentToken:
    """The citizen API's JSON (``token`` one base64 string of the serialised envelope,
    ``binding_salt`` base64, node/http/_codec.py) or protobuf's JSON mapping of it."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError
        token = node_pb2.ConsentToken(
            consent_id=str(doc.get("consent_id") or doc.get("consentId") or ""),
            binding_salt=base64.b64decode(
                doc.get("binding_salt") or doc.get("bindingSalt") or "", validate=True
            ),
        )
        envelope = doc.get("token")
        if isinstance(envelope, str):
            token.token.ParseFromString(base64.b64decode(envelope, validate=True))
        elif isinstance(envelope, dict):
            ParseDict(envelope, token.token, ignore_unknown_fields=True)
        else:
            raise ValueError
    except (ValueError, TypeError, ParseError, DecodeError, binascii.Error):
        raise _bad_consent("not the JSON of a consent token") from None
    return token


def decode_consent(data: bytes) -> node_pb2.ConsentToken:
    """The ``ConsentToken`` in a handover (module docstring: JSON, base64 text or bytes).

    Raises :class:`CliError` ``INVALID_CONSENT`` naming ``--consent``; the content is
    never echoed.  Only the form is checked: the node checks the signature."""
    text = data.strip()
    token = node_pb2.ConsentToken()
    if text.startswith(b"{"):
        token = _from_json(text)
    else:
        raw = data
        if text.startswith(HANDOVER_PREFIX):
            text = text[len(HANDOVER_PREFIX) :]
            if not text:
                raise _bad_consent("nothing follows HUXIN-CONSENT-1:")
        elif re.match(rb"HUXIN-CONSENT-[0-9]+:", text):
            raise _bad_consent("a handover of another version than HUXIN-CONSENT-1")
        if text and text.isascii() and b"\x00" not in text:
            # text: base64url (the page's) or base64, padding optional, every
            # character checked (a stray one is an error, not silently dropped)
            compact = b"".join(text.split()).replace(b"+", b"-").replace(b"/", b"_")
            try:
                raw = base64.b64decode(
                    compact + b"=" * (-len(compact) % 4), altchars=b"-_", validate=True
                )
            except (binascii.Error, ValueError):
                raise _bad_consent("neither base64 text nor a serialised consent token") from None
        try:
            token.ParseFromString(raw)
        except DecodeError:
            raise _bad_consent("not a serialised consent token") from None
    if not token.token.payload:
        raise _bad_consent("holds no signed consent (token.payload is empty)")
    try:
        node_pb2.ConsentGrant.FromString(token.token.payload)
    except DecodeError:
        raise _bad_consent("the token's payload is not a consent grant") from None
    return token


def _salt(args: argparse.Namespace, token: node_pb2.ConsentToken) -> bytes:
    if args.salt is not None:
        try:
            salt = bytes.fromhex(args.salt)
        except ValueError:
            raise CliError("INVALID_ARGUMENT", "--salt: must be hex") from None
    else:
        salt = token.binding_salt
        if not salt:
            raise CliError(
                "SALT_REQUIRED", "--salt: the handover holds no binding salt; give --salt HEX"
            )
    if not SALT_MIN <= len(salt) <= SALT_MAX:
        raise CliError("INVALID_ARGUMENT", f"--salt: must be {SALT_MIN}-{SALT_MAX} bytes")
    return salt


def _nonce(text: str | None) -> bytes:
    if text is None:
        return os.urandom(16)
    if text.startswith("hex:"):
        try:
            nonce = bytes.fromhex(text[4:])
        except ValueError:
            raise CliError("NONCE_INVALID", "--nonce: hex: must be followed by hex") from None
    else:
        nonce = text.encode("utf-8")
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise CliError("NONCE_INVALID", f"--nonce: must be {NONCE_MIN}-{NONCE_MAX} bytes")
    return nonce


def _id_number(args: argparse.Namespace) -> str:
    value = id_number_arg(args, "subject-id")
    if value is None:
        raise CliError("INVALID_ID_NUMBER", "--subject-id-file: holds no ID number")
    try:
        return normalise_id_number(value)
    except RecordError as exc:  # the message names the rule, never the value
        raise CliError(exc.code, f"--subject-id: {exc.message}") from None


@dataclass(frozen=True)
class _Prepared:
    request: node_pb2.AttestationRequest
    consent_id: str
    salt: bytes


def _prepare(args: argparse.Namespace) -> _Prepared:
    """Everything checked here first, so a bad input costs no round trip and the
    node's form check (the same function) can only agree."""
    if str(args.consent) == "-" and str(args.subject_id_file) == "-":
        raise CliError("INVALID_ARGUMENT", "--consent: stdin is already --subject-id-file's")
    token = decode_consent(_read(args.consent, "--consent", CONSENT_MAX_BYTES))
    grant = node_pb2.ConsentGrant.FromString(token.token.payload)
    salt = _salt(args, token)
    request = node_pb2.AttestationRequest(
        consent_token=token.token,
        subject_binding=subject_binding(salt, _id_number(args)),
        nonce=_nonce(args.nonce),
        target_scheme=args.target_scheme,
        purpose=args.purpose if args.purpose is not None else grant.purpose,
    )
    try:
        check_attestation_request(request)
    except InvalidArgumentError as exc:
        raise CliError(exc.code, f"{_FLAG_OF.get(exc.field, exc.field)}: {exc.message}") from None
    if not 0 < args.timeout <= 600:
        raise CliError("INVALID_ARGUMENT", "--timeout: must be more than 0 and at most 600")
    return _Prepared(request, grant.consent_id, salt)


# ------------------------------------------------------------------ channels


def _refused(reason: str, field: str, message: str, malformed: bool) -> CliError:
    """The node's refusal, its field as the bank's flag; a gRPC message repeats the
    reason and the field in front (node.rpc._status.map_error): said once here."""
    for prefix in (f"{reason}: ", f"{field}: " if field else None):
        if prefix and message.startswith(prefix):
            message = message[len(prefix) :]
    where = f"{_FLAG_OF.get(field, field)}: " if field else ""
    return CliError(reason, f"the node refused: {where}{message}", 2 if malformed else 1)


async def _over_grpc(args: argparse.Namespace, request: node_pb2.AttestationRequest) -> bytes:
    channel = peer_channel(
        args.node,
        _read(args.ca, "--ca"),
        _read(args.cert, "--cert"),
        _read(args.key, "--key"),
        server_name=args.server_name,
    )
    try:
        stub = node_pb2_grpc.PeerServiceStub(channel)
        response = await stub.RequestAttestation(request, timeout=args.timeout)
    except aio.AioRpcError as err:
        reason = reason_of(err)
        if not reason:  # no answer of the node: TLS, connection, deadline
            raise CliError(
                "NODE_UNAVAILABLE", f"--node {args.node}: {err.code().name}: {err.details()}", 1
            ) from None
        malformed = err.code().name == "INVALID_ARGUMENT"
        raise _refused(reason, field_of(err), err.details() or "", malformed) from None
    finally:
        await channel.close(None)
    return bytes(response.signed_attestation)


async def _over_http(args: argparse.Namespace, request: node_pb2.AttestationRequest) -> bytes:
    import ssl

    import aiohttp

    tls = ssl.create_default_context(cadata=_read(args.ca, "--ca").decode("ascii", "replace"))
    try:
        tls.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError):
        raise CliError("FILE_NOT_READABLE", "--cert/--key: cannot load the client pair") from None
    b64 = base64.b64encode
    body = {
        "consent_token": b64(request.consent_token.SerializeToString()).decode(),
        "subject_binding": b64(request.subject_binding).decode(),
        "nonce": b64(request.nonce).decode(),
        "target_scheme": request.target_scheme,
        "purpose": request.purpose,
    }
    url = args.node.rstrip("/") + _API_PATH
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=body, ssl=tls, server_hostname=args.server_name) as resp,
        ):
            doc: Any = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CliError("NODE_UNAVAILABLE", f"--node {args.node}: {type(exc).__name__}", 1) from None
    if status != 200:
        if not isinstance(doc, dict) or not isinstance(doc.get("reason"), str):
            raise CliError("NODE_UNAVAILABLE", f"--node {args.node}: HTTP {status}", 1)
        malformed = doc.get("code") == "INVALID_ARGUMENT"
        raise _refused(
            doc["reason"], str(doc.get("field") or ""), str(doc.get("message")), malformed
        )
    try:
        return base64.b64decode(doc["signed_attestation"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise CliError("NODE_UNAVAILABLE", f"--node {args.node}: not an attestation", 1) from None


# -------------------------------------------------------------------- command


def _write(path: Path, data: bytes) -> None:
    """One rename, so ``huxin verify`` never reads half an attestation."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError:
        raise CliError(
            "FILE_NOT_WRITABLE", f"--out: cannot write in {str(path.parent)!r}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise CliError("FILE_NOT_WRITABLE", f"--out: cannot write {str(path)!r}") from None


def _request(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    over = _over_http if args.node.startswith("https://") else _over_grpc
    signed = asyncio.run(over(args, prepared.request))
    _write(args.out, signed)
    nonce = "hex:" + prepared.request.nonce.hex()
    doc = {
        "out": str(args.out),
        "bytes": len(signed),
        "consent_id": prepared.consent_id,
        "purpose": prepared.request.purpose,
        "nonce": nonce,
        "salt": prepared.salt.hex(),
        "channel": "http" if over is _over_http else "grpc",
    }
    if args.json:
        print(json.dumps(doc))
    else:
        print(
            f"wrote {args.out} ({len(signed)} bytes) for {prepared.request.purpose};"
            f" check it with: huxin verify {args.out} --trust BUNDLE --hub-key HUB_KEY"
            f" --audience YOUR_ID --nonce {nonce} --salt {doc['salt']}"
            " --subject-id-file FILE"
        )
    return 0
