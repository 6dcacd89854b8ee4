"""A small X.509 CA for node-to-node and node-to-hub mutual TLS.

The hub's CA issues each node a certificate whose SAN carries the region id as
a URI ``huxin://region/<id>`` (plus DNS ``localhost`` and IP ``127.0.0.1`` by
default so loopback TLS works).  A peer's identity is the region id read from
its verified certificate, never a field it sends.  Keys are ECDSA P-256 (every
TLS stack accepts them); everything is returned as PEM bytes ready for
``grpc.ssl_server_credentials`` / ``grpc.ssl_channel_credentials``.

Invariants: ``now`` is passed in; a node certificate has exactly one region
URI; :func:`verify_peer_certificate` checks issuer name, signature, validity
window and the region URI, and raises :class:`KeysError` (code ``BAD_CERTIFICATE``)
otherwise.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._errors import KeysError

__all__ = [
    "REGION_URI_PREFIX",
    "CertificateAuthority",
    "NodeCertificate",
    "certificate_fingerprint",
    "region_of_certificate",
    "verify_peer_certificate",
]

REGION_URI_PREFIX = "huxin://region/"
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _cert_error(message: str, field: str = "certificate") -> KeysError:
    return KeysError(field, message, code="BAD_CERTIFICATE")


def _load_cert(data: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(data, x509.Certificate):
        return data
    raw = bytes(data)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise _cert_error("not a PEM or DER X.509 certificate") from None


def _check_region(region_id: str) -> str:
    if not isinstance(region_id, str) or not _REGION_RE.match(region_id):
        raise KeysError("region_id", "must match [a-z0-9][a-z0-9._-]*", code="INVALID_REGION")
    return region_id


@dataclass(frozen=True, slots=True)
class NodeCertificate:
    """A node's certificate and private key (PEM) plus the CA certificate (PEM)."""

    region_id: str
    cert_pem: bytes
    key_pem: bytes
    ca_cert_pem: bytes

    @property
    def fingerprint(self) -> bytes:
        return certificate_fingerprint(self.cert_pem)


class CertificateAuthority:
    """The hub's CA: a P-256 key and a self-signed CA certificate."""

    __slots__ = ("_cert", "_key")

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._cert = cert
        self._key = key

    @classmethod
    def create(cls, name: str, now: datetime, days: int = 3650) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(
        cls, cert_pem: bytes, key_pem: bytes, passphrase: bytes | None = None
    ) -> CertificateAuthority:
        cert = _load_cert(cert_pem)
        try:
            key = serialization.load_pem_private_key(bytes(key_pem), password=passphrase)
        except (ValueError, TypeError):
            raise KeysError("key_pem", "cannot load CA key", code="INVALID_KEY") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeysError("key_pem", "CA key must be ECDSA", code="INVALID_KEY")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )

    def issue(
        self,
        region_id: str,
        now: datetime,
        days: int = 90,
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
    ) -> NodeCertificate:
        """Issue a node certificate (server and client auth) for ``region_id``."""
        _check_region(region_id)
        key = ec.generate_private_key(ec.SECP256R1())
        san: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(REGION_URI_PREFIX + region_id),
            *(x509.DNSName(d) for d in dns_names),
            *(x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses),
        ]
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, region_id)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return NodeCertificate(
            region_id=region_id,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key_pem,
            ca_cert_pem=self.cert_pem,
        )


def region_of_certificate(cert: bytes | x509.Certificate) -> str:
    """The region id in the certificate's ``huxin://region/<id>`` URI SAN."""
    c = _load_cert(cert)
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise _cert_error("no subjectAltName") from None
    regions = [
        uri[len(REGION_URI_PREFIX) :]
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(REGION_URI_PREFIX)
    ]
    if len(regions) != 1 or not _REGION_RE.match(regions[0]):
        raise _cert_error("must carry exactly one valid huxin://region/ URI")
    return regions[0]


def certificate_fingerprint(cert: bytes | x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER encoding (as listed in trust lists)."""
    return hashlib.sha256(_load_cert(cert).public_bytes(serialization.Encoding.DER)).digest()


def verify_peer_certificate(
    cert: bytes | x509.Certificate, ca_cert: bytes | x509.Certificate, now: datetime
) -> str:
    """Check ``cert`` was issued by ``ca_cert`` and is valid at ``now``; return its region."""
    c, ca = _load_cert(cert), _load_cert(ca_cert)
    if c.issuer != ca.subject:
        raise _cert_error("not issued by this CA")
    try:
        c.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise _cert_error("signature does not verify against the CA") from None
    if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
        raise _cert_error("outside its validity period")
    try:
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is not None and bc.ca:
        raise _cert_error("a CA certificate cannot identify a node")
    return region_of_certificate(c)
