"""Published test vectors: no drift, and every case gives its expected result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keys import (
    VerificationError,
    load_trust,
    pae,
    verify_attestation,
    verify_key_set,
)
from node.pb.v1 import attestation_pb2 as pb
from tools import gen_vectors

from .conftest import VECTORS

DOC: dict[str, Any] = json.loads((VECTORS / "huxin_vectors.json").read_text(encoding="utf-8"))


def test_vectors_do_not_drift() -> None:
    """tools/gen_vectors.py regenerates byte-identical vectors."""
    assert (VECTORS / "huxin_vectors.json").read_text(encoding="utf-8") == gen_vectors.render()


def test_every_reason_code_has_a_vector() -> None:
    from keys import REASON_CODES

    covered = {c["expect"] for c in DOC["cases"]}
    # BAD_KEY_SET: a trust-list load failure; APPROVAL_INVALID: an approval record's own
    # check (keys.open_approval), never an attestation's verdict
    not_verdicts = {"BAD_KEY_SET", "APPROVAL_INVALID"}
    missing = REASON_CODES - covered - not_verdicts
    assert not missing, missing


def test_pae_vector() -> None:
    p = DOC["pae"]
    assert pae(p["payload_type"], bytes.fromhex(p["payload"])).hex() == p["pae"]


def test_key_set_vector_verifies() -> None:
    root = bytes.fromhex(DOC["keys"]["heihe_root"]["public_key"])
    ks = verify_key_set(bytes.fromhex(DOC["key_set_heihe"]), root, "heihe")
    assert len(ks.keys) == 3


def _run(case: dict[str, Any]) -> tuple[str, list[str]]:
    """(VALID or the reason code, codes of the skipped status lists), as the vector
    file's description says a verifier runs a case."""
    p = case["params"]
    hub = bytes.fromhex(DOC["keys"][p.get("hub_key", "hub_root")]["public_key"])
    try:
        bundle_bytes = bytes.fromhex(DOC["trust_bundles"][p["trust"]])
        trust = load_trust(bundle_bytes, hub, DOC["now"], min_version=p["min_version"])
        status: list[Any] = []
        if p.get("use_status"):
            bundle = pb.TrustBundle()
            bundle.ParseFromString(bundle_bytes)
            status += bundle.status_lists
        status += [bytes.fromhex(DOC["status_lists"][n]) for n in p.get("status_lists", [])]
        result = verify_attestation(
            bytes.fromhex(case["blob"]),
            trust,
            DOC["now"],
            p["audience"],
            nonce=bytes.fromhex(p["nonce"]) if "nonce" in p else None,
            subject_id=p.get("subject_id"),
            binding_salt=bytes.fromhex(p["binding_salt"]) if "binding_salt" in p else None,
            status=status or None,
        )
    except VerificationError as err:
        return err.code, [w.code for w in err.warnings]
    return "VALID", [w.code for w in result.warnings]


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_vector_case(case: dict[str, Any]) -> None:
    """Every published case, including those of issue 14 items 1 and 16 (which status list
    decides, several signatures, one encoding of signed payloads, broken lists)."""
    assert _run(case) == (case["expect"], case["expect_warnings"])


def test_status_list_vector_is_the_canonical_encoding() -> None:
    """The published status list's ``bits`` is the canonical stream of its contents
    (docs/SPEC.md section 5), so regenerating on another zlib build gives the same bytes."""
    import zlib

    from keys._deflate import compress

    env = pb.Envelope()
    env.ParseFromString(bytes.fromhex(DOC["status_list"]))
    sl = pb.StatusList()
    sl.ParseFromString(env.payload)
    raw = zlib.decompress(sl.bits)
    assert len(raw) == (sl.size + 3) // 4
    assert compress(raw) == sl.bits
    assert [(raw[i >> 2] >> ((i & 3) * 2)) & 3 for i in (3, 7, 8, 9)] == [0, 1, 2, 3]


def test_approved_mappings_vector_verifies_under_the_hub() -> None:
    """Issue 16, H13: the vector file's approved list verifies under hub_root and names the
    approvals the mapped-grade cases rely on, sorted by mapping_sha256."""
    from keys import verify_approved_mappings

    hub = bytes.fromhex(DOC["keys"]["hub_root"]["public_key"])
    listed = verify_approved_mappings(bytes.fromhex(DOC["approved_mappings"]), hub, "hlj-hub")
    assert [a.mapping_sha256[0] for a in listed.approvals] == [7, 8, 9, 10]
    assert {a.decision for a in listed.approvals} == {"approved", "filed"}
