"""Which backend a storage target names, and the password of a PostgreSQL one (issue 18).

A *target* is what callers hand the store: ``[storage]`` itself
(:class:`node.core._config_storage.StorageConfig`), a URL (``sqlite:///…``,
``postgresql://…``) or a plain SQLite path (``str``/``Path``, as before issue 18).

Invariants:

* :func:`resolve` never opens anything; a PostgreSQL URL that carries a password is
  refused (``StorageError("PASSWORD_IN_URL")``): passwords come from
  ``[storage] password_file`` (at most ``MAX_PASSWORD`` bytes, one trailing newline
  stripped; UTF-8, else ``PASSWORD_FILE_INVALID`` without any byte of it) or the environment ``HUXIN_PG_PASSWORD``; libpq's own ``PGPASSWORD`` and
  ``~/.pgpass`` work too, since they are read by libpq itself;
* the password is held only in :class:`Backend` (``repr`` hides it) and handed to
  the driver; it is never logged and never part of a URL or an error message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

from node.core._config_storage import MAX_PASSWORD, PG_SCHEMES, SQLITE_PREFIX, StorageConfig
from node.store._migrate import StorageError

__all__ = ["PASSWORD_ENV", "Backend", "Target", "dialect_of", "resolve"]

PASSWORD_ENV = "HUXIN_PG_PASSWORD"  # noqa: S105 - the variable's name, not a password
Target: TypeAlias = "StorageConfig | str | Path"


@dataclass(frozen=True)
class Backend:
    """A resolved target: ``dialect`` and either ``path`` (SQLite) or ``url`` (PostgreSQL)."""

    dialect: str
    path: Path | None = None
    url: str = ""
    password: str | None = field(default=None, repr=False)

    @property
    def is_pg(self) -> bool:
        return self.dialect == "postgresql"


def _read_password(path: Path) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PASSWORD + 1)
    except OSError as exc:
        raise StorageError(
            "PASSWORD_FILE_UNREADABLE", f"storage.password_file {str(path)!r}: {exc.strerror}"
        ) from None
    if len(raw) > MAX_PASSWORD:
        raise StorageError(
            "PASSWORD_FILE_TOO_LARGE", f"storage.password_file must be at most {MAX_PASSWORD} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # the decoder's message quotes the offending byte: a byte of the secret
        raise StorageError(
            "PASSWORD_FILE_INVALID", f"storage.password_file {str(path)!r} is not UTF-8 text"
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


def resolve(target: Target) -> Backend:
    """The backend ``target`` names (see the module doc)."""
    password_file: Path | None = None
    if isinstance(target, StorageConfig):
        password_file = target.password_file
        text: str | Path = target.url
    else:
        text = target
    if isinstance(text, Path):
        return Backend("sqlite", path=text)
    if text.startswith(SQLITE_PREFIX):
        return Backend("sqlite", path=Path(text[len(SQLITE_PREFIX) :]))
    scheme = text.partition("://")[0]
    if scheme not in PG_SCHEMES:
        return Backend("sqlite", path=Path(text))
    parts = urlsplit(text)
    if parts.password is not None or "password=" in parts.query:
        raise StorageError("PASSWORD_IN_URL", "a storage URL must not carry a password")
    if password_file is not None:
        password: str | None = _read_password(password_file)
    else:
        password = os.environ.get(PASSWORD_ENV) or None
    return Backend("postgresql", url=text, password=password)


def dialect_of(conn: object) -> str:
    """``"postgresql"`` for the PostgreSQL adapter, ``"sqlite"`` for ``sqlite3``."""
    return getattr(conn, "dialect", "sqlite")
