"""``[storage]``: the backend's URL and where a PostgreSQL password comes from
(issue 18; docs/adr/0700, ADR 0603).

A password is never accepted in the TOML; bad URLs are refused naming the field;
a SQLite URL and ``[node] database`` always name one file; the store reads the
password from ``password_file`` or ``HUXIN_PG_PASSWORD`` and hands it to libpq
(checked against a real server over TCP, where SCRAM is required).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from node.core._config import ConfigError, parse_config
from node.core._config_storage import MAX_URL
from node.store import StorageError, StorageUnavailable
from node.store._backend import PASSWORD_ENV, resolve
from node.store._pg import PgConnection
from node.store._pg_local import LocalPostgres
from tests.support.config import BASE, with_storage


def _parse(storage: dict[str, Any], node: dict[str, Any] | None = None) -> Any:
    data = copy.deepcopy(BASE)
    data["storage"] = storage
    data["node"].update(node or {})
    return parse_config(data, Path("/etc/huxin"))


BAD_STORAGE = [
    pytest.param(
        {"url": "postgresql://huxin:secret@db:5432/heihe"},
        "storage.url",
        "must not contain a password: use storage.password_file or HUXIN_PG_PASSWORD",
        id="password-in-userinfo",
    ),
    pytest.param(
        {"url": "postgresql://huxin@db/heihe?password=secret"},
        "storage.url",
        "must not contain a password: use storage.password_file or HUXIN_PG_PASSWORD",
        id="password-parameter",
    ),
    pytest.param({"password": "secret"}, "storage.password", "unknown key", id="password-key"),
    pytest.param(
        {"url": "mysql://db/heihe"},
        "storage.url",
        "must start with sqlite:/// or postgresql://",
        id="other-scheme",
    ),
    pytest.param(
        {"url": "postgresql://db/heihe?foo=1"},
        "storage.url",
        "unknown connection parameter 'foo'",
        id="unknown-parameter",
    ),
    pytest.param(
        {"url": "postgresql://db/" + "x" * MAX_URL},
        "storage.url",
        f"must be at most {MAX_URL} characters",
        id="too-long",
    ),
    pytest.param(
        {"url": "postgresql://db/heihe?application_name=" + "x" * 513},
        "storage.url",
        "parameter 'application_name' must be at most 512 characters",
        id="parameter-too-long",
    ),
    pytest.param(
        {"url": "postgresql://db:port/heihe"},
        "storage.url",
        "is not a valid URL",
        id="port-not-a-number",
    ),
    pytest.param(
        {"url": "postgresql://db/heihe lo"},
        "storage.url",
        "must not contain spaces or control characters",
        id="space",
    ),
    pytest.param(
        {"url": "sqlite:///"},
        "storage.url",
        "must be sqlite:///<path> (a file path, no options)",
        id="sqlite-no-path",
    ),
    pytest.param({"url": 5}, "storage.url", "must be a string", id="not-a-string"),
]


@pytest.mark.parametrize(("storage", "field", "message"), BAD_STORAGE)
def test_bad_storage_is_refused_naming_the_field(
    storage: dict[str, Any], field: str, message: str
) -> None:
    """Issue 18: the password never in the TOML; every URL bounded and checked."""
    with pytest.raises(ConfigError) as caught:
        _parse(storage)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_the_url_defaults_to_sqlite_at_the_database() -> None:
    """Issue 18: today's configs (``[node] database`` only) keep working."""
    config = _parse({}, {"database": "state/node.db"})
    assert config.storage.url == "sqlite:////etc/huxin/state/node.db"
    assert config.storage.dialect == "sqlite"
    assert config.database == Path("/etc/huxin/state/node.db")


def test_a_sqlite_url_sets_the_database_and_two_files_are_refused() -> None:
    config = _parse({"url": "sqlite:///data/heihe.db"})
    assert config.database == Path("/etc/huxin/data/heihe.db")
    with pytest.raises(ConfigError) as caught:
        _parse({"url": "sqlite:///a.db"}, {"database": "b.db"})
    assert caught.value.field == "storage.url"


def test_a_postgresql_url_is_kept_as_written() -> None:
    url = "postgresql://huxin@db.internal:5432/heihe?sslmode=verify-full&host=/run/postgresql"
    config = _parse({"url": url, "password_file": "secrets/pg"})
    assert config.storage.url == url
    assert config.storage.dialect == "postgresql"
    assert config.storage.password_file == Path("/etc/huxin/secrets/pg")
    assert with_storage(BASE, url)["storage"] == {"url": url}


def test_password_comes_from_the_file_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pg.secret"
    secret.write_text("from-file\n")
    config = _parse({"url": "postgresql://huxin@db/heihe", "password_file": str(secret)})
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    backend = resolve(config.storage)
    assert backend.password == "from-file"
    assert "from-file" not in repr(backend)
    assert resolve("postgresql://huxin@db/heihe").password == "from-env"
    monkeypatch.delenv(PASSWORD_ENV)
    assert resolve("postgresql://huxin@db/heihe").password is None
    secret.write_bytes(b"x" * 1025)
    with pytest.raises(StorageError) as caught:
        resolve(config.storage)
    assert caught.value.code == "PASSWORD_FILE_TOO_LARGE"
    with pytest.raises(StorageError) as url_pw:
        resolve("postgresql://huxin:pw@db/heihe")
    assert url_pw.value.code == "PASSWORD_IN_URL"


def test_a_password_reaches_the_server(
    postgres_server: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TCP the test server requires SCRAM: the password from the environment
    (or the file) connects; a wrong one is refused without the password in the text."""
    postgres_server.admin("DROP ROLE IF EXISTS huxin_pw")
    postgres_server.admin("CREATE ROLE huxin_pw LOGIN CREATEDB PASSWORD 'right-horse'")
    url = postgres_server.tcp_url("postgres", user="huxin_pw")
    monkeypatch.setenv(PASSWORD_ENV, "right-horse")
    backend = resolve(url)
    conn = PgConnection(backend.url, password=backend.password)
    try:
        assert conn.execute("SELECT current_user").fetchone() == ("huxin_pw",)
    finally:
        conn.close()
    monkeypatch.setenv(PASSWORD_ENV, "wrong-horse")
    with pytest.raises(StorageUnavailable) as caught:
        PgConnection(url, password=resolve(url).password)
    assert "wrong-horse" not in str(caught.value)


BAD_COMBINATIONS = [
    pytest.param(
        {"storage": {"url": "postgresql://db/heihe"}, "listen": {"peer_workers": 2}},
        "listen.peer_workers",
        "must be 1 on PostgreSQL: run several replicas instead",
        id="peer-workers-on-postgresql",
    ),
    pytest.param(
        {"storage": {"readers": 0}}, "storage.readers", "must be between 1 and 64", id="no-readers"
    ),
    pytest.param(
        {"storage": {"readers": 65}},
        "storage.readers",
        "must be between 1 and 64",
        id="too-many-readers",
    ),
]


@pytest.mark.parametrize(("tables", "field", "message"), BAD_COMBINATIONS)
def test_bad_storage_combinations_are_refused(
    tables: dict[str, Any], field: str, message: str
) -> None:
    """Issue 18: peer-port workers are SQLite's (replicas on PostgreSQL); readers bounded."""
    data = copy.deepcopy(BASE)
    data.update(tables)
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("/etc/huxin"))
    assert caught.value.field == field
    assert message in str(caught.value)
