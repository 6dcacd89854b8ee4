"""``huxin demo`` tells the truth (issue 15 §5).

The demo runs once per module, in this process, against three ``huxin serve``
processes of its own (as ``make demo`` does); its text and the Heihe node's
database (read-only, after the run) are then checked.  The writer that puts a
synthetic population straight into a database (:func:`node.synthetic._population.generate`)
is watched for the whole run: the demo must never call it.

REQ: H1, N1 (every resident filed by the population authority is scored), H7
(records about people out of scope refused at intake), H8 (no record: base 600,
grade A), H12, H14, N14 (a threshold consent for an incentive scenario; a
resident below its tier is told so and nothing reaches the bank), H16 (log with
inclusion proofs), N16 (Hainan's grades marked illustrative), C2 (offline
verification).
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.demo._finance import CARD, RECOGNISED
from node.demo._intake import BANK, HEIHE
from node.demo._main import DemoContext, last_finished_month, mask_id, run_demo
from node.demo._story import SCENARIO
from node.pb.v1 import node_pb2
from node.synthetic import _population

ID_RE = re.compile(r"\d{17}[\dX]")
PEOPLE = 800
THRESHOLD = hasattr(node_pb2, "CONSENT_SCOPE_THRESHOLD")
needs_threshold = pytest.mark.skipif(
    not THRESHOLD,
    reason="threshold attestations (node_pb2.CONSENT_SCOPE_THRESHOLD) are not on the wire yet",
)
ILLUSTRATIVE = "(hainan@2025.1, illustrative: Hainan has published neither tiers nor base)"


@dataclass(frozen=True)
class Demo:
    ctx: DemoContext
    text: str
    db: Path  # the Heihe node's database, as the demo left it
    direct_writes: list[object]  # calls of the direct writer during the run

    def rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    calls: list[object] = []
    original = _population.generate

    def spy(*args: object, **kwargs: object) -> object:
        # delegates: a module first imported during the run keeps this binding
        calls.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    workdir = tmp_path_factory.mktemp("demo") / "kept"
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_population, "generate", spy)
        ctx = run_demo(buf, workdir=workdir, people=PEOPLE, workers=1)
    return Demo(ctx, buf.getvalue(), workdir / "federation" / HEIHE / "node.db", calls)


def test_the_population_is_filed_by_the_authority_over_grpc(demo: Demo) -> None:
    """issue 15 §5 (H1, N1, ADR 0508): every resident the node holds came through
    SubmitResidenceFacts with the population authority's certificate; nothing was
    generated into the database (no synthetic metadata, no outcome labels)."""
    assert demo.direct_writes == []
    pop = demo.ctx.extra["files"]
    report = demo.ctx.extra["population_report"]
    assert report.stored == pop.facts > 0 and not report.rejected
    assert demo.rows("SELECT DISTINCT submitted_by FROM population_facts") == [("heihe.hukou",)]
    assert demo.rows("SELECT count(*) FROM population_facts") == [(pop.facts,)]
    (subjects,) = demo.rows("SELECT count(*) FROM subjects")[0]
    assert subjects == pop.filed  # people exist only through the authority's facts
    assert demo.rows("SELECT count(*) FROM node_meta WHERE key LIKE 'population.%'") == [(0,)]
    tables = {r[0] for r in demo.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "population_outcomes" not in tables
    assert "4. The population authority files the residents" in demo.text
    assert f"{pop.facts:,} stored, 0 refused" in demo.text


def test_records_are_filed_by_each_department_with_out_of_scope_rows_refused(
    demo: Demo,
) -> None:
    """issue 15 §5 (H7, N4): each department files its own records with its own
    certificate; records about minors and people the registry does not hold are
    refused with their reason, and the rejects files name no ID number."""
    reports = demo.ctx.extra["record_reports"]
    stored = {f"heihe.{n}": r.stored for n, r in reports.items()}
    rows = demo.rows("SELECT submitted_by, count(*) FROM records GROUP BY 1")
    by_submitter = {str(who): n for who, n in rows}
    assert by_submitter == {k: v for k, v in stored.items() if v}
    refused = [p for r in reports.values() for p in r.rejected]
    codes = {p.code for p in refused}
    assert {"SUBJECT_MINOR", "SUBJECT_NOT_REGISTERED"} <= codes, codes
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]+", c) for c in codes), codes  # named reasons
    assert len(refused) < 0.1 * sum(r.rows for r in reports.values())
    assert "Refused rows, by reason: " in demo.text
    for name in reports:
        rejects = demo.ctx.workdir / "departments" / f"heihe.{name}" / "rejects.csv"
        with rejects.open(encoding="utf-8") as f:
            header = next(csv.reader(f))
        assert header == ["line", "field", "code", "message"]
        assert not ID_RE.search(rejects.read_text(encoding="utf-8"))
    # the departments' files held ID numbers in plain text: removed once filed
    assert not list((demo.ctx.workdir / "departments" / "files").glob("*"))


def test_the_month_is_scored_for_everyone_filed(demo: Demo) -> None:
    """issue 15 §5 (H1, H3): the last finished month covers the residents filed after
    it ended (ADR 0515); most of them, without records, at the base grade A (H8)."""
    period = last_finished_month(demo.ctx.today)
    assert demo.ctx.period == period
    grades = demo.ctx.extra["grades"]
    assert sum(grades.values()) > 0.9 * demo.ctx.extra["files"].filed
    assert max(grades, key=grades.get) == "A"
    assert f"The month {period} is scored, signed and pushed to the hub" in demo.text
    assert "`huxin push`: the hub verified" in demo.text


def test_a_resident_without_records_is_at_the_base_grade_a(demo: Demo) -> None:
    """issue 15 §5 (H8, H12): the self-query of a resident nobody filed a record about
    answers the base score 600, grade A, and the report says why."""
    result = demo.ctx.extra["no_records_result"]
    assert (result.eligible, result.score, result.grade) == (True, 600, "A")
    assert result.contributions == () and result.added == result.deducted == 0
    assert "Score 600, grade A (heihe@2025.1)" in demo.text
    assert "No records are held about this person: the score is the scheme's base score" in (
        demo.text
    )
    assert demo.ctx.resident is not None
    assert f"Citizen {mask_id(demo.ctx.resident)} has never been the subject" in demo.text


def test_the_bank_verifies_the_scenario_consent_offline(demo: Demo) -> None:
    """issue 15 §5 (H12, H14, C2): the consent names a catalogue scenario; the bank's
    request travels through the hub; `huxin verify` (offline, trust bundle, nonce,
    status list, ID number from a file) accepts the attestation for that scenario."""
    verified = demo.ctx.extra["verified"]
    assert verified is not None and verified["scenario"] == SCENARIO
    assert f"What the bank learns: {verified['learned']}." in demo.text
    assert re.search(rf"^\s+yes\s+heihe\s+{re.escape(SCENARIO)}\s", demo.text, re.M), demo.text
    procs = demo.ctx.extra["procs"]
    verifies = [c for c in procs.commands if c[0] == "verify"]
    assert len(verifies) == 4  # + the recognition and credit-card checks (issue 16)
    assert demo.ctx.resident is not None
    for argv in verifies:
        assert not any(demo.ctx.resident in a for a in argv)
        assert {"--subject-id-file", "--nonce", "--status"} <= set(argv)
        assert "--subject-id" not in argv and "--no-nonce" not in argv
        assert "--no-status-check" not in argv


@needs_threshold
def test_the_bank_learns_only_that_the_scenario_is_met(demo: Demo) -> None:
    """issue 15 §2, §5 (H12, H14): the default scope is a threshold attestation: the
    bank learns "meets the scenario", never the grade or the score."""
    verified = demo.ctx.extra["verified"]
    assert verified["disclosure"] == "threshold"
    assert verified["learned"] == (
        f"meets {SCENARIO} (A or above in heihe@2025.1); no grade, no score"
    )


@needs_threshold
def test_a_grade_b_resident_is_told_they_do_not_qualify_and_the_bank_learns_nothing(
    demo: Demo,
) -> None:
    """issue 15 §2, §5 (H14, N14): a resident at B asking for an A scenario is refused
    FAILED_PRECONDITION SCENARIO_NOT_MET at grant; no consent exists and their log
    holds no consent granted to, or attestation issued for, the bank."""
    outcome = demo.ctx.extra["below_base_outcome"]
    assert outcome == {
        "code": "FAILED_PRECONDITION",
        "reason": "SCENARIO_NOT_MET",
        "consents": 0,
        "bank_entries": 0,
    }
    assert "they do not qualify for heihe/deposit-free-rental" in demo.text


def test_the_grade_b_resident_sees_their_grade_and_why(demo: Demo) -> None:
    """issue 15 §5 (H12, N13, H14): the grade-B resident's self-query shows B with a
    counted deduction that cost the points, and the grant is refused SCENARIO_NOT_MET
    with no consent and nothing for the bank."""
    start = demo.text.index("A grade-B resident asks for the same scenario")
    section = demo.text[start : demo.text.index("Then they try to grant", start)]
    assert demo.ctx.extra.get("below_base") is not None
    assert re.search(r"Score 5\d\d, grade B \(heihe@2025\.1\)", section), section
    assert re.search(r"- [1-9]\d* deducted", section), section
    assert re.search(r"^\S+ +\S+ +-[1-9]\d* +counted ", section, re.MULTILINE), section
    outcome = demo.ctx.extra["below_base_outcome"]
    assert (outcome["code"], outcome["reason"], outcome["consents"], outcome["bank_entries"]) == (
        "FAILED_PRECONDITION",
        "SCENARIO_NOT_MET",
        0,
        0,
    )


def test_hainan_grades_are_marked_illustrative_wherever_printed(demo: Demo) -> None:
    """issue 15 §5 (N16): Hainan publishes neither tiers nor base; every Hainan grade
    the demo prints says so, and Heihe's published grades are printed plain."""
    assert f"hainan: 500 = B {ILLUSTRATIVE}" in demo.text
    printed = re.findall(r"\b[A-D]{1,3} \(hainan@[^)]*\)", demo.text)
    assert printed and all(p.endswith(ILLUSTRATIVE) for p in printed), printed
    assert "A (heihe@2025.1, illustrative" not in demo.text


def test_the_story_ends_with_the_withdrawal_and_every_process_stopped(demo: Demo) -> None:
    """REQ: H5 H12 H16 C2 — log with inclusion proofs, withdrawal refused with the home
    region's reason, the held attestation revoked; no full ID number printed."""
    ctx, text = demo.ctx, demo.text
    assert "attestation_issued" in text and " NO " not in text
    assert ctx.extra["refused"] == "CONSENT_WITHDRAWN"
    assert ctx.extra["revoked"]
    assert "heihe refused the request (relayed by heilongjiang): CONSENT_WITHDRAWN" in text
    assert ctx.spec is not None
    assert not (set(ID_RE.findall(text)) & set(ctx.spec.id_numbers()))
    assert not ID_RE.findall(text)  # nor the Hainan applicant's (issue 16)
    assert not ctx.extra["procs"].procs
    assert BANK in text


def test_a_heihe_grade_is_recognised_in_hainan_with_the_incentives_it_unlocks(
    demo: Demo,
) -> None:
    """REQ: C3 H13 N20 — issue 16: a Heihe resident at Heihe's incentive tier (A) grants the
    bank a threshold consent for a Hainan catalogue scenario; Heihe issues it with the grade
    mapped through the Heihe → Hainan table; the bank's `huxin verify` accepts it, and the
    demo prints the table, the hub's approval when the verifier reports one, and the Hainan
    incentives the recognised grade unlocks."""
    seen = demo.ctx.extra["recognition"]
    assert seen["meets"].startswith(f"meets {RECOGNISED} ")
    assert seen["mapping"].startswith("heihe-hainan-")
    assert RECOGNISED in seen["unlocks"]
    text = demo.text
    assert "A Heihe grade recognised in Hainan through the approved table" in text
    assert re.search(
        r"^\s+heihe-hainan-\S+\s+\S+\s+[0-9a-f]{16}…\s+heihe@2025.1\s+hainan@2025.1", text, re.M
    )
    assert f"unlocks in Hainan: {', '.join(seen['unlocks'])}." in text
    assert ("Approved: " in text) == bool(seen["approval"])


def test_the_bank_card_path_attests_the_derived_score_without_grade_or_score(demo: Demo) -> None:
    """REQ: N18 N19 H12 H14 — issue 16: a Hainan resident filed with one national honour
    reads their credit-card derived score (560 = 500 + 60 × 1, tier B, every point
    explained, marked illustrative), grants the bank a threshold consent for the card
    scenario, and the bank's offline check learns only that the scenario is met: the
    attestation names the derived score and its base, neither grade nor score."""
    assert demo.ctx.extra["card_derived"] == {"score": 560, "grade": "B"}
    card = demo.ctx.extra["card"]
    assert (card["scheme"], card["model"]) == ("hainan-credit-card@2026.1", "hainan@2025.1")
    assert card["learned"].startswith(f"meets {CARD} ")
    assert "(tier ≥ B in hainan-credit-card@2026.1); no grade, no score" in card["learned"]
    assert "hainan-credit-card@2026.1 grades are illustrative" in card["learned"]
    text = demo.text
    assert "honour (荣誉表彰): +60 × 1 (default weight) = +60" in text
    assert f"What the bank learns: {card['learned']}." in text
    assert re.search(
        r"^\s+yes\s+hainan\s+hainan-credit-card@2026.1\s+hainan@2025.1\s+threshold", text, re.M
    )


def test_mask_id_hides_birth_date_and_sequence() -> None:
    """REQ: H6 — the demo prints ID numbers masked only."""
    masked = mask_id("23110219900517123X")
    assert masked == "231102**********3X"
    assert "19900517" not in masked


def test_a_plain_run_prints_no_address_it_then_stops_serving(demo: Demo) -> None:
    """Issue 19: a run without ``--keep`` stops its nodes when the story
    ends, so it prints no page or console address, only how to keep them serving."""
    assert "make demo DEMO=--keep" in demo.text
    assert "https://127.0.0.1:" not in demo.text
    assert "Citizen pages" not in demo.text and "Operator console" not in demo.text
