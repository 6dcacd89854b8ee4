"""JSON in and out: request dataclasses with bounds, protobuf answers, and their schemas.

A request is a frozen dataclass whose fields carry their bound in the field's
metadata (:func:`text`, :func:`number`, :func:`flag`, :func:`blob`,
:func:`choice`); :func:`decode` reads a JSON object (or a query string) into it
and :func:`request_schema` writes its JSON Schema, both from the same
declaration, so the documented bound is the enforced one.  An answer is a
protobuf message of the gRPC API; :func:`encode` writes it as JSON and
:func:`message_schema` its JSON Schema, both walking the message's descriptor.

Invariants of :func:`decode`: a body that is not a JSON object is
``MALFORMED_REQUEST`` (the gRPC guard's reason for bytes that do not decode); a
member the request does not declare, a value of the wrong type, a string over
its bound or an integer out of its range is ``INVALID_FIELD`` naming the field
(over-long strings through :func:`node.core._bounds.check_length`, integers
through ``check_int``: the same reasons as on gRPC); ``bytes`` travel as base64
and must decode.  Required values and everything the domain decides are left to
the domain function, which answers as on gRPC.  Of :func:`encode`: integers
are JSON numbers (also 64-bit ones), bytes base64, a signed envelope its
serialised bytes in base64 (one string to copy, as the trust files hold it),
enums their names, unset
messages and unset optional scalars ``null``, every declared field present.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import descriptor as pd
from google.protobuf.message import Message

from node.core._bounds import INT64_MAX, check_int, check_length
from node.core._errors import InvalidArgumentError

__all__ = [
    "MALFORMED_REQUEST",
    "blob",
    "choice",
    "decode",
    "decode_query",
    "encode",
    "flag",
    "message_schema",
    "number",
    "parse_json",
    "request_schema",
    "text",
    "utf8_text",
]

MALFORMED_REQUEST = "MALFORMED_REQUEST"
UINT32_MAX = 2**32 - 1
T = TypeVar("T")


def text(maximum: int, *, doc: str = "", default: str = "") -> Any:
    """A string of at most ``maximum`` characters."""
    return dataclasses.field(
        default=default, metadata={"kind": "string", "max": maximum, "doc": doc}
    )


def number(high: int = INT64_MAX, *, low: int = 0, doc: str = "", default: int = 0) -> Any:
    """An integer in ``low..high``."""
    return dataclasses.field(
        default=default, metadata={"kind": "integer", "low": low, "high": high, "doc": doc}
    )


def flag(*, doc: str = "", default: bool = False) -> Any:
    return dataclasses.field(default=default, metadata={"kind": "boolean", "doc": doc})


def blob(maximum: int, *, doc: str = "") -> Any:
    """Bytes, base64 in JSON, at most ``maximum`` bytes once decoded."""
    return dataclasses.field(default=b"", metadata={"kind": "bytes", "max": maximum, "doc": doc})


def choice(values: Mapping[str, int], *, doc: str = "", default: str = "") -> Any:
    """One of ``values`` (a name -> the protobuf enum number it stands for)."""
    return dataclasses.field(
        default=default, metadata={"kind": "enum", "values": dict(values), "doc": doc}
    )


def _invalid(name: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError("INVALID_FIELD", message, field=name)


def utf8_text(name: str, raw: str) -> str:
    """``raw`` if it is text UTF-8 can hold; ``INVALID_FIELD`` naming ``name`` otherwise.

    JSON lets a string carry a lone UTF-16 surrogate (``"\\ud800"``) that Python
    decodes into a ``str`` no UTF-8 encoder (SQLite, the log, a signature) accepts;
    refused here, at the edge, it cannot fail as ``INTERNAL`` deeper in."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(name, "must be text (a lone UTF-16 surrogate is not)") from None
    return raw


def _value(f: dataclasses.Field[Any], raw: Any) -> Any:
    meta, name = f.metadata, f.name
    kind = meta["kind"]
    if kind in ("string", "enum", "bytes") and not isinstance(raw, str):
        raise _invalid(name, "must be a string")
    if kind == "string":
        check_length(name, raw, meta["max"])
        return utf8_text(name, raw)
    if kind == "enum":
        if raw not in meta["values"] and raw != "":
            raise _invalid(name, "must be one of " + ", ".join(sorted(meta["values"])))
        return raw
    if kind == "bytes":
        if len(raw) > (meta["max"] + 2) * 4 // 3 + 4:
            raise _invalid(name, f"at most {meta['max']} bytes")
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(name, "must be base64") from None
        if len(value) > meta["max"]:
            raise _invalid(name, f"at most {meta['max']} bytes")
        return value
    if kind == "boolean":
        if not isinstance(raw, bool):
            raise _invalid(name, "must be true or false")
        return raw
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise _invalid(name, "must be an integer")
    check_int(name, raw, meta["low"], meta["high"])
    return raw


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body`` (``{}`` when empty); ``MALFORMED_REQUEST`` for bytes that
    are not JSON, including arrays or objects nested deeper than the parser's recursion
    limit (``[[[[...`` of a megabyte: ``RecursionError``, a refusal and not ``INTERNAL``)."""
    try:
        return json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidArgumentError(
            MALFORMED_REQUEST, "the request body is not JSON", field="request"
        ) from None


def decode(cls: type[T], data: Any) -> T:
    """An instance of the request dataclass ``cls`` from a parsed JSON body."""
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            MALFORMED_REQUEST, "the request body must be a JSON object", field="request"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise InvalidArgumentError(
                "INVALID_FIELD",
                "the request has a member this operation does not take",
                field="request",
            )
    values = {name: _value(f, data[name]) for name, f in fields.items() if name in data}
    return cls(**values)


def decode_query(cls: type[T], query: Mapping[str, str]) -> T:
    """An instance of ``cls`` from a query string (integers and booleans as text)."""
    data: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, raw in query.items():
        f = fields.get(key)
        if f is None:
            raise InvalidArgumentError(
                "INVALID_FIELD", "a parameter this operation does not take", field="request"
            )
        kind = f.metadata["kind"]
        if kind == "integer":
            if not raw.isascii() or not raw.isdigit() or len(raw) > 24:
                raise _invalid(key, "must be a non-negative integer")
            data[key] = int(raw)
        elif kind == "boolean":
            if raw not in ("true", "false"):
                raise _invalid(key, "must be true or false")
            data[key] = raw == "true"
        else:
            data[key] = raw
    return decode(cls, data)


def request_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of a request dataclass (from the same metadata :func:`decode` reads)."""
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        props[f.name] = field_schema(f)
    return {"type": "object", "properties": props, "additionalProperties": False}


def field_schema(f: dataclasses.Field[Any]) -> dict[str, Any]:
    meta = f.metadata
    kind = meta["kind"]
    out: dict[str, Any]
    if kind == "string":
        out = {"type": "string", "maxLength": meta["max"]}
    elif kind == "enum":
        out = {"type": "string", "enum": ["", *sorted(meta["values"])]}
    elif kind == "bytes":
        # base64 of at most max bytes
        out = {"type": "string", "contentEncoding": "base64",
               "maxLength": (meta["max"] + 2) // 3 * 4}  # fmt: skip
    elif kind == "boolean":
        out = {"type": "boolean"}
    else:
        out = {"type": "integer", "minimum": meta["low"], "maximum": meta["high"]}
    if meta.get("doc"):
        out["description"] = meta["doc"]
    return out


# ---------------------------------------------------------------- protobuf answers

_INTEGERS = frozenset(
    {
        pd.FieldDescriptor.TYPE_INT32, pd.FieldDescriptor.TYPE_INT64,
        pd.FieldDescriptor.TYPE_UINT32, pd.FieldDescriptor.TYPE_UINT64,
        pd.FieldDescriptor.TYPE_SINT32, pd.FieldDescriptor.TYPE_SINT64,
        pd.FieldDescriptor.TYPE_FIXED32, pd.FieldDescriptor.TYPE_FIXED64,
        pd.FieldDescriptor.TYPE_SFIXED32, pd.FieldDescriptor.TYPE_SFIXED64,
    }
)  # fmt: skip
_NUMBERS = frozenset({pd.FieldDescriptor.TYPE_DOUBLE, pd.FieldDescriptor.TYPE_FLOAT})


#: a signed envelope travels as its serialised bytes (base64), as the trust files and
#: ``huxin verify`` take it: one string a citizen can copy or show as a QR code
ENVELOPE = "huxin.v1.Envelope"


def _scalar(f: Any, value: Any) -> Any:
    if f.type == pd.FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name == ENVELOPE:
        return base64.b64encode(value.SerializeToString()).decode()
    if f.type == pd.FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if f.type == pd.FieldDescriptor.TYPE_ENUM:
        item = f.enum_type.values_by_number.get(value)
        return item.name if item is not None else str(value)
    if f.type == pd.FieldDescriptor.TYPE_MESSAGE:
        return encode(value)
    return value


def encode(message: Message) -> dict[str, Any]:
    """A protobuf message as JSON (see the module's invariants)."""
    out: dict[str, Any] = {}
    f: Any
    for f in message.DESCRIPTOR.fields:
        value = getattr(message, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            out[f.name] = {str(k): _scalar(vf, v) for k, v in value.items()}
        elif f.is_repeated:
            out[f.name] = [_scalar(f, v) for v in value]
        elif f.type == pd.FieldDescriptor.TYPE_MESSAGE or f.has_presence:
            out[f.name] = _scalar(f, value) if message.HasField(f.name) else None
        else:
            out[f.name] = _scalar(f, value)
    return out


def _field_type(f: Any, refs: dict[str, Any]) -> dict[str, Any]:
    if f.type == pd.FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name == ENVELOPE:
        return {
            "type": "string",
            "contentEncoding": "base64",
            "description": "a signed envelope, serialised (as the /trust/*.bin files)",
        }
    if f.type == pd.FieldDescriptor.TYPE_MESSAGE:
        refs[f.message_type.full_name] = f.message_type
        return {"$ref": f"#/components/schemas/{f.message_type.full_name}"}
    if f.type == pd.FieldDescriptor.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in f.enum_type.values]}
    if f.type == pd.FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    if f.type == pd.FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if f.type == pd.FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if f.type in _INTEGERS:
        return {"type": "integer"}
    if f.type in _NUMBERS:
        return {"type": "number"}
    return {}  # pragma: no cover - every protobuf scalar is listed above


def message_schema(descriptor: Any, refs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of :func:`encode`'s output for ``descriptor``; nested messages
    are ``$ref`` to ``#/components/schemas/<full name>`` and added to ``refs``."""
    props: dict[str, Any] = {}
    for f in descriptor.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            props[f.name] = {"type": "object", "additionalProperties": _field_type(vf, refs)}
        elif f.is_repeated:
            props[f.name] = {"type": "array", "items": _field_type(f, refs)}
        elif f.type == pd.FieldDescriptor.TYPE_MESSAGE or f.has_presence:
            props[f.name] = {"anyOf": [_field_type(f, refs), {"type": "null"}]}
        else:
            props[f.name] = _field_type(f, refs)
    return {
        "type": "object",
        "properties": props,
        "required": sorted(props),
        "additionalProperties": False,
    }
