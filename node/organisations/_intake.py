"""Listing batches as units, and the "listed on day D" check of record intake.

The SQL is :mod:`node.store._organisations`.

Invariants:

* a listing batch is ONE write unit with its ``source_batches`` row (the
  department's id namespace, shared with record and fact batches): stored whole
  or not at all; the same id with the same content is a replay (nothing
  written, the first answer), with other content ``BATCH_ID_REUSED``; a
  listing id the department already used refuses the batch (``LISTING_EXISTS``);
* rows are never updated or deleted: a removal is its own event, so the list
  as it stood on any past day can be read again;
* :func:`listed_problems` runs inside the record batch's own unit, so the
  listing a deduction rests on and the deduction are one consistent read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from node.organisations._listings import LISTS, Listing
from node.store import Connection
from node.store import _organisations as store
from node.store._batches import insert_batch
from node.store._db import Database
from node.store._records import BatchResult, batch_rejection, replayed_batch
from scoring import CreditRecord

__all__ = ["is_listed", "listed_problems", "store_listings"]

SEVERE_DISHONESTY = "severe_dishonesty"


def is_listed(conn: Connection, organisation_code: str, day: date) -> bool:
    """Whether the organisation is on the severe-dishonesty list on ``day`` (sync)."""
    event = store.latest_event(conn, organisation_code, SEVERE_DISHONESTY, day.isoformat())
    return event == "listed"


def listed_problems(
    conn: Connection, records: Sequence[CreditRecord]
) -> list[tuple[int, str, str, str, str]]:
    """``ORGANISATION_NOT_LISTED`` for each record whose legal document's organisation
    is not on the severe-dishonesty list on the record's recognition day (H10)."""
    problems: list[tuple[int, str, str, str, str]] = []
    seen: dict[tuple[str, date], bool] = {}
    for i, rec in enumerate(records):
        ref = rec.legal_reference
        if ref is None:
            continue
        key = (ref.organisation_code, rec.recognised_on)
        listed = seen.get(key)
        if listed is None:
            listed = seen[key] = is_listed(conn, *key)
        if not listed:
            problems.append(
                (
                    i,
                    rec.record_id,
                    "legal_document.organisation_code",
                    "ORGANISATION_NOT_LISTED",
                    f"the organisation is not on the {LISTS[SEVERE_DISHONESTY]} "
                    f"(severe_dishonesty) on {rec.recognised_on}; its listing is filed "
                    "first (SubmitOrganisationListings) (H10)",
                )
            )
    return problems


async def store_listings(
    db: Database,
    batch_id: str,
    submitted_by: str,
    listings: Sequence[Listing],
    *,
    content_sha256: bytes,
    now_iso: str,
) -> BatchResult:
    """Store a validated listing batch in one unit (see the module invariants)."""
    rows = [
        (submitted_by, x.listing_id, x.organisation_code, x.list, x.event, x.on.isoformat(),
         batch_id, now_iso)
        for x in listings
    ]  # fmt: skip

    def unit(conn: Connection) -> BatchResult:
        replayed = replayed_batch(conn, submitted_by, batch_id, content_sha256)
        if replayed is not None:
            return replayed
        existing = store.existing_listing_ids(conn, submitted_by, [x.listing_id for x in listings])
        taken = [
            (i, x.listing_id, "listing_id", "LISTING_EXISTS",
             "this department stored a listing with this id")
            for i, x in enumerate(listings)
            if x.listing_id in existing
        ]  # fmt: skip
        if taken:
            raise batch_rejection(batch_id, taken)
        store.insert_listings(conn, rows)
        insert_batch(
            conn, batch_id, submitted_by, count=len(rows), sha256=content_sha256, at_iso=now_iso
        )
        return BatchResult(batch_id, len(rows), False, content_sha256)

    return await db.write_unit(unit)
