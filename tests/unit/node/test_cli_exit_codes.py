"""The CLI maps the node's one error tree to exit codes (node/cli/_main.py ``EXIT_CODES``).

Issue 17, "one error tree": the errors that were roots of their own (config, storage,
backups, trust list, certificates, client registry, synthetic population, recognition
tables, init, the CLI's own) hang from ``HuxinError``, beside the refusals a caller may
see (``NodeError``); the RPC edge and the CLI map that one tree.
"""

from __future__ import annotations

import argparse

import pytest

import node.cli._main as cli_main
from keys import VerificationError
from mapping import MappingError
from node.cli._init import InitError
from node.cli._main import CliError, exit_code_of
from node.core._config import ConfigError
from node.core._errors import HuxinError, InvalidArgumentError, NodeError
from node.federation._clients import RegistryFileError
from node.federation._tlscert import CertError
from node.federation._trust import TrustError
from node.monthly._batch import BatchError
from node.recognition._verify import TableRefused
from node.rpc._status import map_error
from node.store import StorageError
from node.store._backup import BackupError
from node.synthetic._population import PopulationError
from scoring import RecordError

OPERATIONAL = [
    pytest.param(ConfigError("listen.peer", "bad"), "INVALID_CONFIG", id="config"),
    pytest.param(StorageError("DB_NEWER", "m"), "DB_NEWER", id="storage"),
    pytest.param(BackupError("BACKUP_CORRUPT", "m"), "BACKUP_CORRUPT", id="backup"),
    pytest.param(TrustError("TRUST_LIST_EXPIRED", "m"), "TRUST_LIST_EXPIRED", id="trust"),
    pytest.param(RegistryFileError("CLIENT_EXISTS", "m"), "CLIENT_EXISTS", id="client-registry"),
    pytest.param(CertError("CERT_EXPIRED", "m"), "CERT_EXPIRED", id="certificate"),
    pytest.param(PopulationError("BAD_SIZE", "m"), "BAD_SIZE", id="synthetic-population"),
    pytest.param(TableRefused("TABLE_UNSIGNED", "m"), "TABLE_UNSIGNED", id="recognition-table"),
    pytest.param(InitError("EXISTS", "m"), "EXISTS", id="init"),
]


@pytest.mark.parametrize(("exc", "code"), OPERATIONAL)
def test_operational_errors_are_of_the_tree_and_exit_2(exc: HuxinError, code: str) -> None:
    """Issue 17: every operational error is a HuxinError with its stable code (exit 2),
    and never a NodeError, so a caller on the wire learns nothing of it (bare INTERNAL)."""
    assert isinstance(exc, HuxinError) and not isinstance(exc, NodeError)
    assert exit_code_of(exc) == (code, 2)
    mapped = map_error(exc)
    assert (mapped.status.name, mapped.reason, mapped.message) == (
        "INTERNAL",
        "INTERNAL",
        "internal error",
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(InvalidArgumentError("INVALID_FIELD", "m"), ("INVALID_FIELD", 2), id="refusal"),
        pytest.param(BatchError("INVALID_PERIOD", "m"), ("INVALID_PERIOD", 2), id="family"),
        pytest.param(CliError("CHECK_FAILED", "m", exit_code=1), ("CHECK_FAILED", 1), id="failed-check"),
        pytest.param(VerificationError("BAD_SIGNATURE", "m"), ("BAD_SIGNATURE", 2), id="keys"),
        pytest.param(RecordError("category", "m", code="FORBIDDEN_CATEGORY"), ("FORBIDDEN_CATEGORY", 2), id="scoring"),
        pytest.param(MappingError("table", "m", code="BAD_TABLE"), ("BAD_TABLE", 2), id="mapping"),
        pytest.param(ValueError("a bug"), None, id="uncoded-is-a-bug"),
    ],
)  # fmt: skip
def test_exit_code_of_the_tree(exc: Exception, expected: tuple[str, int] | None) -> None:
    """Issue 17: the CLI's exit code follows the error's class; an uncoded error is a bug
    (None: main re-raises it, so its traceback shows)."""
    assert exit_code_of(exc) == expected


def test_main_prints_the_code_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: a command that fails with an error of the tree prints
    ``error: CODE: message`` and exits 2, never a traceback."""

    def fail(_args: object) -> int:
        raise StorageError("DB_NEWER", "the database is newer than this huxin")

    parser = argparse.ArgumentParser(prog="huxin")
    parser.set_defaults(func=fail)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    assert cli_main.main([]) == 2
    assert capsys.readouterr().err == "error: DB_NEWER: the database is newer than this huxin\n"
