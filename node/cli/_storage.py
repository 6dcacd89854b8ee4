"""The operator's commands open the node's storage: ``[storage]`` (issue 18).

Every command that reads or writes the node's state opens ``config.storage`` -- a
SQLite file or a PostgreSQL database (docs/adr/0700) -- never ``[node] database``
as a file: on PostgreSQL that path only places the files each process keeps
beside the database (the ``serve`` run file).

Invariants:

* a storage target that cannot be opened is ``error: CODE: ...`` and exit code 2,
  never a traceback: ``StorageError`` (``DB_NOT_FOUND``, ``SCHEMA_MISMATCH`` ...)
  and ``StorageUnavailable`` (``STORAGE_UNAVAILABLE``: the server cannot be
  reached, the login is refused);
* on PostgreSQL the message names ``storage.url`` and the URL, so the operator
  knows which setting to check; the URL never holds a password (the config
  refuses one), so printing it discloses none.
"""

from __future__ import annotations

from node.cli._main import CliError
from node.core._config import NodeConfig
from node.core._errors import HuxinError
from node.store import Connection, StorageError, StorageUnavailable, connect

__all__ = ["STORAGE_ERRORS", "open_storage", "storage_failure"]

#: what opening a storage target raises on purpose
STORAGE_ERRORS = (StorageError, StorageUnavailable)


def storage_failure(config: NodeConfig, exc: HuxinError) -> CliError:
    """The operator's message for a storage target that failed to open."""
    if config.storage.dialect == "postgresql":
        return CliError(exc.code, f"storage.url {config.storage.url}: {exc}")
    return CliError(exc.code, str(exc))


def open_storage(config: NodeConfig, *, readonly: bool = False, create: bool = True) -> Connection:
    """The node's storage, migrated as the node migrates it at start (``readonly``:
    version-checked only; without ``create`` a missing SQLite file is ``DB_NOT_FOUND``)."""
    try:
        return connect(config.storage, readonly=readonly, create=create)
    except STORAGE_ERRORS as exc:
        raise storage_failure(config, exc) from None
