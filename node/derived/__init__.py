"""Derived scenario scores on the node: which version is in force, what it attests (N18, N19, H11).

A derived score (``scoring/derived/``, docs/adr/0005) re-weights the explained
base result of the node's own scheme for one use (a bank's credit card, N19).
This room holds what the node does with one (docs/adr/0006):

* :mod:`._store` -- the SQL: the version in force is a row of the ``rollouts``
  table keyed ``derived:<id>`` (the derived score's TOML text and the
  evaluation it was rolled out with); without a row the shipped file is in force;
* :mod:`._in_force` -- the derived score in force for a purpose, bound to the
  node's scheme version in force (``SCHEME_VERSION_MISMATCH`` otherwise), and
  its scenario; a node whose scheme is not the base cannot offer it
  (``DERIVED_SCORE_UNAVAILABLE``);
* :mod:`._attest` -- the subject's derived result, computed by the pure engine
  (:func:`scoring.derive`) from the explained base result of the published
  month at request time, and the attestation fields it fills;
* :mod:`._rollout` -- ``huxin derived rollout``: the evaluation figures, then
  the version written as the one in force.
"""

from __future__ import annotations

from node.derived._attest import DerivedGrade, derived_fields, derived_grade, is_derived
from node.derived._in_force import derived_in_force, derived_scenario, derived_terms
from node.derived._rollout import RolloutPlan, plan_rollout, roll_out
from node.derived._store import DerivedRow, read_derived_row

__all__ = [
    "DerivedGrade",
    "DerivedRow",
    "RolloutPlan",
    "derived_fields",
    "derived_grade",
    "derived_in_force",
    "derived_scenario",
    "derived_terms",
    "is_derived",
    "plan_rollout",
    "read_derived_row",
    "roll_out",
]
