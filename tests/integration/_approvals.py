"""Test helper: the hub approves the published tables a test issues with (H13, ADR 0206).

:func:`approval_args` writes each published table to ``tmp_path``, signs its approval
record with ``huxin mapping approve`` (the hub root key, authority = the hub id) and
returns the ``--approval FILE`` arguments for ``huxin trust build``, so an offline
verifier holds the hub-signed approved list a mapped grade needs.
"""

from __future__ import annotations

from pathlib import Path

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
    out: list[str] = []
    for source, target in pairs:
        table = tmp_path / f"{source}.{target}.table.json"
        record = tmp_path / f"{source}.{target}.approval"
        table.write_bytes(published_table(source, target).to_json_bytes())
        argv = [
            "mapping", "approve", str(table), "--key", str(hub_key), "--authority", hub,
            "--decision", "approved", "--now", now, "--out", str(record),
        ]  # fmt: skip
        assert cli.main(argv) == 0
        out += ["--approval", str(record)]
    return out
