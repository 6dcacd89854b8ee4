"""CLI: ``huxin population generate``, ``huxin score run`` and ``huxin model evaluate``.

Progress goes to stderr, results to stdout (``--json`` for machine-readable
output).  Bad input (unknown scheme, bad period, missing database, a
candidate file that does not load) exits 2 with ``error: CODE: message``.
No command prints or logs a citizen ID number.

``huxin score run --config node.toml --period YYYY-MM`` is the node's monthly
run (issue 5): exactly ``huxin score publish`` (node/cli/_hub.py) — scored with
the scheme version in force, signed as Merkle batches, queued for the hub.  A
serving region node runs each finished month itself (``[schedule]``,
:mod:`node.monthly`, docs/adr/0514); the command runs a month on purpose (one the
node was down for, or before the node serves) and the node then finds it done.
``--db FILE --scheme ID`` only recomputes snapshots (benchmarks) and signs
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from node.cli._main import CliError, SubParsers, subgroup
from node.cli._progress import Progress
from node.model._evaluate import Evaluation, evaluate
from node.monthly._batch import BatchError, RunSummary, ended_period_as_of, period_as_of, run_month
from node.store import StorageError, connect
from node.synthetic._population import REGIONS, PopulationError, PopulationSpec, generate, read_spec
from scoring import (
    Scheme,
    SchemeError,
    illustrative_note,
    list_schemes,
    load_scheme,
    parse_scheme_toml,
)

__all__ = ["ended_period", "register"]


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def register(sub: SubParsers) -> None:
    population = subgroup(sub, "population", "synthetic populations for tests, demo, benchmarks")
    p = population.add_parser("generate", help="generate a seeded synthetic population")
    p.add_argument("--people", required=True, type=int)
    p.add_argument(
        "--out",
        required=True,
        type=_db_target,
        help="new SQLite file, or an empty postgresql:// URL",
    )
    p.add_argument("--scheme", default="heihe", help="place and catalogue (default heihe)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD", help="reference date")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_generate)

    score_group = subgroup(sub, "score", "score people: explain one, run a month")
    p = score_group.add_parser(
        "run",
        help="the monthly run: with --config, run + sign as Merkle batches + queue for the"
        " hub (= score publish); with --db/--scheme, plain recomputation (NOT signed)",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--config", type=Path, metavar="FILE",
        help="the node's config: score with the scheme version in force, sign, queue (H3)",
    )  # fmt: skip
    where.add_argument(
        "--db",
        type=_db_target,
        help="a database (file or postgresql:// URL) to recompute (benchmarks): does NOT sign"
        " or queue",
    )
    p.add_argument("--scheme", help="with --db: the scheme id to score with")
    p.add_argument("--period", required=True, metavar="YYYY-MM")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.add_argument("--chunk", type=int, default=5000, help="subjects per transaction")
    p.add_argument("--force", action="store_true", help="recompute a finished run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_score_run)

    model = subgroup(sub, "model", "evaluate a candidate score model (H11)")
    p = model.add_parser("evaluate", help="compare a candidate scheme file with the current one")
    p.add_argument("--current", required=True, help="shipped scheme id")
    p.add_argument("--candidate", required=True, type=Path, help="candidate scheme TOML file")
    p.add_argument("--db", required=True, type=Path)
    p.add_argument("--period", metavar="YYYY-MM", help="score as of its last day")
    p.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD", help="score as of this day")
    p.add_argument("--workers", type=int, default=_default_workers())
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_model_evaluate)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _scheme(scheme_id: str) -> Scheme:
    if scheme_id not in list_schemes():
        raise CliError("UNKNOWN_SCHEME", f"unknown scheme {scheme_id!r}; try 'huxin schemes list'")
    return load_scheme(scheme_id)


def _period(text: str) -> date:
    try:
        return period_as_of(text)
    except BatchError as exc:
        raise CliError(exc.code, str(exc)) from None


def ended_period(text: str) -> date:
    """``--period`` of a monthly run: a month that is over (UTC), checked before any
    other work."""
    try:
        return ended_period_as_of(text, datetime.now(UTC).date())
    except BatchError as exc:
        raise CliError(exc.code, f"--period: {exc}") from None


def _db_target(text: str) -> str | Path:
    """``--db``/``--out``: a postgresql:// URL as given (issue 18), else a file path."""
    return text if text.startswith(("postgresql://", "postgres://")) else Path(text)


def _existing_db(path: str | Path) -> str | Path:
    if isinstance(path, Path) and not path.is_file():
        raise CliError("DB_NOT_FOUND", f"database {str(path)!r} does not exist")
    return path


def _reraise(exc: BatchError | StorageError | PopulationError) -> CliError:
    return CliError(exc.code, str(exc))


def _generate(args: argparse.Namespace) -> int:
    if args.scheme not in list_schemes():
        raise CliError(
            "UNKNOWN_SCHEME", f"unknown scheme {args.scheme!r}; try 'huxin schemes list'"
        )
    if args.scheme not in REGIONS:
        raise CliError("UNKNOWN_SCHEME", f"no population profile for scheme {args.scheme!r}")
    try:
        spec = PopulationSpec(args.scheme, args.people, args.seed)
        if args.as_of is not None:
            spec = PopulationSpec(args.scheme, args.people, args.seed, args.as_of)
        bar = Progress(spec.people, "generate")
        stats = generate(spec, args.out, workers=args.workers, progress=lambda d, _t: bar.update(d))
        bar.close()
    except (PopulationError, StorageError) as exc:
        raise _reraise(exc) from None
    out = {**asdict(stats), "db": str(args.out), "scheme": spec.scheme_id, "seed": spec.seed}
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"generated {stats.people:,} people, {stats.records:,} records,"
            f" {stats.residences:,} residences for {spec.scheme_id} (seed {spec.seed})"
            f" in {stats.seconds:.1f}s -> {args.out}"
        )
    return 0


def _score_run(args: argparse.Namespace) -> int:
    ended_period(args.period)  # first: a month not over yet is never run
    if args.config is not None:
        from node.cli._hub import publish

        return publish(args)
    if not args.scheme:
        raise CliError("SCHEME_REQUIRED", "--db needs --scheme (or use --config)")
    scheme = _scheme(args.scheme)
    db = _existing_db(args.db)
    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(total, f"score {scheme.key} {args.period}")
        bar.update(done)

    try:
        summary = run_month(
            db,
            scheme,
            args.period,
            workers=args.workers,
            chunk_subjects=args.chunk,
            force=args.force,
            progress=progress,
        )
    except (BatchError, StorageError) as exc:
        raise _reraise(exc) from None
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps(summary_as_dict(summary)))
    else:
        sys.stdout.write(render_summary(summary, scheme))
    return 0


def summary_as_dict(summary: RunSummary) -> dict[str, Any]:
    out = asdict(summary)
    out["as_of"] = summary.as_of.isoformat()
    return out


def render_distribution(scheme: Scheme, grades: dict[str, int]) -> str:
    total = sum(grades.values()) or 1
    w = max(6, *(len(g) for g in scheme.grades))
    lines = [f"{'grade':<{w}} {'label':<6} {'range':<11} {'people':>10} {'share':>7}"]
    for tier in scheme.tiers:
        n = grades.get(tier.id, 0)
        lines.append(
            f"{tier.id:<{w}} {tier.label:<6} {f'{tier.min_score}-{tier.max_score}':<11}"
            f" {n:>10,} {n / total:>7.2%}"
        )
    if illustrative_note(scheme):  # the tiers above are ours, not the region's
        lines.append(f"grades of {scheme.key} are {illustrative_note(scheme)}")
    return "\n".join(lines) + "\n"


def render_summary(summary: RunSummary, scheme: Scheme) -> str:
    state = (
        "already complete; nothing recomputed"
        if summary.already_complete
        else f"computed {summary.chunks_computed} of {summary.chunks} chunks"
    )
    head = (
        f"run {summary.run_id}: {summary.scheme_key}, period {summary.period}"
        f" (as of {summary.as_of}): {state} in {summary.seconds:.1f}s\n"
        f"{summary.subjects:,} registered subjects, {summary.eligible:,} eligible,"
        f" {summary.subjects - summary.eligible:,} not eligible\n\n"
    )
    return head + render_distribution(scheme, summary.grades)


def _load_candidate(path: Path) -> Scheme:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(
            "CANDIDATE_NOT_FOUND", f"cannot read {str(path)!r}: {exc.strerror}"
        ) from None
    try:
        return parse_scheme_toml(text)
    except SchemeError as exc:
        raise CliError(exc.code, f"{path}: {exc}") from None


def _model_evaluate(args: argparse.Namespace) -> int:
    current = _scheme(args.current)
    candidate = _load_candidate(args.candidate)
    if args.period and args.as_of:
        raise CliError("INVALID_ARGUMENT", "give --period or --as-of, not both")
    as_of = _period(args.period) if args.period else args.as_of
    db = _existing_db(args.db)
    if as_of is None:
        as_of = _reference_date(db)
    bar = Progress(1, f"evaluate {candidate.key}")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    try:
        result = evaluate(db, current, candidate, as_of, workers=args.workers, progress=progress)
    except (BatchError, StorageError) as exc:
        raise _reraise(exc) from None
    bar.close()
    if args.json:
        print(json.dumps(evaluation_as_dict(result), ensure_ascii=False))
    else:
        sys.stdout.write(render_evaluation(result))
    return 0


def _reference_date(db: str | Path) -> date:
    """The population's reference date if it is synthetic, else today."""
    try:
        conn = connect(db, readonly=True)
    except StorageError as exc:
        raise _reraise(exc) from None
    try:
        spec = read_spec(conn)
    finally:
        conn.close()
    return spec.as_of if spec is not None else date.today()


def evaluation_as_dict(ev: Evaluation) -> dict[str, Any]:
    only_current, only_candidate = ev.eligibility_changes
    return {
        "current": ev.current.key,
        "candidate": ev.candidate.key,
        "as_of": ev.as_of.isoformat(),
        "subjects": ev.subjects,
        "compared": ev.compared,
        "eligible_only_current": only_current,
        "eligible_only_candidate": only_candidate,
        "distribution": {
            "current": ev.distribution("current"),
            "candidate": ev.distribution("candidate"),
        },
        "psi": ev.psi(),
        "tier_moves": {str(k): v for k, v in ev.moves().items()},
        "measures": measures_as_dict(ev),
    }


def measures_as_dict(ev: Evaluation) -> dict[str, Any]:
    """H11 discrimination (AUC/KS against the outcome labels) and stability over months."""
    out: dict[str, Any] = {
        "outcome_labels": ev.has_labels,
        "months": [d.isoformat() for d in ev.months],
    }
    for which in ("current", "candidate"):
        d = ev.discrimination(which)
        out[which] = {
            "auc": None if d is None else d.auc,
            "ks": None if d is None else d.ks,
            "labelled": None if d is None else d.people,
            "adverse": None if d is None else d.adverse,
            "monthly_psi": list(ev.monthly_psi(which)),
            "max_monthly_psi": ev.max_monthly_psi(which),
        }
    return out


def render_measures(ev: Evaluation) -> list[str]:
    lines = ["", "discrimination and stability (H11, N12)"]
    if not ev.has_labels:
        lines.append("AUC/KS: n/a (the database carries no outcome labels)")
    for which in ("current", "candidate"):
        d = ev.discrimination(which)
        worst = ev.max_monthly_psi(which)
        measures = "AUC n/a, KS n/a" if d is None else f"AUC {d.auc:.3f}, KS {d.ks:.3f}"
        if d is not None:
            measures += f" ({d.adverse:,} adverse of {d.people:,} labelled)"
        lines.append(f"{which:<9} {measures}")
        series = ", ".join(f"{v:.4f}" for v in ev.monthly_psi(which)) or "n/a"
        top = "n/a" if worst is None else f"{worst:.4f}"
        lines.append(f"{'':<9} month-to-month PSI: {series} (max {top})")
    if ev.months:
        lines.append(f"months: {ev.months[0]} .. {ev.months[-1]} (month ends)")
    return lines


def _psi_words(value: float | None) -> str:
    if value is None:
        return "n/a (the schemes have different grades)"
    verdict = "stable" if value < 0.1 else "moderate shift" if value < 0.25 else "significant shift"
    return f"{value:.4f} ({verdict}; <0.1 stable, 0.1-0.25 moderate, >0.25 significant)"


def render_evaluation(ev: Evaluation) -> str:
    cur = ev.distribution("current")
    cand = ev.distribution("candidate")
    total_cur = sum(cur.values()) or 1
    total_cand = sum(cand.values()) or 1
    only_current, only_candidate = ev.eligibility_changes
    grades = list(dict.fromkeys([*ev.current.grades, *ev.candidate.grades]))
    w = max(8, *(len(g) for g in grades))
    lines = [
        f"model evaluation as of {ev.as_of}: current {ev.current.key}"
        f" vs candidate {ev.candidate.key}",
        f"{ev.subjects:,} registered subjects; {ev.compared:,} eligible under both"
        f" ({only_current:,} only under current, {only_candidate:,} only under candidate)",
        "",
        "grade distribution",
        f"{'grade':<{w}} {'current':>10} {'share':>7} {'candidate':>10} {'share':>7}",
    ]
    for g in grades:
        a, b = cur.get(g, 0), cand.get(g, 0)
        lines.append(f"{g:<8} {a:>10,} {a / total_cur:>7.2%} {b:>10,} {b / total_cand:>7.2%}")
    lines += [
        "",
        f"population stability index: {_psi_words(ev.psi())}",
        "",
        "tier moves (candidate rank - current rank; + is up)",
        f"{'move':>5} {'people':>10} {'share':>7}",
    ]
    compared = ev.compared or 1
    for move, n in ev.moves().items():
        lines.append(f"{move:>+5} {n:>10,} {n / compared:>7.2%}")
    lines += render_measures(ev)
    return "\n".join(lines) + "\n"
