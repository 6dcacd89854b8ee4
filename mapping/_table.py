"""Mapping tables: the value type, its canonical content, hash and JSON document.

A :class:`MappingTable` maps every grade of a source scheme to a grade of a
target scheme, or — in an *incentive-tier* table — to "not recognised"
(``None``; JSON ``null``) for every grade below the source's incentive tier
(ADR 0203).  Its *content* (everything but the signatures) is what the
content hash and every signature cover; the hash is
``sha256:`` + hex SHA-256 of ``canonical(content())`` (see ``_canonical``).

Invariants of a value built by :func:`table_from_document`: the stored
``content_hash`` equals the recomputed one (else ``HASH_MISMATCH``) and every
field has its declared type (else ``MALFORMED_TABLE`` naming the field).  Being
*well formed* says nothing about the mapping invariants: see ``_invariants``.
``scope`` appears in the content only for an incentive-tier table (value
``"incentive_tier"``), so a table that recognises every grade has exactly the
content, and hash, it had before the option existed.
Validity: a table may be used on day ``d`` iff ``effective_from <= d`` and
(``expires`` is None or ``d < expires``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from typing import Any

from scoring import Scheme

from ._canonical import HASH_PREFIX, canonical, content_hash, strict_loads
from ._errors import NotRecognisedError, SignatureError, TableError, ValidityError
from ._signing import TABLE_TYPE, Signature, SigningKeyLike, sign_bytes

__all__ = [
    "FORMAT",
    "INCENTIVE_TIER_SCOPE",
    "MappingTable",
    "Method",
    "SchemeRef",
    "check_validity",
    "table_from_document",
]

FORMAT = "huxin.mapping-table.v1"
#: The ``scope`` of an incentive-tier table; absent means every grade is recognised.
INCENTIVE_TIER_SCOPE = "incentive_tier"


class Method(enum.StrEnum):
    AGREEMENT = "agreement"
    ANCHORED = "anchored"
    EQUIPERCENTILE = "equipercentile"


@dataclass(frozen=True)
class SchemeRef:
    """Which scheme (and exactly which version of it, and whose) a table side refers to."""

    scheme: str
    version: str
    region: str

    @classmethod
    def of(cls, scheme: Scheme) -> SchemeRef:
        return cls(scheme.id, scheme.version, scheme.region)

    @property
    def key(self) -> str:
        return f"{self.scheme}@{self.version}"

    def to_json(self) -> dict[str, str]:
        return {"scheme": self.scheme, "version": self.version, "region": self.region}


@dataclass(frozen=True)
class MappingTable:
    """A total map from source grades to target grades, with provenance.

    ``grades`` is ordered as the source scheme lists its tiers (best first) when
    built by this package; order carries no meaning for the hash.  A target of
    ``None`` means *not recognised*: the table carries no grade for that source
    grade, and :meth:`map` refuses it with ``NOT_RECOGNISED``.  Only an
    ``incentive_tier`` table may hold ``None``, and then exactly for the source
    grades below the source's incentive tier (invariant ``total``).
    ``parameters`` holds method-specific, JSON-encodable data (anchors,
    histograms, notes) and is covered by the hash.
    """

    id: str
    version: str
    method: Method
    source: SchemeRef
    target: SchemeRef
    effective_from: date
    grades: tuple[tuple[str, str | None], ...]
    expires: date | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    signatures: tuple[Signature, ...] = ()
    incentive_tier: bool = False

    # -- lookups ----------------------------------------------------------
    @cached_property
    def grade_map(self) -> dict[str, str | None]:
        return dict(self.grades)

    def recognise(self, grade: str) -> str | None:
        """The target grade for ``grade``, or ``None`` when the table does not recognise it.

        Raises ``UNKNOWN_GRADE`` for a grade the table does not list.
        """
        try:
            return self.grade_map[grade]
        except KeyError:
            raise TableError(
                "grade", f"table {self.id!r} has no source grade {grade!r}", code="UNKNOWN_GRADE"
            ) from None

    def map(self, grade: str) -> str:
        """The target grade for ``grade``; ``NOT_RECOGNISED`` when the table carries none."""
        mapped = self.recognise(grade)
        if mapped is None:
            raise NotRecognisedError(
                "grade",
                f"table {self.id!r} does not recognise {self.source.key} grade {grade!r} "
                f"(below the incentive tier: no grade is carried into {self.target.key})",
            )
        return mapped

    # -- content, hash, signatures ---------------------------------------
    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "id": self.id,
            "version": self.version,
            "method": self.method.value,
            "source": self.source.to_json(),
            "target": self.target.to_json(),
            "effective_from": self.effective_from.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "grades": dict(self.grades),
            "parameters": dict(self.parameters),
        }
        if self.incentive_tier:
            out["scope"] = INCENTIVE_TIER_SCOPE
        return out

    @cached_property
    def content_bytes(self) -> bytes:
        """The canonical encoding of :meth:`content`: what is hashed and signed."""
        return canonical(self.content())

    @cached_property
    def content_hash(self) -> str:
        return content_hash(self.content())

    def signed(self, key: SigningKeyLike) -> MappingTable:
        """A copy with one more signature over ``PAE(TABLE_TYPE, content_bytes)``.

        Low level: use :func:`mapping.sign_table`, which checks the invariants first.
        """
        sig = sign_bytes(TABLE_TYPE, self.content_bytes, key)
        kept = tuple(s for s in self.signatures if s.key_id != sig.key_id)
        return replace(self, signatures=(*kept, sig))

    def unsigned(self) -> MappingTable:
        return replace(self, signatures=())

    # -- documents --------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        return {
            "content": self.content(),
            "content_hash": self.content_hash,
            "signatures": [s.to_json() for s in self.signatures],
        }

    def to_json_bytes(self) -> bytes:
        """Human-readable document (pretty, grades best first, trailing newline)."""
        text = json.dumps(self.to_document(), ensure_ascii=False, indent=2)
        return (text + "\n").encode("utf-8")


def check_validity(table: MappingTable, today: date) -> None:
    """Raise ``TABLE_NOT_YET_EFFECTIVE`` / ``TABLE_EXPIRED`` unless usable on ``today``."""
    if today < table.effective_from:
        raise ValidityError(
            "effective_from",
            f"table {table.id!r} is effective from {table.effective_from}, not on {today}",
            code="TABLE_NOT_YET_EFFECTIVE",
        )
    if table.expires is not None and today >= table.expires:
        raise ValidityError(
            "expires",
            f"table {table.id!r} expired on {table.expires} (checked {today})",
            code="TABLE_EXPIRED",
        )


# -- parsing ----------------------------------------------------------------


def _str(raw: Mapping[str, Any], key: str, path: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise TableError(f"{path}{key}", "must be a non-empty string")
    return value


def _date(raw: Mapping[str, Any], key: str, path: str) -> date:
    text = _str(raw, key, path)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise TableError(f"{path}{key}", f"{text!r} is not a date YYYY-MM-DD") from None


def _ref(raw: Any, path: str) -> SchemeRef:
    if not isinstance(raw, dict):
        raise TableError(path, "must be an object {scheme, version, region}")
    return SchemeRef(
        _str(raw, "scheme", f"{path}."),
        _str(raw, "version", f"{path}."),
        _str(raw, "region", f"{path}."),
    )


def table_from_content(content: Any, signatures: tuple[Signature, ...] = ()) -> MappingTable:
    """Build a table from its content object (structure only; no invariant checks)."""
    if not isinstance(content, dict):
        raise TableError("content", "must be an object")
    if content.get("format") != FORMAT:
        raise TableError("content.format", f"must be {FORMAT!r}")
    known = {
        "format",
        "id",
        "version",
        "method",
        "source",
        "target",
        "effective_from",
        "expires",
        "grades",
        "parameters",
        "scope",
    }
    extra = sorted(set(content) - known)
    if extra:
        raise TableError(f"content.{extra[0]}", "is not a table field")
    try:
        method = Method(str(content.get("method")))
    except ValueError:
        raise TableError(
            "content.method", "must be agreement, anchored or equipercentile", code="UNKNOWN_METHOD"
        ) from None
    scope = content.get("scope")
    if "scope" in content and scope != INCENTIVE_TIER_SCOPE:
        # Only one non-default scope exists; spelling out the default would give the same
        # table a second hash.
        raise TableError("content.scope", f"must be {INCENTIVE_TIER_SCOPE!r} or absent")
    grades_raw = content.get("grades")
    if not isinstance(grades_raw, dict) or not all(
        isinstance(k, str) and (isinstance(v, str) or v is None) for k, v in grades_raw.items()
    ):
        raise TableError(
            "content.grades", "must map source grade ids to target grade ids (or null)"
        )
    expires_raw = content.get("expires")
    expires = None if expires_raw is None else _date(content, "expires", "content.")
    parameters = content.get("parameters", {})
    if not isinstance(parameters, dict):
        raise TableError("content.parameters", "must be an object")
    return MappingTable(
        id=_str(content, "id", "content."),
        version=_str(content, "version", "content."),
        method=method,
        source=_ref(content.get("source"), "content.source"),
        target=_ref(content.get("target"), "content.target"),
        effective_from=_date(content, "effective_from", "content."),
        expires=expires,
        grades=tuple(grades_raw.items()),
        parameters=parameters,
        signatures=signatures,
        incentive_tier=scope == INCENTIVE_TIER_SCOPE,
    )


def table_from_document(data: bytes | str | Mapping[str, Any]) -> MappingTable:
    """Parse a table document, checking its content hash before anything else."""
    doc = strict_loads(data) if isinstance(data, bytes | bytearray | str) else data
    if not isinstance(doc, Mapping) or set(doc) != {"content", "content_hash", "signatures"}:
        raise TableError("document", "must be an object {content, content_hash, signatures}")
    stated = doc["content_hash"]
    if not isinstance(stated, str) or not stated.startswith(HASH_PREFIX):
        raise TableError("content_hash", f"must be a string starting with {HASH_PREFIX!r}")
    actual = content_hash(doc["content"])
    if stated != actual:
        raise TableError(
            "content_hash", "does not match the content (tampered or edited)", code="HASH_MISMATCH"
        )
    sigs_raw = doc["signatures"]
    if not isinstance(sigs_raw, list):
        raise SignatureError("signatures", "must be a list", code="BAD_SIGNATURE")
    signatures = tuple(Signature.from_json(s, f"signatures[{i}]") for i, s in enumerate(sigs_raw))
    table = table_from_content(doc["content"], signatures)
    if table.content_hash != actual:  # parsing must not lose or add content
        raise TableError("content", "does not round-trip canonically", code="MALFORMED_TABLE")
    return table
