"""Benchmarks (``make bench``): each module measures a target against a same-run baseline."""

__all__: list[str] = []
