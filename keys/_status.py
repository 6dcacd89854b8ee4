"""Status lists: a signed, expiring, compressed 2-bit-per-entry bitstring.

Entry ``i`` lives in byte ``i // 4`` at bits ``2*(i % 4)`` and ``2*(i % 4)+1``
(least significant first); values 0 valid, 1 revoked, 2 suspended (under
dispute), 3 superseded.  The bitstring is a zlib stream in ``StatusList.bits``,
written by :func:`keys._deflate.compress` (a canonical encoding that depends
only on the bits, not on the zlib build, so signed lists and test vectors are
reproducible byte for byte); verifiers inflate any valid zlib stream.  A list has at least :data:`MIN_ENTRIES` (131,072)
entries, so fetching it says nothing about which attestation is being checked.

Invariants: the list is signed by a certified signing key of its issuer region
(checked by :func:`open_status_list` before parsing); its payload is the
canonical encoding and ``bits`` exactly one zlib stream; a list issued more
than the skew in the future or expired is not in force
(:func:`status_list_problem`); a missing entry is never treated as valid.
"""

from __future__ import annotations

import zlib
from enum import IntEnum

from keys.pb.v1 import attestation_pb2 as pb

from ._deflate import compress
from ._ed25519 import KeyPair
from ._envelope import STATUSLIST_TYPE, Envelope, sign, verified_signer
from ._errors import KeysError, VerificationError
from ._strict import parse_signed
from ._timeutil import DEFAULT_SKEW_SECONDS, Instant, to_epoch
from ._trust import Trust

__all__ = [
    "MIN_ENTRIES",
    "Status",
    "StatusList",
    "open_status_list",
    "status_list_problem",
    "verify_status_list",
]

MIN_ENTRIES = 131_072
_MAX_ENTRIES = 1 << 26


class Status(IntEnum):
    VALID = 0
    REVOKED = 1
    SUSPENDED = 2
    SUPERSEDED = 3


class StatusList:
    """A mutable status list (issuer side) or a verified one (verifier side)."""

    __slots__ = ("_raw", "expires_at", "issued_at", "issuer_region", "list_id", "size")

    def __init__(
        self,
        issuer_region: str,
        list_id: str,
        size: int = MIN_ENTRIES,
        *,
        raw: bytes | None = None,
        issued_at: int = 0,
        expires_at: int = 0,
    ) -> None:
        if not MIN_ENTRIES <= size <= _MAX_ENTRIES:
            raise KeysError("size", f"must be between {MIN_ENTRIES} and {_MAX_ENTRIES}")
        nbytes = (size + 3) // 4
        if raw is not None and len(raw) != nbytes:
            raise KeysError("bits", "length does not match size", code="INVALID_STATUS_LIST")
        self.issuer_region = issuer_region
        self.list_id = list_id
        self.size = size
        self.issued_at = issued_at
        self.expires_at = expires_at
        self._raw = bytearray(raw if raw is not None else nbytes)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise KeysError("index", "outside the status list", code="INVALID_STATUS_INDEX")

    def get(self, index: int) -> Status:
        self._check_index(index)
        return Status((self._raw[index >> 2] >> ((index & 3) * 2)) & 3)

    def set(self, index: int, state: Status) -> None:
        self._check_index(index)
        shift = (index & 3) * 2
        b = self._raw[index >> 2]
        self._raw[index >> 2] = (b & ~(3 << shift)) | (int(Status(state)) << shift)

    def raw_bits(self) -> bytes:
        """The uncompressed bitstring (``ceil(size / 4)`` bytes)."""
        return bytes(self._raw)

    def counts(self) -> dict[Status, int]:
        out = dict.fromkeys(Status, 0)
        for i in range(self.size):
            out[self.get(i)] += 1
        return out

    def to_proto(self, issued_at: int, expires_at: int) -> pb.StatusList:
        return pb.StatusList(
            issuer_region=self.issuer_region,
            list_id=self.list_id,
            size=self.size,
            issued_at=issued_at,
            expires_at=expires_at,
            bits=compress(bytes(self._raw)),
        )

    def sign(self, key: KeyPair, issued_at: Instant, expires_at: Instant) -> Envelope:
        """Sign the current state; ``expires_at`` bounds how long verifiers may rely on it."""
        i, e = to_epoch(issued_at, field="issued_at"), to_epoch(expires_at, field="expires_at")
        if e <= i:
            raise KeysError("expires_at", "must be after issued_at", code="INVALID_VALIDITY")
        return sign(STATUSLIST_TYPE, self.to_proto(i, e).SerializeToString(), key)


def open_status_list(envelope: Envelope | bytes | pb.Envelope, trust: Trust) -> StatusList:
    """Authenticate and decode a status list, without looking at the clock.

    Raises :class:`VerificationError`: the envelope codes (``MALFORMED``,
    ``WRONG_PAYLOAD_TYPE``, ``UNKNOWN_KEY``, ``BAD_SIGNATURE``), ``MALFORMED`` (payload
    not canonically encoded, ``size`` out of range, ``bits`` not exactly one zlib stream
    of ``ceil(size / 4)`` bytes, nothing after it), ``ISSUER_MISMATCH`` (signed by a key
    of another region than ``issuer_region``), ``KEY_NOT_VALID``/``KEY_REVOKED`` (key
    not usable at ``issued_at``).
    """
    payload, kid = verified_signer(envelope, trust.all_keys(), STATUSLIST_TYPE)
    m = parse_signed(pb.StatusList, payload, "MALFORMED", "status_list", "StatusList")
    try:
        if not MIN_ENTRIES <= m.size <= _MAX_ENTRIES:
            raise KeysError("size", "out of range", code="INVALID_STATUS_LIST")
        inflate = zlib.decompressobj()
        raw = inflate.decompress(m.bits, (m.size + 3) // 4)  # bounded: no zip bomb
        if inflate.unconsumed_tail or not inflate.eof:
            raise KeysError("bits", "longer than size, or truncated", code="INVALID_STATUS_LIST")
        if inflate.unused_data:
            raise KeysError("bits", "bytes after the zlib stream", code="INVALID_STATUS_LIST")
        sl = StatusList(
            m.issuer_region,
            m.list_id,
            m.size,
            raw=raw,
            issued_at=m.issued_at,
            expires_at=m.expires_at,
        )
    except (zlib.error, KeysError) as exc:
        detail = exc.message if isinstance(exc, KeysError) else "not a zlib stream"
        raise VerificationError(
            "MALFORMED", f"status list bits: {detail}", field="status_list"
        ) from None
    owner = trust.signing_key(kid)
    assert owner is not None  # verified_signer found it among trust.all_keys()
    region, info = owner
    if region != sl.issuer_region:
        raise VerificationError("ISSUER_MISMATCH", "signed by another region", field="status")
    problem = info.problem_at(sl.issued_at)
    if problem:
        raise VerificationError(problem, "status list signing key", field="status")
    return sl


def status_list_problem(sl: StatusList, now: int, skew: int) -> VerificationError | None:
    """Why an authenticated list is not in force at ``now``: issued more than ``skew``
    in the future (``NOT_YET_VALID``) or expired (``EXPIRED``); None when it is."""
    if sl.issued_at > now + skew:
        return VerificationError(
            "NOT_YET_VALID", "status list issued in the future", field="status_list.issued_at"
        )
    if now >= sl.expires_at:
        return VerificationError(
            "EXPIRED", "status list has expired", field="status_list.expires_at"
        )
    return None


def verify_status_list(
    envelope: Envelope | bytes | pb.Envelope,
    trust: Trust,
    now: Instant,
    *,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> StatusList:
    """Verify one status list envelope against ``trust`` and return the parsed list:
    :func:`open_status_list`, then in force at ``now`` (:func:`status_list_problem`).

    Which of several lists decides an attestation's status is
    :func:`keys.select_status_list`'s job (docs/SPEC.md section 8).
    """
    sl = open_status_list(envelope, trust)
    problem = status_list_problem(sl, to_epoch(now), skew)
    if problem is not None:
        raise problem
    return sl
