"""The scoring model's life on a node (H11, N12): evaluate a candidate, then roll
it out.

Modules: ``_evaluate`` (current scheme against a candidate over the stored
population), ``_evaluate_derived`` (a derived scenario score over the same
population, N18, N19), ``_rollout`` (the pure ``scoring.Rollout`` persisted; the
scheme version in force).

May import: ``node.core``, ``node.store``, ``node.monthly``, ``node.synthetic``
(evaluation on a synthetic population) and the pure packages.
"""

__all__: list[str] = []
