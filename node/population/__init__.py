"""The population registry (docs/adr/0508; H1, H7, N1).

Who exists for a region node: a population authority (household
registration, residence permits; for Hainan also the social-insurance and tax
authorities, N1) files residence facts without records through
``SourceService.SubmitResidenceFacts``; every eligible resident is then
scored in every monthly run, records or not, and a person who dies, leaves or
loses eligibility leaves the run, has their consents ended with a reason code
and is no longer served.  Record intake refuses people out of scope when the
node requires the registry (``[sources] require_registry``).

Modules: ``_facts`` (vocabulary, pure validation), ``_registry`` (fact batches as units and
registry reads), ``_service`` (the RPC), ``_scope`` (record intake's scope
check), ``_file`` (CSV/JSONL rows for the source CLI).  ``huxin source submit`` is
:mod:`node.cli._population`.
"""

from node.population._facts import FACT_KINDS, FACTS_MAX, Fact, residence_kinds, validate_facts
from node.population._registry import (
    RegistryState,
    apply_facts,
    not_served_reason,
    registry_state,
    require_served,
    state_of,
)
from node.population._scope import person_scope_problem, scope_problems
from node.population._service import submit_residence_facts

__all__ = [
    "FACTS_MAX",
    "FACT_KINDS",
    "Fact",
    "RegistryState",
    "apply_facts",
    "not_served_reason",
    "person_scope_problem",
    "registry_state",
    "require_served",
    "residence_kinds",
    "scope_problems",
    "state_of",
    "submit_residence_facts",
    "validate_facts",
]
