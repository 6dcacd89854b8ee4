"""A test world on a manual clock still serves a browser on the wall clock (issue 19, N21:
the operator's console and citizen pages are checked in a real Chromium, which checks
TLS on the machine's clock; a world fixed at 2026-09-29 with 90-day certificates was
refused from 2026-12-28 on).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keys import KeysError, verify_peer_certificate
from node.cli._init import CERT_DAYS, init_region
from node.demo._testbed import Testbed, tls_window

START = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)

#: wall clocks a browser may run on, relative to a world fixed at START
WALLS = {
    "a year later": START + timedelta(days=365),
    "the day the old certificate expired": START + timedelta(days=CERT_DAYS, hours=1),
    "a month earlier": START - timedelta(days=30),
    "the same instant": START,
}


@pytest.mark.parametrize("wall", WALLS.values(), ids=WALLS.keys())
def test_certificates_valid_on_the_world_clock_and_the_wall_clock(
    tmp_path: Path, wall: datetime
) -> None:
    """Issue 19, N21: with ``wall``, the CA, a client certificate (the operator's) and the
    node's own TLS certificate are valid at the world's clock and at the wall clock,
    and for the usual 90 days after the later of the two."""
    bed = Testbed(tmp_path, now=START, wall=wall)
    assert bed.ca is not None
    init_region(tmp_path / "heihe", "heihe", "heihe", bed.ca, START)
    bed.widen_node_certificate(tmp_path / "heihe", "heihe")
    node_pem = (tmp_path / "heihe" / "tls" / "node.pem").read_bytes()
    operator = bed.cert("heihe.ops").cert_pem
    later = max(START, wall) + timedelta(days=CERT_DAYS - 1)
    for at in (START, wall, later):
        assert verify_peer_certificate(node_pem, bed.ca.cert_pem, at) == "heihe"
        assert verify_peer_certificate(operator, bed.ca.cert_pem, at) == "heihe.ops"


def test_without_wall_the_clock_alone_counts(tmp_path: Path) -> None:
    """Issue 19: other beds are unchanged, their certificates issued at the bed's
    ``now`` for 90 days, so a later wall clock is outside them."""
    assert tls_window(START, None) == (START, CERT_DAYS)
    bed = Testbed(tmp_path, now=START)
    assert bed.ca is not None
    operator = bed.cert("heihe.ops").cert_pem
    assert verify_peer_certificate(operator, bed.ca.cert_pem, START) == "heihe.ops"
    with pytest.raises(KeysError, match="validity"):
        verify_peer_certificate(operator, bed.ca.cert_pem, START + timedelta(days=CERT_DAYS + 1))
