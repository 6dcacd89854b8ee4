"""CLI: ``huxin review report`` (N23, H16) and ``huxin model rollout …`` (H11, N12).

Both read the node's database named by ``--config``.  ``review report`` opens
it read only and may run next to a serving node.  ``model rollout`` writes
only the ``rollouts`` table (never the transparency log, whose in-memory tree
belongs to the serving process); a serving node puts an activated version
in force at its rights scheduler's first step on or after the effective date
(no restart; docs/adr/0507).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from node.cli._main import CliError, SubParsers, subgroup
from node.cli._storage import open_storage
from node.core._config import ConfigError, NodeConfig, load_config
from node.exchange._review import review
from node.model._evaluate import evaluate, on_synthetic
from node.model._rollout import (
    active_scheme,
    current_toml_of,
    dump_rollout,
    read_rollout,
    write_rollout,
)
from node.recognition import TableRef, node_tables, uncovered
from node.store import _rollouts as rollouts
from node.store import immediate
from scoring import (
    THRESHOLD_CODE,
    Evaluation,
    Rollout,
    RolloutError,
    Scheme,
    SchemeError,
    load_scheme,
    parse_scheme_toml,
)

__all__ = ["register"]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(sub: SubParsers) -> None:
    group = subgroup(sub, "review", "review third-party queries and sources (N23, N7)")
    p = group.add_parser("report", help="queries by requester/purpose, flags, late sources")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--today", type=_date, help="list objection steps overdue on this day")
    p.set_defaults(func=_report)

    model = subgroup(sub, "model", "evaluate a candidate score model (H11)")
    rollout = model.add_parser("rollout", help="evaluate → trial → active, on a node (H11, N12)")
    steps = rollout.add_subparsers(dest="rollout_command", required=True, metavar="STEP")
    for name, text in (
        ("status", "show the stage and the version in force"),
        ("evaluate", "evaluate a candidate scheme file against the node's population"),
        ("trial", "start the trial (shadow scoring)"),
        ("shadow", "shadow-score the population with both versions; report differences"),
        ("activate", "activate the candidate from an effective date"),
    ):
        s = steps.add_parser(name, help=text)
        s.add_argument("--config", required=True, type=Path)
        s.add_argument("--today", type=_date, help="the operator's date (default: today, UTC)")
        s.add_argument("--json", action="store_true")
        if name == "evaluate":
            s.add_argument("--candidate", required=True, type=Path)
        if name == "trial":
            s.add_argument("--accept-shift", action="store_true")
        if name == "activate":
            s.add_argument("--effective", required=True, type=_date)
        s.set_defaults(func=_rollout, step=name)


def _config(path: Path) -> NodeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _report(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    conn = open_storage(cfg, readonly=True)
    try:
        today: date = args.today or datetime.now(UTC).date()
        report = review(conn, today.isoformat())
    finally:
        conn.close()
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        sys.stdout.write(report.render())
    return 0


def _shadow(cfg: NodeConfig, current: Scheme, candidate: Scheme, today: date) -> dict[str, Any]:
    ev = evaluate(cfg.storage, current, candidate, today, workers=1)
    moves = ev.moves()
    return {
        "as_of": today.isoformat(),
        "current": current.key,
        "candidate": candidate.key,
        "compared": ev.compared,
        "psi": ev.psi(),
        "moved_up": sum(n for d, n in moves.items() if d > 0),
        "moved_down": sum(n for d, n in moves.items() if d < 0),
        "unchanged": moves.get(0, 0),
        "current_distribution": ev.distribution("current"),
        "candidate_distribution": ev.distribution("candidate"),
    }


def _measures(cfg: NodeConfig, current: Scheme, candidate: Scheme, today: date) -> dict[str, Any]:
    """H11 discrimination and stability of both versions on a synthetic population
    of ``[rights] rollout_population`` people (the node's own has no outcome labels)."""
    ev = on_synthetic(current, candidate, cfg.rights.rollout_population, today)
    out: dict[str, Any] = {"people": cfg.rights.rollout_population, "population": "synthetic"}
    for which in ("current", "candidate"):
        d = None if ev is None else ev.discrimination(which)
        out[which] = {
            "auc": None if d is None else d.auc,
            "ks": None if d is None else d.ks,
            "max_monthly_psi": None if ev is None else ev.max_monthly_psi(which),
        }
    return out


def _with_thresholds(rollout: Rollout, cfg: NodeConfig) -> Rollout:
    """The configured H11 thresholds apply at activation (config is the authority)."""
    r = cfg.rights
    return replace(
        rollout,
        min_auc=r.rollout_min_auc,
        min_ks=r.rollout_min_ks,
        max_monthly_psi=r.rollout_max_monthly_psi,
    )


def _rollout(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    today: date = args.today or datetime.now(UTC).date()
    shipped = load_scheme(cfg.scheme)
    conn = open_storage(cfg, create=False)
    try:
        rollout, candidate, shadow = read_rollout(conn, shipped)
        row = rollouts.scheme_row(conn, shipped.id)  # (state_json, candidate_toml)
        toml_text: str | None = row[1] if row else None
        current_text = current_toml_of(row[0]) if row else None
        settled = rollout.settle(today)
        if settled != rollout:  # the scheduled version took effect: it is the current one
            rollout, current_text = settled, toml_text
        if rollout.current_version == shipped.version:
            current_text = None  # the shipped scheme file is the current version
        # The version in force (what the serving node scores with); kept across a
        # new candidate's evaluation so the node never falls back (docs/adr/0507).
        current = active_scheme(dump_rollout(rollout, current_text), toml_text, shipped, today)
        try:
            if args.step == "evaluate":
                try:
                    toml_text = args.candidate.read_text(encoding="utf-8")
                    candidate = parse_scheme_toml(toml_text)
                except OSError as exc:
                    raise CliError("CANDIDATE_NOT_FOUND", f"cannot read {args.candidate}") from exc
                except SchemeError as exc:
                    raise CliError(exc.code, f"{args.candidate}: {exc}") from None
                shadow = _shadow(cfg, current, candidate, today)
                shadow["measures"] = _measures(cfg, current, candidate, today)
                measured = shadow["measures"]["candidate"]
                rollout = rollout.evaluate(
                    candidate,
                    Evaluation(
                        candidate.version,
                        shadow["psi"] if shadow["psi"] is not None else float("inf"),
                        int(shadow["compared"]),
                        int(shadow["moved_up"]),
                        int(shadow["moved_down"]),
                        measured["auc"],
                        measured["ks"],
                        measured["max_monthly_psi"],
                    ),
                )
            elif args.step == "trial":
                rollout = rollout.start_trial(today, accept_shift=args.accept_shift)
            elif args.step == "shadow":
                if candidate is None or rollout.shadow_version(today) is None:
                    raise CliError("NOT_ON_TRIAL", "shadow scoring runs only during a trial")
                shadow = _shadow(cfg, current, candidate, today)
            elif args.step == "activate":
                rollout = _with_thresholds(rollout, cfg).activate(today, args.effective)
        except RolloutError as exc:
            if exc.code == THRESHOLD_CODE:
                raise CliError(exc.code, f"candidate refused (H11): {exc}") from None
            raise CliError(exc.code, str(exc)) from None
        if args.step != "status":
            with immediate(conn):
                write_rollout(
                    conn,
                    rollout,
                    toml_text,
                    shadow,
                    datetime.now(UTC).isoformat(),
                    current_toml=current_text,
                )
        uncovered_tables = (
            uncovered(
                node_tables(cfg, conn),
                f"{rollout.scheme_id}@{rollout.current_version}",
                f"{rollout.scheme_id}@{rollout.candidate_version}",
            )
            if rollout.candidate_version and rollout.candidate_version != rollout.current_version
            else []
        )
    finally:
        conn.close()
    out = {
        "scheme": rollout.scheme_id,
        "stage": rollout.stage.value,
        "current_version": rollout.current_version,
        "candidate_version": rollout.candidate_version,
        "trial_started": rollout.trial_started.isoformat() if rollout.trial_started else None,
        "effective": rollout.effective.isoformat() if rollout.effective else None,
        "version_in_force": rollout.version_on(today),
        "shadow_version": rollout.shadow_version(today),
        "revision_due": rollout.revision_due(today),
        "shadow_report": shadow,
        # C3, H13: tables the candidate version would leave without coverage
        "uncovered_tables": [t.to_json() for t in uncovered_tables],
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for k, v in out.items():
            if k != "shadow_report":
                print(f"{k:<18} {v}")
        if shadow:
            print(
                f"shadow ({shadow['as_of']}): {shadow['compared']} compared, "
                f"{shadow['moved_up']} up, {shadow['moved_down']} down, PSI {shadow['psi']}"
            )
        _warn_uncovered(uncovered_tables, f"{rollout.scheme_id}@{rollout.candidate_version}")
    return 0


def _warn_uncovered(tables: list[TableRef], candidate: str) -> None:
    if not tables:
        return
    print(
        f"warning: {candidate} leaves {len(tables)} mapping table(s) without coverage; once it"
        " is in force, requests into their targets are refused SCHEME_VERSION_MISMATCH"
        " until a table from it is installed and approved (huxin mapping install):"
    )
    for t in tables:
        note = f", {t.note}" if t.note else ""
        print(f"  {t.id}@{t.version}  {t.source} -> {t.target}  ({t.origin}{note})")
