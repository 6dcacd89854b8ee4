"""The client registry: which integrator and department certificates a node accepts.

An integrator (``hainan.bank``) or a source department (``heihe.court``) holds a
certificate from the federation CA.  The CA alone is not enough: whoever holds
the CA key can mint a second certificate for the same identity.  So each node
keeps the registry of the certificates it has issued to ITS OWN clients (the
identities ``<region>.<org>`` of its region and its ``[sources] allowed``), by
SHA-256 fingerprint, and the guard checks the caller's certificate against it
on every call (:mod:`node.federation._callers`).  ``huxin client issue`` adds a
certificate, ``huxin client revoke`` revokes one or all of an identity's
(:mod:`node.cli._client`); docs/adr/0415.

The registry is one JSON file (``[clients] registry``, default ``clients.json``
next to ``node.toml``)::

    {"kind": "huxin-client-registry", "version": 1,
     "clients": [{"id": "hainan.bank", "sha256": "<hex>", "issued_at": 1764460800,
                  "not_after": 1772236800, "revoked_at": 0}, ...]}

Invariants:

* a file, not a database table, so that every process of a node (the primary
  and its peer-port workers) sees a change at its next call without a restart:
  :class:`ClientRegistry` compares the file's identity (inode, size, mtime,
  ctime) on each check and reloads it when it changed; the writer replaces the
  file by a rename, so a reader sees the old or the new file, never half;
* writers serialise on ``<registry>.lock`` (``flock``) and write owner-only;
* bounded: at most :data:`MAX_CLIENTS` entries and :data:`MAX_FILE_BYTES`;
* fail closed: a missing file is an empty registry (every own client is
  refused); a file that cannot be read or parsed refuses every own client
  (``UNAVAILABLE CLIENT_REGISTRY_UNREADABLE``) until it is fixed;
* entries are never deleted: a revoked certificate stays listed with its
  ``revoked_at`` (evidence for the operator).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from keys import certificate_fingerprint
from node.core._config import ID_PATTERN
from node.core._errors import UnauthenticatedError, UnavailableError
from node.core._observe import log_event
from node.federation._tlscert import read_certificate

__all__ = [
    "MAX_CLIENTS",
    "MAX_FILE_BYTES",
    "REGISTRY_FILE",
    "ClientEntry",
    "ClientRegistry",
    "RegistryFileError",
    "add_client",
    "client_entry",
    "read_registry",
    "revoke_client",
]

REGISTRY_FILE = "clients.json"
KIND = "huxin-client-registry"
MAX_CLIENTS = 10_000  # certificates per node, revoked ones included
MAX_FILE_BYTES = 4 * 1024 * 1024


class RegistryFileError(Exception):
    """A registry file that cannot be used or changed; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ClientEntry:
    """One issued client certificate (times in Unix seconds; ``revoked_at`` 0 = in force)."""

    identity: str
    sha256: bytes
    issued_at: int
    not_after: int
    revoked_at: int = 0

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {"id": d.pop("identity"), **d, "sha256": self.sha256.hex()}


def _entry(raw: Any) -> ClientEntry:
    if not isinstance(raw, dict) or set(raw) != {
        "id",
        "sha256",
        "issued_at",
        "not_after",
        "revoked_at",
    }:
        raise ValueError("an entry must have exactly id, sha256, issued_at, not_after, revoked_at")
    ident, fp = raw["id"], raw["sha256"]
    if not isinstance(ident, str) or not ID_PATTERN.match(ident):
        raise ValueError("id is not a certificate identity")
    if not isinstance(fp, str) or len(fp) != 64:
        raise ValueError("sha256 must be 64 hex characters")
    times = [raw[k] for k in ("issued_at", "not_after", "revoked_at")]
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in times):
        raise ValueError("times must be non-negative integers")
    return ClientEntry(ident, bytes.fromhex(fp), *times)


def client_entry(identity: str, cert_pem: bytes) -> ClientEntry:
    """The registry entry of a freshly issued client certificate."""
    info = read_certificate(cert_pem)
    return ClientEntry(
        identity,
        certificate_fingerprint(cert_pem),
        int(info.not_before.timestamp()),
        int(info.not_after.timestamp()),
    )


def parse_registry(data: bytes) -> tuple[ClientEntry, ...]:
    """The entries of a registry file's bytes (``CLIENT_REGISTRY_INVALID``)."""
    try:
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("version") != 1:
            raise ValueError(f"not a {KIND} version 1")
        raw = doc.get("clients")
        if not isinstance(raw, list) or len(raw) > MAX_CLIENTS:
            raise ValueError(f"clients must be a list of at most {MAX_CLIENTS}")
        entries = tuple(_entry(x) for x in raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryFileError("CLIENT_REGISTRY_INVALID", f"client registry: {exc}") from None
    if len({e.sha256 for e in entries}) != len(entries):
        raise RegistryFileError("CLIENT_REGISTRY_INVALID", "a certificate is listed twice")
    return entries


def read_registry(path: Path) -> tuple[ClientEntry, ...]:
    """The entries in ``path`` (none if it does not exist)."""
    try:
        return parse_registry(path.read_bytes())
    except FileNotFoundError:
        return ()


def _encode(entries: tuple[ClientEntry, ...]) -> bytes:
    doc = {"kind": KIND, "version": 1, "clients": [e.as_json() for e in entries]}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _update(
    path: Path, change: Callable[[tuple[ClientEntry, ...]], tuple[ClientEntry, ...]]
) -> tuple[ClientEntry, ...]:
    """Read, change and atomically replace the registry under its lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = change(read_registry(path))
        if len(entries) > MAX_CLIENTS:
            raise RegistryFileError(
                "CLIENT_REGISTRY_FULL", f"the registry holds at most {MAX_CLIENTS} certificates"
            )
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_encode(entries))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return entries


def add_client(path: Path, entry: ClientEntry) -> None:
    """Register a newly issued certificate (``CLIENT_EXISTS`` if its fingerprint is listed)."""

    def change(entries: tuple[ClientEntry, ...]) -> tuple[ClientEntry, ...]:
        if any(e.sha256 == entry.sha256 for e in entries):
            raise RegistryFileError("CLIENT_EXISTS", "this certificate is already registered")
        return (*entries, entry)

    _update(path, change)


def revoke_client(
    path: Path, identity: str, now: int, sha256: bytes | None = None
) -> list[ClientEntry]:
    """Revoke ``identity``'s certificates in force (or only the one with ``sha256``).

    Returns the entries revoked now; ``CLIENT_UNKNOWN`` if none matched."""
    done: list[ClientEntry] = []

    def change(entries: tuple[ClientEntry, ...]) -> tuple[ClientEntry, ...]:
        out = []
        for e in entries:
            hit = e.identity == identity and (sha256 is None or e.sha256 == sha256)
            if hit and not e.revoked_at:
                e = replace(e, revoked_at=now)
                done.append(e)
            out.append(e)
        if not done:
            raise RegistryFileError(
                "CLIENT_UNKNOWN", f"no certificate of {identity!r} in force matches"
            )
        return tuple(out)

    _update(path, change)
    return done


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ClientRegistry:
    """A node's view of its registry file, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, ...] | None = None
        self._by_sha: dict[bytes, ClientEntry] = {}
        self._broken = False
        self._loaded = False

    def _refresh(self) -> None:
        try:
            stamp = _stamp(self.path)
        except OSError:
            stamp = (-1,)  # unreadable: try again next time, refuse meanwhile
        if self._loaded and stamp == self._stamp:
            return
        self._stamp, self._loaded = stamp, True
        try:
            entries = read_registry(self.path) if stamp is not None else ()
        except (OSError, RegistryFileError) as exc:
            self._by_sha, self._broken = {}, True
            log_event(
                "client registry unreadable", 40, file=str(self.path), reason=type(exc).__name__
            )
            return
        self._by_sha, self._broken = {e.sha256: e for e in entries}, False
        log_event("client registry loaded", file=str(self.path), certificates=len(entries))

    def check(self, identity: str, sha256: bytes) -> ClientEntry:
        """The entry of the caller's certificate, or a refusal with a stable reason.

        A revoked certificate is refused whatever the clocks say: ``revoked_at``
        records when, it does not schedule."""
        self._refresh()
        if self._broken:
            raise UnavailableError(
                "CLIENT_REGISTRY_UNREADABLE", "this node cannot check client certificates now"
            )
        entry = self._by_sha.get(sha256)
        if entry is None or entry.identity != identity:
            raise UnauthenticatedError(
                "CLIENT_UNKNOWN", f"this certificate of {identity} was not issued to a client here"
            )
        if entry.revoked_at:
            raise UnauthenticatedError(
                "CLIENT_REVOKED", f"this certificate of {identity} is revoked"
            )
        return entry
