"""Published mapping tables shipped with Huxin (JSON data)."""

__all__: list[str] = []
