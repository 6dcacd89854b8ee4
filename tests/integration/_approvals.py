"""Test helper: a national authority approves the published tables a test issues with
(H13, ADR 0206/0207: heihe and hainan are in different provinces, so not the hub).

:func:`approval_args` writes each published table to ``tmp_path``, signs its approval
record with ``huxin mapping approve`` (a fixed national key, authority ``national``) and
returns the ``--approval FILE`` and ``--authority-key`` arguments for ``huxin trust
build``, so an offline verifier holds the hub-signed approved list a mapped grade needs.
"""

from __future__ import annotations

from pathlib import Path

from keys import KeyPair, encode_private_key
from mapping import published_table
from node.cli import _main as cli

__all__ = ["approval_args"]


def approval_args(
    tmp_path: Path,
    hub_key: Path,
    hub: str,
    now: str,
    pairs: tuple[tuple[str, str], ...] = (("heihe", "hainan"), ("hainan", "heihe")),
) -> list[str]:
    del hub_key, hub  # the hub only vouches for the national records in its bundle
    national = KeyPair(b"national".ljust(32, b"\0"))
    key = tmp_path / "national.key"
    key.write_bytes(encode_private_key(national))
    out: list[str] = ["--authority-key", f"national={national.public_key.hex()}"]
    for source, target in pairs:
        table = tmp_path / f"{source}.{target}.table.json"
        record = tmp_path / f"{source}.{target}.approval"
        table.write_bytes(published_table(source, target).to_json_bytes())
        argv = [
            "mapping", "approve", str(table), "--key", str(key), "--authority", "national",
            "--decision", "approved", "--now", now, "--out", str(record),
        ]  # fmt: skip
        assert cli.main(argv) == 0
        out += ["--approval", str(record)]
    return out
