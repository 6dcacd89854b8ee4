"""``[storage]``: where the node keeps its state (issue 18, docs/adr/0700).

``url = "sqlite:///node.db"`` (the default, derived from ``[node] database``, which
stays valid) or ``url = "postgresql://user@host:port/dbname?sslmode=verify-full"``
(libpq's URI form; a unix socket directory as ``?host=/run/postgresql``).

Invariants:

* a URL is at most :data:`MAX_URL` characters, of the scheme ``sqlite``,
  ``postgresql`` or ``postgres``; every query parameter of a PostgreSQL URL is
  one of :data:`PG_PARAMETERS` (libpq's, minus the password's), each at most
  :data:`MAX_PARAMETER` characters;
* a password is never in the TOML: a URL carrying one (``user:secret@`` or
  ``?password=``) is refused with ``ConfigError("storage.url", ...)``; it comes
  from ``password_file`` (at most :data:`MAX_PASSWORD` bytes, read when the store
  connects) or the environment (``HUXIN_PG_PASSWORD``, or libpq's own
  ``PGPASSWORD``/``~/.pgpass``), read by :mod:`node.store` -- this module reads
  no environment;
* ``readers`` (PostgreSQL: the node's reader threads and connections) is 1..64;
* ``sqlite:///relative.db`` is resolved against the config file's directory,
  ``sqlite:////abs/node.db`` is absolute; the resolved URL and ``[node]
  database`` always name the same file (:meth:`StorageConfig.for_database`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from node.core._config_parse import ConfigError, between, resolve, scalar, setting

__all__ = [
    "MAX_PARAMETER",
    "MAX_PASSWORD",
    "MAX_RETENTION_MONTHS",
    "MAX_URL",
    "PG_PARAMETERS",
    "StorageConfig",
    "check_storage_url",
]

MAX_URL = 2048
MAX_PARAMETER = 512
MAX_PASSWORD = 1024  # bytes of password_file
MAX_RETENTION_MONTHS = 1200  # a century: any law's retention fits
SQLITE_PREFIX = "sqlite:///"
PG_SCHEMES = ("postgresql", "postgres")
#: libpq connection parameters a URL may carry (the password is not one of them)
PG_PARAMETERS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "connect_timeout",
        "application_name",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "options",
        "load_balance_hosts",
    }
)


def check_storage_url(raw: Any, where: str, base: Path) -> str:
    """A storage URL from the TOML: bounded, of a known scheme, without a password;
    a SQLite path is returned resolved (``sqlite:////abs/path``)."""
    url: str = scalar(raw, str, where)
    if len(url) > MAX_URL:
        raise ConfigError(where, f"must be at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(where, "must not contain spaces or control characters")
    if url.startswith(SQLITE_PREFIX):
        rest = url[len(SQLITE_PREFIX) :]
        if not rest or "?" in rest or "#" in rest:
            raise ConfigError(where, "must be sqlite:///<path> (a file path, no options)")
        return SQLITE_PREFIX + str(resolve(rest, base))
    try:
        parts = urlsplit(url)
        password = parts.password
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigError(where, f"is not a valid URL: {exc}") from None
    if parts.scheme not in PG_SCHEMES:
        raise ConfigError(where, "must start with sqlite:/// or postgresql://")
    if password is not None:
        raise ConfigError(
            where, "must not contain a password: use storage.password_file or HUXIN_PG_PASSWORD"
        )
    if parts.fragment:
        raise ConfigError(where, "must not have a #fragment")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            raise ConfigError(
                where,
                "must not contain a password: use storage.password_file or HUXIN_PG_PASSWORD",
            )
        if key not in PG_PARAMETERS:
            raise ConfigError(where, f"unknown connection parameter {key!r}")
        if len(value) > MAX_PARAMETER:
            raise ConfigError(
                where, f"parameter {key!r} must be at most {MAX_PARAMETER} characters"
            )
    return url


def _password_file(raw: Any, where: str, base: Path) -> Path:
    return resolve(scalar(raw, str, where), base)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """``[storage]``: the backend's URL (``""`` in the TOML = SQLite at ``[node]
    database``) and where a PostgreSQL password comes from."""

    # sqlite:///<path> or postgresql://user@host:port/db (no password), <= MAX_URL
    url: str = setting("", parse=check_storage_url)
    # a file holding the PostgreSQL password (<= MAX_PASSWORD bytes); else the environment
    password_file: Path | None = setting(None, parse=_password_file)
    # PostgreSQL: months of period-table partitions kept (node/store/_partitions.py); 0 keeps all
    retention_months: int = between(0, 0, MAX_RETENTION_MONTHS)
    # PostgreSQL: reader threads of a node, each with its own connection (1..64)
    readers: int = between(4, 1, 64)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.url.startswith(SQLITE_PREFIX) or not self.url else "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or ``None`` on PostgreSQL."""
        if self.dialect != "sqlite" or not self.url:
            return None
        return Path(self.url[len(SQLITE_PREFIX) :])

    @classmethod
    def for_database(cls, database: Path) -> StorageConfig:
        """The default: SQLite at ``database`` (``[node] database``)."""
        return cls(url=SQLITE_PREFIX + str(database))

    def __str__(self) -> str:  # never a password: the URL holds none
        return self.url
