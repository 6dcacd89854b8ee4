"""``huxin demo``: the population and its records reach the Heihe node the way a city's do.

Stages: the synthetic population is written as the departments' files; the
federation is laid out with a population authority (``heihe.hukou``) and one
client certificate per record department, and started as three processes;
the authority files the residents (``SubmitResidenceFacts``) and the
departments file their records (``SubmitRecords``) over mutual TLS, each with
its own certificate, through :func:`node.cli._population.submit_file` — the
library behind ``huxin source submit``; the market departments record their
customers' written collection consents first (H7, N4); then the operator's
``huxin score publish`` scores and signs the last finished month and ``huxin
push`` sends it to the hub.

Invariants: the demo writes no node's database itself — the nodes write what
their RPCs receive, and the operator's ``huxin`` commands (run as child
processes) do what they do for an operator; the hub's database is read,
read-only, to show what it stored; each department's file is removed
once filed (it holds ID numbers in plain text); every RPC has a deadline; the
rejects reports (line, field, reason: never an ID number) are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpc import aio

from node.cli._population import SubmitReport, load_source_config, submit_file, write_rejects
from node.demo._federation import init_federation
from node.demo._population_files import (
    AUTHORITY,
    STATED_USE,
    DemoPopulation,
    remove_files,
    write_files,
)
from node.demo._testbed import FederationProcesses
from node.demo._web import OPERATOR, allow_operator
from node.monthly._batch import period_as_of
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import peer_channel, reason_of
from node.store import _hub as hub_store
from node.store import connect
from node.synthetic._population import PopulationSpec
from scoring import grade_label, load_scheme

if TYPE_CHECKING:
    from node.demo._main import DemoContext

__all__ = ["BANK", "DEADLINE", "HAINAN", "HEIHE", "HUB", "INTAKE_STAGES", "source_config"]

HUB, HEIHE, HAINAN, BANK = "heilongjiang", "heihe", "hainan", "hainan.bank"
DEADLINE = 15.0
CONSENTS_IN_FLIGHT = 16


def _files(ctx: DemoContext) -> DemoPopulation:
    pop = ctx.extra["files"]
    assert isinstance(pop, DemoPopulation)
    return pop


def stage_population(ctx: DemoContext) -> None:
    ctx.heading("A synthetic Heihe population, as its departments hold it")
    # dated by the last day of the month the demo scores, so every record can count in it
    ctx.spec = PopulationSpec("heihe", ctx.people, ctx.seed, period_as_of(ctx.period))
    pop = write_files(ctx.spec, ctx.heihe, ctx.workdir / "departments" / "files", ctx.today)
    ctx.extra["files"] = pop
    ctx.say(
        f"{pop.people:,} synthetic people (seed {ctx.seed}) as of {ctx.spec.as_of}: the"
        f" population authority holds {pop.filed:,} adult residents ({pop.facts:,} residence"
        f" facts: hukou, residence permits, loss of civil capacity); {pop.minors:,} minors it"
        f" files when they come of age, and {pop.not_filed:,} people without a residence"
        " here (visitors, people who deregistered) it does not hold at all."
    )
    ctx.say(
        f"{len(pop.records)} departments hold {pop.record_rows:,} credit records about them, each"
        " in its own file (docs/source-files.md)."
    )


def _shown(ctx: DemoContext, node_id: str) -> str:
    """The node's database as the table shows it: its file, or its PostgreSQL database."""
    if ctx.storage == "postgresql":
        return f"PostgreSQL database {node_id.replace('-', '_')}"
    return f"{node_id}/node.db"


def _database_for(ctx: DemoContext) -> Callable[[str], str]:
    """A node id -> a new database of its own on the demo's PostgreSQL server."""
    server = ctx.extra["postgres"]
    urls: dict[str, str] = ctx.extra.setdefault("database_urls", {})

    def database(node_id: str) -> str:
        urls[node_id] = server.create_database(node_id.replace("-", "_"))
        return urls[node_id]

    return database


def stage_layout(ctx: DemoContext) -> None:
    pop = _files(ctx)
    ctx.heading("A federation on one machine")
    departments = sorted(pop.records)
    layout = init_federation(
        ctx.workdir / "federation",
        [HEIHE, HAINAN],
        HUB,
        datetime.now(UTC),
        clients=[BANK, OPERATOR],
        sources=departments,
        population=[AUTHORITY],
        require_registry=True,
        route="hub",
        sync_interval=2.0,
        push_interval=0.0,
        web=[HEIHE],
        storage=_database_for(ctx) if ctx.storage == "postgresql" else None,
    )
    ctx.extra["layout"] = layout
    allow_operator(layout, HEIHE)
    _own_month(layout.nodes[HEIHE].config)
    ctx.say(
        "`huxin init federation --regions heihe,hainan --hub heilongjiang --clients hainan.bank"
        f" --population {AUTHORITY} --sources {','.join(departments[:2])},… --require-registry`"
        " wrote one CA, a directory per node (config, keys, certificate) and the hub's signed"
        " trust list, which names the regions, their root keys, endpoints and TLS fingerprints:"
    )
    ctx.say()
    summary = json.loads(layout.summary.read_text(encoding="utf-8"))
    fp = {n["id"]: n["tls_sha256"][:16] for n in summary["nodes"]}
    ctx.table(
        ("node", "role", "hub", "scheme", "peer port", "citizen port", "TLS sha256"),
        [
            (n.id, n.role, n.hub, n.scheme if n.role == "region" else "-", n.peer_port,
             n.citizen_port, fp[n.id] + "…")
            for n in layout.nodes.values()
        ],
    )  # fmt: skip
    ctx.say()
    ctx.say("A clean record (no record at all) is worth each scheme's base score:")
    for n in layout.nodes.values():
        if n.role == "region":
            scheme = load_scheme(n.scheme)
            ctx.say(f"  {n.id}: {scheme.base_score} = {grade_label(scheme.base_grade, scheme)}")
    ctx.say()
    ctx.say(
        f"Client certificates: '{BANK}' (an integrator of Hainan), '{HEIHE}.{AUTHORITY}' (Heihe's"
        f" population authority) and one per Heihe department ('{HEIHE}.court', …). Heihe"
        " refuses records about people its population registry does not hold (H7)."
    )


def _own_month(config: Path) -> None:
    """Where nodes run their month themselves (``[schedule]``, docs/adr/0514), have
    Heihe's fall due late in the month: the demo publishes the last finished month
    itself, once the population it scores has been filed (ADR 0515)."""
    from node.core import _config

    if hasattr(_config, "ScheduleConfig"):
        with config.open("a", encoding="utf-8") as f:
            f.write("\n[schedule]\nmonthly_day = 28\nmonthly_hour = 23\n")


def stage_start(ctx: DemoContext) -> None:
    layout = ctx.layout
    procs = FederationProcesses(layout)
    ctx.extra["procs"] = procs
    ctx.heading("Three nodes, three processes")
    started = time.perf_counter()
    for node in (HUB, HEIHE, HAINAN):
        procs.start(node, wait=False)
    for node in (HUB, HEIHE, HAINAN):
        procs.wait_ready(node)
    ctx.say(
        f"Started in {time.perf_counter() - started:.1f}s (`huxin serve --config DIR/node.toml`):"
    )
    ctx.say()
    ctx.table(
        ("node", "pid", "database", "listening (mutual TLS)"),
        [
            (n, procs.procs[n].proc.pid, _shown(ctx, n), layout.nodes[n].peer)
            for n in (HUB, HEIHE, HAINAN)
        ],
    )
    ctx.say()
    # the addresses are printed only by a run that keeps serving (serve_until_interrupted):
    # a plain run stops these nodes when the story ends, so its links would lead nowhere
    ctx.say(
        "Heihe also serves its citizens' pages and its operator's console over HTTPS while"
        " the story runs; to use them, run `make demo DEMO=--keep` (`huxin demo --keep`):"
        " it keeps the federation serving after the story and prints where and how to sign in."
    )


def source_config(ctx: DemoContext, identity: str) -> Path:
    """The department's ``source.toml`` (docs/source-files.md), written once."""
    layout = ctx.layout
    path = ctx.workdir / "departments" / identity / "source.toml"
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = layout.clients[identity]
    path.write_text(
        "[source]\n"
        f'endpoint = "{layout.nodes[HEIHE].peer}"\n'
        f'ca = "{(layout.root / "ca" / "ca.pem").resolve()}"\n'
        f'cert = "{cert.resolve()}"\n'
        f'key = "{key.resolve()}"\n'
        f'department = "{identity}"\n',
        encoding="utf-8",
    )
    return path


async def _submit(ctx: DemoContext, identity: str, path: Path, kind: str) -> SubmitReport:
    config = load_source_config(source_config(ctx, identity))
    report = await submit_file(config, path, kind, progress=False)
    write_rejects(source_config(ctx, identity).parent / "rejects.csv", report.rejected)
    return report


def _refusals(reports: list[SubmitReport]) -> str:
    counts = Counter(p.code for r in reports for p in r.rejected)
    return ", ".join(f"{code} {n:,}" for code, n in counts.most_common()) or "none"


def stage_file_population(ctx: DemoContext) -> None:
    pop = _files(ctx)
    identity = f"{HEIHE}.{AUTHORITY}"
    ctx.heading("The population authority files the residents (H1, N1)")
    config = source_config(ctx, identity)
    ctx.say(
        f"$ huxin source submit --config {config.relative_to(ctx.workdir)} --file residents.csv"
        " --kind residence --rejects rejects.csv"
    )
    started = time.perf_counter()
    report = asyncio.run(_submit(ctx, identity, pop.residence, "residence"))
    ctx.extra["population_report"] = report
    ctx.say(
        f"{report.rows:,} residence facts about {pop.filed:,} residents in {report.batches}"
        f" batch(es) over mutual TLS with the authority's certificate:"
        f" {report.stored:,} stored, {len({p.line for p in report.rejected}):,} refused"
        f" ({_refusals([report])}) in {time.perf_counter() - started:.1f}s."
    )
    ctx.say(
        "Every resident now exists for the node, records or not: the node keys them on"
        " HMAC-SHA256(region secret, ID number) and keeps the ID number only sealed with"
        " AES-GCM, never in plain text."
    )


async def _consents(ctx: DemoContext, pop: DemoPopulation) -> Counter[str]:
    """Each market department records its customers' written collection consents."""
    outcome: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONSENTS_IN_FLIGHT)
    channels = []
    try:
        calls = []
        for name, people in sorted(pop.consents.items()):
            config = load_source_config(source_config(ctx, f"{HEIHE}.{name}"))
            channel = peer_channel(
                config.endpoint, config.ca.read_bytes(), config.cert.read_bytes(),
                config.key.read_bytes(),
            )  # fmt: skip
            channels.append(channel)
            stub = node_pb2_grpc.SourceServiceStub(channel)
            for id_number, signed_on in people:
                calls.append(_consent(stub, name, id_number, signed_on, gate, outcome))
        await asyncio.gather(*calls)
    finally:
        for channel in channels:
            await channel.close(None)
    return outcome


async def _consent(  # noqa: PLR0917 - one call's inputs
    stub: Any,  # a SourceServiceStub on an aio channel
    collector: str,
    id_number: str,
    signed_on: str,
    gate: asyncio.Semaphore,
    outcome: Counter[str],
) -> None:
    document = hashlib.sha256(f"consent form {collector} {signed_on}".encode()).digest()
    async with gate:
        try:
            await stub.RecordCollectionConsent(
                node_pb2.CollectionConsent(
                    subject_id=id_number, collector=collector, stated_use=STATED_USE,
                    adverse_consequences_acknowledged=True, document_sha256=document,
                    signed_on=signed_on,
                ),
                timeout=DEADLINE,
            )  # fmt: skip
            outcome["recorded"] += 1
        except aio.AioRpcError as err:
            outcome[reason_of(err) or err.code().name] += 1


async def _file_records(
    ctx: DemoContext, pop: DemoPopulation
) -> tuple[Counter[str], dict[str, SubmitReport]]:
    consents = await _consents(ctx, pop)
    names = sorted(pop.records)
    reports = await asyncio.gather(
        *(_submit(ctx, f"{HEIHE}.{n}", pop.records[n], "records") for n in names)
    )
    return consents, dict(zip(names, reports, strict=True))


def stage_file_records(ctx: DemoContext) -> None:
    pop = _files(ctx)
    ctx.heading("The departments file their records, each with its own certificate (H7)")
    started = time.perf_counter()
    consents, reports = asyncio.run(_file_records(ctx, pop))
    remove_files(pop)
    ctx.extra["record_reports"] = reports
    market = ", ".join(sorted(pop.consents))
    ctx.say(
        f"The departments holding market information ({market}) first record each customer's"
        f" written collection consent (RecordCollectionConsent, H7, N4): {consents['recorded']:,}"
        " recorded"
        + "".join(f", {n:,} refused {c}" for c, n in consents.items() if c != "recorded")
        + "."
    )
    ctx.say(
        "$ huxin source submit --config departments/heihe.court/source.toml"
        " --file records-court.jsonl --rejects rejects.csv   # and so on, one per department"
    )
    ctx.say()
    ctx.table(
        ("department", "rows", "stored", "refused", "batches"),
        [
            (f"{HEIHE}.{n}", f"{r.rows:,}", f"{r.stored:,}", f"{len(r.rejected):,}", r.batches)
            for n, r in reports.items()
        ],
    )
    ctx.say()
    ctx.say(
        f"Filed in {time.perf_counter() - started:.1f}s. Refused rows, by reason:"
        f" {_refusals(list(reports.values()))}. The node refuses records about minors and"
        " about people its registry does not hold instead of keeping them for later (minimal"
        " and necessary collection, H7); each department's rejects.csv names the line, the"
        " field and the reason, never the ID number. The files are removed once filed."
    )


def stage_month(ctx: DemoContext) -> None:
    procs, heihe = ctx.procs, ctx.layout.nodes[HEIHE]
    ctx.heading(f"The month {ctx.period} is scored, signed and pushed to the hub (H3, H13)")
    pub = json.loads(
        procs.huxin(
            "score", "publish", "--config", str(heihe.config), "--period", ctx.period,
            "--workers", str(ctx.workers), "--json",
        ).stdout
    )  # fmt: skip
    ctx.say(
        f"`huxin score publish --period {ctx.period}`: {pub['subjects']:,} residents scored as"
        f" of the month's last day, {pub['eligible']:,} eligible (18+, full civil capacity, hukou"
        f" or residence permit, H1), records or not; {pub['leaves']:,} grade attestations in"
        f" {pub['batches']} signed Merkle batch(es), each leaf keyed by the province pseudonym."
    )
    run = json.loads(
        procs.huxin(
            "score", "run", "--db", str(ctx.database(HEIHE)), "--scheme", HEIHE,
            "--period", ctx.period, "--json",
        ).stdout
    )  # fmt: skip
    ctx.extra["grades"] = run["grades"]
    ctx.say()
    from node.cli._batch import render_distribution

    ctx.out.write(render_distribution(ctx.heihe, run["grades"]))
    ctx.say()
    ctx.say(
        f"Running the same month again recomputes nothing ({run['chunks_computed']} chunks):"
        " one run per period and scheme version."
    )
    pushed = procs.huxin("push", "--config", str(heihe.config), "--json", check=False)
    if pushed.returncode != 0:
        ctx.say(f"Push failed: {pushed.stderr.strip()[:200]}")
        return
    doc = json.loads(pushed.stdout)
    ctx.say(
        "`huxin push`: the hub verified and stored every batch and answered with signed"
        f" receipts (cursor now {doc.get('cursor', '?')})."
    )
    ctx.say()
    conn = connect(ctx.database(HUB), readonly=True)
    try:
        rows = hub_store.event_table(conn)
    finally:
        conn.close()
    ctx.table(("at the hub: region", "seq", "event", "attestations"), [tuple(r) for r in rows])


INTAKE_STAGES: list[Callable[[DemoContext], None]] = [
    stage_population,
    stage_layout,
    stage_start,
    stage_file_population,
    stage_file_records,
    stage_month,
]
