"""The smallest valid node configuration, as parsed TOML (issue 17: shared by the
config and monthly-schedule tests): a region's ``[node]``, ``[tls]`` and ``[keys]``;
:func:`with_storage` puts it on a storage URL (issue 18: ``sqlite:///…`` or a
``postgresql://…`` database from ``tests.support.postgres``)."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["BASE", "with_storage"]

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


def with_storage(config: dict[str, Any], url: str) -> dict[str, Any]:
    """A copy of the parsed TOML ``config`` with ``[storage] url = url``."""
    out = copy.deepcopy(config)
    out["storage"] = {**out.get("storage", {}), "url": url}
    return out
