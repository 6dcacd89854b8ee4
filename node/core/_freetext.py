"""Caller-chosen text never carries a citizen ID number into storage, the log or the wire.

The node keeps ID numbers out of rest, the wire and logs by construction for
the fields meant to hold one (sealed at intake, HMAC'd into subject keys).  Every
OTHER string a caller chooses and the node stores, signs, logs or echoes — every
text field of a record, batch and act ids, residence kinds, notes, reasons,
descriptions, consent purposes, collectors and stated uses — passes the ONE
check :func:`contains_id_number` (through :func:`refuse_id_numbers` or
:func:`node.core._bounds.check_text`) at the service boundary.  docs/adr/0323.

The rule (what counts as an ID number written in text):

1. The text is read twice: as typed, and after NFKC (full-width forms, circled
   and superscript digits become ASCII; NFKC can also turn a neighbour such as
   ``¼`` into digits, which is why the text as typed is read too).
2. Each character is classified.  A *digit* is any character with a digit
   value 0-9 (``unicodedata.digit``: ASCII, full-width, Arabic-Indic,
   Devanagari, superscript, circled, negative-circled and parenthesised digits
   ``¹ ① ❶ ⓿ ⑴ ⒈``), any character whose numeric value is a whole number 0-9
   (``unicodedata.numeric``: the Chinese numerals ``〇零一…九``, the financial
   numerals ``壹贰叁肆伍陆柒捌玖`` and their traditional forms, ``幺``; ``十``
   is 10 and is not a digit), and the characters of :data:`_EXTRA_DIGITS`
   (``两`` for 2, ``○``/``◯`` written for zero); ``X``/``x`` (also full-width)
   is a *check character*; a *separator* is whitespace, a control or format
   character (zero-width space, soft hyphen), a combining or enclosing mark
   (variation selectors, keycaps), punctuation (``. - _ / , : ·`` ``・``,
   dashes, brackets, quotes), a math, currency or modifier symbol
   (``+ | ~ − ¥ ^``), or a character that renders blank or not at all: every
   ``Default_Ignorable_Code_Point`` (Hangul fillers U+115F, U+1160, U+3164,
   U+FFA0, tag characters, …) and the Braille blank U+2800; anything else —
   letters, other symbols — *breaks* a run (hex digests and UUIDs do not join).
3. Separators are removed, so digits separated only by separators form one run
   (``6-8-4`` groups, groups of four, dots, underscores all join).  A check
   character right after a run ends it.
4. Every window of 18 characters of a run — 17 digits and a check character
   (digit or ``X``), wherever it sits, also inside a longer run such as
   ``"2024" + ID`` — is an ID number when it is valid GB 11643: first digit not
   ``0``, characters 7-14 a real calendar date with a year from 1900 and not
   after today (UTC, plus one day for time zones), and the MOD 11-2 check
   character matching.

False positives stay rare: a window needs a real birth date (about 1 in 2,200
random 8-digit strings) AND the matching check character (1 in 11), so about
1 in 24,000 windows of random digits; letters always break a run (hex digests
and UUIDs do not join).  Invariants: a refused text is never echoed (the
message names the field only); memory is bounded (the per-character class
cache is an LRU).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from node.core._errors import InvalidArgumentError
from scoring import check_character

__all__ = ["check_purpose", "contains_id_number", "refuse_id_numbers"]

_BREAK = "#"
_CHECK = "X"
#: Digits ``unicodedata`` gives no value 0-9: 两 (2, as in 两千), ○ ◯ (written for zero).
_EXTRA_DIGITS = {"两": "2", "○": "0", "◯": "0"}
_CHECK_CHARS = frozenset("XxＸｘ")
_SEPARATOR_CATEGORIES = frozenset(
    {"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Mc", "Me"}  # spaces, controls, marks
    | {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}  # punctuation
    | {"Sm", "Sc", "Sk"}  # math, currency and modifier symbols
)
#: Code points that render blank or not at all, whatever their category: Unicode's
#: Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt; ``unicodedata`` has
#: no accessor) plus U+2800 BRAILLE PATTERN BLANK.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
_RUN = re.compile(r"[0-9]{17,}X?")
EARLIEST_BIRTH_YEAR = 1900


@lru_cache(maxsize=4096)
def _classify(code: int) -> str:
    """A character as the scan sees it: an ASCII digit, ``X``, ``""`` (a separator,
    removed) or ``#`` (breaks a run)."""
    ch = chr(code)
    digit = unicodedata.digit(ch, None)
    if digit is not None:
        return str(digit)
    value = unicodedata.numeric(ch, None)
    if value is not None and value in range(10):  # 十 (10), ½ and 廿 are not digits
        return str(int(value))
    if ch in _EXTRA_DIGITS:
        return _EXTRA_DIGITS[ch]
    if ch in _CHECK_CHARS:
        return _CHECK
    if unicodedata.category(ch) in _SEPARATOR_CATEGORIES:
        return ""
    return "" if any(low <= code <= high for low, high in _INVISIBLE_RANGES) else _BREAK


class _Table:
    """``str.translate`` mapping for any text (C speed for ASCII via :data:`_ASCII`)."""

    def __getitem__(self, code: int) -> str:
        return _classify(code)


_TABLE = _Table()
# ASCII text goes through bytes.translate (a 256-byte table, C speed): separators are
# deleted, every other byte becomes a digit, "X" or "#".
_ASCII_SEPARATORS = bytes(c for c in range(128) if _classify(c) == "")
_ASCII_TABLE = bytes(
    (_classify(c) or _BREAK).encode()[0] if c < 128 else ord(_BREAK) for c in range(256)
)
_RUN_BYTES = re.compile(rb"[0-9]{17,}X?")


def _plausible(window: str, latest: date) -> bool:
    """17 digits + check character: a valid GB 11643 number with a plausible birth date."""
    if window[0] == "0":
        return False
    year = int(window[6:10])
    if not EARLIEST_BIRTH_YEAR <= year <= latest.year:
        return False
    try:
        born = date(year, int(window[10:12]), int(window[12:14]))
    except ValueError:
        return False
    return born <= latest and check_character(window[:17]) == window[17]


def _scan(runs: Iterator[re.Match[str]] | Iterator[re.Match[bytes]]) -> bool:
    latest: date | None = None
    for match in runs:
        found = match.group(0)
        run = found if isinstance(found, str) else found.decode("ascii")
        latest = latest or datetime.now(UTC).date() + timedelta(days=1)
        if any(_plausible(run[i : i + 18], latest) for i in range(len(run) - 17)):
            return True
    return False


def contains_id_number(text: str) -> bool:
    """True if ``text`` holds a valid GB 11643 ID number by the rule of this module
    (any digit script, any separators between digits, inside a longer run)."""
    if text.isascii():
        # fewer than 17 characters cannot hold 17 digits (NFKC changes nothing here)
        if len(text) < 17:
            return False
        cleaned = text.encode("ascii").translate(_ASCII_TABLE, _ASCII_SEPARATORS)
        return _scan(_RUN_BYTES.finditer(cleaned))
    if _scan(_RUN.finditer(text.translate(_TABLE))):
        return True
    folded = unicodedata.normalize("NFKC", text)
    return folded != text and _scan(_RUN.finditer(folded.translate(_TABLE)))


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
    number.  It is signed, stored and put into the citizen's log leaves."""
    if not 0 < len(text) <= PURPOSE_MAX or not text.isprintable():
        raise InvalidArgumentError(
            "INVALID_FIELD", f"1-{PURPOSE_MAX} printable characters", field=field
        )
    refuse_id_numbers(field, text)
