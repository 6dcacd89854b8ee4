"""The config is declared once (issue 17): the keys the parser accepts are exactly the
dataclass fields, and a file written from any valid values loads back to them."""

from __future__ import annotations

import dataclasses
import json
import string
from datetime import date
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.core._config import (
    MAX_GRANTS_PER_HOUR,
    NodeConfig,
    load_config,
    parse_config,
)
from node.core._config_checks import OBJECTION_STEPS
from node.core._config_parse import config_keys, field_kind, located_fields
from node.core._config_storage import StorageConfig

LOCATED = list(located_fields(NodeConfig))
NAME = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
ID = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,10}\Z")
KEY32 = st.binary(min_size=32, max_size=32)


def _address(min_port: int) -> st.SearchStrategy[str]:
    return st.integers(min_port, 65535).map(lambda p: f"127.0.0.1:{p}")


# Keys whose values a hook checks: how to draw a valid one (toml value, loaded value).
def _hooked(base: Path) -> dict[str, st.SearchStrategy[tuple[Any, Any]]]:
    same = lambda s: s.map(lambda v: (v, v))  # noqa: E731
    path = NAME.map(lambda n: (n, base / n))
    return {
        "node.region": same(ID),
        "consent.grant_burst": same(st.integers(1, MAX_GRANTS_PER_HOUR)),
        "node.log_file": path,
        "listen.peer": same(_address(0)),
        "listen.citizen": same(_address(0)),
        "listen.metrics": same(st.just("") | _address(0)),
        "identity.public_keys": st.lists(KEY32, max_size=3).map(
            lambda ks: ([k.hex() for k in ks], tuple(ks))
        ),
        "rights.objection_deadlines": same(
            st.dictionaries(st.sampled_from(OBJECTION_STEPS), st.integers(1, 60))
        ),
        "peers.allowed": st.lists(ID, max_size=3).map(lambda v: (v, tuple(v))),
        "sources.allowed": st.lists(ID, max_size=3).map(lambda v: (v, tuple(v))),
        "sources.population": st.lists(ID, max_size=3).map(lambda v: (v, tuple(v))),
        "federation.hub_key": KEY32.map(lambda k: (k.hex(), k)),
        "federation.hub_endpoint": same(st.just("") | _address(1)),
        "hub.endpoint": same(st.just("") | _address(1)),
        "hub.hub_key": (st.just(b"") | KEY32).map(lambda k: (k.hex(), k)),
        "catalogue.version": same(st.just("") | st.from_regex(r"\A[0-9a-z][0-9a-z._-]{0,8}\Z")),
        "catalogue.published_on": same(st.dates(date(2000, 1, 1), date(2099, 12, 31))),
        "catalogue.guide": path,
        "mapping.min_reach": same(st.sampled_from(["", "0", "0.5", "0.123456", "1", "1.0"])),
        # issue 18: a PostgreSQL URL (SQLite URLs name [node] database: test_storage_config)
        "storage.url": same(NAME.map(lambda n: f"postgresql://huxin@{n}:5432/{n}?sslmode=require")),
        "storage.password_file": path,
        "mapping.authorities": st.dictionaries(ID, KEY32, max_size=3).map(
            lambda d: ({k: v.hex() for k, v in d.items()}, d)
        ),
    }


def _plain(cls: type, f: dataclasses.Field[Any], base: Path) -> st.SearchStrategy[Any]:
    """(toml value, loaded value) of a key the generic parser checks by type and bounds."""
    kind, _ = field_kind(get_type_hints(cls)[f.name])
    meta = f.metadata
    if "choices" in meta:
        return st.sampled_from(meta["choices"]).map(lambda v: (v, v))
    if kind is bool:
        return st.booleans().map(lambda v: (v, v))
    if kind in (int, float):
        low = meta.get("min", meta.get("above", 0))
        high = meta.get("max", low + 1_000_000)
        if kind is int:
            return st.integers(int(low), int(high)).map(lambda v: (v, v))
        floats = st.floats(low, high, exclude_min="above" in meta, allow_nan=False)
        return floats.map(lambda v: (v, v))
    if kind is str:
        return NAME.map(lambda v: (v, v))
    if kind is Path:
        return NAME.map(lambda n: (n, base / n))
    if kind == tuple[Path, ...]:
        return st.lists(NAME, max_size=3).map(lambda ns: (ns, tuple(base / n for n in ns)))
    ints = st.dictionaries(NAME, st.integers(1, 10_000), max_size=3)
    return ints.map(lambda d: (d, d))  # Mapping[str, int], the last plain kind


def _strategy(section: str, key: str, cls: type, f: dataclasses.Field[Any], base: Path) -> Any:
    hooked = _hooked(base)
    where = f"{section}.{key}"
    return hooked[where] if where in hooked else _plain(cls, f, base)


def _default(f: dataclasses.Field[Any], base: Path) -> Any:
    if "toml_default" in f.metadata:
        return base / f.metadata["toml_default"]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return base / f.default if isinstance(f.default, Path) else f.default


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | date):
        return str(value) if not isinstance(value, date) else value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


@st.composite
def _configs(draw: st.DrawFn, base: Path) -> tuple[dict[str, dict[str, Any]], dict[Any, Any]]:
    """A valid file as tables, and the value each (section, key) must load as."""
    with_federation = draw(st.booleans())
    tables: dict[str, dict[str, Any]] = {}
    loaded: dict[tuple[str, str], Any] = {}
    for section, key, cls, f in LOCATED:
        if section == "federation" and not with_federation:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if (required and "toml_default" not in f.metadata) or draw(st.booleans()):
            raw, value = draw(_strategy(section, key, cls, f, base))
            tables.setdefault(section, {})[key] = raw
            loaded[section, key] = value
        else:
            loaded[section, key] = _default(f, base)
    # the rules that tie two keys together (parse_config), kept by construction
    fix = {
        ("consent", "grant_burst"): min(
            loaded["consent", "grant_burst"], loaded["consent", "grants_per_hour"]
        ),
        ("hub", "trust_list_refresh_seconds"): min(
            loaded["hub", "trust_list_refresh_seconds"],
            loaded["hub", "trust_list_ttl_seconds"] // 2,
        ),
    }
    if loaded["node", "role"] == "hub" or loaded["storage", "url"]:  # a drawn url: PostgreSQL
        fix["listen", "peer_workers"] = 1
    if loaded["node", "role"] == "hub":
        fix["hub", "province_key"] = None
    if with_federation:
        fix["peers", "allowed"] = ()
    for (section, key), value in fix.items():
        loaded[section, key] = value
        table = tables.setdefault(section, {})
        table.pop(key, None)
        if value is not None:
            table[key] = [] if value == () else value
    return tables, loaded


def _expected(loaded: dict[tuple[str, str], Any], with_federation: bool) -> NodeConfig:
    sections: dict[str, dict[str, Any]] = {}
    root: dict[str, Any] = {}
    for section, key, cls, f in LOCATED:
        if (section, key) not in loaded:
            continue
        if cls is NodeConfig:
            root[f.name] = loaded[section, key]
        else:
            sections.setdefault(section, {})[key] = loaded[section, key]
    for f in dataclasses.fields(NodeConfig):
        kind, _ = field_kind(get_type_hints(NodeConfig)[f.name])
        if dataclasses.is_dataclass(kind):
            present = f.name in sections
            root[f.name] = kind(**sections[f.name]) if present else None  # type: ignore[operator]
    config = NodeConfig(**root)
    if not config.storage.url:  # issue 18: the URL defaults to SQLite at [node] database
        url = StorageConfig.for_database(config.database).url
        config = dataclasses.replace(config, storage=dataclasses.replace(config.storage, url=url))
    return config


def test_every_field_is_a_key_and_every_key_a_field() -> None:
    """issue 17: the parser accepts exactly the dataclass fields (a key cannot be
    added in one place and forgotten in another); every section is a table."""
    keys = config_keys(NodeConfig)
    located = {(s, k) for s, k, _, _ in LOCATED}
    assert located == {(s, k) for s, ks in keys.items() for k in ks}
    leaf_fields = 0
    for f in dataclasses.fields(NodeConfig):
        kind, _ = field_kind(get_type_hints(NodeConfig)[f.name])
        section_fields = dataclasses.fields(kind) if dataclasses.is_dataclass(kind) else [f]
        leaf_fields += len(section_fields)
    assert leaf_fields == len(located), "two fields claim the same key"
    assert set(keys) >= {"node", "tls", "keys", "peers", "sources", "mapping", "schedule"}


def test_readme_names_every_section() -> None:
    """issue 17: README's list of config sections is the parser's."""
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    missing = [s for s in config_keys(NodeConfig) if f"`[{s}]`" not in readme]
    assert missing == []


@pytest.mark.parametrize(
    ("section", "key"), [pytest.param(s, k, id=f"{s}.{k}") for s, k, _, _ in LOCATED]
)
def test_each_key_reaches_its_field(tmp_path: Path, section: str, key: str) -> None:
    """issue 17: a key set in the file is the value of its field after loading (no
    field is declared without the parser filling it)."""
    located = {(s, k): (c, f) for s, k, c, f in LOCATED}
    cls, f = located[section, key]
    data = {
        "node": {"region": "heihe", "scheme": "heihe"},
        "tls": {"cert": "c", "key": "k", "ca": "a"},
        "keys": {k: k for k in ("root", "signing", "key_set", "storage_secret", "seal")},
        "federation": {"hub": "hub", "hub_key": "00" * 32},
        # room for the key under test within the rules that tie two keys together
        "consent": {"grants_per_hour": MAX_GRANTS_PER_HOUR, "grant_burst": 1},
        "hub": {"trust_list_ttl_seconds": 10**9, "trust_list_refresh_seconds": 1},
    }
    if section == "peers":
        del data["federation"]

    @given(_strategy(section, key, cls, f, tmp_path))
    @settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(drawn: tuple[Any, Any]) -> None:
        raw, value = drawn
        config = parse_config({**data, section: {**data.get(section, {}), key: raw}}, tmp_path)
        owner = config if cls is NodeConfig else getattr(config, section)
        assert getattr(owner, f.name) == value

    check()


@given(data=st.data())
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_written_config_loads_back_equal(tmp_path: Path, data: st.DataObject) -> None:
    """issue 17: a file written from random valid values of every key (absent keys
    take their defaults) loads back to a config equal to those values."""
    tables, loaded = data.draw(_configs(tmp_path))
    text = "\n".join(
        f"[{section}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
        for section, table in tables.items()
    )
    (tmp_path / "node.toml").write_text(text, encoding="utf-8")
    expected = _expected(loaded, "federation" in tables)
    assert load_config(tmp_path / "node.toml") == expected
