"""Where a region's published catalogue and the hub's recognised one disagree (ADR 0516).

A region signs its own catalogue (N17); verifiers trust only the scenario catalogue
the hub signs into its trust bundles, which lists every shipped scheme's scenarios
at their shipped versions (:func:`node.disclosure.trusted_scenarios`).  After
``huxin catalogue fetch`` verifies a peer's catalogue, :func:`hub_disagreements`
names each of its scenarios the hub's catalogue does not hold at that scheme
version, or holds with another tier or disclosure: an attestation for such a
scenario is refused by offline verifiers (``SCENARIO_NOT_TRUSTED``,
``DISCLOSURE_NOT_ALLOWED``).  It only reports; the fetched catalogue stays verified.

Invariant: the result is empty exactly when every scenario of the catalogue is in
``trusted`` at the catalogue's scheme version with the same tier and disclosure.
"""

from __future__ import annotations

from collections.abc import Iterable

from keys import TrustedScenario
from node.pb.v1 import catalogue_pb2

__all__ = ["hub_disagreements"]


def hub_disagreements(
    cat: catalogue_pb2.Catalogue, trusted: Iterable[TrustedScenario]
) -> tuple[str, ...]:
    """One line per scenario of ``cat`` the hub's catalogue does not recognise as published."""
    index = {t.key: t for t in trusted}
    out: list[str] = []
    for s in cat.scenarios:
        where = f"{s.ref} at {cat.scheme_id}@{cat.scheme_version}"
        hub = index.get((s.ref, cat.scheme_version))
        if hub is None:
            out.append(f"{where}: not in the hub's scenario catalogue (SCENARIO_NOT_TRUSTED)")
            continue
        if hub.min_tier != s.min_grade:
            out.append(f"{where}: tier {s.min_grade} published, {hub.min_tier} recognised")
        if hub.disclosure != s.disclosure:
            out.append(f"{where}: disclosure {s.disclosure} published, {hub.disclosure} recognised")
    return tuple(out)
