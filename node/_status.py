"""The region's signed status list, rendered from ``status_entries``.

Invariants: the list is built with ``keys.StatusList`` (2 bits per entry, at
least 131,072 entries so a fetch reveals nothing about which attestation is
checked) and signed by the node's signing key; it expires after
:data:`STATUS_TTL_SECONDS`, so verifiers re-fetch; withdrawal, repair and
revocation change rows in the same transaction as the event, so the next
rendering reflects them at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keys import MIN_ENTRIES, Envelope, Status, StatusList

if TYPE_CHECKING:
    from ._context import NodeContext

__all__ = ["STATUS_LIST_ID", "STATUS_TTL_SECONDS", "render_status_list"]

STATUS_LIST_ID = "attestations-1"
STATUS_TTL_SECONDS = 3600


async def render_status_list(ctx: NodeContext) -> Envelope:
    entries = await ctx.consents.statuses()
    row = await ctx.db.fetchone("SELECT coalesce(max(idx) + 1, 0) FROM status_entries")
    used = int(row[0])
    size = max(MIN_ENTRIES, -(-used // MIN_ENTRIES) * MIN_ENTRIES)
    sl = StatusList(ctx.config.region, STATUS_LIST_ID, size)
    for idx, status in entries:
        sl.set(idx, Status(status))
    now = ctx.now_s()
    return sl.sign(ctx.secrets.signing, now, now + STATUS_TTL_SECONDS)
