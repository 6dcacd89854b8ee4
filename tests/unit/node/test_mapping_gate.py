"""The mapper's gate: version binding and approval (issue 16; C3, H13; docs/adr/0207).

Real tables (the shipped Heihe -> Hainan table and versions of it), real approval
records signed and opened with ``keys``; no node.  Hypothesis generates sets of
installed tables (scheme versions on both sides, approved or not, approval windows)
and checks that the mapper only ever issues with an approved table bound to the
version in force, and otherwise refuses with one of the three named reasons.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import KeyPair, open_approval, sign_approval
from keys.pb.v1 import attestation_pb2
from mapping import MappingTable, SchemeRef, published_table
from node.core._errors import NodeError
from node.demo._testbed import TESTBED_AUTHORITY, approved_set
from node.exchange._mapping import Mapper
from node.model._rollout import SchemeInForce
from node.recognition import Approved, GovernedSet, day_start, table_sha256
from node.rpc._status import map_error
from scoring import load_scheme

HEIHE = load_scheme("heihe")
HEIHE_2026 = replace(HEIHE, version="2026.1")
TODAY = date(2026, 11, 10)
NOW = datetime(2026, 11, 10, tzinfo=UTC)
KEY = KeyPair.generate()
BASE = published_table("heihe", "hainan")


def _table(source: str, target: str, version: str = "1") -> MappingTable:
    return replace(
        BASE,
        version=version,
        source=SchemeRef("heihe", source, "heihe"),
        target=SchemeRef("hainan", target, "hainan"),
    )


def _approval(t: MappingTable, start: date, end: date | None) -> Approved:
    record = attestation_pb2.MappingApproval(
        mapping_sha256=table_sha256(t), mapping_id=t.id, mapping_version=t.version,
        method=t.method.value, source_scheme_id="heihe", source_scheme_version=t.source.version,
        source_region="heihe", target_scheme_id="hainan", target_scheme_version=t.target.version,
        target_region="hainan", effective_from=day_start(start),
        expires=day_start(end) if end else 0, decision="filed", authority=TESTBED_AUTHORITY,
        issued_at=int(NOW.timestamp()), reach_eligible=1, reach_kept=1, reach_ppm=1_000_000,
    )  # fmt: skip
    env = sign_approval(record, KEY).to_bytes()
    return Approved(open_approval(env, {TESTBED_AUTHORITY: KEY.public_key}), env)


def _refusal(mapper: Mapper) -> tuple[str, str, str]:
    with pytest.raises(NodeError) as info:
        mapper.usable("hainan", TODAY)
    err = map_error(info.value)
    return err.status.name, err.reason, err.message


@pytest.mark.parametrize(
    ("case", "status", "reason", "names"),
    [
        pytest.param("none", "FAILED_PRECONDITION", "MAPPING_NOT_APPROVED", ("no approval record",), id="no-approval"),
        pytest.param("expired", "FAILED_PRECONDITION", "MAPPING_NOT_APPROVED", ("had expired",), id="expired-approval"),
        pytest.param("future", "FAILED_PRECONDITION", "MAPPING_NOT_APPROVED", ("not yet in force",), id="approval-not-yet-in-force"),
        pytest.param("other-hash", "FAILED_PRECONDITION", "MAPPING_NOT_APPROVED", ("no approval record",), id="approval-for-another-hash"),
        pytest.param("old-version", "FAILED_PRECONDITION", "SCHEME_VERSION_MISMATCH", ("heihe@2026.1", "heihe@2025.1 -> hainan@2025.1"), id="table-for-the-old-version"),
        pytest.param("no-table", "NOT_FOUND", "MAPPING_UNAVAILABLE", ("'hainan'",), id="no-table"),
    ],
)  # fmt: skip
def test_the_mapper_refuses_a_table_it_may_not_issue_with(
    case: str, status: str, reason: str, names: tuple[str, ...]
) -> None:
    """REQ: C3 H13 — issue 16: an approved table bound to the version in force is used;
    without an approval in force covering its hash (none, expired, not yet in force, for
    another table) MAPPING_NOT_APPROVED; after a rollout to heihe@2026.1, a table from
    heihe@2025.1 is SCHEME_VERSION_MISMATCH naming both; no table MAPPING_UNAVAILABLE."""
    in_force = SchemeInForce(HEIHE)
    table = _table("2025.1", "2025.1")
    approvals = {
        "none": [],
        "expired": [_approval(table, date(2025, 1, 1), date(2026, 1, 1))],
        "future": [_approval(table, date(2027, 1, 1), None)],
        "other-hash": [_approval(_table("2025.1", "2025.1", "2"), date(2025, 1, 1), None)],
        "old-version": [_approval(table, date(2025, 1, 1), None)],
        "no-table": [],
    }[case]
    tables = [] if case == "no-table" else [(table, "test")]
    mapper = Mapper(in_force, GovernedSet.of(tables, approvals))
    if case == "old-version":
        assert mapper.usable("hainan", TODAY) == table  # approved and bound: used
        in_force.switch(HEIHE_2026)
    got_status, got_reason, message = _refusal(mapper)
    assert (got_status, got_reason) == (status, reason)
    assert all(n in message for n in names), message


def test_the_trust_lists_target_versions_decide_the_target() -> None:
    """REQ: C3 H13 — issue 16: with tables into hainan@2025.1 and hainan@2026.1, both
    approved, the one into the version the trust list names is used; a trust list naming
    only hainan@2027.1 leaves none: SCHEME_VERSION_MISMATCH naming hainan@2027.1."""
    old, new = _table("2025.1", "2025.1"), _table("2025.1", "2026.1")
    governed = approved_set([old, new], KEY, NOW)
    assert Mapper(HEIHE, governed, target_versions=lambda s: frozenset({"2026.1"})).usable("hainan", TODAY) == new  # fmt: skip
    assert Mapper(HEIHE, governed, target_versions=lambda s: frozenset({"2025.1"})).usable("hainan", TODAY) == old  # fmt: skip
    mapper = Mapper(HEIHE, governed, target_versions=lambda s: frozenset({"2027.1"}))
    status, reason, message = _refusal(mapper)
    assert (status, reason) == (grpc.StatusCode.FAILED_PRECONDITION.name, "SCHEME_VERSION_MISMATCH")
    assert "hainan@2027.1" in message


REFUSALS = frozenset({"MAPPING_UNAVAILABLE", "SCHEME_VERSION_MISMATCH", "MAPPING_NOT_APPROVED"})
VERSIONS = st.sampled_from(["2025.1", "2026.1"])


@settings(max_examples=60, deadline=None)
@given(
    specs=st.lists(
        st.tuples(VERSIONS, VERSIONS, st.sampled_from(["1", "2", "3"]), st.booleans()),
        max_size=5,
    ),
    in_force=st.sampled_from([HEIHE, HEIHE_2026]),
)
def test_the_mapper_only_ever_issues_with_an_approved_table_of_the_version_in_force(
    specs: list[tuple[str, str, str, bool]], in_force: object
) -> None:
    """REQ: C3 H13 — issue 16 (property): whatever tables are installed, the mapper either
    returns an approved table from the version in force into the target, or refuses with
    MAPPING_UNAVAILABLE, SCHEME_VERSION_MISMATCH or MAPPING_NOT_APPROVED; and it returns
    one whenever an approved, bound table exists."""
    assert in_force in (HEIHE, HEIHE_2026)
    scheme = HEIHE if in_force is HEIHE else HEIHE_2026
    tables, approvals = [], []
    for source, target, version, approved in specs:
        t = _table(source, target, version)
        tables.append((t, "test"))
        if approved:
            approvals.append(_approval(t, date(2025, 1, 1), None))
    governed = GovernedSet.of(tables, approvals)
    mapper = Mapper(scheme, governed)
    good = [
        g for g in governed.tables
        if g.table.source.version == scheme.version and g.approval_on(TODAY) is not None
    ]  # fmt: skip
    if not good:
        with pytest.raises(NodeError) as info:
            mapper.usable("hainan", TODAY)
        assert info.value.code in REFUSALS
        return
    used = mapper.usable("hainan", TODAY)
    chosen = next(g for g in governed.tables if g.table == used)
    assert used.source.version == scheme.version
    assert chosen.approval_on(TODAY) is not None


def test_the_scenarios_target_version_decides_the_table() -> None:
    """REQ: C3 H13 — issue 16: with approved tables into hainan@2025.1 and hainan@2026.1
    and no trust-list versions, a request for a hainan@2025.1 scenario uses the table into
    2025.1 (the newer table into 2026.1 is never chosen and then refused
    SCHEME_VERSION_MISMATCH); with only the 2026.1 table it is SCHEME_VERSION_MISMATCH."""
    from node.disclosure import table_for_request
    from node.disclosure._scenarios import scenarios_of

    old, new = _table("2025.1", "2025.1"), _table("2025.1", "2026.1")
    scenario = next(iter(scenarios_of(load_scheme("hainan")).values()))
    assert scenario.scheme_version == "2025.1"
    mapper = Mapper(HEIHE, approved_set([old, new], KEY, NOW))
    assert mapper.usable("hainan", TODAY) == new  # newest, when no version is wanted
    assert table_for_request(mapper, scenario, "hainan", TODAY) == old
    assert mapper.map("A", "hainan", TODAY, target_version="2025.1").scheme_version == "2025.1"
    only_new = Mapper(HEIHE, approved_set([new], KEY, NOW))
    with pytest.raises(NodeError) as info:
        table_for_request(only_new, scenario, "hainan", TODAY)
    assert info.value.code == "SCHEME_VERSION_MISMATCH"
    assert "hainan@2025.1" in info.value.message


def test_the_requests_scheme_is_the_mappers_source() -> None:
    """REQ: C3 H13 — issue 16: the request reads the scheme in force once and passes it as
    the mapper's source, so a rollout between that read and the mapping cannot make the
    mapper use a table from another version than the attestation's."""
    in_force = SchemeInForce(HEIHE)
    table = _table("2025.1", "2025.1")
    mapper = Mapper(in_force, approved_set([table], KEY, NOW))
    read_once = in_force.current
    in_force.switch(HEIHE_2026)  # a rollout lands between the read and the mapping
    assert mapper.usable("hainan", TODAY, source=read_once) == table
    assert mapper.map("A", "hainan", TODAY, source=read_once).mapping_id == table.id
    with pytest.raises(NodeError) as info:
        mapper.usable("hainan", TODAY)
    assert info.value.code == "SCHEME_VERSION_MISMATCH"
