"""Generate (or check) the published Huxin test vectors: tests/vectors/huxin_vectors.json.

Everything is deterministic: fixed key seeds, fixed times, fixed payloads;
Ed25519 signatures are deterministic, messages are serialised with
protobuf's deterministic mode once, then only copied, and status-list bits use
the canonical zlib stream of docs/SPEC.md section 5 (keys/_deflate.py), not the
local zlib compressor, whose output varies between zlib builds.  The file holds the
keys, a PAE example, a key set, trust bundles (with the hub-signed scenario
catalogue and approved mappings list), a status list, valid single and batched attestations (with Merkle
root and proofs), threshold and statutory attestations, and one failing case
per reason code with the verifier inputs and the expected code.  The scenario
catalogue of the vectors is fixed here, not read from the shipped schemes, so
the vectors do not change when a scheme's catalogue does.  An
implementation in another language checks itself against it (docs/SPEC.md).

``--check`` fails if the committed file differs from a fresh generation
(tests/unit/keys/test_vectors.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from keys import (
    ATTESTATION_TYPE,
    MAX_SIGNATURES,
    STATUSLIST_TYPE,
    STATUTORY_PURPOSE,
    TRUSTLIST_TYPE,
    Attestation,
    Envelope,
    EnvelopeSignature,
    KeyPair,
    KeySet,
    MappedGrade,
    ScenarioCatalogue,
    StatusList,
    Threshold,
    TrustedRegion,
    TrustedScenario,
    TrustList,
    issue_attestation,
    issue_batch,
    pae,
    sign,
    sign_approved_mappings,
    sign_checkpoint,
    subject_binding,
)
from keys._deflate import compress
from keys.pb.v1 import attestation_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "vectors" / "huxin_vectors.json"

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z, the verification time of every case
DAY = 86_400
MIN_BYTES = 131_072 // 4  # the bitstring of a list of the minimum size
AUDIENCE = "hainan-bank-001"
NONCE = b"nonce-0001"
SALT = bytes(range(32))
SUBJECT = "23110219900517123X"  # synthetic, valid MOD 11-2
HUB = "hlj-hub"
CREDIT = "heihe/credit-loans"  # allows grade and score
RENTAL = "heihe/deposit-free-rental"  # threshold only
BANK = "hainan-jinyefen/bank-credit"  # another scheme's scenario, threshold only
SCENARIOS = (
    TrustedScenario(CREDIT, "2024", "A", "grade_and_score", "信用贷款、优先授信、利率优惠"),
    TrustedScenario(RENTAL, "2024", "A", "threshold", "图书、应急日用品租借免押金"),
    TrustedScenario(BANK, "2025", "AA", "threshold", "银行信用贷款、信用卡优惠"),
)


def _key(label: str) -> KeyPair:
    return KeyPair(label.encode("ascii").ljust(32, b"\x00"))


def _att(**changes: Any) -> Attestation:
    base = Attestation(
        attestation_id="heihe-2026-10-000001",
        issuer_region="heihe",
        scheme_id="heihe",
        scheme_version="2024",
        grade="AA",
        period="2026-10",
        model_version="heihe-2024.1",
        issued_at=T0 - 3600,
        expires_at=T0 + 7 * DAY,
        subject_binding=subject_binding(SALT, SUBJECT),
        consent_id="consent-0042",
        consent_sha256=bytes.fromhex("42" * 32),
        audience=AUDIENCE,
        purpose=CREDIT,
        nonce=NONCE,
        status_list_id="heihe-2026-11",
        status_index=3,
        score=780,
        mapped=_mapped("A"),
        scenario=CREDIT,
        disclosure="grade_and_score",
        threshold=Threshold("heihe", "2024", "A"),
    )
    return replace(base, **changes)


def _mapped(grade: str, table: int = 7) -> MappedGrade:
    """A mapped grade citing the table whose hash is 32 bytes of ``table`` (see _APPROVED)."""
    return MappedGrade(
        grade, "hainan-jinyefen", "2025", "heihe-to-hainan", "1", bytes([table]) * 32, "anchored"
    )


def _approval(table: int, **changes: Any) -> pb.MappingApproval:
    fields: dict[str, Any] = {
        "mapping_sha256": bytes([table]) * 32,
        "mapping_id": "heihe-to-hainan",
        "mapping_version": "1",
        "method": "anchored",
        "source_scheme_id": "heihe",
        "source_scheme_version": "2024",
        "source_region": "heihe",
        "target_scheme_id": "hainan-jinyefen",
        "target_scheme_version": "2025",
        "target_region": "hainan",
        "effective_from": T0 - 400 * DAY,
        "decision": "approved",
        "authority": HUB,
        "reach_eligible": 887_500,
        "reach_kept": 887_500,
        "reach_ppm": 1_000_000,
        "issued_at": T0 - 400 * DAY,
        **changes,
    }
    return pb.MappingApproval(**fields)


#: The hub's approved list: table 7 in force (批准), table 8 expired, table 9 not yet in
#: force, table 10 approved for another source scheme version (备案); table 11 unlisted.
_APPROVED = (
    _approval(7),
    _approval(8, expires=T0 - 30 * DAY),
    _approval(9, effective_from=T0 + DAY),
    _approval(10, source_scheme_version="2023", decision="filed"),
)


def _threshold(**changes: Any) -> Attestation:
    """ "meets heihe/deposit-free-rental (tier ≥ A in heihe@2024)": no grade, no score."""
    fields: dict[str, Any] = {
        "purpose": RENTAL,
        "scenario": RENTAL,
        "disclosure": "threshold",
        "grade": "",
        "score": None,
        "mapped": None,
    }
    return _att(**{**fields, **changes})


def _statutory(**changes: Any) -> Attestation:
    """A monthly snapshot leaf for the hub: grade and score, no consent, no scenario."""
    fields: dict[str, Any] = {
        "audience": HUB,
        "purpose": STATUTORY_PURPOSE,
        "consent_id": "",
        "consent_sha256": b"",
        "nonce": b"",
        "status_list_id": "",
        "status_index": None,
        "mapped": None,
        "scenario": "",
        "disclosure": "statutory",
        "threshold": None,
    }
    return _att(**{**fields, **changes})


def _contradicting(att: Attestation, edit: Any) -> bytes:
    """Payload bytes of ``att`` edited after the issuer's own check (which would refuse)."""
    m = att.to_proto()
    edit(m)
    return m.SerializeToString(deterministic=True)


def _rewrap(blob: bytes, edit: Any) -> bytes:
    m = pb.SignedAttestation()
    m.ParseFromString(blob)
    edit(m)
    return m.SerializeToString(deterministic=True)


def _flip_signature(env: Envelope) -> Envelope:
    s = env.signatures[0]
    flipped = EnvelopeSignature(s.key_id, bytes([s.sig[0] ^ 1]) + s.sig[1:])
    return Envelope(env.payload_type, env.payload, (flipped,))


def _with_signatures(payload: bytes, *parts: tuple[KeyPair, bool]) -> bytes:
    """A single attestation envelope with one signature per (key, broken) pair."""
    sigs = []
    for key, broken in parts:
        sig = key.sign(pae(ATTESTATION_TYPE, payload))
        sigs.append(EnvelopeSignature(key.key_id, bytes([sig[0] ^ 1]) + sig[1:] if broken else sig))
    env = Envelope(ATTESTATION_TYPE, payload, tuple(sigs))
    return pb.SignedAttestation(envelope=env.to_proto()).SerializeToString(deterministic=True)


def _signed_payload(payload: bytes, key: KeyPair) -> bytes:
    env = sign(ATTESTATION_TYPE, payload, key)
    return pb.SignedAttestation(envelope=env.to_proto()).SerializeToString(deterministic=True)


def _status_env(key: KeyPair, issued: int, expires: int, states: dict[int, int]) -> Envelope:
    sl = StatusList("heihe", "heihe-2026-11")
    for index, state in states.items():
        sl.set(index, state)  # type: ignore[arg-type]
    return sl.sign(key, issued, expires)


def _edited_status(key: KeyPair, edit: Any = None, **fields: Any) -> Envelope:
    """An all-valid status list with ``fields`` set in the message and then its payload
    bytes passed through ``edit``, before signing."""
    m = StatusList("heihe", "heihe-2026-11").to_proto(T0 - 60, T0 + DAY)
    for name, value in fields.items():
        setattr(m, name, value)
    payload = m.SerializeToString(deterministic=True)
    return sign(STATUSLIST_TYPE, payload if edit is None else edit(payload), key)


def build() -> dict[str, Any]:
    hub = _key("huxin-vector-hub-root")
    heihe_root = _key("huxin-vector-heihe-root")
    old = _key("huxin-vector-heihe-signing-1")
    cur = _key("huxin-vector-heihe-signing-2")
    revoked = _key("huxin-vector-heihe-signing-3")
    hainan_root = _key("huxin-vector-hainan-root")
    hainan = _key("huxin-vector-hainan-signing-1")
    stranger = _key("huxin-vector-stranger")

    ks = KeySet.new("heihe", heihe_root.public_key, T0 - 400 * DAY)
    ks = ks.add_key(old.public_key, T0 - 400 * DAY, T0 - 30 * DAY)
    ks = ks.add_key(cur.public_key, T0 - 31 * DAY, T0 + 365 * DAY)
    ks = ks.add_key(revoked.public_key, T0 - 31 * DAY, T0 + 365 * DAY)
    ks = ks.revoke(revoked.key_id, T0 - 10 * DAY, "compromised")
    hs = KeySet.new("hainan", hainan_root.public_key, T0 - 400 * DAY).add_key(
        hainan.public_key, T0 - 100 * DAY, T0 + 365 * DAY
    )
    ks_env = ks.sign(heihe_root)
    regions = (
        TrustedRegion(
            "hainan",
            hainan_root.public_key,
            hs.sign(hainan_root),
            name="Hainan",
            schemes=("hainan-jinyefen@2025",),
        ),
        TrustedRegion(
            "heihe",
            heihe_root.public_key,
            ks_env,
            name="Heihe",
            schemes=("heihe@2024",),
            endpoints=("127.0.0.1:7001",),
        ),
    )
    status = StatusList("heihe", "heihe-2026-11")
    for index, state in ((7, 1), (8, 2), (9, 3)):
        status.set(index, state)  # type: ignore[arg-type]
    status_env = status.sign(cur, T0 - 600, T0 + DAY)
    trust_v2 = TrustList(HUB, 2, T0 - DAY, T0 + 30 * DAY, regions).sign(hub)
    trust_v1 = TrustList(HUB, 1, T0 - 9 * DAY, T0 + 30 * DAY, regions).sign(hub)
    trust_expired = TrustList(HUB, 3, T0 - 60 * DAY, T0 - DAY, regions).sign(hub)
    scenarios = ScenarioCatalogue.of(HUB, T0 - DAY, SCENARIOS).sign(hub)
    approvals = sign_approved_mappings(HUB, T0 - DAY, _APPROVED, hub)
    approvals_by_region = sign(
        approvals.payload_type, approvals.payload, heihe_root
    )  # the same list signed by a key other than the hub's

    trust_future = TrustList(HUB, 4, T0 + DAY, T0 + 30 * DAY, regions).sign(hub)
    trust_unknown_field = sign(
        TRUSTLIST_TYPE,
        TrustList(HUB, 4, T0 - DAY, T0 + 30 * DAY, regions, hub.public_key)
        .to_proto()
        .SerializeToString(deterministic=True)
        + b"\xf8\x07\x01",  # field 127, which TrustList does not define
        hub,
    )
    # Status lists of the "which list decides" cases (docs/SPEC.md section 8); the
    # attestation of those cases has status index 3, valid in the bundle's list.
    lists = {
        "fresh_revoked": _status_env(cur, T0 - 60, T0 + DAY, {3: 1}),
        "fresh_valid": _status_env(cur, T0 - 60, T0 + DAY, {}),
        "older_suspended": _status_env(cur, T0 - 7200, T0 + DAY, {3: 2}),
        "expired": _status_env(cur, T0 - 2 * DAY, T0 - DAY, {}),
        "bad_signature": _flip_signature(_status_env(cur, T0 - 30, T0 + DAY, {})),
        "future_dated": _status_env(cur, T0 + 3600, T0 + 2 * DAY, {}),
        "zlib_trailing_bytes": _edited_status(cur, bits=compress(bytes(MIN_BYTES)) + b"\0"),
        "invalid_utf8": _edited_status(cur, lambda p: p.replace(b"heihe-2026", b"heihe-\xff026")),
    }

    def bundle(
        env: Any,
        *status_lists: Envelope,
        catalogue: Envelope | None = scenarios,
        approved: Envelope | None = approvals,
    ) -> str:
        return (
            pb.TrustBundle(
                trust_list=env.to_proto(),
                status_lists=[e.to_proto() for e in status_lists or (status_env,)],
                scenarios=None if catalogue is None else catalogue.to_proto(),
                mapping_approvals=None if approved is None else approved.to_proto(),
            )
            .SerializeToString(deterministic=True)
            .hex()
        )

    single = issue_attestation(_att(), cur)
    batch_atts = [_att(attestation_id=f"heihe-2026-10-b{i:05d}", nonce=b"") for i in range(5)]
    batch = issue_batch(batch_atts, cur, "heihe", T0 - 60)
    other_batch = issue_batch(
        [_att(attestation_id=f"heihe-2026-10-c{i:05d}", nonce=b"") for i in range(5)],
        cur,
        "heihe",
        T0 - 60,
    )
    other_cp = pb.SignedAttestation()
    other_cp.ParseFromString(other_batch.bundle(2))
    forged_cp = sign_checkpoint(hainan, "heihe", 5, batch.root, T0 - 60)
    wrong_type = pb.SignedAttestation(
        envelope=sign("application/json", _att().to_bytes(), cur).to_proto()
    ).SerializeToString(deterministic=True)

    default = {"trust": "trust_v2", "min_version": 2, "audience": AUDIENCE}

    def case(name: str, blob: bytes, expect: str, *warnings: str, **params: Any) -> dict[str, Any]:
        p = {**default, **params}
        return {
            "name": name,
            "blob": blob.hex(),
            "params": p,
            "expect": expect,
            "expect_warnings": list(warnings),
        }

    payload = _att().to_bytes()
    assert payload.count(b"heihe-2026-10-000001") == 1

    full = {"nonce": NONCE.hex(), "subject_id": SUBJECT, "binding_salt": SALT.hex()}
    cases = [
        case("valid_single", single, "VALID", **full, use_status=True),
        case("valid_batched", batch.bundle(2), "VALID", use_status=True),
        case(
            "valid_old_key_after_rotation",
            issue_attestation(_att(issued_at=T0 - 40 * DAY, expires_at=T0 + DAY), old),
            "VALID",
        ),
        case("malformed", b"\xff\x00not-a-message", "MALFORMED"),
        case("wrong_payload_type", wrong_type, "WRONG_PAYLOAD_TYPE"),
        case("unknown_key", issue_attestation(_att(), stranger), "UNKNOWN_KEY"),
        case(
            "bad_signature",
            _rewrap(
                single,
                lambda m: setattr(
                    m.envelope.signatures[0],
                    "sig",
                    bytes([m.envelope.signatures[0].sig[0] ^ 1]) + m.envelope.signatures[0].sig[1:],
                ),
            ),
            "BAD_SIGNATURE",
        ),
        case("issuer_mismatch", issue_attestation(_att(), hainan), "ISSUER_MISMATCH"),
        case(
            "checkpoint_signed_by_other_region",
            _rewrap(batch.bundle(1), lambda m: m.batched.checkpoint.CopyFrom(forged_cp.to_proto())),
            "ISSUER_MISMATCH",
        ),
        case("key_not_valid", issue_attestation(_att(), old), "KEY_NOT_VALID"),
        case("key_revoked", issue_attestation(_att(), revoked), "KEY_REVOKED"),
        case(
            "batch_proof_for_other_tree",
            _rewrap(
                batch.bundle(2),
                lambda m: m.batched.checkpoint.CopyFrom(other_cp.batched.checkpoint),
            ),
            "BAD_PROOF",
        ),
        case(
            "expired",
            issue_attestation(_att(issued_at=T0 - 9 * DAY, expires_at=T0 - 1), cur),
            "EXPIRED",
        ),
        case(
            "not_yet_valid",
            issue_attestation(_att(issued_at=T0 + 3600, expires_at=T0 + 2 * DAY), cur),
            "NOT_YET_VALID",
        ),
        case(
            "scheme_not_trusted",
            issue_attestation(
                _att(scheme_version="1999", threshold=Threshold("heihe", "1999", "A")), cur
            ),
            "SCHEME_NOT_TRUSTED",
        ),
        case("wrong_audience", single, "WRONG_AUDIENCE", audience="another-bank"),
        case(
            "nonce_missing",
            issue_attestation(_att(nonce=b""), cur),
            "NONCE_MISSING",
            nonce=NONCE.hex(),
        ),
        case("nonce_mismatch", single, "NONCE_MISMATCH", nonce=b"replayed".hex()),
        case(
            "subject_mismatch",
            single,
            "SUBJECT_MISMATCH",
            subject_id="110101199003074477",
            binding_salt=SALT.hex(),
        ),
        case(
            "status_revoked",
            issue_attestation(_att(status_index=7), cur),
            "STATUS_REVOKED",
            use_status=True,
        ),
        case(
            "status_suspended",
            issue_attestation(_att(status_index=8), cur),
            "STATUS_SUSPENDED",
            use_status=True,
        ),
        case(
            "status_superseded",
            issue_attestation(_att(status_index=9), cur),
            "STATUS_SUPERSEDED",
            use_status=True,
        ),
        case(
            "status_unavailable",
            issue_attestation(_att(status_list_id="heihe-1999-01"), cur),
            "STATUS_UNAVAILABLE",
            use_status=True,
        ),
        case("trust_rollback", single, "TRUST_ROLLBACK", trust="trust_v1"),
        case("trust_expired", single, "TRUST_EXPIRED", trust="trust_expired", min_version=0),
        case("trust_invalid", single, "TRUST_INVALID", trust="trust_v2", hub_key="heihe_root"),
        # -- which status list decides (docs/SPEC.md section 8) ----------------------
        case("status_stale_bundle_list_fresh_revoked", single, "STATUS_REVOKED",
             use_status=True, status_lists=["fresh_revoked"]),
        case("status_two_bundle_lists_newer_last", single, "STATUS_REVOKED",
             trust="trust_v2_stale_then_fresh", use_status=True),
        case("status_two_bundle_lists_newer_first", single, "STATUS_REVOKED",
             trust="trust_v2_fresh_then_stale", use_status=True),
        case("status_newer_valid_lifts_older_suspension", single, "VALID",
             use_status=True, status_lists=["older_suspended"]),
        case("status_expired_bundle_list_fresh_valid", single, "VALID", "EXPIRED",
             trust="trust_v2_expired_list", use_status=True, status_lists=["fresh_valid"]),
        case("status_bad_signature_bundle_list_fresh_valid", single, "VALID", "BAD_SIGNATURE",
             trust="trust_v2_bad_signature_list", use_status=True, status_lists=["fresh_valid"]),
        case("status_future_dated_list_cannot_override", single, "STATUS_REVOKED",
             "NOT_YET_VALID", status_lists=["fresh_revoked", "future_dated"]),
        case("status_none_usable", single, "STATUS_UNAVAILABLE", "EXPIRED", "BAD_SIGNATURE",
             trust="trust_v2_expired_list", use_status=True, status_lists=["bad_signature"]),
        # -- a broken status list never decides (docs/SPEC.md sections 5 and 8) -------
        case("status_list_zlib_trailing_bytes", single, "STATUS_UNAVAILABLE", "MALFORMED",
             status_lists=["zlib_trailing_bytes"]),
        case("status_list_invalid_utf8", single, "STATUS_UNAVAILABLE", "MALFORMED",
             status_lists=["invalid_utf8"]),
        case("status_list_future_dated", single, "STATUS_UNAVAILABLE", "NOT_YET_VALID",
             status_lists=["future_dated"]),
        # -- several signatures (docs/SPEC.md section 2, docs/adr/0112) --------------
        case("signatures_bad_then_good", _with_signatures(payload, (old, True), (cur, False)),
             "BAD_SIGNATURE"),
        case("signatures_good_then_bad", _with_signatures(payload, (cur, False), (old, True)),
             "BAD_SIGNATURE"),
        case("signatures_unknown_then_good",
             _with_signatures(payload, (stranger, False), (cur, False)), "VALID"),
        case("signatures_too_many",
             _with_signatures(payload, *[(cur, False)] * (MAX_SIGNATURES + 1)), "MALFORMED"),
        # -- one encoding of a signed payload (docs/SPEC.md section 2) ----------------
        case("payload_invalid_utf8",
             _signed_payload(payload.replace(b"000001", b"\xff00001"), cur), "MALFORMED"),
        case("payload_unknown_field", _signed_payload(payload + b"\xf8\x07\x01", cur),
             "MALFORMED"),
        case("payload_duplicated_field", _signed_payload(payload + b"\x2a\x03SSS", cur),
             "MALFORMED"),
        case("container_unknown_field_ignored", single + b"\xf8\x07\x01", "VALID"),
        case("trust_list_future_dated", single, "NOT_YET_VALID", trust="trust_future",
             min_version=0),
        case("trust_list_unknown_field", single, "TRUST_INVALID", trust="trust_unknown_field",
             min_version=0),
        # -- disclosure kinds and the scenario catalogue (docs/SPEC.md sections 3, 6, 7) -----
        case("valid_threshold", issue_attestation(_threshold(), cur), "VALID", **full,
             use_status=True),
        case("valid_threshold_other_scheme",
             issue_attestation(_threshold(purpose=BANK, scenario=BANK, mapped=_mapped(""),
                                          threshold=Threshold("hainan-jinyefen", "2025", "AA")),
                               cur),
             "VALID", **full),
        case("valid_grade_only", issue_attestation(_att(disclosure="grade", score=None), cur),
             "VALID"),
        case("valid_statutory_push",
             issue_batch([_statutory(attestation_id=f"heihe-2026-10-s{i:05d}") for i in range(3)],
                         cur, "heihe", T0 - 60).bundle(1),
             "VALID", audience=HUB),
        case("scenario_not_in_catalogue",
             issue_attestation(_att(purpose="heihe/blacklist-check",
                                    scenario="heihe/blacklist-check"), cur),
             "SCENARIO_NOT_TRUSTED"),
        case("scenario_tier_differs",
             issue_attestation(_att(threshold=Threshold("heihe", "2024", "B")), cur),
             "SCENARIO_NOT_TRUSTED"),
        case("no_scenario_catalogue", single, "SCENARIO_NOT_TRUSTED", trust="trust_v2_no_catalogue"),
        case("disclosure_beyond_scenario",
             issue_attestation(_threshold(disclosure="grade", grade="AA"), cur),
             "DISCLOSURE_NOT_ALLOWED"),
        case("threshold_carrying_grade",
             _signed_payload(_contradicting(_threshold(), lambda m: setattr(m, "grade", "AA")), cur),
             "DISCLOSURE_MISMATCH"),
        case("threshold_carrying_score",
             _signed_payload(_contradicting(_threshold(), lambda m: setattr(m, "score", 780)), cur),
             "DISCLOSURE_MISMATCH"),
        case("free_text_purpose_as_scenario",
             _signed_payload(_contradicting(_att(), lambda m: setattr(m, "scenario", "loan")), cur),
             "DISCLOSURE_MISMATCH"),
        case("no_disclosure_kind",
             _signed_payload(_contradicting(_att(), lambda m: m.ClearField("disclosure")), cur),
             "DISCLOSURE_MISMATCH"),
        case("statutory_naming_a_consent",
             _signed_payload(_contradicting(_statutory(), lambda m: setattr(m, "consent_id", "c1")),
                             cur),
             "DISCLOSURE_MISMATCH", audience=HUB),
        case("consented_purpose_not_the_scenario",
             _signed_payload(_contradicting(_threshold(),
                                            lambda m: setattr(m, "purpose", "blacklist_check")),
                             cur),
             "DISCLOSURE_MISMATCH"),
        case("statutory_to_a_relying_party",
             issue_batch([_statutory(audience=AUDIENCE)], cur, "heihe", T0 - 60).bundle(0),
             "DISCLOSURE_MISMATCH"),
        case("statutory_for_another_purpose",
             _signed_payload(_contradicting(_statutory(audience=AUDIENCE),
                                            lambda m: setattr(m, "purpose", "deny_housing_subsidy")),
                             cur),
             "DISCLOSURE_MISMATCH"),
        # -- approved mapping tables (docs/SPEC.md sections 6a, 7 step 11) ---------------
        case("valid_mapped_from_approved_table", single, "VALID"),
        case("valid_mapped_grade_only_approved",
             issue_attestation(_att(disclosure="grade", score=None), cur), "VALID"),
        case("mapping_hash_not_approved", issue_attestation(_att(mapped=_mapped("A", 11)), cur),
             "MAPPING_NOT_APPROVED"),
        case("mapping_approval_expired", issue_attestation(_att(mapped=_mapped("A", 8)), cur),
             "MAPPING_NOT_APPROVED"),
        case("mapping_approval_not_yet_in_force",
             issue_attestation(_att(mapped=_mapped("A", 9)), cur), "MAPPING_NOT_APPROVED"),
        case("mapping_approval_other_pair", issue_attestation(_att(mapped=_mapped("A", 10)), cur),
             "MAPPING_NOT_APPROVED"),
        case("mapping_threshold_other_scheme_not_approved",
             issue_attestation(_threshold(purpose=BANK, scenario=BANK, mapped=_mapped("", 11),
                                          threshold=Threshold("hainan-jinyefen", "2025", "AA")),
                               cur),
             "MAPPING_NOT_APPROVED"),
        case("no_mapping_approvals", single, "MAPPING_NOT_APPROVED", trust="trust_v2_no_approvals"),
        case("no_mapping_approvals_unmapped_valid", issue_attestation(_att(mapped=None), cur),
             "VALID", trust="trust_v2_no_approvals"),
        case("mapping_approvals_not_hub_signed", single, "TRUST_INVALID",
             trust="trust_v2_approvals_not_hub_signed"),
    ]  # fmt: skip

    keys_doc = {
        name: {"seed": k.seed.hex(), "public_key": k.public_key.hex(), "key_id": k.key_id}
        for name, k in (
            ("hub_root", hub),
            ("heihe_root", heihe_root),
            ("heihe_signing_1", old),
            ("heihe_signing_2", cur),
            ("heihe_signing_3_revoked", revoked),
            ("hainan_root", hainan_root),
            ("hainan_signing_1", hainan),
            ("stranger", stranger),
        )
    }
    example_payload = _att().to_bytes()
    return {
        "description": (
            "Huxin test vectors (docs/SPEC.md). Generated by tools/gen_vectors.py; do not edit. "
            "Every case is verified at 'now' with the named trust bundle pinned to hub_root "
            "(or the key named in params.hub_key) and min_version as given; the bundle's "
            "scenario catalogue (if any) is the trust material consented attestations are "
            "checked against, and its approved mappings list (if any) the tables a mapped "
            "grade may cite. The status lists "
            "offered to the verifier are the bundle's status_lists when params.use_status is "
            "true, followed by the lists named in params.status_lists (from 'status_lists'), "
            "in that order; with none, no status check. 'expect' is VALID or the reason code; "
            "'expect_warnings' the codes of the skipped status lists, in candidate order."
        ),
        "now": T0,
        "keys": keys_doc,
        "pae": {
            "payload_type": ATTESTATION_TYPE,
            "payload": example_payload.hex(),
            "pae": pae(ATTESTATION_TYPE, example_payload).hex(),
            "signature": cur.sign(pae(ATTESTATION_TYPE, example_payload)).hex(),
        },
        "key_set_heihe": ks_env.to_bytes().hex(),
        "trust_bundles": {
            "trust_v2": bundle(trust_v2),
            "trust_v1": bundle(trust_v1),
            "trust_expired": bundle(trust_expired),
            "trust_v2_stale_then_fresh": bundle(trust_v2, status_env, lists["fresh_revoked"]),
            "trust_v2_fresh_then_stale": bundle(trust_v2, lists["fresh_revoked"], status_env),
            "trust_v2_expired_list": bundle(trust_v2, lists["expired"]),
            "trust_v2_bad_signature_list": bundle(trust_v2, lists["bad_signature"]),
            "trust_future": bundle(trust_future),
            "trust_unknown_field": bundle(trust_unknown_field),
            "trust_v2_no_catalogue": bundle(trust_v2, catalogue=None),
            "trust_v2_no_approvals": bundle(trust_v2, approved=None),
            "trust_v2_approvals_not_hub_signed": bundle(trust_v2, approved=approvals_by_region),
        },
        "scenario_catalogue": scenarios.to_bytes().hex(),
        "approved_mappings": approvals.to_bytes().hex(),
        "status_lists": {name: env.to_bytes().hex() for name, env in lists.items()},
        "status_list": status_env.to_bytes().hex(),
        "batch": {
            "size": len(batch),
            "leaves_pae": [pae(ATTESTATION_TYPE, p).hex() for p in batch.payloads],
            "root": batch.root.hex(),
            "checkpoint": batch.checkpoint.to_bytes().hex(),
            "inclusion_proofs": [
                [h.hex() for h in batch.inclusion_proof(i)] for i in range(len(batch))
            ],
        },
        "cases": cases,
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed file drifted")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run tools/gen_vectors.py", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
