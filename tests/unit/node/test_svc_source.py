"""SourceService helpers: which names a department files under, what the log holds.

REQ: H7, N4, N8 — a department's records carry its own name only;
privacy — the log holds a digest of a source's record id.
"""

from __future__ import annotations

import hashlib

import pytest

from node.rights._repair import record_digest
from node.rpc._source import source_names

# name, caller identity, the node's allowed sources, the names it may file under
NAMES = [
    ("dash-prefix", "heihe-court", ("heihe-court",), {"heihe-court", "court"}),
    ("dot-prefix", "heihe.court", ("heihe.court",), {"heihe.court", "court"}),
    ("bare", "court", ("court",), {"court"}),
    ("other-region-prefix", "hainan-court", ("hainan-court",), {"hainan-court"}),
    ("region-alone", "heihe", ("heihe",), {"heihe"}),
    ("prefix-only", "heihe-", ("heihe-",), {"heihe-"}),
    # the short name is itself another allowed source: it would speak for that one
    ("short-is-another-source", "heihe-court", ("heihe-court", "court"), {"heihe-court"}),
]


@pytest.mark.parametrize(("name", "who", "allowed", "expected"), NAMES, ids=[c[0] for c in NAMES])
def test_source_names(name: str, who: str, allowed: tuple[str, ...], expected: set[str]) -> None:
    """REQ: H7, N4 — the certificate identity, or it without the node's region prefix."""
    assert source_names(who, "heihe", allowed) == frozenset(expected)


def test_record_digest_is_a_short_sha256() -> None:
    """REQ: H16 privacy — 16 hex characters of SHA-256, never the id itself."""
    rid = "231100198503120011-2025-001"
    assert record_digest(rid) == hashlib.sha256(rid.encode()).hexdigest()[:16]
    assert rid[:6] not in record_digest(rid)
