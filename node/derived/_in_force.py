"""The derived score a node serves for a purpose, and its scenario (N18, H11; docs/adr/0006).

Invariants:

* the version in force is the rolled-out one (:mod:`._store`), else the shipped
  file; either is parsed against the node's scheme in force, so a derived score
  whose base is another version of the node's scheme is refused
  ``FAILED_PRECONDITION SCHEME_VERSION_MISMATCH`` (field ``purpose``), and one
  built on another scheme ``FAILED_PRECONDITION DERIVED_SCORE_UNAVAILABLE``: the
  node cannot compute it (it holds no explained result of that scheme);
* the scenario is read from the version in force (a version that drops it:
  ``UNKNOWN_SCENARIO``) and the consent discloses no more than it allows;
* no mapping is involved: the target scheme is empty or the derived score itself
  (``TARGET_SCHEME_MISMATCH`` otherwise).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from node.core._errors import FailedPreconditionError, InvalidArgumentError
from node.derived._store import read_derived_row
from node.disclosure._scenarios import (  # the submodule: node.disclosure's grant imports this room
    Scenario,
    check_allowed,
    requested_disclosure,
    scenarios_of_derived,
    shipped_scenario,
)
from node.store import Connection
from scoring import DerivedScore, Disclosure, Scheme, SchemeError, load_derived, parse_derived_toml

__all__ = ["derived_in_force", "derived_scenario", "derived_terms"]

_CACHE_MAX = 16
# (sha256 of the TOML text or "shipped:<id>", id of the base Scheme object) -> parsed
_PARSED: dict[tuple[str, int], tuple[Scheme, DerivedScore]] = {}


def _parse(tag: str, home: Scheme, parse: Callable[[], DerivedScore]) -> DerivedScore:
    """Parsed once per text and scheme object (kept with it, so its id is not reused)."""
    hit = _PARSED.get((tag, id(home)))
    if hit is not None and hit[0] is home:
        return hit[1]
    derived = parse()
    if len(_PARSED) >= _CACHE_MAX:
        _PARSED.clear()
    _PARSED[(tag, id(home))] = (home, derived)
    return derived


def _unavailable(derived_id: str, home: Scheme, base: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        "DERIVED_SCORE_UNAVAILABLE",
        f"{derived_id} is derived from {base}; this node scores {home.key}",
        field="purpose",
    )


def derived_in_force(conn: Connection, derived_id: str, home: Scheme) -> DerivedScore:
    """The version of ``derived_id`` the node serves, bound to ``home`` (module docstring)."""
    row = read_derived_row(conn, derived_id)
    try:
        if row is None:
            derived = _parse(f"shipped:{derived_id}", home, lambda: load_derived(derived_id, home))
        else:
            tag = hashlib.sha256(row.toml.encode()).hexdigest()
            derived = _parse(tag, home, lambda: parse_derived_toml(row.toml, home))
    except SchemeError as exc:
        if exc.code == "SCHEME_VERSION_MISMATCH":
            raise FailedPreconditionError(
                "SCHEME_VERSION_MISMATCH",
                f"{derived_id} in force is built on another version than {home.key}",
                field="purpose",
            ) from None
        raise _unavailable(derived_id, home, "a scheme this node lacks") from None
    if derived.base_id != home.id or derived.id != derived_id:
        raise _unavailable(derived_id, home, derived.base_key)
    return derived


def derived_scenario(conn: Connection, purpose: str, home: Scheme) -> tuple[Scenario, DerivedScore]:
    """A derived score's scenario as the version in force defines it, and that version."""
    shipped = shipped_scenario(purpose)
    derived = derived_in_force(conn, shipped.scheme_id, home)
    scenario = scenarios_of_derived(derived).get(purpose)
    if scenario is None:
        raise InvalidArgumentError(
            "UNKNOWN_SCENARIO",
            f"the version of {derived.id} in force ({derived.version}) has no such scenario",
            field="purpose",
        )
    return scenario, derived


def derived_terms(
    conn: Connection, purpose: str, home: Scheme, scope: int, target: str
) -> tuple[Scenario, Disclosure, DerivedScore]:
    """At the home node, for a request under a consent of ``scope``: the scenario as the
    version in force defines it, the consent's disclosure (allowed by it) and the
    derived score."""
    scenario, derived = derived_scenario(conn, purpose, home)
    disclosure = requested_disclosure(scope)
    check_allowed(scenario, disclosure)
    if target not in ("", scenario.scheme_id):
        raise InvalidArgumentError(
            "TARGET_SCHEME_MISMATCH",
            f"must be empty or {scenario.scheme_id!r} for {scenario.ref}",
            field="target_scheme",
        )
    return scenario, disclosure, derived
