"""``huxin demo``: the walk-through, one stage after another.

Stages 1-3: generate a synthetic Heihe population, run a monthly scoring into
stored snapshots, print the grade distribution and one citizen's explained
report.  Stages 4-11 (:mod:`node._demo_federation`, ``federation=True``, the
default of ``huxin demo``): lay out a federation (Heihe, the Heilongjiang hub,
Hainan), hand the population to the Heihe node, start the three nodes as
separate processes, sign and push the month to the hub, and walk a consent
from grant to withdrawal across regions.  Each stage takes the shared
:class:`DemoContext` and writes plain words and tables to ``ctx.out``.

Invariants: the demo never prints a full citizen ID number (only a masked
form), stops every process it started, and cleans up its temporary
directory unless ``--keep DIR`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from scoring import ContributionStatus, Scheme, ScoreResult, load_scheme, score

from ._batch import RunSummary, load_subject, run_month
from ._cli import SubParsers
from ._cli_batch import render_distribution
from ._population import PopulationSpec, generate
from ._storage import connect

__all__ = ["STAGES", "DemoContext", "register", "run_demo"]


@dataclass
class DemoContext:
    workdir: Path
    out: TextIO
    people: int = 5_000
    seed: int = 2025
    period: str = "2026-10"  # a month that is over: runs of later months are refused
    workers: int = 2
    heihe: Scheme = field(default_factory=lambda: load_scheme("heihe"))
    spec: PopulationSpec | None = None
    db: Path | None = None
    run: RunSummary | None = None
    federation: bool = False
    resident: str | None = None  # the ID number of the demo's citizen (never printed)
    extra: dict[str, Any] = field(default_factory=dict)  # later stages' state

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def heading(self, text: str) -> None:
        self.say()
        self.say(text)
        self.say("=" * len(text))


def mask_id(id_number: str) -> str:
    """Region code and the last two characters only, e.g. ``231102**********3X``."""
    return f"{id_number[:6]}{'*' * 10}{id_number[16:]}"


def stage_population(ctx: DemoContext) -> None:
    ctx.heading("1. A synthetic Heihe population")
    spec = PopulationSpec("heihe", ctx.people, ctx.seed, date(2026, 11, 30))
    ctx.spec = spec
    ctx.db = ctx.workdir / "heihe.db"
    if ctx.federation:
        from ._demo_federation import prepare_federation

        ctx.db = prepare_federation(ctx)
    stats = generate(spec, ctx.db, workers=0)
    ctx.say(
        f"Generated {stats.people:,} people with {stats.records:,} credit records"
        f" (seed {spec.seed}) in {stats.seconds:.1f}s."
    )
    ctx.say(
        "The database keys every person on HMAC-SHA256(region secret, ID number) and keeps"
        " the ID number only sealed with AES-GCM: it is never stored in plain text."
    )


def stage_scoring(ctx: DemoContext) -> None:
    assert ctx.db is not None
    ctx.heading(f"2. Monthly recomputation for {ctx.period}")
    summary = run_month(ctx.db, ctx.heihe, ctx.period, workers=ctx.workers)
    ctx.run = summary
    ctx.say(
        f"Scored {summary.subjects:,} registered people as of {summary.as_of} with"
        f" {ctx.heihe.name} ({ctx.heihe.key}) in {summary.chunks} chunk(s)"
        f" ({summary.seconds:.1f}s). {summary.eligible:,} are eligible (18+, full civil"
        f" capacity, hukou or residence permit, H1);"
        f" {summary.subjects - summary.eligible:,} are not and get no score."
    )
    ctx.say()
    ctx.out.write(render_distribution(ctx.heihe, summary.grades))
    again = run_month(ctx.db, ctx.heihe, ctx.period, workers=ctx.workers)
    ctx.say()
    ctx.say(
        f"Running the same month again recomputes nothing ({again.chunks_computed} chunks):"
        " one run per period and scheme version."
    )


def _interesting(result: ScoreResult) -> int:
    """Prefer a short report that shows many different statuses and a deduction."""
    statuses = {c.status for c in result.contributions}
    n = len(result.contributions)
    negative = any(c.nominal_points < 0 and c.points < 0 for c in result.contributions)
    return len(statuses) * 10 + 15 * negative - (100 if n > 12 else 0) + min(n, 8)


def stage_citizen(ctx: DemoContext) -> None:
    assert ctx.db is not None
    assert ctx.spec is not None
    ctx.heading("3. One citizen's explained report")
    spec = ctx.spec
    secrets = spec.secrets()
    as_of = ctx.run.as_of if ctx.run is not None else spec.as_of
    conn = connect(ctx.db, readonly=True)
    best: tuple[int, str, ScoreResult] | None = None
    try:
        for index in range(min(spec.people, 400)):
            id_number = spec.id_number(index)
            loaded = load_subject(conn, secrets.subject_key(id_number), as_of)
            if loaded is None:
                continue
            result = score(loaded[0], loaded[1], ctx.heihe, as_of)
            # the story's consent is for a scenario of tier A: only who meets it can grant
            if not result.eligible or not ctx.heihe.is_incentive_grade(result.grade or ""):
                continue
            rank = _interesting(result)
            if best is None or rank > best[0]:
                best = (rank, id_number, result)
        if best is None:
            ctx.say("No eligible citizen found in the sample.")
            return
        _rank, id_number, result = best
        ctx.resident = id_number
        key = secrets.subject_key(id_number)
        (sealed,) = conn.execute(
            "SELECT id_sealed FROM subjects WHERE subject_key = ?", (key,)
        ).fetchone()
        stored = conn.execute(
            "SELECT grade, score FROM monthly_snapshots WHERE subject_key = ? AND period = ?",
            (key, ctx.period),
        ).fetchone()
    finally:
        conn.close()
    opened = secrets.sealer().open(sealed, key).decode("ascii")
    ctx.say(
        f"Citizen {mask_id(id_number)} (the sealed ID number opens to the same person:"
        f" {'yes' if opened == id_number else 'NO'})."
    )
    if stored is not None:
        ctx.say(f"Stored snapshot for {ctx.period}: grade {stored[0]}, score {stored[1]}.")
    ctx.say()
    from ._cli_scoring import render_report

    ctx.out.write(render_report(result, ctx.heihe))
    ctx.say()
    counted = sum(1 for c in result.contributions if c.status is ContributionStatus.COUNTED)
    ctx.say(
        f"{counted} of {len(result.contributions)} records count; every other record says why"
        " not (a duplicate of the same act counts once at its highest value, expired records"
        " and masked or repaired ones do not count)."
    )


STAGES: list[Callable[[DemoContext], None]] = [stage_population, stage_scoring, stage_citizen]


def run_demo(
    out: TextIO | None = None,
    *,
    workdir: Path | None = None,
    people: int = 5_000,
    seed: int = 2025,
    workers: int = 2,
    federation: bool = False,
) -> DemoContext:
    keep = workdir is not None
    root = workdir or Path(tempfile.mkdtemp(prefix="huxin-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(
        root, out or sys.stdout, people=people, seed=seed, workers=workers, federation=federation
    )
    started = time.perf_counter()
    try:
        if federation:
            from ._demo_federation import FEDERATION_STAGES, stop_processes

            ctx.say("Huxin (互信) demo — three regions, one consent, verified offline")
            stages = [*STAGES, *FEDERATION_STAGES]
        else:
            ctx.say("Huxin (互信) demo — stage 1: scores of one region")
            stages = list(STAGES)
        try:
            for stage in stages:
                stage(ctx)
        finally:
            if federation:
                stop_processes(ctx)
        ctx.say()
        ctx.say(f"Done in {time.perf_counter() - started:.0f}s.")
        if keep:
            ctx.say(f"Everything is kept in {root} for inspection.")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return ctx


def register(sub: SubParsers) -> None:
    p = sub.add_parser("demo", help="walk through Huxin on synthetic data")
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--keep", type=Path, metavar="DIR", help="run in DIR and keep the federation there"
    )
    p.add_argument(
        "--no-federation", action="store_true", help="stages 1-3 only (one region, no processes)"
    )
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    run_demo(
        workdir=args.keep,
        people=args.people,
        seed=args.seed,
        workers=args.workers,
        federation=not args.no_federation,
    )
    return 0
