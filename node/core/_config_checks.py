"""The checks of single config values that no bound expresses, each named by a
field's ``check`` or ``parse`` metadata in :mod:`node.core._config`.

Invariants: a ``check`` hook receives the typed value and the dotted key
(``where``) and returns the value; a ``parse`` hook receives the raw TOML value,
the key and the config file's directory; every refusal is
``ConfigError(where, message)`` with the message the tests pin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from node.core._config_parse import (
    ConfigError,
    between,
    check_address,
    check_id,
    resolve,
    scalar,
    str_list,
)

__all__ = [
    "MAX_AUTHORITY_ID",
    "MAX_DEADLINE_DAYS",
    "MAX_MAPPING_FILES",
    "OBJECTION_STEPS",
    "any_path",
    "authorities",
    "deadlines",
    "endpoint",
    "files",
    "guide",
    "hex_key",
    "idp_keys",
    "ids",
    "listen_address",
    "port_limit",
    "published",
    "reach",
    "version",
]

OBJECTION_STEPS = ("handle", "forward", "source", "reply")  # [rights] objection_deadlines
MAX_DEADLINE_DAYS = 60
#: [mapping] bounds: table and approval files, authorities, authority id length
MAX_MAPPING_FILES = 64
MAX_AUTHORITY_ID = 64
_CATALOGUE_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
_PUBLISHED_RANGE = (date(2000, 1, 1), date(2099, 12, 31))
_DECIMAL = re.compile(r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$")


#: listeners that are off when their address is empty
OPTIONAL_LISTENERS = frozenset({"listen.metrics", "listen.http_citizen", "listen.http_mtls"})


def listen_address(value: str, where: str) -> str:
    return value if where in OPTIONAL_LISTENERS and value == "" else check_address(value, where)


def endpoint(value: str, where: str) -> str:
    """A hub's address (empty = none): ``host:port`` with a real port (1..65535)."""
    return value and check_address(value, where, min_port=1)


def ids(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    for v in values:
        check_id(v, where)
    return values


def hex_key(size_text: str) -> Any:
    """The parse hook of a raw 32-byte Ed25519 key written in hex; an empty value
    stands for "none" only where the field has a default."""

    def parse(raw: Any, where: str, base: Path) -> bytes:
        try:
            key = bytes.fromhex(scalar(raw, str, where))
        except ValueError:
            raise ConfigError(where, "must be hex") from None
        if len(key) != 32 and (key or where == "federation.hub_key"):
            raise ConfigError(where, size_text)
        return key

    return parse


def idp_keys(raw: Any, where: str, base: Path) -> tuple[bytes, ...]:
    try:
        keys = tuple(bytes.fromhex(k) for k in str_list(raw, where))
    except ValueError:
        raise ConfigError(where, "must be hex strings") from None
    if any(len(k) != 32 for k in keys):
        raise ConfigError(where, "each key must be 32 bytes")
    return keys


def deadlines(deadlines: Mapping[str, int], where: str) -> Mapping[str, int]:
    for step, days in deadlines.items():
        if step not in OBJECTION_STEPS:
            raise ConfigError(f"{where}.{step}", f"must be one of {', '.join(OBJECTION_STEPS)}")
        if days > MAX_DEADLINE_DAYS:
            raise ConfigError(f"{where}.{step}", f"at most {MAX_DEADLINE_DAYS}")
    return deadlines


def any_path(raw: Any, where: str, base: Path) -> Path:
    return resolve(str(raw), base)  # [node] log_file takes any value as its name


def version(value: str, where: str) -> str:
    if value and not _CATALOGUE_VERSION.match(value):
        raise ConfigError(where, "must be 1-32 letters, digits, '.', '_' or '-' (a version)")
    return value


def published(raw: Any, where: str, base: Path) -> date:
    if not isinstance(raw, date) or isinstance(raw, datetime):
        raise ConfigError(where, "must be a date (YYYY-MM-DD)")
    low, high = _PUBLISHED_RANGE
    if not low <= raw <= high:
        raise ConfigError(where, f"must be between {low} and {high}")
    return raw


def guide(raw: Any, where: str, base: Path) -> Path | None:
    value = scalar(raw, str, where)
    return resolve(value, base) if value else None


def files(paths: tuple[Path, ...], where: str) -> tuple[Path, ...]:
    if len(paths) > MAX_MAPPING_FILES:
        raise ConfigError(where, f"at most {MAX_MAPPING_FILES} files")
    return paths


def reach(value: str, where: str) -> str:
    if value and not _DECIMAL.match(value):
        raise ConfigError(where, 'must be a decimal share in [0, 1], e.g. "0.5"')
    return value


def authorities(raw: Any, where: str, base: Path) -> dict[str, bytes]:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a table of id = hex key")
    if len(raw) > MAX_MAPPING_FILES:
        raise ConfigError(where, f"at most {MAX_MAPPING_FILES} authorities")
    authorities: dict[str, bytes] = {}
    for name, value in raw.items():
        at = f"{where}.{name}"
        if not 1 <= len(name) <= MAX_AUTHORITY_ID:
            raise ConfigError(at, f"an authority id has 1-{MAX_AUTHORITY_ID} characters")
        try:
            key = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ConfigError(at, "must be a 32-byte Ed25519 public key in hex")
        authorities[name] = key
    return authorities


def port_limit(default: Any, low: float, high: float) -> Any:
    """A ``[listen]`` port limit (docs/adr/0321): checked only when the file sets it."""
    return between(default, low, high, text=f"must be between {low:g} and {high:g}", port=True)
