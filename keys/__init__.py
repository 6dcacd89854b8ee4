"""Keys: Ed25519 keys, signed envelopes, Merkle batches and offline verification.

Pure: no network, no database, no file I/O (the CLI in ``node`` reads and
writes key files).  Every error derives from :class:`KeysError` and carries a
stable ``code``; every verification failure is a :class:`VerificationError`
whose ``code`` is one of :data:`REASON_CODES` (docs/SPEC.md).
"""

from ._attestation import (
    Attestation,
    Batch,
    Checkpoint,
    MappedGrade,
    issue_attestation,
    issue_batch,
    sign_checkpoint,
)
from ._batchverify import verify_batch, verify_batch_payloads
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
    MAX_SIGNATURES,
    STATUSLIST_TYPE,
    TRUSTLIST_TYPE,
    Envelope,
    EnvelopeSignature,
    pae,
    sign,
    signer_of,
    verified_signer,
    verify_envelope,
)
from ._errors import REASON_CODES, KeyRefusedError, KeysError, SealError, VerificationError
from ._keyfile import decode_private_key, encode_private_key, is_encrypted_key
from ._merkle import (
    EMPTY_ROOT,
    MerkleTree,
    carry_levels,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    path_from_levels,
    root_from_inclusion,
    root_of_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from ._pseudonym import normalise_id, province_pseudonym, subject_binding, subject_key
from ._seal import Sealer
from ._status import MIN_ENTRIES, Status, StatusList, open_status_list, verify_status_list
from ._status_select import StatusCandidate, StatusPool, StatusWarning, select_status_list
from ._timeutil import from_epoch, to_epoch
from ._trust import (
    KeySet,
    RegionTrust,
    SigningKeyInfo,
    Trust,
    TrustedRegion,
    TrustList,
    load_trust,
    verify_key_set,
)
from ._verify import DEFAULT_SKEW_SECONDS, VerifiedAttestation, verify_attestation

__all__ = [
    "ATTESTATION_TYPE",
    "CHECKPOINT_TYPE",
    "DEFAULT_SKEW_SECONDS",
    "EMPTY_ROOT",
    "KEYSET_TYPE",
    "MAX_SIGNATURES",
    "MIN_ENTRIES",
    "REASON_CODES",
    "REGION_URI_PREFIX",
    "STATUSLIST_TYPE",
    "TRUSTLIST_TYPE",
    "Attestation",
    "Batch",
    "CertificateAuthority",
    "Checkpoint",
    "Envelope",
    "EnvelopeSignature",
    "KeyPair",
    "KeyRefusedError",
    "KeySet",
    "KeysError",
    "MappedGrade",
    "MerkleTree",
    "NodeCertificate",
    "RegionTrust",
    "SealError",
    "Sealer",
    "SigningKeyInfo",
    "Status",
    "StatusCandidate",
    "StatusList",
    "StatusPool",
    "StatusWarning",
    "Trust",
    "TrustList",
    "TrustedRegion",
    "VerificationError",
    "VerifiedAttestation",
    "carry_levels",
    "certificate_fingerprint",
    "check_public_key",
    "consistency_proof",
    "decode_private_key",
    "ed25519_verify",
    "encode_private_key",
    "from_epoch",
    "inclusion_proof",
    "is_encrypted_key",
    "issue_attestation",
    "issue_batch",
    "key_id",
    "leaf_hash",
    "load_trust",
    "merkle_root",
    "node_hash",
    "normalise_id",
    "open_status_list",
    "pae",
    "path_from_levels",
    "province_pseudonym",
    "region_of_certificate",
    "root_from_inclusion",
    "root_of_leaf_hashes",
    "select_status_list",
    "sign",
    "sign_checkpoint",
    "signer_of",
    "subject_binding",
    "subject_key",
    "to_epoch",
    "verified_signer",
    "verify_attestation",
    "verify_batch",
    "verify_batch_payloads",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
    "verify_key_set",
    "verify_peer_certificate",
    "verify_status_list",
]
