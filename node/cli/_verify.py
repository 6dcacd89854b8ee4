"""CLI: ``huxin verify``, an integrator's offline check of one attestation.

Exit 0 and the attestation printed when valid; exit 1 and
``error: REASON: ...`` (``--json``: ``{"valid": false, "reason": ...}``) when
verification fails; exit 2 for bad input.  It fails closed: a nonce and at
least one status list are required unless explicitly waived.

Status lists come from the trust bundle and from every ``--status FILE``, in
any order; the newest usable list of the attestation's issuer and list id
decides (docs/SPEC.md section 8, :func:`keys.select_status_list`).  Lists that
were skipped are reported as warnings (``warning: SOURCE: CODE: message`` on
stderr; ``warnings`` in ``--json``), whether the verdict is valid or not.

``--state FILE`` (docs/SPEC.md section 10) is a JSON object pinning the hub
key and the highest trust-list version accepted so far::

    {"hub_key": "<64 hex: hub root public key>", "version": <int >= 0>}

It is read (if it exists) before verifying: ``hub_key`` stands in for
``--hub-key`` (a different ``--hub-key`` is ``HUB_KEY_CHANGED``), ``version``
refuses older trust lists (``TRUST_ROLLBACK``).  After a valid verification
it is rewritten (atomically) with the hub key and the version just accepted.
Other keys are kept as they are; a file that is not such an object is
``INVALID_STATE``.

The verdict names the attestation's scenario and disclosure kind (docs/SPEC.md
section 10): a threshold attestation reads ``meets heihe/credit-loans (tier ≥ A
in heihe@2025.1)`` and shows no grade and no score; the scenario's title comes
from the bundle's hub-signed catalogue, which the verification itself requires
for every consented attestation (``SCENARIO_NOT_TRUSTED`` without it).

A mapped grade verifies only with its table in the bundle's hub-signed approved
list (``MAPPING_NOT_APPROVED`` otherwise, docs/SPEC.md section 6a); the verdict
names that approval: table id and version, ``approved by <authority> (批准)`` or
``filed with <authority> (备案)``, the date it is in force from (and until) and the
incentive reach it records (JSON ``approval``).

An attestation carrying a mapped grade (mutual recognition, N20) also lists the
target region's incentive scenarios that grade unlocks, from the same
hub-signed catalogue (``unlocks in hainan@2025.1: hainan/fast-lane ...``; JSON
``unlocks``), or says it unlocks none; grades are compared in the order of
the target scheme file shipped with the software (docs/adr/0205).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from keys import (
    STATUTORY,
    Attestation,
    KeysError,
    StatusCandidate,
    StatusWarning,
    Trust,
    VerificationError,
    VerifiedAttestation,
    load_trust,
    verify_attestation,
)
from keys.pb.v1 import attestation_pb2 as pb
from node.cli._main import CliError, SubParsers, add_id_number_args, id_number_arg
from node.cli._verify_approval import approval_doc, approval_text
from scoring import SchemeError, illustrative_suffix, load_scheme

__all__ = ["instant", "register_verify"]

MAX_STATUS_FILES = 64  # --status may be repeated up to this many times
_MAX_STATE_BYTES = 64 * 1024


def instant(text: str) -> datetime:
    """``--now``/``--at``: an ISO time (UTC if no zone) or Unix seconds."""
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), tz=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time or Unix seconds") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def register_verify(sub: SubParsers) -> None:
    p = sub.add_parser("verify", help="verify an attestation offline with a trust bundle")
    p.add_argument("file", type=Path, metavar="FILE", help="SignedAttestation bytes")
    p.add_argument("--trust", required=True, type=Path, metavar="BUNDLE")
    p.add_argument(
        "--hub-key",
        help="hub root public key: hex, or a file holding it (hex text or a JSON key file);"
        " default: pinned in --state",
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
    p.add_argument(
        "--status",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help=f"status list envelope file (repeatable, up to {MAX_STATUS_FILES}); with the"
        " bundle's lists, the newest usable one decides",
    )
    p.add_argument(
        "--no-status-check",
        action="store_true",
        help="UNSAFE: accept without a status list (revocation and withdrawal go unnoticed)",
    )
    p.add_argument("--allow-stale", action="store_true", help="accept an expired trust list")
    p.add_argument("--now", type=instant, help="ISO time or Unix seconds (default: clock)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_verify)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise CliError("FILE_NOT_READABLE", f"{what}: cannot read {str(path)!r}") from None


# ----------------------------------------------------------------------- state


def _load_state(path: Path | None) -> dict[str, Any]:
    """The ``--state`` object (module docstring); {} when there is no file yet."""
    if path is None or not path.exists():
        return {}
    data = _read(path, "--state")
    bad = CliError(
        "INVALID_STATE",
        f"--state {str(path)!r}: expected a JSON object "
        '{"hub_key": "<64 hex>", "version": <int >= 0>}',
    )
    if len(data) > _MAX_STATE_BYTES:
        raise bad
    try:
        state = json.loads(data)
    except ValueError:
        raise bad from None
    if not isinstance(state, dict):
        raise bad
    key, version = state.get("hub_key"), state.get("version", 0)
    if key is not None and not (isinstance(key, str) and _is_key_hex(key)):
        raise bad
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise bad
    return state


def _is_key_hex(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) == 32
    except ValueError:
        return False


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the file in one step (a rename), so an interrupted run never leaves half a state."""
    text = json.dumps(state, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hub_key(args: argparse.Namespace, state: dict[str, Any]) -> bytes:
    text: str | None = args.hub_key
    if text is None:
        if "hub_key" not in state:
            raise CliError("HUB_KEY_REQUIRED", "pass --hub-key (hex or key file) or --state")
        text = str(state["hub_key"])
    path = Path(text)
    if not _is_key_hex(text) and path.exists():
        text = _key_from_file(path)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise CliError("INVALID_ARGUMENT", "--hub-key must be hex or a key file") from None
    if len(key) != 32:
        raise CliError("INVALID_ARGUMENT", "--hub-key: an Ed25519 public key is 32 bytes (64 hex)")
    if "hub_key" in state and state["hub_key"] != key.hex():
        raise CliError("HUB_KEY_CHANGED", "hub key differs from the one pinned in --state", 1)
    return key


def _key_from_file(path: Path) -> str:
    """The hex key in a hub key file: hex text (``trust/<hub>.hubkey`` as ``huxin init
    federation`` writes it) or a JSON key file with ``public_key`` (``huxin keys init``)."""
    raw = _read(path, "hub key")
    try:
        text = raw.decode("ascii").strip()
        if _is_key_hex(text):
            return text
        return str(json.loads(text)["public_key"])
    except (ValueError, KeyError, TypeError):
        raise CliError(
            "INVALID_ARGUMENT",
            f"--hub-key: {str(path)!r} is not a hub key file (64 hex characters, as"
            " `huxin init federation` writes to trust/<hub>.hubkey, or JSON with"
            " 'public_key')",
        ) from None


# ---------------------------------------------------------------------- status


def _status_sources(
    args: argparse.Namespace, bundle_bytes: bytes
) -> tuple[list[StatusCandidate], list[str]]:
    """Every status list the caller holds (the bundle's, then each ``--status``) and a
    label for each, for warnings; authenticated later, by the library."""
    if len(args.status) > MAX_STATUS_FILES:
        raise CliError("INVALID_ARGUMENT", f"--status: at most {MAX_STATUS_FILES} files")
    candidates: list[StatusCandidate] = []
    labels: list[str] = []
    bundle = pb.TrustBundle()
    try:
        bundle.ParseFromString(bundle_bytes)
    except (DecodeError, ValueError):  # a bare trust-list envelope: no lists in it
        bundle = pb.TrustBundle()
    for i, env in enumerate(bundle.status_lists):
        candidates.append(env)
        labels.append(f"bundle status list {i}")
    for path in args.status:
        candidates.append(_read(path, "--status"))
        labels.append(f"--status {path}")
    return candidates, labels


def _warnings(warnings: tuple[StatusWarning, ...], labels: list[str]) -> list[dict[str, Any]]:
    return [{"source": labels[w.index], "code": w.code, "message": w.message} for w in warnings]


def _print_warnings(warnings: list[dict[str, Any]]) -> None:
    for w in warnings:
        print(f"warning: {w['source']}: {w['code']}: {w['message']}", file=sys.stderr)


def _nonce(text: str | None) -> bytes | None:
    if text is None:
        return None
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode("utf-8")


# --------------------------------------------------------------------- command


def _verify(args: argparse.Namespace) -> int:
    """Fail closed: a nonce and a status list are required unless explicitly waived."""
    now = args.now if args.now is not None else datetime.now(UTC)
    state = _load_state(args.state)
    bundle_bytes = _read(args.trust, "trust bundle")
    labels: list[str] = []
    try:
        trust: Trust = load_trust(
            bundle_bytes,
            _hub_key(args, state),
            now,
            min_version=int(state.get("version", 0)),
            allow_stale=args.allow_stale,
        )
        candidates, labels = _status_sources(args, bundle_bytes)
        if not candidates and not args.no_status_check:
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
            status=candidates or None,
        )
    except (VerificationError, KeysError, ValueError) as exc:
        code = exc.code if isinstance(exc, KeysError) else "INVALID_ARGUMENT"
        warnings = _warnings(getattr(exc, "warnings", ()), labels)
        if args.json:
            print(json.dumps({"valid": False, "reason": code, "warnings": warnings}))
        _print_warnings(warnings)
        print(f"error: {code}: {exc}", file=sys.stderr)
        return 1
    if args.state is not None:
        state.update(hub_key=_hub_key(args, state).hex(), version=max(trust.version, 0))
        _save_state(args.state, state)
    warnings = _warnings(result.warnings, labels)
    doc = _document(result, trust, args, warnings)
    _print_warnings(warnings)
    print(
        json.dumps(doc, sort_keys=True)
        if args.json
        else _text(result, trust, args, bool(candidates))
    )
    return 0


def _document(
    result: VerifiedAttestation,
    trust: Trust,
    args: argparse.Namespace,
    warnings: list[dict[str, Any]],
) -> dict[str, Any]:
    a = result.attestation
    return {
        "valid": True,
        "meets": _meets(a, trust),
        "unlocks": _unlocked(a, trust),
        "approval": approval_doc(a, trust),
        "key_id": result.key_id,
        "batched": result.batched,
        "status": result.status,
        "trust_stale": result.trust_stale,
        "trust_version": trust.version,
        "nonce_checked": args.nonce is not None,
        "warnings": warnings,
        "attestation": {
            "attestation_id": a.attestation_id,
            "issuer_region": a.issuer_region,
            "scheme": f"{a.scheme_id}@{a.scheme_version}",
            "scenario": a.scenario or None,
            "disclosure": a.disclosure,
            "threshold": None
            if a.threshold is None
            else {"scheme": a.threshold.scheme, "min_tier": a.threshold.min_tier},
            "grade": a.grade or None,
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
                "grade": a.mapped.grade or None,
                "scheme": f"{a.mapped.scheme_id}@{a.mapped.scheme_version}",
                "mapping": f"{a.mapped.mapping_id}@{a.mapped.mapping_version}",
                "mapping_sha256": a.mapped.mapping_sha256.hex(),
                "method": a.mapped.method,
            },
        },
    }


def _meets(a: Attestation, trust: Trust) -> str | None:
    """``meets <scenario> <title> (tier ≥ T in scheme@version)`` for a consented attestation."""
    if a.threshold is None:
        return None
    entry = (
        None
        if trust.scenarios is None
        else trust.scenarios.find(a.scenario, a.threshold.scheme_version)
    )
    title = f" {entry.title}" if entry is not None and entry.title else ""
    return f"meets {a.scenario}{title} (tier ≥ {a.threshold.min_tier} in {a.threshold.scheme})"


def _unlocked(a: Attestation, trust: Trust) -> list[str] | None:
    """The target scenarios a mapped grade unlocks (None: no mapped grade, or no way to
    tell).  A threshold attestation carries no mapped grade, only that it is at least the
    threshold's ``min_tier`` in the mapped scheme, so that tier is what is ranked.  Grades
    are those of the mapped scheme at ``mapped.scheme_version``: the shipped file of
    another version cannot say (None)."""
    m = a.mapped
    if m is None or trust.scenarios is None:
        return None
    at_least = m.grade
    th = a.threshold
    if (
        not at_least
        and th is not None
        and (th.scheme_id, th.scheme_version)
        == (
            m.scheme_id,
            m.scheme_version,
        )
    ):
        at_least = th.min_tier
    if not at_least:
        return None
    try:
        scheme = load_scheme(m.scheme_id)
    except SchemeError:
        return None
    if scheme.version != m.scheme_version or at_least not in scheme.grades:
        return None
    grades = scheme.grades
    rank = grades.index(at_least)
    return sorted(
        s.scenario
        for s in trust.scenarios.scenarios
        if s.scenario.startswith(f"{m.scheme_id}/")
        and s.scheme_version == m.scheme_version
        and s.min_tier in grades
        and rank <= grades.index(s.min_tier)
    )


def _unlocks_text(a: Attestation, trust: Trust) -> str:
    found = _unlocked(a, trust)
    if found is None or a.mapped is None:
        return ""
    scheme = f"{a.mapped.scheme_id}@{a.mapped.scheme_version}"
    if not found:
        return f"; unlocks none of {scheme}'s incentive scenarios"
    return f"; unlocks in {scheme}: {', '.join(found)}"


def _disclosed(a: Attestation, trust: Trust) -> str:
    """What the attestation says about the person, by its disclosure kind."""
    native = f"{a.scheme_id}@{a.scheme_version} grade {a.grade}" + (
        f" score {a.score}" if a.score is not None else ""
    )
    m = a.mapped
    note = illustrative_suffix(
        f"{a.scheme_id}@{a.scheme_version}",
        None if m is None else f"{m.scheme_id}@{m.scheme_version}",
        None if a.threshold is None else a.threshold.scheme,
    )
    if a.disclosure == STATUTORY:
        return f"{native}{note} (statutory push to the provincial platform, no consent)"
    meets = _meets(a, trust) or ""
    if a.disclosure == "threshold":
        via = "" if m is None else f", grade mapped by {m.mapping_id}@{m.mapping_version}"
        return (
            f"{meets}{note}{approval_text(a, trust)}{_unlocks_text(a, trust)} [disclosure "
            f"threshold: no grade, no score{via}]"
        )
    grade = (  # the grade asked for first: a mapped grade is what mutual recognition means
        native
        if m is None
        else f"{m.scheme_id}@{m.scheme_version} grade {m.grade} (mapped from {native} by "
        f"{m.mapping_id}@{m.mapping_version}, sha256 {m.mapping_sha256.hex()[:16]}…)"
    )
    return (
        f"{grade}{note}{approval_text(a, trust)}; {meets}{_unlocks_text(a, trust)} "
        f"[disclosure {a.disclosure}]"
    )


def _text(
    result: VerifiedAttestation, trust: Trust, args: argparse.Namespace, had_status: bool
) -> str:
    a = result.attestation
    stale = " (STALE trust list accepted)" if result.trust_stale else ""
    if args.no_status_check and not had_status:
        stale += " (status NOT checked)"
    if args.nonce is None:
        stale += " (nonce NOT checked)"
    return (
        f"VALID{stale}: {a.issuer_region} {_disclosed(a, trust)}"
        + f" period {a.period}, for {a.audience} ({a.purpose}), status {result.status}"
    )
