"""Listing events: the vocabulary and their validation (pure).

An event says that on a day an organisation entered (``listed``) or left
(``removed``) a list.  The only list is ``severe_dishonesty``
(严重失信主体名单), the one H10 names; a list is added here and in the
``organisation_listings.list`` CHECK together.

Invariants: every event of a batch is checked and every problem reported as
``(index, listing_id shown, field, code, message)``, the shape
:func:`node.store._records.batch_rejection` takes; a problem never quotes an
organisation code, and never a listing id that holds an ID number or is over
its bound; no event is dated after the intake day; the organisation code is a
GB 32100 code with a matching check character, stored upper-case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from node.core._bounds import ID_MAX
from node.core._freetext import contains_id_number
from scoring import RecordError, normalise_uscc

__all__ = ["EVENTS", "LISTINGS_MAX", "LISTS", "Listing", "ListingProblem", "validate_listings"]

#: Events per batch: a few hundred bytes each on the wire, far under the message limit.
LISTINGS_MAX = 10_000
#: The lists an organisation may be filed on, with their published names.
LISTS: Mapping[str, str] = {"severe_dishonesty": "严重失信主体名单"}
EVENTS = ("listed", "removed")
_WORD_MAX = 32

ListingProblem = tuple[int, str, str, str, str]  # index, listing_id, field, code, message


@dataclass(frozen=True, slots=True)
class Listing:
    """One validated listing event."""

    listing_id: str
    organisation_code: str
    list: str
    event: str
    on: date


def _shown(text: str) -> str:
    return text if len(text) <= ID_MAX and not contains_id_number(text) else ""


def _word(value: str) -> str:
    """A vocabulary value as a refusal may quote it (short, no ID number)."""
    return value if len(value) <= _WORD_MAX and not contains_id_number(value) else "this value"


def _one(i: int, raw: object, today: date) -> tuple[Listing | None, list[ListingProblem]]:
    listing_id = str(getattr(raw, "listing_id", ""))
    code_text = str(getattr(raw, "organisation_code", ""))
    list_kind = str(getattr(raw, "list", ""))
    event = str(getattr(raw, "event", ""))
    on_text = str(getattr(raw, "on", ""))
    rid = _shown(listing_id)
    problems: list[ListingProblem] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append((i, rid, field, code, message))

    if not listing_id:
        problem("listing_id", "MISSING_FIELD", "is required")
    elif len(listing_id) > ID_MAX:
        problem("listing_id", "INVALID_FIELD", f"at most {ID_MAX} characters")
    elif contains_id_number(listing_id):
        problem("listing_id", "ID_NUMBER_IN_FIELD", "must not contain a citizen ID number")
    organisation = ""
    if len(code_text) <= ID_MAX and contains_id_number(code_text):
        problem("organisation_code", "ID_NUMBER_IN_FIELD", "must not contain a citizen ID number")
    else:
        try:
            organisation = normalise_uscc(code_text)
        except RecordError as exc:
            problem("organisation_code", exc.code, exc.message)
    if not list_kind:
        problem("list", "MISSING_FIELD", "is required")
    elif list_kind not in LISTS:
        problem("list", "UNKNOWN_LIST", f"{_word(list_kind)!r} is not one of {sorted(LISTS)}")
    if not event:
        problem("event", "MISSING_FIELD", "is required")
    elif event not in EVENTS:
        problem("event", "UNKNOWN_EVENT", f"{_word(event)!r} is not one of {list(EVENTS)}")
    on: date | None = None
    if not on_text:
        problem("on", "MISSING_FIELD", "is required")
    else:
        try:
            on = date.fromisoformat(on_text) if len(on_text) == 10 else None
        except ValueError:
            on = None
        if on is None:
            problem("on", "INVALID_FIELD", "must be a date YYYY-MM-DD")
        elif on > today:
            problem("on", "INVALID_FIELD", f"{on} is after today ({today})")
    if problems or on is None:
        return None, problems
    return Listing(listing_id, organisation, list_kind, event, on), []


def validate_listings(
    raws: Sequence[object], today: date
) -> tuple[list[Listing], list[ListingProblem]]:
    """Every event of ``raws`` (objects with the ``OrganisationListing`` text fields)
    checked, duplicate listing ids within the batch included; listings only when no
    problem."""
    listings: list[Listing] = []
    problems: list[ListingProblem] = []
    seen: set[str] = set()
    for i, raw in enumerate(raws):
        listing, found = _one(i, raw, today)
        problems += found
        if listing is None:
            continue
        if listing.listing_id in seen:
            problems.append(
                (
                    i,
                    listing.listing_id,
                    "listing_id",
                    "INVALID_FIELD",
                    "duplicate listing_id in batch",
                )
            )
            continue
        seen.add(listing.listing_id)
        listings.append(listing)
    return (listings if not problems else []), problems
