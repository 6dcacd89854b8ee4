"""``huxin demo``: the walk-through, one stage after another.

The story, on a fresh federation (Heihe, the Heilongjiang hub, Hainan) run as
separate ``huxin serve`` processes (docs/adr/0414, 0515):

1. a synthetic Heihe population as its departments hold it: the population
   authority's residents and each department's records, as files
   (:mod:`node.demo._population_files`);
2. the federation is laid out and started (:mod:`node.demo._intake`);
3. the population authority files the residents and the departments file their
   records over mutual TLS with their own certificates, through the library
   behind ``huxin source submit`` — never by writing a database;
4. the last finished month is scored, signed and pushed to the hub;
5. a resident without any record queries their score: the base, grade A (H8);
6. that resident grants a threshold consent to a Hainan bank for a scenario of
   Heihe's incentive catalogue; the bank asks through the hub and verifies the
   attestation offline (:mod:`node.demo._story`);
7. a grade-B resident asks for the same scenario and is told they do not
   qualify; the bank learns nothing (:mod:`node.demo._residents`);
8. the log with inclusion proofs, the withdrawal, the refused next request.

Each stage takes the shared :class:`DemoContext` and writes plain words and
tables to ``ctx.out``; every printed grade goes through
:func:`scoring.grade_label`, which marks a scheme's grades as illustrative
where the region published neither tiers nor base (Hainan).

``--storage postgresql`` (issue 18) runs the same story with every node's state
in PostgreSQL: a throwaway local server (:mod:`node.demo._postgres`, ``initdb`` +
``pg_ctl`` on a unix socket, as the user ``postgres`` when run as root) with one
database per node, named in each node's ``[storage] url``.

Invariants: the demo never prints a full citizen ID number (only a masked
form); it never writes a node's database (only running nodes do, through
their RPCs and the operator's ``huxin`` commands); it stops every process it
started (the PostgreSQL server last, after the nodes), and cleans up its
temporary directory unless ``--keep DIR`` is given.

``--keep`` without DIR (or ``--serve``) keeps the federation serving after the story
— Heihe's citizen pages, its operator's console and every gRPC port — until
interrupted (Ctrl-C or SIGTERM), printing their URLs and how to sign in
(:mod:`node.demo._web`); then it stops the nodes as at the end of any run.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from node.cli._main import CliError, SubParsers
from node.synthetic._population import PopulationSpec
from scoring import Scheme, load_scheme

if TYPE_CHECKING:
    from node.demo._federation import FederationLayout
    from node.demo._testbed import FederationProcesses

__all__ = [
    "STORAGES",
    "DemoContext",
    "last_finished_month",
    "mask_id",
    "register",
    "run_demo",
    "stages",
]

PEOPLE_DEFAULT = 2_000  # `make demo`: filed over gRPC and scored in well under a minute
PEOPLE_MAX = 200_000  # a bigger city is `make bench`'s job (bench/population.py)
STORAGES = ("sqlite", "postgresql")


@dataclass
class DemoContext:
    workdir: Path
    out: TextIO
    people: int = PEOPLE_DEFAULT
    seed: int = 2025
    workers: int = 2
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    storage: str = "sqlite"  # or "postgresql": every node's state on a local server
    heihe: Scheme = field(default_factory=lambda: load_scheme("heihe"))
    spec: PopulationSpec | None = None
    resident: str | None = None  # the no-record resident's ID number (never printed)
    extra: dict[str, Any] = field(default_factory=dict)  # later stages' state
    _stage: int = 0

    @property
    def period(self) -> str:
        """The month the demo scores and publishes: the last one that is over."""
        return last_finished_month(self.today)

    @property
    def layout(self) -> FederationLayout:
        layout = self.extra["layout"]
        from node.demo._federation import FederationLayout

        assert isinstance(layout, FederationLayout)
        return layout

    def database(self, node_id: str) -> str | Path:
        """Where a node keeps its state: its PostgreSQL URL, or its SQLite file."""
        urls: dict[str, str] = self.extra.get("database_urls", {})
        return urls.get(node_id) or self.layout.nodes[node_id].directory / "node.db"

    @property
    def procs(self) -> FederationProcesses:
        procs = self.extra["procs"]
        from node.demo._testbed import FederationProcesses

        assert isinstance(procs, FederationProcesses)
        return procs

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def heading(self, text: str) -> None:
        """A numbered stage heading (numbers follow the stages actually run)."""
        self._stage += 1
        title = f"{self._stage}. {text}"
        self.say()
        self.say(title)
        self.say("=" * len(title))

    def table(self, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        cols = [header, *[tuple(str(x) for x in r) for r in rows]]
        widths = [max(len(str(c[i])) for c in cols) for i in range(len(header))]
        for n, row in enumerate(cols):
            self.say("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
            if n == 0:
                self.say("  " + "  ".join("-" * w for w in widths))


def mask_id(id_number: str) -> str:
    """Region code and the last two characters only, e.g. ``231102**********3X``."""
    return f"{id_number[:6]}{'*' * 10}{id_number[16:]}"


def last_finished_month(today: date) -> str:
    """``YYYY-MM`` of the month before ``today``'s."""
    return (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def stages() -> list[Callable[[DemoContext], None]]:
    from node.demo._finance import FINANCE_STAGES
    from node.demo._intake import INTAKE_STAGES
    from node.demo._residents import stage_below_base, stage_no_records
    from node.demo._story import FEDERATION_STAGES

    consent, request, verify, log, withdraw = FEDERATION_STAGES
    return [
        *INTAKE_STAGES,
        stage_no_records,
        consent,
        request,
        verify,
        *FINANCE_STAGES,
        stage_below_base,
        log,
        withdraw,
    ]


def run_demo(
    out: TextIO | None = None,
    *,
    workdir: Path | None = None,
    people: int = PEOPLE_DEFAULT,
    seed: int = 2025,
    workers: int = 2,
    serve: bool = False,
    storage: str = "sqlite",
) -> DemoContext:
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}")
    keep = workdir is not None
    root = workdir or Path(tempfile.mkdtemp(prefix="huxin-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(
        root, out or sys.stdout, people=people, seed=seed, workers=workers, storage=storage
    )
    started = time.perf_counter()
    try:
        ctx.say("Huxin (互信) demo — a city's residents filed, scored, attested and verified")
        try:
            if storage == "postgresql":
                _start_postgres(ctx, keep)
            for stage in stages():
                stage(ctx)
            if serve:
                serve_until_interrupted(ctx)
        finally:
            procs = ctx.extra.get("procs")
            if procs is not None:
                procs.stop_all()
            server = ctx.extra.get("postgres")
            if server is not None:  # after the nodes: they hold connections to it
                server.stop()
        ctx.say()
        ctx.say(f"Done in {time.perf_counter() - started:.0f}s.")
        if keep:
            ctx.say(f"Everything is kept in {root} for inspection.")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return ctx


def serve_until_interrupted(ctx: DemoContext) -> None:
    """Print where the pages and the console are, then wait for Ctrl-C or SIGTERM (or a
    node that stops on its own); the caller stops the nodes."""
    from node.demo._intake import HEIHE
    from node.demo._web import web_lines

    kept = ctx.workdir / "verify" / "subject-id"
    ctx.heading("The federation keeps serving (huxin demo --keep)")
    for line in web_lines(ctx.layout, HEIHE, kept):
        ctx.say(line)
    ctx.say()
    ctx.say("Serving until interrupted (Ctrl-C, or SIGTERM to this process).")
    ctx.out.flush()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    try:
        while not stop.wait(1.0):
            ended = sorted(n for n, p in ctx.procs.procs.items() if p.proc.poll() is not None)
            if ended:
                ctx.say(f"{', '.join(ended)} stopped; stopping the others.")
                break
    except KeyboardInterrupt:  # Ctrl-C: the nodes got it too and are stopping
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_postgres(ctx: DemoContext, keep: bool) -> None:
    """A throwaway PostgreSQL in the demo's folder (kept with it under ``--keep``)."""
    from node.demo._postgres import LocalPostgres

    server = LocalPostgres(ctx.workdir / "postgresql", keep=keep)
    ctx.extra["postgres"] = server
    server.start()
    ctx.say()
    ctx.say(
        f"Storage: PostgreSQL {server.version()} started for this demo (`initdb` + `pg_ctl`,"
        f" unix socket in {server.sockets}"
        + (", running as the user postgres" if server.as_root else "")
        + "); each node gets a database of its own, named in its [storage] url."
    )


def _people(text: str) -> int:
    n = int(text)
    if not 100 <= n <= PEOPLE_MAX:
        raise argparse.ArgumentTypeError(f"must be 100..{PEOPLE_MAX:,}")
    return n


def register(sub: SubParsers) -> None:
    p = sub.add_parser("demo", help="walk through Huxin on synthetic data")
    p.add_argument(
        "--people", type=_people, default=PEOPLE_DEFAULT, help=f"100..{PEOPLE_MAX:,} people"
    )
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--keep",
        nargs="?",
        const="",
        metavar="DIR",
        help="without DIR: keep the federation serving (citizen pages, console) until"
        " interrupted; with DIR: run in DIR and keep its files there",
    )
    p.add_argument(
        "--serve", action="store_true", help="keep serving until interrupted (with --keep DIR)"
    )
    p.add_argument(
        "--storage",
        choices=STORAGES,
        default="sqlite",
        help="where the nodes keep their state: SQLite files (default) or a throwaway local"
        " PostgreSQL (needs the PostgreSQL server binaries: initdb, pg_ctl)",
    )
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from node.demo._postgres import PostgresUnavailable

    workdir = Path(args.keep) if args.keep else None
    serve = args.serve or args.keep == ""
    try:
        run_demo(
            workdir=workdir,
            people=args.people,
            seed=args.seed,
            workers=args.workers,
            serve=serve,
            storage=args.storage,
        )
    except PostgresUnavailable as exc:
        raise CliError("POSTGRES_UNAVAILABLE", str(exc)) from None
    return 0
