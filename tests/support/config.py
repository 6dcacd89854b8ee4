"""The smallest valid node configuration, as parsed TOML (issue 17: shared by the
config and monthly-schedule tests): a region's ``[node]``, ``[tls]`` and ``[keys]``."""

from __future__ import annotations

from typing import Any

__all__ = ["BASE"]

BASE: dict[str, Any] = {
    "node": {"region": "heihe", "scheme": "heihe"},
    "tls": {"cert": "tls/node.pem", "key": "tls/node.key", "ca": "tls/ca.pem"},
    "keys": {
        "root": "keys/root.key",
        "signing": "keys/signing.key",
        "key_set": "keys/keyset.bin",
        "storage_secret": "keys/storage.secret",
        "seal": "keys/seal.key",
    },
}
