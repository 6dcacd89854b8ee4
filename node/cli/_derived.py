"""CLI: ``huxin derived list|show|evaluate`` — derived scenario scores (N18, N19, H11).

``show ID`` prints a shipped derived score: its base scheme, range, tiers,
weights (each category of the base with the weight that applies and why) and
scenarios.  ``evaluate ID`` scores a population under the base scheme,
derives each person's score and prints the derived tier distribution beside
the base grades, with AUC and KS against the synthetic outcome labels
(``--population DB``, or ``--synthetic N`` for a fresh seeded population).
``rollout ID VERSION --config NODE.toml`` (H11, docs/adr/0006) evaluates the
version (the shipped file, or ``--candidate FILE``) on the node's population
and on ``--people`` synthetic people (default ``[rights] rollout_population``),
prints the figures, refuses one below the node's H11 floors, and after the
operator's confirmation (``--yes``, or ``y`` on a terminal) makes it the version
the node serves from its next grant or request.
Numbers of a derived score whose ``illustrative`` list names its tiers or
weights are printed as illustrative.  No command prints a citizen ID number.
Bad input exits 2 with ``error: CODE: message``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from node.cli._main import CliError, SubParsers, subgroup
from node.cli._storage import open_storage
from node.core._config import ConfigError, load_config
from node.core._errors import NodeError
from node.derived import RolloutPlan, plan_rollout, roll_out
from node.derived._rollout import candidate_text, scheme_in_force
from node.model._evaluate_derived import (
    DerivedEvaluation,
    evaluate_derived,
    evaluate_derived_synthetic,
)
from node.monthly._batch import BatchError
from node.store import StorageError, connect
from node.synthetic._population import PopulationError, read_spec
from scoring import (
    DerivedScore,
    Discrimination,
    Scheme,
    SchemeError,
    list_derived,
    load_derived,
    load_scheme,
)

__all__ = ["SYNTHETIC_MAX", "derived_as_dict", "evaluation_as_dict", "register"]

#: Bound of ``--synthetic N``: a fresh population generated in a temporary directory.
SYNTHETIC_MAX = 200_000
#: Bounds of ``rollout --people`` (those of ``[rights] rollout_population``).
POPULATION_MIN, POPULATION_MAX = 1_000, 1_000_000


def register(sub: SubParsers) -> None:
    group = subgroup(sub, "derived", "derived scenario scores built on a scheme (N18, N19)")
    p = group.add_parser("list", help="list the shipped derived scores")
    p.set_defaults(func=_list)
    p = group.add_parser("show", help="show a derived score: base, tiers, weights, scenarios")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
    p = group.add_parser("evaluate", help="tier distribution, AUC and KS on a population (H11)")
    p.add_argument("id")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--population", type=Path, metavar="DB", help="a population database")
    where.add_argument(
        "--synthetic", type=int, metavar="N",
        help=f"a fresh seeded synthetic population of N people (1-{SYNTHETIC_MAX})",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="with --synthetic (default 1)")
    p.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD", help="score as of this day")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_evaluate)
    p = group.add_parser("rollout", help="put a version in force on a node (H11)")
    p.add_argument("id")
    p.add_argument("version")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--candidate", type=Path, help="a derived score file (default: shipped)")
    p.add_argument(
        "--people", type=int,
        help=f"synthetic people for AUC/KS ({POPULATION_MIN}-{POPULATION_MAX};"
        " default [rights] rollout_population)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--today", type=_date, metavar="YYYY-MM-DD", help="the operator's date")
    p.add_argument("--yes", action="store_true", help="confirm without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_rollout)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _load(derived_id: str) -> tuple[DerivedScore, Scheme]:
    try:
        derived = load_derived(derived_id)
        return derived, load_scheme(derived.base_id)
    except SchemeError as exc:
        raise CliError(exc.code, str(exc)) from None


def _note(derived: DerivedScore) -> str:
    ours = [f for f in ("tiers", "weights", "base_score") if f in derived.illustrative]
    return f"illustrative: the {', '.join(ours)} are ours, not published" if ours else ""


def _list(_args: argparse.Namespace) -> int:
    for derived_id in list_derived():
        derived, _base = _load(derived_id)
        print(f"{derived.key}\t{derived.name}\tbase {derived.base_key}")
    return 0


def derived_as_dict(derived: DerivedScore) -> dict[str, Any]:
    return {
        "id": derived.id,
        "version": derived.version,
        "name": derived.name,
        "base": derived.base_key,
        "source": derived.source,
        "illustrative": list(derived.illustrative),
        "score_min": derived.score_min,
        "score_max": derived.score_max,
        "base_score": derived.base_score,
        "incentive_tier": derived.incentive_tier,
        "tiers": [
            {"id": t.id, "label": t.label, "min": t.min_score, "max": t.max_score}
            for t in derived.tiers
        ],
        "weights": {
            cid: {"weight": str(w), "from": w.source} for cid, w in derived.weights.items()
        },
        "scenarios": [
            {
                "ref": i.ref(derived.id),
                "title": i.title,
                "min_grade": i.min_grade,
                "disclosure": i.disclosure.value,
            }
            for i in derived.incentives
        ],
    }


def _show(args: argparse.Namespace) -> int:
    derived, base = _load(args.id)
    if args.json:
        print(json.dumps(derived_as_dict(derived), ensure_ascii=False))
        return 0
    note = _note(derived)
    lines = [
        f"{derived.key}  {derived.name}",
        f"base scheme: {derived.base_key}  ({derived.source})",
    ]
    if note:
        lines.append(note)
    lines += [
        f"range {derived.score_min}-{derived.score_max}, base {derived.base_score}, "
        f"incentive tier {derived.incentive_tier}",
        "tiers:",
        *(f"  {t.id:4} {t.label}  {t.min_score}-{t.max_score}" for t in derived.tiers),
        "weights (points of each counted base record × weight, truncated toward zero):",
    ]
    for cid, weight in derived.weights.items():
        name = base.categories[cid].name
        lines.append(f"  {cid:32} × {weight!s:5} ({weight.source})  {name}")
    lines.append("scenarios:")
    for i in derived.incentives:
        lines.append(
            f"  {i.ref(derived.id)}: {i.title} — from {i.min_grade}, discloses {i.disclosure.value}"
        )
    print("\n".join(lines))
    return 0


def _measure(d: Discrimination | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"auc": d.auc, "ks": d.ks, "labelled": d.people, "adverse": d.adverse}


def evaluation_as_dict(ev: DerivedEvaluation) -> dict[str, Any]:
    return {
        "derived": ev.derived.key,
        "base": ev.base.key,
        "as_of": ev.as_of.isoformat(),
        "subjects": ev.subjects,
        "scored": ev.scored,
        "distribution": ev.distribution,
        "base_distribution": ev.base_distribution,
        "outcome_labels": ev.has_labels,
        "derived_measures": _measure(ev.discrimination()),
        "base_measures": _measure(ev.base_discrimination()),
    }


def _figures(d: Discrimination | None) -> str:
    if d is None:
        return "no outcome labels (a real node's population): AUC/KS not computed"
    return f"AUC {d.auc:.3f}  KS {d.ks:.3f}  ({d.people} labelled, {d.adverse} adverse)"


def render_evaluation(ev: DerivedEvaluation) -> str:
    lines = [
        f"derived score {ev.derived.key} on base {ev.base.key}, as of {ev.as_of}",
        f"{ev.subjects} people read, {ev.scored} scored (eligible under the base scheme)",
    ]
    note = _note(ev.derived)
    if note:
        lines.append(note)
    lines.append("derived tiers:")
    for tier in ev.derived.tiers:
        n = ev.distribution[tier.id]
        share = n / ev.scored if ev.scored else 0.0
        lines.append(f"  {tier.id:4} {tier.label:6} {n:8}  {share:7.2%}")
    lines += [
        f"derived {_figures(ev.discrimination())}",
        f"base    {_figures(ev.base_discrimination())}",
    ]
    return "\n".join(lines) + "\n"


def _evaluate(args: argparse.Namespace) -> int:
    derived, base = _load(args.id)
    try:
        if args.synthetic is not None:
            if not 1 <= args.synthetic <= SYNTHETIC_MAX:
                raise CliError("INVALID_ARGUMENT", f"--synthetic must be 1-{SYNTHETIC_MAX} people")
            as_of = args.as_of or date.today()
            result = evaluate_derived_synthetic(
                derived, base, args.synthetic, as_of, seed=args.seed
            )
        else:
            db: Path = args.population
            if not db.is_file():
                raise CliError("DB_NOT_FOUND", f"database {str(db)!r} does not exist")
            as_of = args.as_of or _reference_date(db)
            result = evaluate_derived(db, derived, base, as_of)
    except (BatchError, StorageError, PopulationError, SchemeError) as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.json:
        print(json.dumps(evaluation_as_dict(result), ensure_ascii=False))
    else:
        sys.stdout.write(render_evaluation(result))
    return 0


def _reference_date(db: Path) -> date:
    """The population's reference date if it is synthetic, else today."""
    conn = connect(db, readonly=True)
    try:
        spec = read_spec(conn)
    finally:
        conn.close()
    return spec.as_of if spec is not None else date.today()


def _rollout(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    people = args.people if args.people is not None else cfg.rights.rollout_population
    if not POPULATION_MIN <= people <= POPULATION_MAX:
        raise CliError("INVALID_ARGUMENT", f"--people must be {POPULATION_MIN}-{POPULATION_MAX}")
    today: date = args.today or datetime.now(UTC).date()
    conn = open_storage(cfg, create=False)
    try:
        home = scheme_in_force(conn, load_scheme(cfg.scheme), today)
        try:
            text = candidate_text(args.id, args.candidate)
            plan = plan_rollout(
                conn, cfg.storage, args.id, args.version, home=home, text=text, today=today,
                people=people, seed=args.seed, min_auc=cfg.rights.rollout_min_auc,
                min_ks=cfg.rights.rollout_min_ks,
            )  # fmt: skip
        except (NodeError, BatchError, StorageError, PopulationError, SchemeError) as exc:
            raise CliError(exc.code, str(exc)) from None
        out = {
            "derived": plan.derived.key,
            "base": home.key,
            "in_force": f"{plan.derived.id}@{plan.in_force}",
            "evaluation": plan.evaluation,
            "hub_catalogue_lists_it": plan.hub_lists,
        }
        if not args.json:
            sys.stdout.write(_render_plan(plan, home))
        if not _confirmed(args, plan):
            raise CliError("NOT_CONFIRMED", f"{plan.derived.key} was not rolled out")
        roll_out(conn, plan, today, datetime.now(UTC).isoformat(timespec="seconds"))
    finally:
        conn.close()
    out["rolled_out"] = True
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"{plan.derived.key} is in force on this node from its next grant or request")
    return 0


def _render_plan(plan: RolloutPlan, home: Scheme) -> str:
    ev, d = plan.evaluation, plan.derived
    own, syn = ev["node_population"], ev["synthetic"]
    lines = [
        f"roll out {d.key} on base {home.key} (in force: {d.id}@{plan.in_force}), as of"
        f" {ev['as_of']}",
        f"node population: {own['scored']} scored; derived tiers "
        + ", ".join(f"{g} {n}" for g, n in own["distribution"].items()),
        f"synthetic ({syn['people']} people): derived tiers "
        + ", ".join(f"{g} {n}" for g, n in syn["distribution"].items()),
    ]
    for which in ("derived", "base"):
        m = syn[which]
        lines.append(
            f"  {which:7} "
            + ("no figures" if m is None else f"AUC {m['auc']:.3f}  KS {m['ks']:.3f}")
        )
    note = _note(d)
    if note:
        lines.append(note)
    if not plan.hub_lists:
        lines.append(
            f"warning: the hub's scenario catalogue (as shipped) does not list {d.key}; offline"
            " verifiers refuse its attestations (SCENARIO_NOT_TRUSTED) until the hub lists it"
        )
    return "\n".join(lines) + "\n"


def _confirmed(args: argparse.Namespace, plan: RolloutPlan) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("CONFIRMATION_REQUIRED", "pass --yes to roll out without a terminal")
    answer = input(f"roll out {plan.derived.key} on this node? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
