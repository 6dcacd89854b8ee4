"""Signed incentive catalogues (N17): a region's published catalogue as a DSSE envelope.

The payload is the canonical encoding of a ``Catalogue`` message
(``proto/keys/pb/v1/catalogue.proto``) under :data:`CATALOGUE_TYPE`, signed by
one of the region's signing keys.  Its bytes are a function of the catalogue
alone (no signing time, deterministic encoding, Ed25519 is deterministic), so
re-signing the same catalogue with the same key gives the same envelope.

:func:`open_catalogue` checks, in this order, failing closed with a
:class:`VerificationError` code of docs/SPEC.md:

1. at most :data:`MAX_CATALOGUE_BYTES` of payload (``MALFORMED``);
2. the payload type (``WRONG_PAYLOAD_TYPE``);
3. a signature by a key of the region's key set over exactly these bytes
   (``UNKNOWN_KEY``, ``BAD_SIGNATURE``);
4. that key may sign at the verifier's ``now`` (``KEY_NOT_VALID``,
   ``KEY_REVOKED``): a catalogue is current material, re-signed by its region
   with its current key, not a record of the past;
5. the canonical encoding (``MALFORMED``) and at most :data:`MAX_SCENARIOS`
   scenarios (``MALFORMED``);
6. the catalogue names the key set's region (``ISSUER_MISMATCH``).

Nothing in the payload is believed before the signature holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from keys.pb.v1 import attestation_pb2 as pb
from keys.pb.v1 import catalogue_pb2

from ._ed25519 import KeyPair
from ._envelope import Envelope, sign, verified_signer
from ._errors import VerificationError
from ._strict import canonical_bytes, parse_signed
from ._timeutil import Instant, to_epoch
from ._trust import KeySet

__all__ = [
    "CATALOGUE_TYPE",
    "MAX_CATALOGUE_BYTES",
    "MAX_SCENARIOS",
    "OpenedCatalogue",
    "open_catalogue",
    "sign_catalogue",
]

CATALOGUE_TYPE = "application/vnd.huxin.catalogue.v1+proto"
#: A catalogue of 64 scenarios with full guides stays far below this.
MAX_CATALOGUE_BYTES = 512 * 1024
MAX_SCENARIOS = 64


@dataclass(frozen=True, slots=True)
class OpenedCatalogue:
    catalogue: catalogue_pb2.Catalogue
    key_id: str  # the signing key that verified


def sign_catalogue(catalogue: catalogue_pb2.Catalogue, key: KeyPair) -> Envelope:
    """Sign ``catalogue`` in its canonical encoding (a copy is encoded; the argument is
    left as it is)."""
    copy = catalogue_pb2.Catalogue()
    copy.CopyFrom(catalogue)
    return sign(CATALOGUE_TYPE, canonical_bytes(copy), key)


def open_catalogue(
    envelope: Envelope | bytes | pb.Envelope, key_set: KeySet, now: Instant
) -> OpenedCatalogue:
    """The catalogue of ``key_set.region`` after the checks of the module docstring."""
    if isinstance(envelope, bytes | bytearray):
        envelope = Envelope.from_bytes(bytes(envelope))
    elif isinstance(envelope, pb.Envelope):
        envelope = Envelope.from_proto(envelope)
    if len(envelope.payload) > MAX_CATALOGUE_BYTES:
        raise VerificationError(
            "MALFORMED", f"a catalogue is at most {MAX_CATALOGUE_BYTES} bytes", field="payload"
        )
    keys = {k.key_id: k.public_key for k in key_set.keys}
    payload, kid = verified_signer(envelope, keys, CATALOGUE_TYPE)
    info = key_set.find(kid)
    problem = "UNKNOWN_KEY" if info is None else info.problem_at(to_epoch(now, field="now"))
    if problem is not None:
        raise VerificationError(
            problem, "the catalogue's signing key may not sign now", field="key_id"
        )
    message = parse_signed(catalogue_pb2.Catalogue, payload, "MALFORMED", "payload", "Catalogue")
    if len(message.scenarios) > MAX_SCENARIOS:
        raise VerificationError(
            "MALFORMED", f"a catalogue lists at most {MAX_SCENARIOS} scenarios", field="scenarios"
        )
    if message.region != key_set.region:
        raise VerificationError(
            "ISSUER_MISMATCH",
            f"a catalogue of {message.region!r} signed with {key_set.region!r}'s key",
            field="region",
        )
    return OpenedCatalogue(message, kid)
