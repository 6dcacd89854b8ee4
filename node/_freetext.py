"""Caller-chosen text never carries a citizen ID number into storage or the log.

The node keeps ID numbers out of rest, the wire and logs by construction for
the fields meant to hold one (sealed at intake, HMAC'd into subject keys).  Every
OTHER string a caller chooses and the node stores, signs or logs — batch, record
and act ids, notes, consent purposes, collector names — passes
:func:`refuse_id_numbers` at the service boundary (review5 H3).

Invariants: a refused text is never echoed (the message names the field only);
a match is an 18-character run (17 digits and a digit or ``X``, not inside a
longer digit run; full-width digits count after NFKC; 6-8-4 groups with one
separator each count too) that is a *valid* GB 11643 number — plausible birth date and
matching MOD 11-2 check character — so ordinary long reference numbers pass
(about 1 in 11 random 18-digit runs has a matching check character, and far
fewer also carry a real date).
"""

from __future__ import annotations

import re
import unicodedata

from scoring import RecordError, normalise_id_number

from ._errors import InvalidArgumentError

__all__ = ["check_purpose", "contains_id_number", "refuse_id_numbers"]

_ID_SHAPE = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")
_DIGITS = re.compile(r"[0-9]")
# 6-8-4 groups with one separator each (space, hyphen, dot, slash, full-width forms
# after NFKC): how people write an ID number by hand (review6 M3)
_GROUPED = re.compile(
    r"(?<![0-9])([1-9][0-9]{5})[ \-./]([0-9]{8})[ \-./]([0-9]{3}[0-9Xx])(?![0-9])"
)


def _valid(candidate: str) -> bool:
    try:
        normalise_id_number(candidate)
    except RecordError:
        return False
    return True


def contains_id_number(text: str) -> bool:
    """True if ``text`` contains a valid GB 11643 ID number anywhere, also in full-width
    digits (NFKC) or written in 6-8-4 groups."""
    if text.isascii():
        return _contains(text)
    # as typed, and with full-width digits made ASCII (NFKC may also turn a neighbour
    # such as '¼' into digits, so the text as typed is checked too)
    return _contains(text) or _contains(unicodedata.normalize("NFKC", text))


def _contains(text: str) -> bool:
    if len(_DIGITS.findall(text)) < 17:  # cheap pre-check: too few digits for an ID
        return False
    if any(_valid(m.group(0)) for m in _ID_SHAPE.finditer(text)):
        return True
    return any(_valid("".join(m.groups())) for m in _GROUPED.finditer(text))


def refuse_id_numbers(field: str, text: str) -> None:
    """Raise INVALID_ARGUMENT ``ID_NUMBER_IN_FIELD`` naming ``field`` (never the text)."""
    if contains_id_number(text):
        raise InvalidArgumentError(
            "ID_NUMBER_IN_FIELD",
            "must not contain a citizen ID number (use a reference that is not one)",
            field=field,
        )


PURPOSE_MAX = 128


def check_purpose(text: str, field: str = "purpose") -> None:
    """A consent purpose, granted or requested: 1-128 printable characters and no ID
    number.  It is signed, stored and put into the citizen's log leaves (review6 H1, H2)."""
    if not 0 < len(text) <= PURPOSE_MAX or not text.isprintable():
        raise InvalidArgumentError(
            "INVALID_FIELD", f"1-{PURPOSE_MAX} printable characters", field=field
        )
    refuse_id_numbers(field, text)
