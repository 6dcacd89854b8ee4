"""Table and approval files for a node directory (test beds, ``huxin init`` layouts).

:func:`write_approved_tables` writes the shipped tables from a scheme, each with
an approval record (批准, H13) signed by an authority's key, and returns the
``[mapping]`` section naming them; the authority must be one the node trusts
(the ``[federation]`` hub, or an entry of ``[mapping.authorities]`` the caller
adds).  The approvals are made with the hub's own checks
(``mapping.approval_for``: every invariant first), never around them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from keys import KeyPair
from mapping import published_tables
from node.recognition._approvals import approve_table

__all__ = ["write_approved_tables"]


def write_approved_tables(
    directory: Path, scheme: str, key: KeyPair, now: datetime, authority: str
) -> str:
    """Files ``mapping/<from>.<to>.json`` and ``.approval`` under ``directory`` for every
    shipped table from ``scheme``; the ``[mapping]`` section (paths relative to it)."""
    folder = directory / "mapping"
    folder.mkdir(parents=True, exist_ok=True)
    tables, approvals = [], []
    for table in published_tables():
        if table.source.scheme != scheme:
            continue
        name = f"{table.source.scheme}.{table.target.scheme}"
        (folder / f"{name}.json").write_bytes(table.to_json_bytes())
        record = approve_table(
            table, key, authority=authority, decision="approved", issued_at=int(now.timestamp())
        )
        (folder / f"{name}.approval").write_bytes(record.to_bytes())
        tables.append(f"mapping/{name}.json")
        approvals.append(f"mapping/{name}.approval")
    return f"\n[mapping]\ntables = {json.dumps(tables)}\napprovals = {json.dumps(approvals)}\n"
