"""Installing every kind of table, from files and from a peer (issue 16; C3, H13).

A federation laid out by ``huxin init federation`` (hub heilongjiang; Heihe, Hainan):
the regions' key sets come from the hub-signed trust list, the hub is the approving
authority (its root signs approval records).  ``huxin mapping install`` verifies each
kind with the signatures its method needs — an agreement signed by both regions'
keys, an equipercentile table built from histograms each signed by its region, an
anchored table with none — and the hub's approval; ``--from-peer hainan`` installs
what a running Hainan node serves over ListMappings (mutual TLS), with its approvals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from keys import KeyPair, decode_private_key, sign_approval
from mapping import (
    GradeHistogram,
    MappingTable,
    agreement_table,
    approval_for,
    equipercentile_table,
    load_schemes,
    published_table,
)
from node.demo._federation import FederationLayout, init_federation
from node.demo._testbed import FederationProcesses
from tests.support.processes import huxin_here

HUB, HEIHE, HAINAN = "heilongjiang", "heihe", "hainan"
HEIHE_COUNTS = {"SSS": 10, "SS": 40, "S": 100, "AAA": 300, "AA": 900, "A": 6000, "B": 1500, "C": 900, "D": 250}  # fmt: skip
HAINAN_COUNTS = {"AAA": 200, "AA": 800, "A": 2500, "B": 5000, "C": 1000, "D": 500}


@dataclass
class Fed:
    layout: FederationLayout
    files: Path

    def key(self, node: str, name: str = "signing") -> KeyPair:
        path = self.layout.nodes[node].directory / "keys" / f"{name}.key"
        return decode_private_key(path.read_bytes())

    def config(self, node: str) -> str:
        return str(self.layout.nodes[node].config)

    def approval(self, table: MappingTable) -> str:
        s = load_schemes(table.source.scheme, table.target.scheme)
        record = approval_for(
            table, s[table.source.scheme], s[table.target.scheme], authority=HUB,
            decision="approved", issued_at=int(datetime.now(UTC).timestamp()),
        )  # fmt: skip
        path = self.files / f"{table.id}-{table.method.value}.approval"
        path.write_bytes(sign_approval(record, self.key(HUB, "root")).to_bytes())
        return str(path)

    def table(self, table: MappingTable) -> str:
        path = self.files / f"{table.id}-{table.method.value}.json"
        path.write_bytes(table.to_json_bytes())
        return str(path)

    def listed(self, node: str) -> list[dict[str, object]]:
        code, out, _ = huxin_here("mapping", "list", "--config", self.config(node), "--json")
        assert code == 0
        rows: list[dict[str, object]] = json.loads(out)["tables"]
        return rows


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Fed:
    root = tmp_path_factory.mktemp("govfed")
    layout = init_federation(root, [HEIHE, HAINAN], HUB, datetime.now(UTC), push_interval=0.0)
    return Fed(layout, tmp_path_factory.mktemp("govfiles"))


def _agreement(fed: Fed, *signers: str) -> MappingTable:
    s = load_schemes(HEIHE, HAINAN)
    table = agreement_table(
        s[HEIHE], s[HAINAN], dict(published_table(HEIHE, HAINAN).grades),
        effective_from=date(2025, 1, 1), note="Heihe-Hainan recognition agreement",
    )  # fmt: skip
    for region in signers:
        table = table.signed(fed.key(region))
    return table


def _equipercentile(fed: Fed) -> MappingTable:
    s = load_schemes(HEIHE, HAINAN)
    hh = GradeHistogram.of(s[HEIHE], "2026-10", HEIHE_COUNTS).signed(fed.key(HEIHE))
    hn = GradeHistogram.of(s[HAINAN], "2026-10", HAINAN_COUNTS).signed(fed.key(HAINAN))
    keys = {r: {fed.key(r).key_id: fed.key(r).public_key} for r in (HEIHE, HAINAN)}
    return equipercentile_table(s[HEIHE], s[HAINAN], hh, hn, keys=keys)


@pytest.mark.parametrize("kind", ["agreement", "equipercentile", "anchored"])
def test_each_kind_of_table_installs_from_a_file_with_the_hubs_approval(
    fed: Fed, kind: str
) -> None:
    """REQ: C3 H13 — issue 16: an agreement signed by both regions, an equipercentile
    table from histograms signed by each region, and an anchored table (no signature
    needed) each install from a file with the hub's approval: exit 0, listed with its
    method and versions, approved by the hub, origin file."""
    table = {
        "agreement": lambda: _agreement(fed, HEIHE, HAINAN),
        "equipercentile": lambda: _equipercentile(fed),
        "anchored": lambda: published_table(HEIHE, HAINAN),
    }[kind]()
    argv = ["mapping", "install", "--config", fed.config(HEIHE), fed.table(table)]
    code, out, err = huxin_here(*argv, "--approval", fed.approval(table))
    assert (code, err) == (0, ""), err
    assert f"approved by {HUB}" in out
    rows = fed.listed(HEIHE)
    (row,) = [r for r in rows if r["sha256"] == table.content_hash and r["origin"] == "file"]
    assert (row["method"], row["source"], row["target"], row["approved"]) == (
        kind,
        "heihe@2025.1",
        "hainan@2025.1",
        True,
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [
        pytest.param("one-party", "MISSING_PARTY_SIGNATURE", id="agreement-signed-by-one-region"),
        pytest.param("stranger", "MISSING_PARTY_SIGNATURE", id="agreement-signed-by-unknown-key"),
        pytest.param("reach-floor", "INCENTIVE_REACH_TOO_LOW", id="below-the-reach-floor"),
    ],
)  # fmt: skip
def test_a_table_without_the_signatures_or_reach_it_needs_is_refused(
    fed: Fed, case: str, code: str
) -> None:
    """REQ: C3 H13 — issue 16: an agreement signed by Heihe only, or by a key no region of
    the trust list holds, is refused MISSING_PARTY_SIGNATURE; with ``[mapping] min_reach
    = "1"`` an equipercentile table keeping fewer incentive-eligible residents eligible is refused
    INCENTIVE_REACH_TOO_LOW with the figure; exit 1 and nothing installed."""
    config = fed.config(HEIHE)
    if case == "one-party":
        table = _agreement(fed, HEIHE)
    elif case == "stranger":
        table = _agreement(fed, HEIHE).signed(KeyPair.generate())
    else:
        table = _equipercentile(fed)  # Heihe A -> Hainan B: most of the eligible lose it
        text = Path(config).read_text(encoding="utf-8")
        assert "\n[mapping]\n" in text
        floor = fed.layout.nodes[HEIHE].directory / "floor.toml"  # same relative paths
        floor.write_text(text.replace("\n[mapping]\n", '\n[mapping]\nmin_reach = "1"\n'))
        config = str(floor)
    listed = fed.listed(HEIHE)
    argv = ["mapping", "install", "--config", config, fed.table(table)]
    got, _, err = huxin_here(*argv)
    assert got == 1 and err.startswith(f"error: {code}"), err
    if case == "reach-floor":
        assert "% of heihe@2025.1's incentive-eligible residents" in err
        assert "below the floor 100" in err
    assert fed.listed(HEIHE) == listed


def test_a_peers_tables_install_with_their_approvals(fed: Fed) -> None:
    """REQ: C3 H13 — issue 16: Hainan's node serves the tables it uses (its configured
    tables and an agreement and an equipercentile table installed there, each approved
    by the hub) over ListMappings; `huxin mapping install --from-peer hainan` on Heihe
    verifies each as a file (both regions' signatures, the histograms' signatures, the
    invariants) and installs it with the hub's approval: every kind listed with origin
    peer:hainan and approved."""
    kinds = {"agreement": _agreement(fed, HEIHE, HAINAN), "equipercentile": _equipercentile(fed)}
    for table in kinds.values():
        argv = ["mapping", "install", "--config", fed.config(HAINAN), fed.table(table)]
        assert huxin_here(*argv, "--approval", fed.approval(table))[0] == 0
    procs = FederationProcesses(fed.layout)
    try:
        procs.start(HAINAN)
        code, out, err = huxin_here(
            "mapping", "install", "--config", fed.config(HEIHE), "--from-peer", HAINAN
        )
    finally:
        procs.stop_all()
    assert (code, err) == (0, ""), err
    assert out.count("installed:") >= 3
    rows = [r for r in fed.listed(HEIHE) if r["origin"] == f"peer:{HAINAN}"]
    got = {r["sha256"]: (r["method"], r["approved"]) for r in rows}
    for kind, table in [*kinds.items(), ("anchored", published_table(HEIHE, HAINAN))]:
        assert got[table.content_hash] == (kind, True), kind
