"""The mTLS CA: node certificates carry the region id; peers are checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from keys import (
    CertificateAuthority,
    KeysError,
    certificate_fingerprint,
    region_of_certificate,
    verify_peer_certificate,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Heilongjiang hub CA", NOW)


def test_issue_and_read_region(ca: CertificateAuthority) -> None:
    node = ca.issue("heihe", NOW)
    assert region_of_certificate(node.cert_pem) == "heihe"
    cert = x509.load_pem_x509_certificate(node.cert_pem)
    der = cert.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER)
    assert region_of_certificate(der) == "heihe"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert verify_peer_certificate(node.cert_pem, ca.cert_pem, NOW) == "heihe"
    assert len(certificate_fingerprint(node.cert_pem)) == 32
    assert node.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_reload_with_passphrase(ca: CertificateAuthority) -> None:
    again = CertificateAuthority.load(ca.cert_pem, ca.key_pem(b"pw"), b"pw")
    node = again.issue("hainan", NOW)
    assert verify_peer_certificate(node.cert_pem, ca.cert_pem, NOW) == "hainan"


def test_peer_checks(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create("Rogue CA", NOW)
    node = ca.issue("heihe", NOW, days=10)
    rogue = other.issue("heihe", NOW)
    cases = [
        lambda: verify_peer_certificate(rogue.cert_pem, ca.cert_pem, NOW),
        lambda: verify_peer_certificate(node.cert_pem, ca.cert_pem, NOW + timedelta(days=11)),
        lambda: verify_peer_certificate(ca.cert_pem, ca.cert_pem, NOW),
        lambda: region_of_certificate(b"not a cert"),
    ]
    for case in cases:
        with pytest.raises(KeysError) as err:
            case()
        assert err.value.code == "BAD_CERTIFICATE"


@pytest.mark.parametrize(
    "region", ["", "Heihe", "../x", "a" * 70], ids=["empty", "upper", "path", "long"]
)
def test_bad_region_ids_refused(ca: CertificateAuthority, region: str) -> None:
    with pytest.raises(KeysError) as err:
        ca.issue(region, NOW)
    assert err.value.code == "INVALID_REGION"
