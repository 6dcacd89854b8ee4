"""Threshold consents for another scheme's scenario: the incentive-tier view (C3, H14, N20).

A threshold consent for a scenario of another scheme is met by the grade
mapped into that scheme.  Recognition is for incentives only, so the grade is
read through the *incentive-tier view* of the installed table
(:func:`incentive_tier_view`): every source grade below the home scheme's
incentive tier is not recognised (``None``), every other keeps the installed
table's grade.  A grade that is not recognised meets no scenario: the citizen
is told ``SCENARIO_NOT_MET``, exactly as a too-low grade (docs/adr/0205); the
request path decides alike
(:func:`unrecognised_for_threshold`).

Invariants:

* the view is derived from the installed table, whatever its method (anchored,
  agreement, equipercentile), with :class:`mapping.MappingTable`'s own form
  (``incentive_tier=True``, ``None`` exactly below the source's incentive
  tier), so it never carries a grade the installed table does not carry;
* the mapped grade that is used is the installed table's (``Mapper.map``:
  validity on the day, citation by id, version and content hash): the approved
  table is what an attestation cites, never an unsigned derivative;
* grade-disclosing consents keep the full table (not here).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from keys import MappedGrade
from mapping import MappingTable
from node.disclosure._scenarios import Scenario, check_mapped_version
from node.exchange._mapping import Mapper
from scoring import Disclosure, Scheme

__all__ = [
    "incentive_tier_view",
    "mapped_for_request",
    "recognised_for_threshold",
    "table_for_request",
    "unrecognised_for_threshold",
]


def incentive_tier_view(table: MappingTable, source: Scheme) -> MappingTable:
    """``table`` with every grade below ``source``'s incentive tier not recognised.

    ``source`` is the home scheme in force; a table that is already
    incentive-tier is returned as it is.  Signatures are dropped: the view is
    a reading of the installed table, not a table anyone signed."""
    if table.incentive_tier:
        return table
    cut = source.grades.index(source.incentive_tier)
    grades = tuple(
        (g, t if g in source.grades and source.grades.index(g) <= cut else None)
        for g, t in table.grades
    )
    return replace(table, grades=grades, incentive_tier=True, signatures=())


def unrecognised_for_threshold(
    scenario_scheme: str, disclosure: Disclosure, home: Scheme, grade: str
) -> bool:
    """True when a threshold disclosure for another scheme's scenario must treat ``grade``
    as not recognised: below ``home``'s incentive tier, the incentive-tier view of any
    installed table carries nothing (:func:`incentive_tier_view`), so the request path
    and the grant path decide alike."""
    return (
        disclosure is Disclosure.THRESHOLD
        and scenario_scheme != home.id
        and not home.is_incentive_grade(grade)
    )


def recognised_for_threshold(
    mapper: Mapper,
    home: Scheme,
    grade: str,
    target: str,
    today: date,
    *,
    target_version: str = "",
) -> MappedGrade | None:
    """The installed table's mapping of ``grade`` into ``target``, or ``None`` when the
    incentive-tier view does not recognise it (below ``home``'s incentive tier).

    Raises ``MAPPING_UNAVAILABLE`` (from :class:`node.exchange._mapping.Mapper`) when no usable
    table maps into ``target``."""
    table = mapper.usable(target, today, target_version=target_version, source=home)
    if grade in table.grade_map and incentive_tier_view(table, home).recognise(grade) is None:
        return None
    return mapper.map(grade, target, today, target_version=target_version, source=home)


def wanted_version(scenario: Scenario, target: str) -> str:
    """The target version a table must map into: the scenario's when it maps into the
    scenario's scheme, else any ("")."""
    return scenario.scheme_version if target == scenario.scheme_id else ""


def table_for_request(
    mapper: Mapper,
    scenario: Scenario,
    target: str,
    today: date,
    source: Scheme | None = None,
) -> MappingTable | None:
    """The table a request into ``target`` would use (None for no target), decided from
    the tables alone: ``MAPPING_UNAVAILABLE``, ``SCHEME_VERSION_MISMATCH`` (the node's
    version in force, or the scenario's version of the target), ``MAPPING_NOT_APPROVED``.
    The request path asks this before it reads the person's grade, so the answer is the
    same for everyone (C3, H13)."""
    if not target:
        return None
    want = wanted_version(scenario, target)
    table = mapper.usable(target, today, target_version=want, source=source)
    check_mapped_version(scenario, target, table.target.version)
    return table


def mapped_for_request(
    mapper: Mapper,
    home: Scheme,
    scenario: Scenario,
    *,
    disclosure: Disclosure,
    grade: str,
    target: str,
    today: date,
) -> MappedGrade | None:
    """At the home node, for an attestation request: ``grade`` mapped into ``target``
    (None for no target, or when the grade is not recognised for ``scenario``).

    Everything that depends on the table alone is decided first, so the answer never
    depends on the person's grade: no usable table (``MAPPING_UNAVAILABLE``), a table
    into the scenario's scheme at another version than the scenario's
    (``SCHEME_VERSION_MISMATCH``).  Then, for a scenario of another scheme, a grade
    the table does not recognise (through the incentive-tier view for a threshold
    disclosure, :func:`recognised_for_threshold`; the installed table otherwise, which
    may itself be incentive-tier) is None: the scenario is unmet, which the requester
    sees as a withdrawal, never as a mapping error that would tell it the person falls
    short.  A grade mapped for the node's own scenario (a grade disclosure into
    another scheme) is :meth:`Mapper.map`'s."""
    table = table_for_request(mapper, scenario, target, today, home)
    if table is None:
        return None
    want = wanted_version(scenario, target)
    if scenario.scheme_id == home.id:
        return mapper.map(grade, target, today, target_version=want, source=home)
    if disclosure is Disclosure.THRESHOLD:
        return recognised_for_threshold(mapper, home, grade, target, today, target_version=want)
    if grade in table.grade_map and table.recognise(grade) is None:
        return None
    return mapper.map(grade, target, today, target_version=want, source=home)
