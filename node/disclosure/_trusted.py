"""The scenario catalogue a hub vouches for in its trust bundle (docs/SPEC.md section 6).

Invariant: the catalogue lists every scenario of every scheme and every derived
score (with its ``base``, docs/adr/0006) shipped with the node software, at its
shipped version, with its minimum tier and the most it
may disclose -- exactly what :func:`node.disclosure.shipped_scenario` accepts
as a purpose -- signed by the hub root key that signs the trust list, so an
offline verifier refuses any consented attestation naming another scenario.
"""

from __future__ import annotations

from datetime import datetime

from keys import Envelope, KeyPair, ScenarioCatalogue, TrustedScenario
from node.disclosure._scenarios import scenarios_of, scenarios_of_derived
from scoring import list_derived, list_schemes, load_derived, load_scheme

__all__ = ["shipped_catalogue", "trusted_scenarios"]


def trusted_scenarios() -> tuple[TrustedScenario, ...]:
    """Every shipped scheme's and derived score's scenarios as a verifier trusts them."""
    own = (s for sid in list_schemes() for s in scenarios_of(load_scheme(sid)).values())
    derived = (
        s for did in list_derived() for s in scenarios_of_derived(load_derived(did)).values()
    )
    return tuple(
        TrustedScenario(s.ref, s.scheme_version, s.min_tier, s.allowed.value, s.title, s.base)
        for s in (*own, *derived)
    )


def shipped_catalogue(issuer: str, issued_at: datetime | int, hub_root: KeyPair) -> Envelope:
    """The hub-signed catalogue of :func:`trusted_scenarios` (``TrustBundle.scenarios``)."""
    return ScenarioCatalogue.of(issuer, issued_at, trusted_scenarios()).sign(hub_root)
