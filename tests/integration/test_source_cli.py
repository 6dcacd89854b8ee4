"""``huxin source submit``: a department files a CSV/JSONL file with its own certificate.

REQ: H1, N1 — the population authority loads residents from a file; H7 — a
bad row is refused with a named reason, written to the rejects file (line,
field, code; never the ID number), and its neighbours are stored; running
the same file again stores nothing twice.

Runs one real node (mutual TLS on loopback); the CLI runs in a thread with
its own event loop, as ``huxin`` would in its own process.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from node.demo._testbed import RunningNode, Testbed, make_id_number
from tests.support.processes import huxin_here

pytestmark = pytest.mark.asyncio(loop_scope="module")

PEOPLE = [make_id_number(600 + i) for i in range(5)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def heihe(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Testbed, RunningNode]]:
    bed = Testbed(tmp_path_factory.mktemp("source-cli"))
    node = await bed.start_node(
        "heihe",
        "heihe",
        sources=("heihe-court",),
        population=("heihe.hukou",),
        require_registry=True,
    )
    yield bed, node
    await bed.close()


def _source_toml(bed: Testbed, node: RunningNode, identity: str, out: Path, batch: int) -> Path:
    assert bed.ca is not None
    cert = bed.cert(identity)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_bytes(bed.ca.cert_pem)
    (out / "me.pem").write_bytes(cert.cert_pem)
    (out / "me.key").write_bytes(cert.key_pem)
    toml = out / "source.toml"
    toml.write_text(
        "[source]\n"
        f'endpoint = "{node.peer_target}"\n'
        'ca = "ca.pem"\ncert = "me.pem"\nkey = "me.key"\n'
        f'department = "{identity}"\n'
        f"batch_size = {batch}\n",
        encoding="utf-8",
    )
    return toml


def _count(node: RunningNode, sql: str) -> int:
    db = node.server.ctx.config.database
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_csv_with_a_bad_row_writes_the_rejects_file_and_stores_the_rest(
    heihe: tuple[Testbed, RunningNode], tmp_path: Path
) -> None:
    """REQ: H1, H7, N1 — one bad row (unknown kind) is named by line; four residents stored."""
    bed, node = heihe
    toml = _source_toml(bed, node, "heihe.hukou", tmp_path / "dept", batch=3)
    data = tmp_path / "residents.csv"
    with data.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "kind", "residence_kind", "on"])
        for i, idn in enumerate(PEOPLE):
            w.writerow([idn, "emigrate" if i == 1 else "move_in", "hukou", "2001-05-01"])
    rejects = tmp_path / "rejects.csv"
    before = _count(node, "SELECT count(*) FROM subjects")
    code = (
        await asyncio.to_thread(
            huxin_here,
            "source",
            "submit",
            "--config",
            str(toml),
            "--file",
            str(data),
            "--kind",
            "residence",
            "--rejects",
            str(rejects),
            "--no-progress",
        )
    ).code
    assert code == 1  # some rows were refused
    rows = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [(r["line"], r["field"], r["code"]) for r in rows] == [
        ("3", "kind", "UNKNOWN_FACT_KIND")
    ]
    text = rejects.read_text(encoding="utf-8")
    assert all(idn not in text for idn in PEOPLE)  # never an ID number
    assert _count(node, "SELECT count(*) FROM subjects") == before + 4
    again = (
        await asyncio.to_thread(
            huxin_here,
            "source",
            "submit",
            "--config",
            str(toml),
            "--file",
            str(data),
            "--kind",
            "residence",
            "--rejects",
            str(rejects),
            "--no-progress",
        )
    ).code
    assert again == 1
    assert _count(node, "SELECT count(*) FROM population_facts") == 4  # replayed, not doubled


async def test_jsonl_records_are_filed_by_a_department(
    heihe: tuple[Testbed, RunningNode], tmp_path: Path
) -> None:
    """REQ: H7 — records in JSONL about registered residents are stored; exit 0, empty report."""
    bed, node = heihe
    toml = _source_toml(bed, node, "heihe-court", tmp_path / "court", batch=100)
    data = tmp_path / "records.jsonl"
    lines = [
        {
            "record_id": f"cli-{i}",
            "subject_id": PEOPLE[0],
            "source": "court",
            "category": "honour",
            "act_id": f"act-cli-{i}",
            "recognised_on": "2025-06-01",
            "level": "city",
        }
        for i in range(2)
    ]
    data.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    code = (
        await asyncio.to_thread(
            huxin_here,
            "source",
            "submit",
            "--config",
            str(toml),
            "--file",
            str(data),
            "--rejects",
            str(rejects),
            "--no-progress",
        )
    ).code
    assert code == 0
    assert list(csv.DictReader(rejects.open(encoding="utf-8"))) == []
    assert _count(node, "SELECT count(*) FROM records WHERE record_id LIKE 'cli-%'") == 2


async def test_progress_bar_shows_share_and_rows_per_second_without_id_numbers(
    heihe: tuple[Testbed, RunningNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H1, N1 (issue 15 §1: "with a progress bar in the CLI") — filing a file draws
    the bar on stderr (not stdout): the share done up to 100%, the row count, rows/s;
    no ID number of the file is shown."""
    bed, node = heihe
    toml = _source_toml(bed, node, "heihe.hukou", tmp_path / "dept", batch=2)
    people = [make_id_number(700 + i) for i in range(6)]
    data = tmp_path / "residents.csv"
    with data.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "kind", "residence_kind", "on"])
        w.writerows([idn, "move_in", "hukou", "2001-05-01"] for idn in people)
    code, stdout, stderr = await asyncio.to_thread(
        huxin_here,
        "source",
        "submit",
        "--config",
        str(toml),
        "--file",
        str(data),
        "--kind",
        "residence",
        "--rejects",
        str(tmp_path / "rejects.csv"),
    )
    assert code == 0
    lines = stderr.splitlines()
    assert lines, "no progress bar on stderr"
    assert all(line.startswith("heihe.hukou residence [") for line in lines)
    assert " 100.0% 6/6 " in lines[-1]
    assert all(" rows/s " in line for line in lines)
    assert "rows/s" not in stdout and "[" not in stdout  # stdout has the summary only
    assert all(idn not in stderr + stdout for idn in people)
