"""Scheme files shipped with Huxin (TOML data, loaded by :func:`scoring.load_scheme`)."""

__all__: list[str] = []
