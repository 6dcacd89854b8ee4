"""Mapping: grade mapping tables between schemes, with their invariants (pure)."""

__all__: list[str] = []
