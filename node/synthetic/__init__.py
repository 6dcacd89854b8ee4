"""A deterministic synthetic population: realistic people and credit records for
a scheme, calibrated to published shares (docs/adr/0510).

Used by the demo, by model evaluation on populations without outcome labels
(H11) and by benchmarks; never by the request path.

May import: ``node.core``, ``node.store`` and the pure packages.
"""

__all__: list[str] = []
