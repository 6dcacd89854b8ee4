"""GB 11643-1999 citizen ID numbers: validation, normalisation, birth date.

An ID number is 17 digits and a MOD 11-2 check character (``0-9`` or ``X``).
Digits 7-14 are the birth date.  The value is the join key only: it is never
scored (H6), and nothing here ever puts it in an error message.
"""

from __future__ import annotations

from datetime import date

from ._errors import RecordError

__all__ = ["birth_date", "check_character", "normalise_id_number", "years_between"]

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    """The MOD 11-2 check character for 17 leading digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalise_id_number(value: object, *, field: str = "subject_id") -> str:
    """Return the canonical form (upper-case ``X``) or raise ``INVALID_ID_NUMBER``."""
    if not isinstance(value, str):
        raise RecordError(field, "must be a string", code="INVALID_ID_NUMBER")
    text = value.strip().upper()
    if len(text) != 18:
        raise RecordError(field, "must be 18 characters (GB 11643)", code="INVALID_ID_NUMBER")
    if not text[:17].isdigit() or not text[:17].isascii() or text[0] == "0":
        raise RecordError(
            field,
            "first 17 characters must be digits, not starting with 0",
            code="INVALID_ID_NUMBER",
        )
    if not (text[17].isdigit() or text[17] == "X") or not text[17].isascii():
        raise RecordError(field, "check character must be 0-9 or X", code="INVALID_ID_NUMBER")
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise RecordError(
            field, "birth date (characters 7-14) is not a valid date", code="INVALID_ID_NUMBER"
        ) from None
    if check_character(text[:17]) != text[17]:
        raise RecordError(
            field, "check character does not match (MOD 11-2)", code="INVALID_ID_NUMBER"
        )
    return text


def birth_date(id_number: str) -> date:
    """Birth date encoded in a normalised ID number."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def years_between(start: date, end: date) -> int:
    """Whole years from ``start`` to ``end``; a 29 February anniversary falls on 1 March."""
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years
