"""Keys: Ed25519 keys, signed envelopes, Merkle batches and offline verification (pure)."""

__all__: list[str] = []
