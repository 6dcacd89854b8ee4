"""The region's signed status list, rendered from ``status_entries``.

Invariants: the list is built with ``keys.StatusList`` (2 bits per entry, at
least 131,072 entries so a fetch reveals nothing about which attestation is
checked) and signed by the node's signing key; it expires after
:data:`STATUS_TTL_SECONDS`, so verifiers re-fetch; withdrawal, repair and
revocation change rows in the same transaction as the event, so the next
rendering reflects them at once; an attestation issued in an earlier month
than the current one shows as superseded (the new month's grade replaces it).
Two renderings with different contents never carry the same ``issued_at``
(peers keep the highest version and call a second, different list of the same
version an equivocation): a changed list issued within the second of the
previous one is dated one second later.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keys import MIN_ENTRIES, Envelope, Status, StatusList

if TYPE_CHECKING:
    from ._context import NodeContext

__all__ = ["STATUS_LIST_ID", "STATUS_TTL_SECONDS", "IssueClock", "render_status_list"]

STATUS_LIST_ID = "attestations-1"
STATUS_TTL_SECONDS = 3600


class IssueClock:
    """The node's last rendering: ``(issued_at, content digest)``; one per node context."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[int, bytes] | None = None

    def issue_time(self, now: int, digest: bytes) -> int:
        """``now``, unless that would date a changed list like (or before) the last one."""
        if self.last is not None and now <= self.last[0]:
            now = self.last[0] if digest == self.last[1] else self.last[0] + 1
        self.last = (now, digest)
        return now


def month_start(now: datetime) -> int:
    """Unix seconds of the first instant of ``now``'s UTC month."""
    utc = now.astimezone(UTC)
    return int(datetime(utc.year, utc.month, 1, tzinfo=UTC).timestamp())


async def render_status_list(ctx: NodeContext) -> Envelope:
    """Stored states, plus: a valid attestation issued before this month is
    superseded (a new month's grade replaces it)."""
    entries = await ctx.consents.statuses()
    row = await ctx.db.fetchone(
        "SELECT coalesce(max(idx) + 1, 0), "
        "(SELECT group_concat(idx) FROM status_entries WHERE status = 0 AND issued_at < ?) "
        "FROM status_entries",
        (month_start(ctx.clock.now()),),
    )
    used = int(row[0])
    size = max(MIN_ENTRIES, -(-used // MIN_ENTRIES) * MIN_ENTRIES)
    sl = StatusList(ctx.config.region, STATUS_LIST_ID, size)
    for idx, status in entries:
        sl.set(idx, Status(status))
    superseded = [int(x) for x in (row[1] or "").split(",") if x]
    for idx in superseded:
        sl.set(idx, Status.SUPERSEDED)
    digest = hashlib.sha256(repr((size, sorted(entries), sorted(superseded))).encode()).digest()
    issued = ctx.status_issue.issue_time(ctx.now_s(), digest)
    return sl.sign(ctx.secrets.signing, issued, issued + STATUS_TTL_SECONDS)
