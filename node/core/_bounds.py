"""Bounds on everything a caller chooses: string lengths, item counts, integer ranges.

Every string and repeated field of a request has a bound, documented next to
the field in ``proto/node/pb/v1/node.proto`` and in the table of
``docs/bounds.md``; the configurable ones (records per batch, consents) live in
the node config.  A violation is INVALID_ARGUMENT naming the field
(``huxin-field``), reusing the node's reasons where one fits:

* a string that is empty where it is required: ``MISSING_FIELD``;
* a string that is too long, an integer out of range: ``INVALID_FIELD``
  (the message states the bound);
* a repeated field with too many items: ``TOO_MANY_ITEMS`` (new);
* text holding a citizen ID number: ``ID_NUMBER_IN_FIELD``
  (:func:`node.core._freetext.contains_id_number`, the one check).

Invariants: a message states the bound, never the value sent; every integer a
caller sends that reaches SQLite is checked against :data:`INT64_MAX` first (a
``uint64`` above it does not fit an SQLite INTEGER and would surface as an
``OverflowError``, i.e. INTERNAL).  docs/adr/0323.
"""

from __future__ import annotations

from collections.abc import Sized

from node.core._errors import InvalidArgumentError
from node.core._freetext import refuse_id_numbers
from scoring import RECORD_TEXT_MAX

__all__ = [
    "CONTRIBUTION_KINDS",
    "CONTRIBUTION_YEARS_MAX",
    "ID_MAX",
    "INT64_MAX",
    "NAME_MAX",
    "NOTE_MAX",
    "RECEIPTS_MAX",
    "RECORD_TEXT_MAX",
    "REF_MAX",
    "RESIDENCES_MAX",
    "RESIDENCE_KIND_MAX",
    "check_count",
    "check_int",
    "check_length",
    "check_text",
]

#: The largest value an SQLite INTEGER holds: ids, indexes and sequence numbers.
INT64_MAX = 2**63 - 1
#: Caller-chosen ids that are stored: batch ids, a supplement's act id.
ID_MAX = 128
#: Free text told to people and stored: notes, reasons, descriptions, stated uses.
NOTE_MAX = 512
#: Node-issued references a caller sends back (consent, objection, supplement ids).
REF_MAX = 64
#: Certificate identities and scheme names a caller sends (collector, verifier, source).
NAME_MAX = 63
#: A residence basis kind (``hukou``, ``residence_permit``) and how many per person:
#: per ``SubjectInfo`` of a request AND stored, i.e. the person's current (not
#: ended) residence bases after the write, whatever batch or registry fact added
#: them(docs/bounds.md).  Contribution years are counted apart.
RESIDENCE_KIND_MAX = 64
RESIDENCES_MAX = 16
#: Residence kinds that record one contribution YEAR each (population registry
#: ``contribution_year`` facts): a person holds one row per year and kind, so they
#: are bounded by :data:`CONTRIBUTION_YEARS_MAX` (two kinds over a working life),
#: not by :data:`RESIDENCES_MAX`.
CONTRIBUTION_KINDS = frozenset({"social_insurance", "income_tax"})
CONTRIBUTION_YEARS_MAX = 128
#: Receipts per ``HubService.GetReceipts`` page (``limit``; 0 means 100).
RECEIPTS_MAX = 1000


def check_length(field: str, value: str, maximum: int, *, required: bool = False) -> None:
    """``MISSING_FIELD`` if ``required`` and empty; ``INVALID_FIELD`` if longer than
    ``maximum`` characters."""
    if required and not value:
        raise InvalidArgumentError("MISSING_FIELD", "is required", field=field)
    if len(value) > maximum:
        raise InvalidArgumentError("INVALID_FIELD", f"at most {maximum} characters", field=field)


def check_text(field: str, value: str, maximum: int, *, required: bool = False) -> None:
    """A caller-chosen string the node stores, signs, logs or tells someone: bounded
     (:func:`check_length`) and holding no citizen ID number.

     The length is checked FIRST and the scan runs only on a string within its bound
    : an over-long string is refused ``INVALID_FIELD`` without being
     scanned, so no field costs the event loop more than ``maximum`` characters of
     scanning.  Every helper that scans caller text keeps this order."""
    check_length(field, value, maximum, required=required)
    refuse_id_numbers(field, value)


def check_count(field: str, items: Sized, maximum: int) -> None:
    """``TOO_MANY_ITEMS`` if the repeated field holds more than ``maximum`` items."""
    if len(items) > maximum:
        raise InvalidArgumentError("TOO_MANY_ITEMS", f"at most {maximum} items", field=field)


def check_int(field: str, value: int, low: int = 0, high: int = INT64_MAX) -> None:
    """``INVALID_FIELD`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise InvalidArgumentError("INVALID_FIELD", f"must be {low}..{high}", field=field)
