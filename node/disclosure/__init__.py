"""Incentives only, enforced where the grade leaves the node (H12, H14, N14, N16, N17).

A consent's purpose is a scenario of a published incentive catalogue
(``"<scheme id>/<scenario id>"``), never free text; its scope is a disclosure
kind (threshold by default: "meets the scenario", neither grade nor score;
grade, or grade and score, only where the scenario allows it).  docs/adr/0512.

* :mod:`._scenarios` -- purpose -> :class:`Scenario` (pure; every routing hop
  and the home node agree), the allowed disclosure, the mapping target;
* :mod:`._disclose` -- which fields an attestation carries per disclosure, and
  the citizen's :func:`preview` of them;
* :mod:`._grant` -- ``GrantConsent``: only a person who meets the scenario can
  grant (``SCENARIO_NOT_MET`` is told to the citizen alone, nothing stored);
* :mod:`._recognise` -- a threshold consent for another scheme's scenario reads the
  mapped grade through the incentive-tier view of the installed table (docs/adr/0205);
* :mod:`._unmet` -- a consent whose subject fell below the tier ends at the
  next request, which the requester sees as a withdrawal;
* :mod:`._trusted` -- the scenario catalogue a hub signs into its trust bundle
  for offline verifiers.
"""

from __future__ import annotations

from node.disclosure._disclose import disclosed, field_paths, preview, withheld_fields
from node.disclosure._grant import (
    ADULT_AGE,
    CONSENT_TYPE,
    grant_consent,
    has_capacity,
    refuse_grant_over_limits,
)
from node.disclosure._recognise import (
    incentive_tier_view,
    mapped_for_request,
    recognised_for_threshold,
    table_for_request,
    unrecognised_for_threshold,
)
from node.disclosure._scenarios import (
    Scenario,
    check_allowed,
    check_mapped_version,
    check_request_target,
    grade_in_scenario,
    request_terms,
    requested_disclosure,
    scenario_for,
    scenarios_of,
    scenarios_of_derived,
    scope_of,
    shipped_scenario,
    target_for,
)
from node.disclosure._trusted import shipped_catalogue, trusted_scenarios
from node.disclosure._unmet import end_unmet_consent, end_unmet_consents, meets_published

__all__ = [
    "ADULT_AGE",
    "CONSENT_TYPE",
    "Scenario",
    "check_allowed",
    "check_mapped_version",
    "check_request_target",
    "disclosed",
    "end_unmet_consent",
    "end_unmet_consents",
    "field_paths",
    "grade_in_scenario",
    "grant_consent",
    "has_capacity",
    "incentive_tier_view",
    "mapped_for_request",
    "meets_published",
    "preview",
    "recognised_for_threshold",
    "refuse_grant_over_limits",
    "request_terms",
    "requested_disclosure",
    "scenario_for",
    "scenarios_of",
    "scenarios_of_derived",
    "scope_of",
    "shipped_catalogue",
    "shipped_scenario",
    "table_for_request",
    "target_for",
    "trusted_scenarios",
    "unrecognised_for_threshold",
    "withheld_fields",
]
