"""The node's own TLS certificate: its validity at start, and its renewal.

A node certificate from the federation CA lasts ``node.cli._init.CERT_DAYS`` (90) days;
on the day after, every call in and out fails the TLS handshake (C1: the node
is the region's only way in).  So:

* :func:`check_certificate` — ``huxin serve`` refuses a certificate that has
  expired (``TLS_CERT_EXPIRED``) or is not valid yet (``TLS_CERT_NOT_YET_VALID``),
  naming ``tls.cert`` and the time; :func:`expiry_warning` says when fewer than
  :data:`WARN_DAYS` days are left (logged at start and once a day after);
* :func:`export_expiry` — the gauge ``huxin_tls_cert_expiry_seconds`` (Unix
  seconds of ``not_after``) on the node's own metrics registry;
* :func:`renew_certificate` — ``huxin init cert``: a new key and certificate for
  the SAME region id from the SAME CA (the one in ``tls.ca``; another CA or a
  certificate of another region is refused), written atomically (temporary file
  + rename; the key 0600 before it is renamed into place).  A running node keeps
  the certificate it loaded: the new one is used from the next restart;
* :func:`stage_next_certificate` / :func:`use_next_certificate` — the renewal of
  a federated node, whose peers accept only certificates the trust list pins:
  the next pair waits beside the live one (``<file>.next``) until the hub pins
  it (:func:`certificate_pins` lists the live and the staged one), then takes
  its place (docs/adr/0415).

Invariants: ``now`` is passed in; nothing here reads the clock or the
environment; errors are :class:`CertError` with a stable ``code`` and a message
naming the file's config field (``tls.cert``, ``tls.ca``) — never key material.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry, Gauge

from keys import (
    CertificateAuthority,
    KeysError,
    NodeCertificate,
    certificate_fingerprint,
    region_of_certificate,
)
from node.core._config import NodeConfig

__all__ = [
    "MAX_CERT_DAYS",
    "WARN_DAYS",
    "CertError",
    "CertInfo",
    "certificate_pins",
    "check_certificate",
    "check_key_pair",
    "expiry_warning",
    "export_expiry",
    "next_paths",
    "read_certificate",
    "renew_certificate",
    "stage_next_certificate",
    "use_next_certificate",
]

WARN_DAYS = 14  # warn when fewer days than this are left
MAX_CERT_DAYS = 397  # longest renewal accepted (the CA/Browser Forum's ceiling)
DAY = 86_400


class CertError(Exception):
    """A node certificate that cannot be used or renewed; ``code`` is stable."""

    def __init__(self, code: str, message: str, field: str = "tls.cert") -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the node needs to know about its certificate (times are UTC)."""

    region: str  # from the huxin://region/ SAN ("" if the certificate has none)
    not_before: datetime
    not_after: datetime
    issuer: str

    def seconds_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds()

    def days_left(self, now: datetime) -> int:
        """Whole days left (0 on the last day; negative once expired)."""
        return int(self.seconds_left(now) // DAY)

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {
            "region": self.region,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "days_left": self.days_left(now),
            "state": self.state(now),
        }

    def state(self, now: datetime) -> str:
        if now < self.not_before:
            return "not yet valid"
        if now > self.not_after:
            return "EXPIRED"
        return "expires soon" if self.seconds_left(now) < WARN_DAYS * DAY else "valid"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def _load(pem: bytes, field: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(bytes(pem))
    except ValueError:
        raise CertError("TLS_CERT_INVALID", "not a PEM X.509 certificate", field) from None


def read_certificate(pem: bytes, field: str = "tls.cert") -> CertInfo:
    """Validity, region and issuer of a PEM certificate (``TLS_CERT_INVALID``)."""
    cert = _load(pem, field)
    try:
        region = region_of_certificate(cert)
    except KeysError:
        region = ""
    return CertInfo(
        region, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.issuer.rfc4514_string()
    )


def check_certificate(info: CertInfo, now: datetime) -> None:
    """Refuse a certificate outside its validity window at ``now``."""
    if now > info.not_after:
        raise CertError(
            "TLS_CERT_EXPIRED",
            f"the node certificate expired at {_iso(info.not_after)}:"
            " renew it with 'huxin init cert --config FILE --ca DIR', then start again",
        )
    if now < info.not_before:
        raise CertError(
            "TLS_CERT_NOT_YET_VALID",
            f"the node certificate is valid only from {_iso(info.not_before)}"
            " (check this machine's clock)",
        )


def check_key_pair(cert_pem: bytes, key_pem: bytes) -> None:
    """Refuse a ``tls.key`` that is not the key of ``tls.cert`` (``TLS_KEY_MISMATCH``).

    An encrypted or unreadable key is left to the TLS stack (it reports it itself)."""
    try:
        key = serialization.load_pem_private_key(bytes(key_pem), password=None)
    except (ValueError, TypeError):
        return
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = _load(cert_pem, "tls.cert")
    if key.public_key().public_bytes(*fmt) != cert.public_key().public_bytes(*fmt):
        raise CertError(
            "TLS_KEY_MISMATCH",
            "is not the key of tls.cert (an interrupted 'huxin init cert'? run it again)",
            "tls.key",
        )


def expiry_warning(info: CertInfo, now: datetime) -> dict[str, object] | None:
    """Fields of the "tls certificate expires soon" log line, or None (>= WARN_DAYS left)."""
    left = info.seconds_left(now)
    if left >= WARN_DAYS * DAY:
        return None
    return {
        "field": "tls.cert",
        "not_after": _iso(info.not_after),
        "days_left": max(0, int(left // DAY)),
    }


def export_expiry(registry: CollectorRegistry, info: CertInfo) -> Gauge:
    """``huxin_tls_cert_expiry_seconds``: the certificate's ``not_after`` (Unix seconds)."""
    gauge = Gauge(
        "huxin_tls_cert_expiry_seconds",
        "not_after of the node's TLS certificate (Unix seconds); renew with huxin init cert",
        registry=registry,
    )
    gauge.set(info.not_after.timestamp())
    return gauge


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_key().public_bytes(*fmt) == b.public_key().public_bytes(*fmt)


def _mode_of(path: Path) -> int:
    """The mode a renewed file keeps (owner-only if it did not exist)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o600


def _write_atomic(path: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` next to ``path`` (mode ``mode`` from the start); return the temp path."""
    tmp = path.with_name(f".{path.name}.renew")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)  # O_CREAT's mode is only used for a new file
    return tmp


def _issue(
    config: NodeConfig, ca: CertificateAuthority, now: datetime, days: int
) -> NodeCertificate:
    """A new certificate and key for ``config.region`` from ``ca``, checked as
    :func:`renew_certificate` says."""
    if not 1 <= days <= MAX_CERT_DAYS:
        raise CertError("INVALID_ARGUMENT", f"must be 1 to {MAX_CERT_DAYS} days", "--days")
    ca_cert = _load(ca.cert_pem, "--ca")
    if now > ca_cert.not_valid_after_utc:
        raise CertError(
            "CA_EXPIRED", f"the CA expired at {_iso(ca_cert.not_valid_after_utc)}", "--ca"
        )
    try:
        trusted = _load(config.tls.ca.read_bytes(), "tls.ca")
    except FileNotFoundError:
        raise CertError(
            "CA_MISMATCH", f"file {str(config.tls.ca)!r} does not exist", "tls.ca"
        ) from None
    if trusted.subject != ca_cert.subject or not _same_key(trusted, ca_cert):
        raise CertError(
            "CA_MISMATCH", "the node trusts another CA than --ca: its peers would refuse", "tls.ca"
        )
    dns: list[str] = ["localhost"]
    ips: list[str] = ["127.0.0.1"]
    try:
        old = _load(config.tls.cert.read_bytes(), "tls.cert")
    except (FileNotFoundError, CertError):
        old = None
    if old is not None:
        try:
            old_region = region_of_certificate(old)
        except KeysError:
            old_region = ""
        if old_region and old_region != config.region:
            raise CertError(
                "REGION_MISMATCH",
                f"the current certificate is for {old_region!r}, the config for {config.region!r}",
            )
        try:
            if old.issuer != ca_cert.subject:
                raise ValueError("issuer")
            old.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CertError("CA_MISMATCH", "the current certificate is not from --ca") from None
        try:
            san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = list(san.get_values_for_type(x509.DNSName))
            ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
    if now.timestamp() + days * DAY > ca_cert.not_valid_after_utc.timestamp():
        raise CertError(
            "CA_EXPIRES_FIRST",
            f"the CA expires at {_iso(ca_cert.not_valid_after_utc)}: ask for fewer days",
            "--days",
        )
    try:
        return ca.issue(config.region, now, days=days, dns_names=dns, ip_addresses=ips)
    except (KeysError, ValueError) as exc:
        raise CertError("INVALID_REGION", str(exc), "node.region") from None


def _install(config: NodeConfig, cert_pem: bytes, key_pem: bytes) -> None:
    """Put a pair in place of ``tls.cert``/``tls.key``, keeping the pair in use as
    ``<file>.prev`` (a node that must go back copies them back)."""
    for live in (config.tls.key, config.tls.cert):
        if live.exists():
            prev = _write_atomic(Path(f"{live}.prev"), live.read_bytes(), 0o600)
            os.replace(prev, Path(f"{live}.prev"))
    key_tmp = _write_atomic(config.tls.key, key_pem, 0o600)
    cert_tmp = _write_atomic(config.tls.cert, cert_pem, _mode_of(config.tls.cert))
    # the key first: a crash between the two renames leaves a new key with the old
    # certificate, which serve refuses (TLS_KEY_MISMATCH); re-run the renewal, or put
    # the .prev pair back
    os.replace(key_tmp, config.tls.key)
    os.replace(cert_tmp, config.tls.cert)
    _fsync_parent(config.tls.cert)


def renew_certificate(
    config: NodeConfig, ca: CertificateAuthority, now: datetime, days: int
) -> CertInfo:
    """Issue the node a new certificate and key for ``config.region`` from ``ca``
    and put them in place at once (the old pair is kept as ``<file>.prev``).

    Refused: ``--days`` outside 1..MAX_CERT_DAYS or past the CA's own expiry
    (``INVALID_ARGUMENT``/``CA_EXPIRES_FIRST``), an expired CA (``CA_EXPIRED``),
    a CA other than the node's trust root ``tls.ca`` (``CA_MISMATCH``), a current
    certificate naming another region or issued by another CA (``REGION_MISMATCH``,
    ``CA_MISMATCH``).  A missing or unreadable current certificate is replaced.
    """
    issued = _issue(config, ca, now, days)
    _install(config, issued.cert_pem, issued.key_pem)
    return read_certificate(issued.cert_pem)


def next_paths(config: NodeConfig) -> tuple[Path, Path]:
    """Where a staged next pair waits: ``<tls.cert>.next`` and ``<tls.key>.next``."""
    return Path(f"{config.tls.cert}.next"), Path(f"{config.tls.key}.next")


def stage_next_certificate(
    config: NodeConfig, ca: CertificateAuthority, now: datetime, days: int
) -> CertInfo:
    """Issue the node's NEXT certificate and keep it aside (``<file>.next``), unused.

    A federated peer is accepted only with a certificate the trust list pins, so
    a renewal goes: stage the next pair, have the hub pin it next to the current
    one (``huxin hub register``, a new trust list), and once the peers hold that
    list switch to it (:func:`use_next_certificate`) and restart.  Refused as
    :func:`renew_certificate`; a staged pair is replaced by a newer one."""
    issued = _issue(config, ca, now, days)
    cert_next, key_next = next_paths(config)
    key_tmp = _write_atomic(key_next, issued.key_pem, 0o600)
    cert_tmp = _write_atomic(cert_next, issued.cert_pem, _mode_of(config.tls.cert))
    os.replace(key_tmp, key_next)
    os.replace(cert_tmp, cert_next)
    _fsync_parent(cert_next)
    return read_certificate(issued.cert_pem)


def use_next_certificate(config: NodeConfig) -> CertInfo:
    """Put the staged next pair in place (the old one becomes ``<file>.prev``).

    Refused: no staged pair (``NO_NEXT_CERTIFICATE``), a staged key that is not
    the staged certificate's (``TLS_KEY_MISMATCH``), one for another region
    (``REGION_MISMATCH``)."""
    cert_next, key_next = next_paths(config)
    try:
        cert_pem, key_pem = cert_next.read_bytes(), key_next.read_bytes()
    except FileNotFoundError:
        raise CertError(
            "NO_NEXT_CERTIFICATE",
            "no staged next certificate: run 'huxin init cert --config FILE --next' first",
        ) from None
    check_key_pair(cert_pem, key_pem)
    info = read_certificate(cert_pem, "tls.cert.next")
    if info.region != config.region:
        raise CertError(
            "REGION_MISMATCH", f"the next certificate is for {info.region!r}", "tls.cert.next"
        )
    _install(config, cert_pem, key_pem)
    cert_next.unlink()
    key_next.unlink()
    _fsync_parent(cert_next)
    return info


def certificate_pins(config: NodeConfig, presented: bytes = b"") -> tuple[bytes, ...]:
    """The SHA-256 fingerprints a trust list pins for this node, sorted: the
    certificate it ``presented`` (loaded at start), the one in ``tls.cert`` and a
    staged next one (``<tls.cert>.next``), each if readable.  Pinning what is in
    use AND what is on disk lets a restart with a switched pair keep working."""
    found: set[bytes] = set()
    blobs = [presented] if presented else []
    for path in (config.tls.cert, next_paths(config)[0]):
        try:
            blobs.append(path.read_bytes())
        except OSError:
            continue
    for pem in blobs:
        try:
            found.add(certificate_fingerprint(pem))
        except KeysError:
            continue
    return tuple(sorted(found))


def _fsync_parent(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
