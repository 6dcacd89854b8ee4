"""The one generic parser of the node's TOML: keys, types, defaults and bounds are
read from the dataclass fields of :mod:`node.core._config`, never from a second list.

Invariants: a section accepts exactly the fields of its dataclass (a field of
``NodeConfig`` that is not itself a section sits in ``[node]``, or where its
``toml`` metadata says); a key absent from the file takes the field's default (or
its ``toml_default``) and a field with neither is required; a value is checked in
this order: type (from the annotation), bounds (``min``/``above``/``max``), choices,
then the field's ``check`` hook; every refusal is ``ConfigError("section.key",
message)``. Fields whose value is not one of the plain kinds below carry a ``parse``
hook that receives the raw TOML value.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from node.core._errors import HuxinError

__all__ = [
    "ID_PATTERN",
    "ConfigError",
    "at_least",
    "between",
    "check_address",
    "check_id",
    "check_keys",
    "config_keys",
    "field_kind",
    "located_fields",
    "parse_root",
    "parse_section",
    "parse_value",
    "positive",
    "resolve",
    "scalar",
    "setting",
    "str_list",
]

# region and certificate identities: the pattern of keys' node certificates
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

MISSING: Any = dataclasses.MISSING
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


class ConfigError(HuxinError):
    """A config file that cannot be used; ``field`` is the dotted key."""

    code = "INVALID_CONFIG"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def setting(
    default: Any = MISSING,
    *,
    factory: Any = MISSING,
    doc: str = "",
    **meta: Any,
) -> Any:
    """A dataclass field with its config metadata (keys named in the module docstring,
    plus ``min_text``/``max_text``, ``choices``, ``toml``, ``toml_default``,
    ``type_text``, ``check``, ``parse``)."""
    if doc:
        meta["doc"] = doc
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive(default: Any, *, most: float | None = None, text: str = "", **meta: Any) -> Any:
    """A number above zero (an integer at least 1), optionally at most ``most``."""
    meta.update({"min": 1} if isinstance(default, int) else {"above": 0})
    if most is not None:
        meta.update(max=most, max_text=text or f"must be at most {most}")
    return setting(default, min_text="must be positive", **meta)


def between(default: Any, low: Any, high: Any, *, text: str = "", **meta: Any) -> Any:
    """A value in ``low..high`` (both included); one message for either side."""
    text = text or f"must be between {low} and {high}"
    return setting(default, min=low, max=high, min_text=text, max_text=text, **meta)


def at_least(default: Any, low: float, **meta: Any) -> Any:
    """A number of at least ``low``."""
    return setting(default, min=low, min_text=f"must be at least {low}", **meta)


def check_address(value: str, name: str, *, min_port: int = 0) -> str:
    """``host:port`` (``[v6]:port`` too) with a port of ``min_port``..65535; returned as is."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ConfigError(name, f"{value!r} is not host:port")
    if not min_port <= int(port) <= 65535:
        raise ConfigError(name, f"port {port} is not in {min_port}..65535")
    if host.startswith("[") != host.endswith("]") or any(c.isspace() for c in host):
        raise ConfigError(name, f"{value!r} is not host:port")
    return value


def check_id(value: str, name: str) -> str:
    """A region or certificate identity (``heihe``, ``heihe.court``): :data:`ID_PATTERN`."""
    if not ID_PATTERN.match(value):
        raise ConfigError(
            name, f"{value!r} is not an id (lower-case letters, digits, '.', '_', '-'; max 63)"
        )
    return value


def str_list(raw: Any, name: str) -> tuple[str, ...]:
    """A TOML array of strings."""
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(name, "must be a list of strings")
    return tuple(raw)


def resolve(value: str | Path, base: Path) -> Path:
    """A path from the file, relative ones against the config file's directory."""
    p = Path(value)
    return p if p.is_absolute() else base / p


def scalar(value: Any, kind: type, where: str, type_text: str | None = None) -> Any:
    if kind is int and isinstance(value, bool):
        raise ConfigError(where, "must be an integer")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(where, type_text or f"must be {_KIND_NAMES[kind]}")
    return value


def _int_map(raw: Any, name: str) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ConfigError(name, "must be a table of peer = integer")
    out: dict[str, int] = {}
    for k, v in raw.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{name}.{k}", "must be a positive integer")
        out[str(k)] = v
    return out


def field_kind(hint: Any) -> tuple[Any, bool]:
    """The annotation without ``| None``, and whether ``None`` was allowed."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(get_args(hint))
    return hint, False


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def parse_value(cls: type, f: dataclasses.Field[Any], raw: Any, where: str, base: Path) -> Any:
    """One present TOML value of field ``f``: typed, bounded and checked."""
    meta = f.metadata
    if "parse" in meta:
        value = meta["parse"](raw, where, base)
    else:
        kind, _ = field_kind(_hints(cls)[f.name])
        if kind in (int, float, str, bool):
            value = scalar(raw, kind, where, meta.get("type_text"))
        elif kind is Path:
            value = resolve(scalar(raw, str, where, meta.get("type_text")), base)
        elif kind == tuple[str, ...]:
            value = str_list(raw, where)
        elif kind == tuple[Path, ...]:
            value = tuple(resolve(p, base) for p in str_list(raw, where))
        elif kind == Mapping[str, int]:
            value = _int_map(raw, where)
        else:  # a declaration error, caught by the drift test
            raise TypeError(f"{where}: {kind} needs a parse hook")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(where, meta["min_text"])
    if "above" in meta and value <= meta["above"]:
        raise ConfigError(where, meta["min_text"])
    if "max" in meta and value > meta["max"]:
        raise ConfigError(where, meta["max_text"])
    if "choices" in meta and value not in meta["choices"]:
        quoted = [repr(c) for c in meta["choices"]]
        raise ConfigError(where, f"must be {', '.join(quoted[:-1])} or {quoted[-1]}")
    if "check" in meta:
        value = meta["check"](value, where)
    return value


def _default(f: dataclasses.Field[Any], where: str, base: Path) -> Any:
    if "toml_default" in f.metadata:
        return resolve(f.metadata["toml_default"], base)
    if f.default_factory is not MISSING:
        return f.default_factory()  # type: ignore[operator]
    if f.default is MISSING:
        raise ConfigError(where, "is required")
    # a relative default path (clients.json) lies beside the config file too
    return resolve(f.default, base) if isinstance(f.default, Path) else f.default


def parse_section(cls: type, raw: Mapping[str, Any], section: str, base: Path) -> dict[str, Any]:
    """Every field of dataclass ``cls`` from table ``raw`` of ``[section]``, in field order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        where = f"{section}.{f.name}"
        if f.name in raw:
            out[f.name] = parse_value(cls, f, raw[f.name], where, base)
        else:
            out[f.name] = _default(f, where, base)
    return out


def located_fields(root: type) -> Iterator[tuple[str, str, type, dataclasses.Field[Any]]]:
    """``(section, key, owner class, field)`` of every key the file may hold.

    A field of ``root`` whose type is a dataclass is the section of its name; any
    other sits in ``[node]`` unless its ``toml`` metadata names ``section.key``."""
    for f in dataclasses.fields(root):
        kind, _ = field_kind(_hints(root)[f.name])
        if dataclasses.is_dataclass(kind):
            for inner in dataclasses.fields(kind):
                yield f.name, inner.name, kind, inner  # type: ignore[misc]
        else:
            section, _, key = f.metadata.get("toml", f"node.{f.name}").partition(".")
            yield section, key, root, f


def config_keys(root: type) -> dict[str, frozenset[str]]:
    """Section -> the keys it accepts: derived, so it cannot drift from the fields."""
    keys: dict[str, set[str]] = {}
    for section, key, _, _ in located_fields(root):
        keys.setdefault(section, set()).add(key)
    return {s: frozenset(k) for s, k in keys.items()}


def check_keys(data: Mapping[str, Any], allowed: Mapping[str, frozenset[str]]) -> None:
    """Unknown sections and keys are refused: a typo must not disable a limit."""
    for section, value in data.items():
        if section not in allowed:
            raise ConfigError(section, "unknown section")
        if not isinstance(value, Mapping):
            raise ConfigError(section, "must be a table")
        for key in value:
            if key not in allowed[section]:
                raise ConfigError(f"{section}.{key}", "unknown key")


def parse_root(root: type, data: Mapping[str, Any], base: Path) -> Any:
    """An instance of ``root`` from the whole file: each section dataclass through
    :func:`parse_section` (an optional one absent from the file is ``None``), each
    other field from its own location. Cross-field rules are the caller's."""
    check_keys(data, config_keys(root))
    values: dict[str, Any] = {}
    for f in dataclasses.fields(root):
        kind, optional = field_kind(_hints(root)[f.name])
        if dataclasses.is_dataclass(kind):
            table = data.get(f.name)
            if table is None and optional:
                values[f.name] = None
            else:
                values[f.name] = kind(**parse_section(kind, table or {}, f.name, base))  # type: ignore[operator,arg-type]
            continue
        section, _, key = f.metadata.get("toml", f"node.{f.name}").partition(".")
        table = data.get(section, {})
        where = f"{section}.{key}"
        if key in table:
            values[f.name] = parse_value(root, f, table[key], where, base)
        else:
            values[f.name] = _default(f, where, base)
    return root(**values)
