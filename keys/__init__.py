"""Keys: Ed25519 keys, signed envelopes, Merkle batches and offline verification.

Pure: no network, no database, no file I/O (the CLI in ``node`` reads and
writes key files).  Every error derives from :class:`KeysError` and carries a
stable ``code``; every verification failure is a :class:`VerificationError`
whose ``code`` is one of :data:`REASON_CODES` (docs/SPEC.md).
"""

from ._ca import (
    REGION_URI_PREFIX,
    CertificateAuthority,
    NodeCertificate,
    certificate_fingerprint,
    region_of_certificate,
    verify_peer_certificate,
)
from ._ed25519 import KeyPair, check_public_key, ed25519_verify, key_id
from ._envelope import (
    ATTESTATION_TYPE,
    CHECKPOINT_TYPE,
    KEYSET_TYPE,
    STATUSLIST_TYPE,
    TRUSTLIST_TYPE,
    Envelope,
    EnvelopeSignature,
    pae,
    sign,
    verified_signer,
    verify_envelope,
)
from ._errors import REASON_CODES, KeyRefusedError, KeysError, SealError, VerificationError
from ._merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)
from ._pseudonym import normalise_id, province_pseudonym, subject_binding, subject_key
from ._seal import Sealer

__all__ = [
    "ATTESTATION_TYPE",
    "CHECKPOINT_TYPE",
    "EMPTY_ROOT",
    "KEYSET_TYPE",
    "REASON_CODES",
    "REGION_URI_PREFIX",
    "STATUSLIST_TYPE",
    "TRUSTLIST_TYPE",
    "CertificateAuthority",
    "Envelope",
    "EnvelopeSignature",
    "KeyPair",
    "KeyRefusedError",
    "KeysError",
    "MerkleTree",
    "NodeCertificate",
    "SealError",
    "Sealer",
    "VerificationError",
    "certificate_fingerprint",
    "check_public_key",
    "consistency_proof",
    "ed25519_verify",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "normalise_id",
    "pae",
    "province_pseudonym",
    "region_of_certificate",
    "root_from_inclusion",
    "sign",
    "subject_binding",
    "subject_key",
    "verified_signer",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
    "verify_peer_certificate",
]
