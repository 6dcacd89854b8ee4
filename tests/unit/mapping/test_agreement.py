"""Agreement tables: both regions must sign; invariants apply to agreements too.

REQ: C3, H13, N20.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from mapping import (
    TABLE_TYPE,
    InvariantError,
    MappingError,
    SignatureError,
    TableError,
    agreement_table,
    check_table,
    key_id,
    pae,
    require_valid,
    table_from_document,
    verify_table,
)
from scoring import Scheme, parse_scheme

from .conftest import public_keys, region_key, scheme_dict

# Heihe → Hainan, at or below the anchored bound everywhere.
GOOD = {
    "SSS": "AA",
    "SS": "AA",
    "S": "A",
    "AAA": "A",
    "AA": "A",
    "A": "B",
    "B": "C",
    "C": "D",
    "D": "D",
}


def _agreement(schemes: dict[str, Scheme], grades: dict[str, str] = GOOD):  # type: ignore[no-untyped-def]
    return agreement_table(
        schemes["heihe"], schemes["hainan"], grades, effective_from=date(2026, 1, 1)
    )


def test_agreement_signed_by_both_regions_verifies(schemes: dict[str, Scheme]) -> None:
    table = _agreement(schemes).signed(region_key("heihe")).signed(region_key("hainan"))
    signed_by = verify_table(table, public_keys("heihe", "hainan"))
    assert signed_by == {"heihe", "hainan"}
    # survives the trip through a document
    again = table_from_document(table.to_json_bytes())
    assert verify_table(again, public_keys("heihe", "hainan")) == {"heihe", "hainan"}


def test_signature_is_ed25519_over_dsse_pae(schemes: dict[str, Scheme]) -> None:
    """Interoperable with keys.sign: the same bytes a DSSE envelope signs."""
    key = region_key("heihe")
    table = _agreement(schemes).signed(key)
    sig = table.signatures[0]
    assert sig.key_id == key_id(bytes(key.verify_key))
    key.verify_key.verify(pae(TABLE_TYPE, table.content_bytes), sig.sig)


@pytest.mark.parametrize("signer", ["heihe", "hainan"])
def test_signed_by_one_party_only_is_refused(schemes: dict[str, Scheme], signer: str) -> None:
    table = _agreement(schemes).signed(region_key(signer))
    missing = "hainan" if signer == "heihe" else "heihe"
    with pytest.raises(SignatureError) as err:
        verify_table(table, public_keys("heihe", "hainan"))
    assert err.value.code == "MISSING_PARTY_SIGNATURE"
    assert missing in str(err.value)


BAD_SIGNATURES = [
    ("unsigned", lambda t: t, "MISSING_PARTY_SIGNATURE"),
    (
        "signed-by-stranger",
        lambda t: t.signed(region_key("heihe")).signed(region_key("mallory")),
        "MISSING_PARTY_SIGNATURE",
    ),
    (
        "same-region-twice",
        lambda t: t.signed(region_key("heihe")).signed(region_key("heihe", 1)),
        "MISSING_PARTY_SIGNATURE",
    ),
    (
        "tampered-after-signing",
        lambda t: replace(t.signed(region_key("heihe")).signed(region_key("hainan")), version="2"),
        "BAD_SIGNATURE",
    ),
    (
        "flipped-bit",
        lambda t: replace(
            t.signed(region_key("heihe")).signed(region_key("hainan")),
            signatures=tuple(
                replace(s, sig=bytes([s.sig[0] ^ 1]) + s.sig[1:])
                for s in t.signed(region_key("heihe")).signed(region_key("hainan")).signatures
            ),
        ),
        "BAD_SIGNATURE",
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "code"), BAD_SIGNATURES, ids=[b[0] for b in BAD_SIGNATURES]
)
def test_bad_agreement_signatures(
    schemes: dict[str, Scheme], name: str, make: object, code: str
) -> None:
    table = make(_agreement(schemes))  # type: ignore[operator]
    keys = public_keys("heihe", "hainan")
    keys["heihe"] = {
        **keys["heihe"],
        key_id(bytes(region_key("heihe", 1).verify_key)): bytes(region_key("heihe", 1).verify_key),
    }
    if name == "same-region-twice":
        keys = {"heihe": keys["heihe"], "hainan": public_keys("hainan")["hainan"]}
    with pytest.raises(SignatureError) as err:
        verify_table(table, keys)
    assert err.value.code == code, name


BAD_AGREEMENTS = [
    ("missing-grade", {k: v for k, v in GOOD.items() if k != "D"}, "INVARIANT_TOTAL"),
    ("unknown-target-grade", {**GOOD, "D": "Z"}, "INVARIANT_TOTAL"),
    ("extra-source-grade", {**GOOD, "Z": "D"}, "INVARIANT_TOTAL"),
    ("inverted", {**GOOD, "SSS": "C"}, "INVARIANT_MONOTONE"),
    (
        "above-bound",
        {**GOOD, "SSS": "AAA", "SS": "AAA", "S": "AAA", "AAA": "AAA"},
        "INVARIANT_CONSERVATIVE",
    ),
    ("b-to-incentive", {**GOOD, "B": "A", "A": "A"}, "INVARIANT_CONSERVATIVE"),
    ("clean-below-clean", {**GOOD, "A": "C", "B": "C"}, "INVARIANT_CLEAN_RECORD_PARITY"),
    ("heihe-all-d", dict.fromkeys(GOOD, "D"), "INVARIANT_CLEAN_RECORD_PARITY"),
]


@pytest.mark.parametrize(
    ("name", "grades", "code"), BAD_AGREEMENTS, ids=[b[0] for b in BAD_AGREEMENTS]
)
def test_bad_agreements_are_refused_with_the_invariant(
    schemes: dict[str, Scheme], name: str, grades: dict[str, str], code: str
) -> None:
    with pytest.raises(InvariantError) as err:
        _agreement(schemes, grades)
    assert err.value.code == code, name


def test_b_to_incentive_names_incentive_safety_too(schemes: dict[str, Scheme]) -> None:
    """REQ: H14 — Heihe B mapped to Hainan A (incentive) is refused as incentive-unsafe."""
    table = _agreement(schemes)
    broken = replace(
        table, grades=tuple((x, "A" if x in ("A", "B") else y) for x, y in table.grades)
    )
    names = {v.invariant for v in check_table(broken, schemes["heihe"], schemes["hainan"])}
    assert "incentive_safe" in names


def test_scheme_version_mismatch_is_refused(schemes: dict[str, Scheme]) -> None:
    table = _agreement(schemes)
    newer = replace(schemes["hainan"], version="2026.1")
    with pytest.raises(TableError) as err:
        require_valid(table, schemes["heihe"], newer)
    assert err.value.code == "SCHEME_VERSION_MISMATCH"
    with pytest.raises(TableError) as err:
        require_valid(table, schemes["heihe"], schemes["fuzhou"])
    assert err.value.code == "SCHEME_MISMATCH"


def test_no_safe_target_when_target_is_all_incentive(schemes: dict[str, Scheme]) -> None:
    """A target whose worst tier is already incentive-eligible has no safe image for Heihe B."""
    everyone = parse_scheme(scheme_dict("everyone", [500], 0, 1000, 600, 0))
    with pytest.raises(InvariantError) as err:
        agreement_table(
            schemes["heihe"],
            everyone,
            dict.fromkeys(schemes["heihe"].grades, "T0"),
            effective_from=date(2026, 1, 1),
        )
    assert err.value.invariant == "incentive_safe"
    assert isinstance(err.value, MappingError)


def test_keys_keypair_signs_and_dsse_envelope_verifies(schemes: dict[str, Scheme]) -> None:
    """A table signed with keys.KeyPair travels as a DSSE envelope over the canonical content."""
    import keys

    pair = keys.KeyPair(b"\x07" * 32)
    table = _agreement(schemes).signed(pair)
    sig = table.signatures[0]
    envelope = keys.Envelope(
        TABLE_TYPE, table.content_bytes, (keys.EnvelopeSignature(sig.key_id, sig.sig),)
    )
    assert keys.verify_envelope(envelope, {pair.key_id: pair.public_key}, TABLE_TYPE) == (
        table.content_bytes
    )
    assert verify_table(
        table.signed(region_key("hainan")),
        {
            "heihe": {pair.key_id: pair.public_key},
            **public_keys("hainan"),
        },
    ) == {"heihe", "hainan"}


def test_sign_table_refuses_a_broken_table(schemes: dict[str, Scheme]) -> None:
    """Invariants are checked before a table can be signed."""
    from mapping import sign_table

    table = _agreement(schemes)
    ok = sign_table(table, schemes["heihe"], schemes["hainan"], region_key("heihe"))
    assert len(ok.signatures) == 1
    broken = replace(table, grades=tuple((x, "AAA") for x, _ in table.grades))
    with pytest.raises(InvariantError):
        sign_table(broken, schemes["heihe"], schemes["hainan"], region_key("heihe"))
