"""A consent's purpose is a catalogue scenario; what it may disclose (H12, H14, N14, N16).

A purpose is ``"<scheme id>/<scenario id>"`` naming an entry of a scheme's
published incentive catalogue (``scoring.parse_incentives``): the node's own
scheme, or another shipped scheme the node maps its grades into (mutual
recognition, C3).  Anything else -- free text such as ``loan``,
``deny_housing_subsidy`` or ``blacklist_check``, an unknown scheme or scenario
-- is refused ``INVALID_ARGUMENT UNKNOWN_SCENARIO`` (field ``purpose``).

Invariants:

* :func:`shipped_scenario` is pure (the shipped scheme files, read once per
  scheme and kept): the request form check (:mod:`node.exchange._request_form`) calls
  it on every hop, so a relaying node refuses exactly as the home node does;
* the home node decides with :func:`scenario_for`: a scenario of its own scheme
  is read from the scheme version in force (its tier and allowed disclosure),
  and must be in the shipped catalogue too, so every hop and the home node
  agree on which purposes exist;
* a consent discloses at most what its scenario allows
  (:func:`check_allowed`, ``INVALID_ARGUMENT DISCLOSURE_NOT_ALLOWED``, field
  ``scope``); an unspecified scope is a threshold consent;
* the tier is compared in the scenario's scheme: the native grade for the
  node's own scheme, the grade mapped by the approved table otherwise
  (:func:`target_for` fills an empty ``target_scheme`` with the scenario's
  scheme and refuses any other: ``TARGET_SCHEME_MISMATCH``);
* a derived score's scenario (``scoring/derived/``, N18; docs/adr/0006) is a
  purpose too: its :class:`Scenario` has the derived score as its scheme, the
  derived tiers as its grades and the base scheme key as ``base``; the home
  node decides it with the derived version in force (:mod:`node.derived`),
  never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from keys import MappedGrade, Threshold
from node.core._errors import FailedPreconditionError, InvalidArgumentError
from node.pb.v1 import node_pb2
from scoring import (
    DerivedScore,
    Disclosure,
    Scheme,
    SchemeError,
    list_derived,
    load_derived,
    load_scheme,
    parse_scenario_ref,
    scenario_ref,
)

__all__ = [
    "Scenario",
    "check_allowed",
    "check_mapped_version",
    "check_request_target",
    "grade_in_scenario",
    "request_terms",
    "requested_disclosure",
    "scenario_for",
    "scenarios_of",
    "scenarios_of_derived",
    "scope_of",
    "shipped_scenario",
    "target_for",
]

_SCOPES: Mapping[int, Disclosure] = {
    node_pb2.CONSENT_SCOPE_UNSPECIFIED: Disclosure.THRESHOLD,
    node_pb2.CONSENT_SCOPE_THRESHOLD: Disclosure.THRESHOLD,
    node_pb2.CONSENT_SCOPE_GRADE: Disclosure.GRADE,
    node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE: Disclosure.GRADE_AND_SCORE,
}
_SCOPE_OF = {
    Disclosure.THRESHOLD: node_pb2.CONSENT_SCOPE_THRESHOLD,
    Disclosure.GRADE: node_pb2.CONSENT_SCOPE_GRADE,
    Disclosure.GRADE_AND_SCORE: node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE,
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One incentive scenario of one scheme version."""

    ref: str  # "<scheme id>/<scenario id>"
    scheme_id: str
    scheme_version: str
    id: str
    title: str
    min_tier: str
    allowed: Disclosure  # the most a consent for it may disclose
    grades: tuple[str, ...]  # the scheme's grades, best first
    base: str = ""  # a derived score's scenario: its base scheme "<id>@<version>"

    @property
    def scheme(self) -> str:
        return f"{self.scheme_id}@{self.scheme_version}"

    @property
    def threshold(self) -> Threshold:
        return Threshold(self.scheme_id, self.scheme_version, self.min_tier)

    def meets(self, grade: str) -> bool:
        """True when ``grade`` (of this scenario's scheme) is the minimum tier or better."""
        return grade in self.grades and self.grades.index(grade) <= self.grades.index(self.min_tier)

    def describe(self) -> str:
        """``meets heihe/credit-loans (tier ≥ A in heihe@2025.1)`` -- as ``huxin verify`` says it."""
        return f"meets {self.ref} (tier ≥ {self.min_tier} in {self.scheme})"


def scenarios_of(scheme: Scheme) -> dict[str, Scenario]:
    """Every catalogue entry of ``scheme``, by scenario reference."""
    return {
        scenario_ref(scheme.id, i.id): Scenario(
            scenario_ref(scheme.id, i.id),
            scheme.id,
            scheme.version,
            i.id,
            i.title,
            i.min_grade,
            i.disclosure,
            scheme.grades,
        )
        for i in scheme.incentives
    }


def scenarios_of_derived(derived: DerivedScore) -> dict[str, Scenario]:
    """Every scenario of a derived score, in the derived score's own tiers."""
    return {
        scenario_ref(derived.id, i.id): Scenario(
            scenario_ref(derived.id, i.id),
            derived.id,
            derived.version,
            i.id,
            i.title,
            i.min_grade,
            i.disclosure,
            derived.grades,
            base=derived.base_key,
        )
        for i in derived.incentives
    }


@lru_cache(maxsize=64)
def _shipped(scheme_id: str) -> Mapping[str, Scenario]:
    """The shipped catalogue of ``scheme_id``, a scheme's or a derived score's (empty for
    one the project does not ship)."""
    try:
        if scheme_id in list_derived():
            return scenarios_of_derived(load_derived(scheme_id))
        return scenarios_of(load_scheme(scheme_id))
    except SchemeError:
        return {}


def _unknown(field: str) -> InvalidArgumentError:
    # the caller's text is never echoed: it may be anything
    return InvalidArgumentError(
        "UNKNOWN_SCENARIO",
        "must name a scenario of a published incentive catalogue as '<scheme id>/<scenario id>';"
        " the score serves incentives only (H14, N14)",
        field=field,
    )


def shipped_scenario(purpose: str, field: str = "purpose") -> Scenario:
    """The shipped catalogue's scenario ``purpose`` names; ``UNKNOWN_SCENARIO`` otherwise."""
    parsed = parse_scenario_ref(purpose)
    found = None if parsed is None else _shipped(parsed[0]).get(purpose)
    if found is None:
        raise _unknown(field)
    return found


def scenario_for(purpose: str, home: Scheme, field: str = "purpose") -> Scenario:
    """At the home node: the scenario as the scheme in force (``home``) defines it, for a
    scenario of the node's own scheme; as shipped, for another scheme's and for a derived
    score's (whose version in force :mod:`node.derived` reads)."""
    shipped = shipped_scenario(purpose, field)
    if shipped.base or shipped.scheme_id != home.id or home.version == shipped.scheme_version:
        return shipped
    in_force = _in_force(home).get(purpose)
    if in_force is None:
        raise _unknown(field)
    return in_force


_IN_FORCE: dict[int, tuple[Scheme, Mapping[str, Scenario]]] = {}


def _in_force(home: Scheme) -> Mapping[str, Scenario]:
    """The scenarios of a rolled-out scheme version, built once per scheme object (the
    object is kept with them, so its id is never reused while cached)."""
    hit = _IN_FORCE.get(id(home))
    if hit is None or hit[0] is not home:
        if len(_IN_FORCE) >= 8:
            _IN_FORCE.clear()
        hit = _IN_FORCE[id(home)] = (home, scenarios_of(home))
    return hit[1]


def requested_disclosure(scope: int) -> Disclosure:
    """The disclosure a consent scope asks for; unspecified means threshold."""
    found = _SCOPES.get(scope)
    if found is None:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be THRESHOLD, GRADE or GRADE_AND_SCORE", field="scope"
        )
    return found


def scope_of(disclosure: Disclosure) -> int:
    """The ``ConsentScope`` value stored and signed for ``disclosure``."""
    return _SCOPE_OF[disclosure]


def check_allowed(scenario: Scenario, disclosure: Disclosure) -> None:
    """``DISCLOSURE_NOT_ALLOWED`` when ``disclosure`` exceeds what the scenario allows (H12)."""
    if disclosure.rank > scenario.allowed.rank:
        raise InvalidArgumentError(
            "DISCLOSURE_NOT_ALLOWED",
            f"{scenario.ref} allows at most {scenario.allowed.value} disclosure",
            field="scope",
        )


def _mismatch(scenario: Scenario) -> InvalidArgumentError:
    return InvalidArgumentError(
        "TARGET_SCHEME_MISMATCH",
        f"must be empty or {scenario.scheme_id!r} for {scenario.ref}",
        field="target_scheme",
    )


def check_request_target(scenario: Scenario, target: str) -> None:
    """The form rule every hop applies: a threshold-only scenario has no grade to map
    into another scheme than its own."""
    if scenario.allowed is Disclosure.THRESHOLD and target not in ("", scenario.scheme_id):
        raise _mismatch(scenario)


def target_for(scenario: Scenario, home_scheme: str, target: str, disclosure: Disclosure) -> str:
    """The scheme the home node maps the grade into ('' for none).

    A scenario of another scheme is met by the grade mapped into that scheme, so an
    empty target is filled with it and any other is refused; for the node's own
    scheme the native grade decides, and a grade disclosure may still be mapped
    into the requested scheme (mutual recognition), a threshold one never.
    """
    if scenario.scheme_id != home_scheme:
        if target not in ("", scenario.scheme_id):
            raise _mismatch(scenario)
        return scenario.scheme_id
    if target in ("", home_scheme):
        return ""
    if disclosure is Disclosure.THRESHOLD:
        raise _mismatch(scenario)
    return target


def request_terms(
    purpose: str, home: Scheme, scope: int, target: str
) -> tuple[Scenario, Disclosure, str]:
    """At the home node, for a request under a consent of ``scope``: the scenario as the
    scheme in force defines it, the consent's disclosure (still allowed by it) and the
    scheme the grade is mapped into ('' for none)."""
    scenario = scenario_for(purpose, home)
    disclosure = requested_disclosure(scope)
    check_allowed(scenario, disclosure)
    return scenario, disclosure, target_for(scenario, home.id, target, disclosure)


def check_mapped_version(scenario: Scenario, target: str, version: str) -> None:
    """``FAILED_PRECONDITION SCHEME_VERSION_MISMATCH`` (field ``target_scheme``) when the
    table mapping into a scenario's scheme targets another version of it than the
    scenario's: the mapped grade would be of a tier the attestation's threshold does not
    name, and the attestation could not be built.  Decided from the table alone, before
    the person's grade is read or the use is kept."""
    if target == scenario.scheme_id and version != scenario.scheme_version:
        raise FailedPreconditionError(
            "SCHEME_VERSION_MISMATCH",
            f"the mapping table into {scenario.scheme_id!r} targets version {version!r};"
            f" {scenario.ref} is of version {scenario.scheme_version!r}",
            field="target_scheme",
        )


def grade_in_scenario(
    scenario: Scenario, home_scheme: str, grade: str, mapped: MappedGrade | None
) -> str:
    """The grade the scenario's tier is compared with: native for the node's own scheme,
    mapped into the scenario's scheme otherwise (``target_for`` asked for that mapping)."""
    if scenario.scheme_id == home_scheme:
        return grade
    return "" if mapped is None or mapped.scheme_id != scenario.scheme_id else mapped.grade
