"""Canonical JSON for content hashes and signatures, and a strict JSON reader.

The canonical encoding (docs/mapping.md, "Content hash") of a value built from
objects, arrays, strings, integers, ``true``/``false`` and ``null``:

* UTF-8, no byte order mark, no insignificant whitespace, separators ``,`` and ``:``;
* object members sorted by key, comparing keys code point by code point; keys are unique;
* strings: ``"`` and ``\\`` escaped with a backslash; U+0008, U+0009, U+000A,
  U+000C, U+000D as ``\\b \\t \\n \\f \\r``; other code points below U+0020 as
  ``\\u00xx`` (lower-case hex); everything else, non-ASCII included, as itself;
* integers in shortest decimal form (``-0`` never occurs); floats are refused.

Invariant: ``canonical(strict_loads(canonical(v))) == canonical(v)`` for every
encodable ``v``; :func:`strict_loads` refuses duplicate keys, floats, NaN and
non-UTF-8 input, so two different byte strings never parse to one content.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._errors import TableError

__all__ = ["HASH_PREFIX", "canonical", "content_hash", "strict_loads"]

HASH_PREFIX = "sha256:"


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise TableError(path or "content", "floats are not allowed in canonical content")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TableError(path or "content", "object keys must be strings")
            _check(item, f"{path}.{key}" if path else key)
        return
    raise TableError(path or "content", f"cannot encode {type(value).__name__}")


def canonical(value: Any) -> bytes:
    """The canonical UTF-8 JSON encoding of ``value`` (see the module docstring)."""
    _check(value, "")
    # json.dumps with these options produces exactly the escaping described above;
    # sort_keys sorts str keys by code point.
    return json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def content_hash(value: Any) -> str:
    """``"sha256:" + hex(SHA-256(canonical(value)))``."""
    return HASH_PREFIX + hashlib.sha256(canonical(value)).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TableError(key, "duplicate key", code="MALFORMED_TABLE")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise TableError("content", f"number {text} is not an integer", code="MALFORMED_TABLE")


def _no_constant(text: str) -> Any:
    raise TableError("content", f"{text} is not allowed", code="MALFORMED_TABLE")


def strict_loads(data: bytes | str, *, what: str = "table") -> Any:
    """Parse JSON refusing duplicate keys, non-integer numbers, NaN/Infinity and bad UTF-8."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise TableError(what, "is not UTF-8") from None
    try:
        return json.loads(
            data,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as exc:
        raise TableError(what, f"is not valid JSON: {exc.msg} at {exc.pos}") from None
