"""Issue 16 (H13: a table between provinces needs a national authority; C3: fail closed).

The hub's own key approves a mapping table only between two regions registered under
that hub (docs/adr/0207); the node leaves any other hub approval out of its governed set
with ``APPROVAL_AUTHORITY_NOT_ALLOWED``, and a national authority's approval passes.
"""

from __future__ import annotations

from keys import KeyPair, sign_approval
from keys.pb.v1 import attestation_pb2 as pb
from mapping import published_table
from node.recognition._governed import Approved
from node.recognition._load import ConfigPart, Verifier, governed_set, hub_regions
from node.recognition._verify import table_sha256

HUB, NATIONAL = KeyPair(b"hub".ljust(32, b"\0")), KeyPair(b"national".ljust(32, b"\0"))
TABLE = published_table("heihe", "hainan")
DAY0 = 1_735_689_600  # 2025-01-01T00:00:00Z


def _approved(authority: str, key: KeyPair) -> Approved:
    t = TABLE
    a = pb.MappingApproval(
        mapping_sha256=table_sha256(t), mapping_id=t.id, mapping_version=t.version,
        method=t.method.value, source_scheme_id=t.source.scheme,
        source_scheme_version=t.source.version, source_region=t.source.region,
        target_scheme_id=t.target.scheme, target_scheme_version=t.target.version,
        target_region=t.target.region, effective_from=DAY0, decision="approved",
        authority=authority, reach_eligible=1, reach_kept=1, reach_ppm=1_000_000,
        issued_at=DAY0,
    )  # fmt: skip
    return Approved(a, sign_approval(a, key).to_bytes())


def _verifier(mine: frozenset[str]) -> Verifier:
    authorities = {"hlj-hub": HUB.public_key, "national": NATIONAL.public_key}
    return Verifier({}, {}, authorities, "", "hlj-hub", mine)


def test_hub_approval_of_a_table_between_provinces_is_refused_by_the_node() -> None:
    """Issue 16, H13, C3: hlj-hub's own approval of heihe -> hainan (hainan registered under
    another hub) is left out with APPROVAL_AUTHORITY_NOT_ALLOWED naming hainan; the same
    table approved by the national authority, or by the hub with both regions its own,
    is kept."""
    hub_approval, national = _approved("hlj-hub", HUB), _approved("national", NATIONAL)
    outside = governed_set(
        ConfigPart((TABLE,), (hub_approval, national)), [], _verifier(frozenset({"heihe"})), 0
    )
    assert [e.code for e in outside.refused] == ["APPROVAL_AUTHORITY_NOT_ALLOWED"]
    assert "hainan is not a region of that hub" in outside.refused[0].message
    assert [a.record.authority for a in outside.tables[0].approvals] == ["national"]
    inside = governed_set(
        ConfigPart((TABLE,), (hub_approval,)), [], _verifier(frozenset({"heihe", "hainan"})), 0
    )
    assert inside.refused == () and len(inside.tables[0].approvals) == 1


def test_hub_regions_are_those_registered_under_the_hub() -> None:
    """Issue 16, H13: a region belongs to a hub when tagged hub:<hub>, or untagged in that
    hub's own list; peer hubs (role:hub) and regions of other hubs do not."""
    entries = [
        ("heihe", ("10.0.0.1:1", "hub:hlj-hub")),
        ("hainan", ("10.0.0.2:1", "hub:hainan-hub")),
        ("harbin", ()),
        ("hainan-hub", ("10.0.0.3:1", "role:hub")),
    ]
    assert hub_regions(entries, "hlj-hub", "hlj-hub") == {"heihe", "harbin"}
    assert hub_regions(entries, "hainan-hub", "hlj-hub") == {"heihe"}
