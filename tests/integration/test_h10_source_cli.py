"""``huxin source submit`` files organisation listings and H10 deductions from files.

REQ: H10 (issue 15 §3) — a department files the severe-dishonesty listing
(``--kind listings``) and then responsible-individual deductions whose legal-document
reference is given in the ``legal_document.*`` columns (CSV) or as one object (JSONL);
H7 — bad rows (unlisted organisation, malformed number, free-text ``legal_document``)
are written to the rejects file with line, field and reason, never an ID number, and
the good rows are stored.

One real node (mutual TLS on loopback); the CLI runs in a thread with its own event
loop, as ``huxin`` would in its own process.
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

from node.cli._main import main
from node.demo._testbed import RunningNode, Testbed, make_id_number
from scoring import uscc_check_character

pytestmark = pytest.mark.asyncio(loop_scope="module")

BOSS = make_id_number(741)
OTHER = make_id_number(742)
LISTED = "91231100MA2000001" + uscc_check_character("91231100MA2000001")
NEVER = "91231100MA2000002" + uscc_check_character("91231100MA2000002")
WRONG = NEVER[:17] + ("1" if NEVER[17] != "1" else "2")  # check character does not match
LEGAL = ["legal_document.kind", "legal_document.number", "legal_document.issuing_body",
         "legal_document.issued_on", "legal_document.organisation_code"]  # fmt: skip
COLUMNS = ["record_id", "subject_id", "source", "category", "act_id", "recognised_on", *LEGAL]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def heihe(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Testbed, RunningNode]]:
    bed = Testbed(tmp_path_factory.mktemp("h10-cli"))
    node = await bed.start_node("heihe", "heihe", sources=("heihe-court",))
    yield bed, node
    await bed.close()


def _source_toml(bed: Testbed, node: RunningNode, out: Path) -> Path:
    assert bed.ca is not None
    cert = bed.cert("heihe-court")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_bytes(bed.ca.cert_pem)
    (out / "me.pem").write_bytes(cert.cert_pem)
    (out / "me.key").write_bytes(cert.key_pem)
    toml = out / "source.toml"
    toml.write_text(
        f'[source]\nendpoint = "{node.peer_target}"\nca = "ca.pem"\ncert = "me.pem"\n'
        'key = "me.key"\ndepartment = "heihe-court"\nbatch_size = 10\n',
        encoding="utf-8",
    )
    return toml


def _count(node: RunningNode, sql: str) -> int:
    db = node.server.ctx.config.database
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def _submit(toml: Path, data: Path, rejects: Path, kind: str) -> int:
    argv = ["source", "submit", "--config", str(toml), "--file", str(data), "--kind", kind,
            "--rejects", str(rejects), "--no-progress"]  # fmt: skip
    return await asyncio.to_thread(main, argv)


def _rejects(path: Path) -> list[tuple[str, str, str]]:
    return [(r["line"], r["field"], r["code"]) for r in csv.DictReader(path.open(encoding="utf-8"))]


async def test_listings_then_deductions_from_csv_with_bad_rows_in_the_rejects_file(
    heihe: tuple[Testbed, RunningNode], tmp_path: Path
) -> None:
    """REQ: H10, H7 (issue 15 §3) — the listing file is stored; of three deduction rows the
    listed one is stored, the unlisted and malformed ones are named by line and field."""
    bed, node = heihe
    toml = _source_toml(bed, node, tmp_path / "court")
    listings = tmp_path / "listings.csv"
    with listings.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["listing_id", "organisation_code", "list", "event", "on"])
        w.writerow(["cli-l-1", LISTED, "severe_dishonesty", "listed", "2026-01-10"])
        w.writerow(["cli-l-2", WRONG, "severe_dishonesty", "listed", "2026-01-10"])
    rejects = tmp_path / "listings-rejects.csv"
    assert await _submit(toml, listings, rejects, "listings") == 1
    assert _rejects(rejects) == [("3", "organisation_code", "INVALID_ORGANISATION_CODE")]
    assert (
        _count(node, "SELECT count(*) FROM organisation_listings WHERE listing_id = 'cli-l-1'") == 1
    )
    records = tmp_path / "records.csv"
    doc = ["penalty_decision", "黑市监罚〔2026〕12号", "黑河市市场监督管理局", "2026-03-01"]
    with records.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerow(["cli-ok", BOSS, "court", "responsible_individual", "a-1", "2026-05-01",
                    *doc, LISTED])  # fmt: skip
        w.writerow(["cli-never", BOSS, "court", "responsible_individual", "a-2", "2026-05-01",
                    *doc, NEVER])  # fmt: skip
        w.writerow(["cli-number", OTHER, "court", "responsible_individual", "a-3", "2026-05-01",
                    doc[0], "12", *doc[2:], LISTED])  # fmt: skip
    rejects = tmp_path / "records-rejects.csv"
    assert await _submit(toml, records, rejects, "records") == 1
    assert _rejects(rejects) == [
        ("3", "legal_document.organisation_code", "ORGANISATION_NOT_LISTED"),
        ("4", "legal_document.number", "INVALID_DOCUMENT_NUMBER"),
    ]
    text = rejects.read_text(encoding="utf-8")
    assert BOSS not in text and OTHER not in text
    assert _count(node, "SELECT count(*) FROM records WHERE record_id LIKE 'cli-%'") == 1
    assert _count(node, "SELECT count(*) FROM records WHERE record_id = 'cli-ok'") == 1


async def test_jsonl_takes_the_reference_as_an_object_and_refuses_free_text(
    heihe: tuple[Testbed, RunningNode], tmp_path: Path
) -> None:
    """REQ: H10 (issue 15 §3) — JSONL gives ``legal_document`` as one object; a free-text
    ``legal_document`` (the old column) is refused on its line (LEGAL_DOCUMENT_UNSTRUCTURED)."""
    bed, node = heihe
    toml = _source_toml(bed, node, tmp_path / "court")
    listing = tmp_path / "listing.jsonl"
    listing.write_text(json.dumps({"listing_id": "j-l-1", "organisation_code": LISTED,
                                   "list": "severe_dishonesty", "event": "listed",
                                   "on": "2026-01-10"}) + "\n", encoding="utf-8")  # fmt: skip
    assert await _submit(toml, listing, tmp_path / "lr.csv", "listings") == 0
    base = {"subject_id": BOSS, "source": "court", "category": "responsible_individual",
            "recognised_on": "2026-05-02"}  # fmt: skip
    doc = {"kind": "judgment", "number": "（2026）黑1102民初123号", "issuing_body": "黑河市爱辉区人民法院",
           "issued_on": "2026-04-01", "organisation_code": LISTED}  # fmt: skip
    lines = [
        {**base, "record_id": "j-ok", "act_id": "j-1", "legal_document": doc},
        {**base, "record_id": "j-text", "act_id": "j-2", "legal_document": "x"},
    ]
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    rejects = tmp_path / "rejects.csv"
    assert await _submit(toml, data, rejects, "records") == 1
    assert _rejects(rejects) == [("2", "legal_document", "LEGAL_DOCUMENT_UNSTRUCTURED")]
    assert _count(node, "SELECT count(*) FROM records WHERE record_id LIKE 'j-%'") == 1
