"""Published mapping tables shipped with Huxin (JSON data)."""
