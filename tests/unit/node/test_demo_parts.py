"""The demo's parts that need no running node (issue 15 §5).

REQ: H1, N1 (the population authority files adults with a residence basis),
H7 (the departments' files are owner-only and removed once filed), H8 (the
report of a resident without records), N13 (the citizen's report renders the
node's answer as the engine wrote it), H12, H14 (what the bank learns).
"""

from __future__ import annotations

import csv
import json
import stat
from datetime import date
from pathlib import Path

import pytest

from keys import Envelope
from node.cli._main import main
from node.cli._scoring import render_report
from node.demo._main import last_finished_month
from node.demo._population_files import AUTHORITY, DemoPopulation, remove_files, write_files
from node.demo._residents import result_from_proto
from node.demo._story import SCENARIO, attestation_text, field_text, needs
from node.pb.v1 import attestation_pb2
from node.population._file import FACT_COLUMNS
from node.rpc._citizen import score_result_proto
from node.synthetic._population import PopulationSpec
from scoring import CreditRecord as Record
from scoring import (
    Residence,
    ScoreResult,
    Subject,
    birth_date,
    check_character,
    load_scheme,
    score,
    validate_record,
    years_between,
)

HEIHE = load_scheme("heihe")
TODAY = date(2026, 12, 7)
AS_OF = date(2026, 11, 30)
ID = "23110219800101123" + check_character("23110219800101123")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> DemoPopulation:
    spec = PopulationSpec("heihe", 600, 7, AS_OF)
    return write_files(spec, HEIHE, tmp_path_factory.mktemp("demo-files") / "files", TODAY)


def test_the_authority_files_adults_with_a_residence_basis_only(files: DemoPopulation) -> None:
    """issue 15 §5 (H1, H7, N1): facts about minors are refused at intake, so the
    authority's file holds adults only (on the day of filing); every filed person has
    a residence basis; people without one and minors are counted, not filed."""
    pop = files
    with pop.residence.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(FACT_COLUMNS)
    people = {r["subject_id"] for r in rows}
    assert len(people) == pop.filed and len(rows) == pop.facts
    assert all(years_between(birth_date(p), TODAY) >= 18 for p in people)
    assert {r["kind"] for r in rows} <= {"move_in", "permit_issued", "capacity_lost"}
    assert pop.filed + pop.minors + pop.not_filed == pop.people == 600
    assert pop.minors > 0


def test_each_department_files_its_own_records_and_the_files_are_private(
    files: DemoPopulation, tmp_path: Path
) -> None:
    """issue 15 §5 (H7, N4): a record's source is the department filing it; the files
    (plain ID numbers, like a department's own) are owner-only in an owner-only
    directory; collection consents are recorded for the market departments' filed
    customers only."""
    pop = files
    assert stat.S_IMODE(pop.directory.stat().st_mode) == 0o700
    for name, path in pop.records.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        sources = {json.loads(line)["source"] for line in path.read_text(encoding="utf-8").split("\n") if line}  # fmt: skip
        assert sources == {name}
    assert AUTHORITY not in pop.records and "bank" not in pop.records
    with pop.residence.open(encoding="utf-8") as f:
        filed = {r["subject_id"] for r in csv.DictReader(f)}
    for name, people in pop.consents.items():
        path = pop.records[name]
        market = {
            d["subject_id"]
            for d in map(json.loads, path.read_text(encoding="utf-8").splitlines())
            if d["provenance"] == "market"
        }
        assert {who for who, _ in people} == market & filed


def test_candidates_are_filed_adults_the_engine_puts_where_the_demo_says(
    files: DemoPopulation,
) -> None:
    """issue 15 §5 (H8): no-record candidates are filed local adults without records;
    below-base candidates score B on the month's last day."""
    pop = files
    assert pop.no_records and pop.below_base
    with pop.residence.open(encoding="utf-8") as f:
        hukou = {r["subject_id"] for r in csv.DictReader(f) if r["residence_kind"] == "hukou"}
    recorded = {
        json.loads(line)["subject_id"]
        for path in pop.records.values()
        for line in path.read_text(encoding="utf-8").splitlines()
    }
    assert set(pop.no_records) <= hukou - recorded
    assert set(pop.below_base) <= recorded


def test_remove_files_leaves_no_id_number_at_rest(tmp_path: Path) -> None:
    """issue 15 §5 (H6, H7): once filed, the departments' files are gone."""
    pop = write_files(PopulationSpec("heihe", 150, 3, AS_OF), HEIHE, tmp_path / "f", TODAY)
    remove_files(pop)
    assert list((tmp_path / "f").iterdir()) == []


@pytest.mark.parametrize(
    ("today", "period"),
    [
        pytest.param(date(2027, 1, 15), "2026-12", id="january-publishes-december"),
        pytest.param(date(2026, 3, 1), "2026-02", id="first-day-of-the-month"),
        pytest.param(date(2024, 3, 31), "2024-02", id="leap-february"),
    ],
)
def test_the_demo_scores_the_last_finished_month(today: date, period: str) -> None:
    """issue 15 §5 (H3): a month that is not over is never run or published."""
    assert last_finished_month(today) == period


@pytest.mark.parametrize(
    "people",
    [
        pytest.param("99", id="below-100"),
        pytest.param("200001", id="above-200000"),
        pytest.param("many", id="not-a-number"),
    ],
)
def test_demo_people_is_bounded(people: str, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 15 §5: --people is caller-chosen and bounded (100..200,000); nothing runs."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--people", people])
    assert info.value.code == 2
    assert "--people" in capsys.readouterr().err


def _explained(records: list[Record]) -> ScoreResult:
    subject = Subject(date(1980, 1, 1), (Residence("hukou", date(2000, 1, 1)),))
    return score(subject, records, HEIHE, AS_OF)


def test_the_report_of_a_resident_without_records_says_why() -> None:
    """issue 15 §5 (H8, N13): no record at all — the base score, and the report says so."""
    result = _explained([])
    text = render_report(result_from_proto(score_result_proto(result, explain=True)), HEIHE)
    assert "Score 600, grade A (heihe@2025.1): 一般, 600-749" in text
    assert "No records are held about this person: the score is the scheme's base score, 600" in (
        text
    )


def _sample() -> list[Record]:
    raws = [
        {"category": "good_deed", "recognised_on": "2026-03-01"},
        {"category": "admin_penalty", "recognised_on": "2025-06-01", "severity": "ordinary"},
        {"category": "admin_penalty", "recognised_on": "2020-06-01", "severity": "ordinary"},
        {"category": "utility_paid", "recognised_on": "2026-01-01", "provenance": "market",
         "status": "masked"},
    ]  # fmt: skip
    base = {"subject_id": ID, "source": "court"}
    return [
        validate_record({**base, "record_id": f"r{i}", "act_id": f"a{i}", **raw}, HEIHE, AS_OF)
        for i, raw in enumerate(raws)
    ]


def test_the_citizen_services_answer_renders_as_the_engine_wrote_it() -> None:
    """issue 15 §5 (N13): the demo renders GetMyScore's answer with the one report
    renderer; converting it back loses nothing the report shows."""
    result = _explained(_sample())
    back = result_from_proto(score_result_proto(result, explain=True))
    assert render_report(back, HEIHE) == render_report(result, HEIHE)
    assert "No records are held" not in render_report(back, HEIHE)


def _signed(att: attestation_pb2.Attestation) -> bytes:
    env = Envelope("application/x", att.SerializeToString(), ())
    return attestation_pb2.SignedAttestation(envelope=env.to_proto()).SerializeToString()


def test_what_the_bank_learns_from_a_threshold_attestation() -> None:
    """issue 15 §2, §5 (H12, H14): a verified attestation without a grade says "meets
    the scenario" with the scenario's tier, and neither grade nor score."""
    doc = {
        "attestation": {"scheme": "heihe@2025.1", "grade": None, "score": None,
                        "purpose": SCENARIO, "scenario": SCENARIO, "disclosure": "threshold",
                        "mapped": None},
    }  # fmt: skip
    att = attestation_pb2.Attestation(scheme_id="heihe", scheme_version="2025.1")
    assert attestation_text(doc, _signed(att)) == (
        SCENARIO, "threshold",
        f"meets {SCENARIO} (A or above in heihe@2025.1); no grade, no score",
    )  # fmt: skip


def test_what_the_bank_learns_from_a_grade_attestation_marks_hainan() -> None:
    """issue 15 §5 (N16): a grade mapped to Hainan's scheme is printed as illustrative."""
    doc = {
        "attestation": {"scheme": "heihe@2025.1", "grade": "A", "score": None,
                        "purpose": SCENARIO,
                        "mapped": {"grade": "B", "scheme": "hainan@2025.1", "method": "anchored"}},
    }  # fmt: skip
    att = attestation_pb2.Attestation(scheme_id="heihe", scheme_version="2025.1", grade="A")
    scenario, kind, learned = attestation_text(doc, _signed(att))
    assert (scenario, kind) == (SCENARIO, "grade")
    assert learned == (
        "A (heihe@2025.1), mapped to B (hainan@2025.1, illustrative: Hainan has published"
        " neither tiers nor base) (anchored); score not disclosed"
    )


@pytest.mark.parametrize(
    ("scenario", "text"),
    [
        pytest.param(SCENARIO, " (A or above in heihe@2025.1)", id="heihe-catalogue"),
        pytest.param("heihe/no-such-scenario", "", id="not-in-the-catalogue"),
        pytest.param("atlantis/rentals", "", id="scheme-not-shipped"),
        pytest.param("free text", "", id="not-a-scenario-reference"),
    ],
)
def test_a_scenarios_tier_comes_from_the_shipped_catalogue(scenario: str, text: str) -> None:
    """issue 15 §5 (H14): the tier printed with a scenario is the catalogue's own."""
    assert needs(scenario) == text


def test_field_text_reads_fields_the_wire_may_not_have_yet() -> None:
    """issue 15 §5: scenario and disclosure are read where the wire carries them."""
    att = attestation_pb2.Attestation(purpose=SCENARIO)
    assert field_text(att, "purpose") == SCENARIO
    assert field_text(att, "no_such_field") == ""
