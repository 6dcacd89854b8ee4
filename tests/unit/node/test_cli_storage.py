"""The operator's commands on a node kept in PostgreSQL or SQLite (issue 18, ADR 0700).

Each command that reads or writes the node's state opens ``[storage]`` (never ``[node]
database`` as a file): run against the same node on either backend (``storage_url``
runs each test twice) it prints the same output, asserted exactly.  A storage URL
that cannot be reached is ``error: STORAGE_UNAVAILABLE`` naming ``storage.url``,
exit code 2, never a traceback.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from node.cli._main import main
from node.core._config import load_config
from node.store import connect
from node.store._translog import LogWrite

KEY = b"\x05" * 32
TODAY = "2026-10-01"
#: nothing listens on port 1 of the loopback: the connection is refused at once
UNREACHABLE = "postgresql://huxin@127.0.0.1:1/heihe?connect_timeout=2"


def _init(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str) -> Path:
    """A region node written by ``huxin init`` with ``[storage] url``; on SQLite the
    URL names the node's own ``node.db`` (``[node] database``)."""
    out = tmp_path / "heihe"
    assert main(["init", "region", "--region", "heihe", "--scheme", "heihe",
                 "--out", str(out), "--peers", "hainan"]) == 0  # fmt: skip
    capsys.readouterr()
    if url.startswith("sqlite:"):
        url = "sqlite:///node.db"
    config = out / "node.toml"
    config.write_text(config.read_text("utf-8") + f'\n[storage]\nurl = "{url}"\n', encoding="utf-8")
    return config


@pytest.fixture
def node(tmp_path: Path, capsys: pytest.CaptureFixture[str], storage_url: str) -> Path:
    """A node on ``storage_url`` holding one resident, one consent and three log entries:
    an issued attestation, a refusal for a wrong requester and one for a wrong purpose."""
    config = _init(tmp_path, capsys, storage_url)
    conn = connect(load_config(config).storage)
    try:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1985-01-01', ?, '2026-09-29')",
            (KEY, b"\x00"),
        )
        conn.execute(
            "INSERT INTO residences (subject_key, kind, since) VALUES (?, 'hukou', '2000-01-01')",
            (KEY,),
        )
        conn.execute(
            "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope,"
            " not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256,"
            " granted_at) VALUES ('c1', ?, 'bank', 'heihe/credit-loans', 1, 0, 99, 5, 0, ?,"
            " ?, ?, 0)",
            (KEY, b"\x00" * 32, b"\x00", b"\x00"),
        )
        writes = [
            LogWrite("attestation_issued", 5, KEY, "c1", "bank", "heihe/credit-loans"),
            LogWrite(
                "request_refused",
                6,
                KEY,
                "c1",
                "shop",
                "heihe/credit-loans",
                "CONSENT_WRONG_AUDIENCE",
            ),
            LogWrite(
                "request_refused",
                7,
                KEY,
                "c1",
                "bank",
                "heihe/transit-discount",
                "CONSENT_WRONG_PURPOSE",
            ),
        ]
        for i, w in enumerate(writes):
            conn.execute(
                "INSERT INTO log_entries (idx, subject_key, kind, leaf, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (i, w.subject_key, w.kind, w.entry(), w.timestamp),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return config


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return json.loads(out)


def test_query_report_reads_the_storage(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ: N23 (issue 18) — the operator's report of queries reads the node's log from [storage]:
    the same requesters, purposes and flags on either backend."""
    report = _json(capsys, "review", "report", "--config", str(node), "--json", "--today", TODAY)
    assert report["total_queries"] == 3
    assert report["queries"] == [
        {"requester": "bank", "purpose": "heihe/credit-loans", "issued": 1, "refused": 0,
         "refusals": {}},
        {"requester": "bank", "purpose": "heihe/transit-discount", "issued": 0, "refused": 1,
         "refusals": {"CONSENT_WRONG_PURPOSE": 1}},
        {"requester": "shop", "purpose": "heihe/credit-loans", "issued": 0, "refused": 1,
         "refusals": {"CONSENT_WRONG_AUDIENCE": 1}},
    ]  # fmt: skip
    flags = sorted((f["requester"], f["purpose"], f["flag"]) for f in report["flagged"])
    assert flags == [
        ("bank", "heihe/transit-discount", "purpose outside the consent"),
        ("shop", "heihe/credit-loans", "requester not named in the consent"),
    ]


def test_model_rollout_status_on_the_storage(
    node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11 N12 (issue 18) — `huxin model rollout status` reads the rollout row from
    [storage]: a node without a rollout has the shipped version in force."""
    status = _json(capsys, "model", "rollout", "status", "--config", str(node), "--json",
                   "--today", TODAY)  # fmt: skip
    assert (status["scheme"], status["stage"], status["current_version"]) == (
        "heihe",
        "current_only",
        "2025.1",
    )
    assert status["candidate_version"] is None


def test_model_rollout_evaluate_on_the_storage(
    node: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    storage_url: str,
) -> None:
    """REQ: H11 N12 (issue 18) — `huxin model rollout evaluate` scores the node's population
    in [storage] (evaluate() takes the storage target) and writes the evaluated candidate
    there; `status` then shows it."""
    node.write_text(
        node.read_text("utf-8") + "\n[rights]\nrollout_population = 2000\n", encoding="utf-8"
    )
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    cand = tmp_path / "cand.toml"
    cand.write_text(text.replace('version = "2025.1"', 'version = "2026.1"', 1), "utf-8")
    evaluated = _json(capsys, "model", "rollout", "evaluate", "--candidate", str(cand),
                      "--config", str(node), "--json", "--today", TODAY)  # fmt: skip
    assert (evaluated["stage"], evaluated["candidate_version"]) == ("evaluated", "2026.1")
    status = _json(capsys, "model", "rollout", "status", "--config", str(node), "--json",
                   "--today", TODAY)  # fmt: skip
    assert (status["stage"], status["candidate_version"]) == ("evaluated", "2026.1")


def test_catalogue_show_reads_the_version_in_force(
    node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: N12 (issue 18) — `huxin catalogue show` takes the scheme in force from
    [storage] (the shipped version on a node without a rollout)."""
    cat = _json(capsys, "catalogue", "show", "--config", str(node), "--json")
    assert (cat["scheme_id"], cat["scheme_version"]) == ("heihe", "2025.1")


def test_recognition_list_reads_the_storage(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ: F6 (issue 18) — `huxin mapping list` opens [storage]: a node without
    installed tables lists the configured ones only."""
    listed = _json(capsys, "mapping", "list", "--config", str(node), "--json")
    assert listed == {"tables": [], "refused": []}


def test_mapping_grade_reads_held_catalogues_from_the_storage(
    node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: F6 (issue 18) — `huxin mapping grade --config` looks for a fetched catalogue
    of the target region in [storage] (none held: the shipped one)."""
    assert main(["mapping", "grade", "heihe", "hainan", "A", "--config", str(node)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "(hainan@2025.1 catalogue 2025.1, shipped):" in out


COMMANDS = [
    pytest.param(["review", "report", "--json"], id="query-report"),
    pytest.param(["model", "rollout", "status", "--json"], id="model-rollout-status"),
    pytest.param(["catalogue", "show", "--json"], id="catalogue-show"),
    pytest.param(["mapping", "list", "--json"], id="mapping-list"),
    pytest.param(["derived", "rollout", "hainan-credit-card", "2026.1"], id="derived-rollout"),
]


@pytest.mark.parametrize("argv", COMMANDS)
def test_unreachable_storage_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """REQ: N7 (issue 18) — a PostgreSQL URL that cannot be reached fails the command with
    STORAGE_UNAVAILABLE naming storage.url and the URL (exit 2, no traceback)."""
    config = _init(tmp_path, capsys, UNREACHABLE)
    assert main([*argv, "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"error: STORAGE_UNAVAILABLE: storage.url {UNREACHABLE}: cannot reach the database"
    ), err


def test_held_trust_lists_and_catalogues_read_the_storage(storage_url: str) -> None:
    """REQ: N17 N20 (issue 18) — what `catalogue fetch`, `mapping install --peer` and
    MyIncentives read of the node's state (the newest trust list from its hub, the
    newest peer catalogue of a scheme) comes from the storage target on either backend;
    a SQLite file that does not exist holds nothing."""
    from keys import Envelope, EnvelopeSignature
    from keys.pb.v1 import catalogue_pb2
    from node.catalogue import target_catalogue
    from node.catalogue._held import held_catalogue, persisted_trust_lists

    cat = catalogue_pb2.Catalogue(scheme_id="hainan", region="hainan")
    body = Envelope("t", cat.SerializeToString(), (EnvelopeSignature("k", b"s"),)).to_bytes()
    conn = connect(storage_url)  # migrated, as the node migrates it at start
    try:
        assert persisted_trust_lists(storage_url, "hub") == []
        assert held_catalogue(storage_url, "hainan") is None
        for version, envelope in ((1, b"old"), (2, b"new")):
            conn.execute(
                "INSERT INTO trust_lists (issuer, version, expires_at, envelope, sha256,"
                " accepted_at, source) VALUES ('hub', ?, 9, ?, ?, 0, 'file')",
                (version, envelope, b"\x00" * 32),
            )
        conn.execute(
            "INSERT INTO peer_material (region, item, version, sha256, body, fetched_at,"
            " source) VALUES ('hainan', 'catalogue', '1', ?, ?, 0, 'hainan')",
            (b"\x00" * 32, body),
        )
    finally:
        conn.close()
    assert persisted_trust_lists(storage_url, "hub") == [b"new"]
    assert persisted_trust_lists(storage_url, "other") == []
    assert held_catalogue(storage_url, "hainan") == cat
    assert target_catalogue("hainan", storage_url) == (cat, "fetched from hainan")


def test_held_reads_of_a_missing_sqlite_file_hold_nothing(tmp_path: Path) -> None:
    """REQ: N20 (issue 18) — a node that never ran (no SQLite file) holds nothing and the
    read creates no file."""
    from node.catalogue._held import held_catalogue, persisted_trust_lists

    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert persisted_trust_lists(missing, "hub") == []
    assert held_catalogue(missing, "hainan") is None
    assert not (tmp_path / "none.db").exists()


def _hainan(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str) -> Path:
    out = tmp_path / "hainan"
    assert main(["init", "region", "--region", "hainan", "--scheme", "hainan",
                 "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    config = out / "node.toml"
    url = "sqlite:///node.db" if url.startswith("sqlite:") else url
    config.write_text(config.read_text("utf-8") + f'\n[storage]\nurl = "{url}"\n', encoding="utf-8")
    connect(load_config(config).storage).close()  # the node ran once: migrated
    return config


DERIVED_ROLLOUT = ["derived", "rollout", "hainan-credit-card"]


def test_derived_rollout_reads_the_version_in_force_from_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], storage_url: str
) -> None:
    """REQ: H11 N18 (issue 18) — `huxin derived rollout` reads the derived score's version
    in force from [storage]: the shipped version is refused ALREADY_IN_FORCE, the same
    message on either backend."""
    config = _hainan(tmp_path, capsys, storage_url)
    argv = [*DERIVED_ROLLOUT, "2026.1", "--config", str(config), "--people", "1000", "--yes"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ALREADY_IN_FORCE: "), err


def test_derived_rollout_puts_a_candidate_in_force_in_the_storage(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    storage_url: str,
) -> None:
    """REQ: H11 N18 (issue 18) — `huxin derived rollout ... --candidate --yes` evaluates the
    candidate on the node's population in [storage] (evaluate_derived takes the storage
    target) and writes the version in force there."""
    config = _hainan(tmp_path, capsys, storage_url)
    text = resources.files("scoring.derived").joinpath("hainan-credit-card.toml")
    cand = tmp_path / "next.toml"
    cand.write_text(
        text.read_text("utf-8").replace('version = "2026.1"', 'version = "2026.2"'), "utf-8"
    )
    argv = [*DERIVED_ROLLOUT, "2026.2", "--config", str(config), "--people", "1000",
            "--candidate", str(cand), "--yes"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert "hainan-credit-card@2026.2 is in force" in capsys.readouterr().out
    assert main(argv) == 2  # read back from [storage]: in force
    assert "ALREADY_IN_FORCE" in capsys.readouterr().err


def test_status_reads_the_storage(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ: N7 (issue 18) — `huxin status` reads the node's state from [storage]: the same
    document on either backend (static peers, no sync, no push, no monthly run yet; not
    serving: the run file stays beside ``[node] database``)."""
    doc = _json(capsys, "status", "--config", str(node), "--json")
    assert "error" not in doc
    shown = {k: doc[k] for k in ("trust_list", "peers", "push", "process")}
    assert shown == {
        "trust_list": {"static_peers": ["hainan"]},
        "peers": [],
        "push": [{"hub": "", "cursor": 0, "outbox_seq": 0, "last_push": "-", "last_error": "",
                  "failures": 0}],
        "process": {"running": False},
    }  # fmt: skip
    assert (doc["monthly"]["runs"], doc["monthly"]["published"]) == ([], None)


def test_status_names_an_unreachable_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: N7 (issue 18) — `huxin status` of a node whose PostgreSQL cannot be reached
    still shows what it can (keys, process) and names storage.url with the reason."""
    config = _init(tmp_path, capsys, UNREACHABLE)
    doc = _json(capsys, "status", "--config", str(config), "--json")
    assert doc["error"] == "STORAGE_UNAVAILABLE"
    assert doc["error_message"].startswith(f"storage.url {UNREACHABLE}: cannot reach the database")
    assert main(["status", "--config", str(config)]) == 0
    assert f"storage: STORAGE_UNAVAILABLE: storage.url {UNREACHABLE}: " in capsys.readouterr().out
