"""Derived scenario scores shipped with Huxin (TOML data, loaded by :func:`scoring.load_derived`)."""

__all__: list[str] = []
