"""Key sets (a region's certified signing keys) and the hub's trust list.

A region's **root key** signs a :class:`KeySet`: every signing key the region
has used, with ``not_before``/``not_after`` and, once revoked, ``revoked_at``.
Rotation adds a key and bumps the version; old keys stay listed so old
attestations still verify; revocation records a time after which anything the
key signed fails.  Every key is checked (:func:`check_public_key`) when added.

The hub root signs a :class:`TrustList`: regions, their root keys, schemes,
endpoints, TLS fingerprints and their current KeySet envelopes, with a strictly
increasing ``version`` and an ``expires_at``.  :func:`load_trust` verifies it
(signature first, then parse), refuses a version below what the caller has seen
(``TRUST_ROLLBACK``), a list issued in the future beyond the clock skew
(``NOT_YET_VALID``) and an expired list (``TRUST_EXPIRED``) unless the caller
passes ``allow_stale=True``, in which case :attr:`Trust.stale` is set and every
verification reports it.  Each region's KeySet must verify under the root key
the trust list names for that region (``BAD_KEY_SET``).

A trust bundle may carry the hub-signed scenario catalogue
(``TrustBundle.scenarios``, keys._disclosure): :func:`load_trust` verifies it
under the same pinned hub key and requires the trust list's issuer in it
(``TRUST_INVALID`` otherwise); :attr:`Trust.scenarios` is then the catalogue
consented attestations are checked against, and None (no consented
attestation verifies) when the bundle has none.  Likewise the hub-signed list
of approved mapping tables (``TrustBundle.mapping_approvals``, keys._approval,
H13): :attr:`Trust.approvals`, None when absent (then no attestation carrying a
mapped grade verifies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from google.protobuf.message import DecodeError

from node.pb.v1 import attestation_pb2 as pb

from ._approval import ApprovedMappings, verify_approved_mappings
from ._disclosure import ScenarioCatalogue, verify_scenario_catalogue
from ._ed25519 import KeyPair, check_public_key, key_id
from ._envelope import KEYSET_TYPE, TRUSTLIST_TYPE, Envelope, sign, verified_signer
from ._errors import KeysError, VerificationError
from ._strict import parse_signed
from ._timeutil import DEFAULT_SKEW_SECONDS, Instant, to_epoch

__all__ = [
    "KeySet",
    "RegionTrust",
    "SigningKeyInfo",
    "Trust",
    "TrustList",
    "TrustedRegion",
    "load_trust",
    "verify_key_set",
]


@dataclass(frozen=True, slots=True)
class SigningKeyInfo:
    """A certified signing key: raw public key, validity and revocation (Unix seconds)."""

    public_key: bytes
    not_before: int
    not_after: int
    revoked_at: int = 0
    revocation_reason: str = ""

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def problem_at(self, t: int) -> str | None:
        """Reason code if this key may not sign at time ``t``, else None."""
        if self.revoked_at and t >= self.revoked_at:
            return "KEY_REVOKED"
        if not self.not_before <= t <= self.not_after:
            return "KEY_NOT_VALID"
        return None


@dataclass(frozen=True, slots=True)
class KeySet:
    """A region's signing keys as certified by its root key."""

    region: str
    version: int
    issued_at: int
    root_public_key: bytes
    keys: tuple[SigningKeyInfo, ...] = ()

    @classmethod
    def new(cls, region: str, root_public_key: bytes, issued_at: Instant) -> KeySet:
        check_public_key(root_public_key, field="root_public_key")
        return cls(region, 0, to_epoch(issued_at, field="issued_at"), bytes(root_public_key))

    def find(self, kid: str) -> SigningKeyInfo | None:
        for k in self.keys:
            if k.key_id == kid:
                return k
        return None

    def add_key(self, public_key: bytes, not_before: Instant, not_after: Instant) -> KeySet:
        """Certify a new signing key (rotation); refuses weak or duplicate keys."""
        pk = check_public_key(public_key)
        nb, na = to_epoch(not_before, field="not_before"), to_epoch(not_after, field="not_after")
        if na <= nb:
            raise KeysError("not_after", "must be after not_before", code="INVALID_VALIDITY")
        if self.find(key_id(pk)) is not None or pk == self.root_public_key:
            raise KeysError("public_key", "already registered", code="DUPLICATE_KEY")
        info = SigningKeyInfo(pk, nb, na)
        return replace(self, version=self.version + 1, keys=(*self.keys, info))

    def revoke(self, kid: str, at: Instant, reason: str = "") -> KeySet:
        """Record that key ``kid`` signs nothing valid from ``at`` on."""
        t = to_epoch(at, field="at")
        found = self.find(kid)
        if found is None:
            raise KeysError("key_id", "not in this key set", code="UNKNOWN_KEY")
        if found.revoked_at and found.revoked_at <= t:
            return self
        keys = tuple(
            replace(k, revoked_at=t, revocation_reason=reason) if k.key_id == kid else k
            for k in self.keys
        )
        return replace(self, version=self.version + 1, keys=keys)

    def current(self, now: Instant) -> SigningKeyInfo | None:
        """The most recently certified key usable at ``now``."""
        t = to_epoch(now)
        usable = [k for k in self.keys if k.problem_at(t) is None]
        return usable[-1] if usable else None

    def to_proto(self) -> pb.KeySet:
        return pb.KeySet(
            region=self.region,
            version=self.version,
            issued_at=self.issued_at,
            root_public_key=self.root_public_key,
            keys=[
                pb.SigningKey(
                    public_key=k.public_key,
                    not_before=k.not_before,
                    not_after=k.not_after,
                    revoked_at=k.revoked_at,
                    revocation_reason=k.revocation_reason,
                )
                for k in self.keys
            ],
        )

    def sign(self, root: KeyPair, issued_at: Instant | None = None) -> Envelope:
        if root.public_key != self.root_public_key:
            raise KeysError("root", "is not this key set's root key", code="INVALID_KEY")
        ks = self if issued_at is None else replace(self, issued_at=to_epoch(issued_at))
        return sign(KEYSET_TYPE, ks.to_proto().SerializeToString(), root)

    @classmethod
    def from_proto(cls, m: pb.KeySet) -> KeySet:
        return cls(
            region=m.region,
            version=m.version,
            issued_at=m.issued_at,
            root_public_key=bytes(m.root_public_key),
            keys=tuple(
                SigningKeyInfo(
                    bytes(k.public_key),
                    k.not_before,
                    k.not_after,
                    k.revoked_at,
                    k.revocation_reason,
                )
                for k in m.keys
            ),
        )


def verify_key_set(
    envelope: Envelope | bytes | pb.Envelope, root_public_key: bytes, region: str | None = None
) -> KeySet:
    """Verify a KeySet envelope under ``root_public_key``; ``BAD_KEY_SET`` otherwise."""
    try:
        payload, _ = verified_signer(
            envelope, {key_id(root_public_key): root_public_key}, KEYSET_TYPE
        )
    except VerificationError as exc:
        raise VerificationError("BAD_KEY_SET", f"key set: {exc.code}", field="key_set") from None
    m = parse_signed(pb.KeySet, payload, "BAD_KEY_SET", "key_set", "KeySet")
    ks = KeySet.from_proto(m)
    if ks.root_public_key != root_public_key or (region is not None and ks.region != region):
        raise VerificationError("BAD_KEY_SET", "region or root key mismatch", field="key_set")
    for k in ks.keys:
        try:
            check_public_key(k.public_key)
        except KeysError:
            raise VerificationError("BAD_KEY_SET", "lists a weak key", field="key_set") from None
    return ks


@dataclass(frozen=True, slots=True)
class TrustedRegion:
    """One region as listed by the hub (input to :meth:`TrustList.sign`)."""

    region: str
    root_public_key: bytes
    key_set: Envelope
    name: str = ""
    schemes: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    tls_sha256: tuple[bytes, ...] = ()
    domestic: bool = True


@dataclass(frozen=True, slots=True)
class TrustList:
    """The hub's signed list of regions."""

    issuer: str
    version: int
    issued_at: int
    expires_at: int
    regions: tuple[TrustedRegion, ...]
    issuer_root_public_key: bytes = b""

    def to_proto(self) -> pb.TrustList:
        return pb.TrustList(
            issuer=self.issuer,
            version=self.version,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
            issuer_root_public_key=self.issuer_root_public_key,
            regions=[
                pb.TrustedRegion(
                    region=r.region,
                    name=r.name,
                    root_public_key=r.root_public_key,
                    schemes=list(r.schemes),
                    endpoints=list(r.endpoints),
                    tls_sha256=list(r.tls_sha256),
                    domestic=r.domestic,
                    key_set=r.key_set.to_proto(),
                )
                for r in self.regions
            ],
        )

    def sign(self, hub_root: KeyPair) -> Envelope:
        """Sign with the hub root key (each region's root key is checked first)."""
        seen: set[str] = set()
        for r in self.regions:
            check_public_key(r.root_public_key, field=f"regions[{r.region}].root_public_key")
            if r.region in seen:
                raise KeysError("regions", f"duplicate region {r.region}", code="DUPLICATE_REGION")
            seen.add(r.region)
        if self.expires_at <= self.issued_at:
            raise KeysError("expires_at", "must be after issued_at", code="INVALID_VALIDITY")
        tl = replace(self, issuer_root_public_key=hub_root.public_key)
        return sign(TRUSTLIST_TYPE, tl.to_proto().SerializeToString(), hub_root)


@dataclass(frozen=True, slots=True)
class RegionTrust:
    """What a verifier knows about one region after :func:`load_trust`."""

    region: str
    root_public_key: bytes
    keys: KeySet
    schemes: frozenset[str]
    endpoints: tuple[str, ...]
    tls_sha256: frozenset[bytes]
    domestic: bool


@dataclass(slots=True)
class Trust:
    """Verified trust material; build it with :func:`load_trust` or :meth:`from_key_sets`.

    Not frozen only because it caches verified checkpoints (by their exact
    bytes); everything else is fixed at load time.
    """

    issuer: str
    version: int
    expires_at: int
    regions: Mapping[str, RegionTrust]
    stale: bool = False
    #: the scenarios consented attestations may name (None: no catalogue was given)
    scenarios: ScenarioCatalogue | None = None
    #: the approved mapping tables a mapped grade must cite (None: no list was given)
    approvals: ApprovedMappings | None = None
    _by_key: dict[str, tuple[str, SigningKeyInfo]] = field(default_factory=dict, repr=False)
    _checkpoints: dict[object, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name, r in self.regions.items():
            for k in r.keys.keys:
                if k.key_id in self._by_key:
                    raise VerificationError(
                        "BAD_KEY_SET", f"key {k.key_id} listed by two regions", field="key_set"
                    )
                self._by_key[k.key_id] = (name, k)

    def signing_key(self, kid: str) -> tuple[str, SigningKeyInfo] | None:
        """(region, key info) of a certified signing key, or None."""
        return self._by_key.get(kid)

    def region_keys(self, region: str) -> dict[str, bytes]:
        r = self.regions.get(region)
        return {} if r is None else {k.key_id: k.public_key for k in r.keys.keys}

    def all_keys(self) -> dict[str, bytes]:
        return {kid: info.public_key for kid, (_, info) in self._by_key.items()}

    def with_scenarios(self, scenarios: ScenarioCatalogue | None) -> Trust:
        """The same trust with ``scenarios`` as its scenario catalogue (trust material the
        caller vouches for, as it does for the pinned hub key)."""
        return Trust(
            issuer=self.issuer,
            version=self.version,
            expires_at=self.expires_at,
            regions=self.regions,
            stale=self.stale,
            scenarios=scenarios,
            approvals=self.approvals,
        )

    def with_approvals(self, approvals: ApprovedMappings | None) -> Trust:
        """The same trust with ``approvals`` as its approved mapping tables (trust material
        the caller vouches for, as it does for the pinned hub key)."""
        return Trust(
            issuer=self.issuer,
            version=self.version,
            expires_at=self.expires_at,
            regions=self.regions,
            stale=self.stale,
            scenarios=self.scenarios,
            approvals=approvals,
        )

    @classmethod
    def from_key_sets(
        cls, key_sets: Iterable[KeySet], *, issuer: str = "local", expires_at: int = 2**62
    ) -> Trust:
        """Trust built directly from verified key sets (a node trusting its own keys);
        ``issuer`` is the hub whose statutory pushes it accepts (keys._disclosure):
        the default "local" names no hub, so none."""
        regions = {
            ks.region: RegionTrust(
                ks.region, ks.root_public_key, ks, frozenset(), (), frozenset(), True
            )
            for ks in key_sets
        }
        return cls(issuer=issuer, version=0, expires_at=expires_at, regions=regions)


def _parse_trust_list(payload: bytes) -> pb.TrustList:
    return parse_signed(pb.TrustList, payload, "TRUST_INVALID", "trust_list", "TrustList")


def load_trust(
    trust_list: Envelope | bytes | pb.Envelope,
    hub_root_public_key: bytes,
    now: Instant,
    *,
    min_version: int = 0,
    allow_stale: bool = False,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> Trust:
    """Verify the hub-signed trust list and every region's key set; return :class:`Trust`.

    ``trust_list`` is the TrustList envelope or a serialised ``TrustBundle``
    (whose ``trust_list`` is used).  ``min_version`` is the highest version the
    caller has accepted before (anti-rollback).  A list issued more than ``skew``
    seconds after ``now`` is refused (``NOT_YET_VALID``): a hub cannot pre-date
    what verifiers will accept later.
    """
    t = to_epoch(now)
    env: Envelope | bytes | pb.Envelope = trust_list
    catalogue_env: pb.Envelope | None = None
    approvals_env: pb.Envelope | None = None
    if isinstance(trust_list, bytes | bytearray):
        bundle = pb.TrustBundle()
        try:
            bundle.ParseFromString(bytes(trust_list))
            if bundle.HasField("trust_list"):
                env = bundle.trust_list
                if bundle.HasField("scenarios"):
                    catalogue_env = bundle.scenarios
                if bundle.HasField("mapping_approvals"):
                    approvals_env = bundle.mapping_approvals
        except (DecodeError, ValueError):
            pass  # not a bundle: the bytes are taken as the trust-list envelope itself
    hub_keys = {key_id(hub_root_public_key): bytes(hub_root_public_key)}
    try:
        payload, _ = verified_signer(env, hub_keys, TRUSTLIST_TYPE)
    except VerificationError as exc:
        raise VerificationError(
            "TRUST_INVALID", f"trust list signature: {exc.code}", field="trust_list"
        ) from None
    m = _parse_trust_list(payload)
    if m.version < min_version:
        raise VerificationError(
            "TRUST_ROLLBACK",
            f"version {m.version} is older than the {min_version} already seen",
            field="trust_list.version",
        )
    if m.issued_at > t + skew:
        raise VerificationError(
            "NOT_YET_VALID", "trust list issued in the future", field="trust_list.issued_at"
        )
    stale = t >= m.expires_at
    if stale and not allow_stale:
        raise VerificationError("TRUST_EXPIRED", "trust list has expired", field="trust_list")
    regions: dict[str, RegionTrust] = {}
    for r in m.regions:
        ks = verify_key_set(r.key_set, bytes(r.root_public_key), r.region)
        regions[r.region] = RegionTrust(
            region=r.region,
            root_public_key=bytes(r.root_public_key),
            keys=ks,
            schemes=frozenset(r.schemes),
            endpoints=tuple(r.endpoints),
            tls_sha256=frozenset(bytes(x) for x in r.tls_sha256),
            domestic=r.domestic,
        )
    scenarios = (
        None
        if catalogue_env is None
        else verify_scenario_catalogue(catalogue_env, hub_root_public_key, m.issuer)
    )
    approvals = (
        None
        if approvals_env is None
        else verify_approved_mappings(approvals_env, hub_root_public_key, m.issuer)
    )
    return Trust(
        issuer=m.issuer,
        version=m.version,
        expires_at=m.expires_at,
        regions=regions,
        stale=stale,
        scenarios=scenarios,
        approvals=approvals,
    )
