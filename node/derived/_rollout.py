"""``huxin derived rollout``: a derived score's version put in force on a node (H11; docs/adr/0006).

A derived score is versioned like a scheme; a node serves ONE version of each
(:mod:`._in_force`).  Rolling out a version is deliberately small:

1. :func:`plan_rollout` parses the candidate (the shipped file, or ``--candidate
   FILE``) against the node's scheme in force, requires it to be the id and
   version the operator named, and evaluates it as ``huxin derived evaluate``
   does: its tier distribution on the node's own population and its AUC/KS on
   a seeded synthetic population of ``[rights] rollout_population`` people
   (the node's population has no outcome labels);
2. the H11 floors of the node's config (``rollout_min_auc``, ``rollout_min_ks``)
   apply: a candidate below either is refused ``ROLLOUT_THRESHOLD``, naming the
   figure; so is a version already in force (``ALREADY_IN_FORCE``);
3. after the operator confirms, :func:`roll_out` writes it as the version in
   force, with the figures; grants and requests read it from their next call.

No trial or shadow stage: a derived score re-weights a published, explained
result, it publishes nothing of its own.  Verifiers accept its attestations
only at a version the hub's scenario catalogue lists (``hub_lists``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from node.core._errors import FailedPreconditionError, InvalidArgumentError
from node.derived._in_force import derived_in_force
from node.derived._store import DerivedRow, scheme_rollout_row, write_derived_row
from node.disclosure._scenarios import scenarios_of_derived
from node.disclosure._trusted import trusted_scenarios
from node.model._evaluate_derived import (
    DerivedEvaluation,
    evaluate_derived,
    evaluate_derived_synthetic,
)
from node.model._rollout import active_scheme
from node.store import Connection, immediate
from scoring import (
    DerivedScore,
    Discrimination,
    Scheme,
    SchemeError,
    list_derived,
    parse_derived_toml,
)

__all__ = ["RolloutPlan", "candidate_text", "plan_rollout", "roll_out", "scheme_in_force"]

#: Bound of a candidate file read by ``--candidate``: a derived score is a small TOML file.
CANDIDATE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class RolloutPlan:
    derived: DerivedScore
    toml: str
    in_force: str  # the version served until the rollout
    evaluation: dict[str, Any]  # the figures shown and stored
    hub_lists: bool  # the shipped hub catalogue lists every scenario at this version


def _measure(d: Discrimination | None) -> dict[str, Any] | None:
    return None if d is None else {"auc": d.auc, "ks": d.ks, "labelled": d.people}


def _figures(own: DerivedEvaluation, synthetic: DerivedEvaluation, people: int) -> dict[str, Any]:
    return {
        "as_of": own.as_of.isoformat(),
        "node_population": {"scored": own.scored, "distribution": own.distribution},
        "synthetic": {
            "people": people,
            "scored": synthetic.scored,
            "distribution": synthetic.distribution,
            "derived": _measure(synthetic.discrimination()),
            "base": _measure(synthetic.base_discrimination()),
        },
    }


def candidate_text(derived_id: str, candidate: Path | None) -> str:
    """The candidate's TOML: ``candidate`` (at most :data:`CANDIDATE_MAX_BYTES`), else the
    shipped file of ``derived_id`` (one of :func:`scoring.list_derived`)."""
    if candidate is None:
        if derived_id not in list_derived():  # the id names a file: never a path
            raise InvalidArgumentError(
                "UNKNOWN_DERIVED_SCORE", "not a shipped derived score", field="id"
            )
        return resources.files("scoring.derived").joinpath(f"{derived_id}.toml").read_text("utf-8")
    try:
        data = candidate.read_bytes()
    except OSError:
        raise InvalidArgumentError(
            "CANDIDATE_NOT_FOUND", f"cannot read {candidate}", field="candidate"
        ) from None
    if len(data) > CANDIDATE_MAX_BYTES:
        raise InvalidArgumentError(
            "INVALID_FIELD", f"at most {CANDIDATE_MAX_BYTES} bytes", field="candidate"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be a UTF-8 TOML file", field="candidate"
        ) from None


def scheme_in_force(conn: Connection, shipped: Scheme, today: date) -> Scheme:
    """The node's scheme version on ``today``, as the serving node reads it."""
    row = scheme_rollout_row(conn, shipped.id)
    return active_scheme(row[0] if row else None, row[1] if row else None, shipped, today)


def plan_rollout(
    conn: Connection,
    database: Path,
    derived_id: str,
    version: str,
    *,
    home: Scheme,
    text: str,
    today: date,
    people: int,
    seed: int,
    min_auc: float,
    min_ks: float,
) -> RolloutPlan:
    """Steps 1-2 of the module docstring; writes nothing."""
    try:
        derived = parse_derived_toml(text, home)
    except SchemeError as exc:
        raise FailedPreconditionError(exc.code, str(exc), field="candidate") from None
    if derived.id != derived_id or derived.version != version:
        raise InvalidArgumentError(
            "DERIVED_VERSION_MISMATCH",
            f"the candidate is {derived.key}, not {derived_id}@{version}",
            field="version",
        )
    current = derived_in_force(conn, derived_id, home)
    if current.version == version:
        raise FailedPreconditionError(
            "ALREADY_IN_FORCE", f"{derived.key} is the version in force", field="version"
        )
    own = evaluate_derived(database, derived, home, today)
    synthetic = evaluate_derived_synthetic(derived, home, people, today, seed=seed)
    measured = synthetic.discrimination()
    if measured is None or measured.auc < min_auc or measured.ks < min_ks:
        got = "no figures" if measured is None else f"AUC {measured.auc:.3f}, KS {measured.ks:.3f}"
        raise FailedPreconditionError(
            "ROLLOUT_THRESHOLD",
            f"{derived.key} on {people} synthetic people: {got}; the node requires"
            f" AUC >= {min_auc} and KS >= {min_ks} (H11)",
            field="version",
        )
    trusted = {t.key for t in trusted_scenarios()}
    hub_lists = all((ref, derived.version) in trusted for ref in scenarios_of_derived(derived))
    return RolloutPlan(derived, text, current.version, _figures(own, synthetic, people), hub_lists)


def roll_out(conn: Connection, plan: RolloutPlan, today: date, updated_at: str) -> None:
    """Step 3: the planned version is the one in force from now on."""
    with immediate(conn):
        write_derived_row(
            conn,
            plan.derived.id,
            DerivedRow(plan.derived.version, plan.toml, today.isoformat(), plan.evaluation),
            updated_at,
        )
