"""CLI: ``huxin schemes list|show`` and ``huxin score explain``.

``schemes show`` prints the tiers, categories and rules, then the scheme's own
expiry (``valid_until``), the validity ceiling (H7) and the caps on positive
points per category and per family and period; every value the scheme lists
as illustrative (ours, not published by the region) is marked so.

``score explain`` scores one person from a JSON-lines file of records (each
line one record as accepted by :func:`scoring.validate_record`, plus optional
``birth``-free subject data in a first line ``{"subject": {...}}``): the
records of the given subject are validated (a bad line is reported with its
line number and nothing is scored) and the explained result is printed.  The
ID number is read from the command line only to select records; it is never
printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from node.cli._main import CliError, SubParsers, add_id_number_args, id_number_arg, subgroup
from scoring import (
    PointCap,
    RecordError,
    Residence,
    Scheme,
    ScoreResult,
    Subject,
    grade_label,
    list_schemes,
    load_scheme,
    normalise_id_number,
    score,
    validate_record,
)

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    schemes = subgroup(sub, "schemes", "list and show the shipped score schemes")
    p = schemes.add_parser("list", help="list shipped schemes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_schemes_list)
    p = schemes.add_parser("show", help="show one scheme: tiers, categories, rules")
    p.add_argument("scheme_id", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_schemes_show)

    score_group = subgroup(sub, "score", "score people: explain one, run a month")
    p = score_group.add_parser("explain", help="score one subject from a JSONL records file")
    p.add_argument("--scheme", required=True)
    p.add_argument("--records", required=True, type=Path, help="JSON lines, one record each")
    add_id_number_args(p, "subject", required=True)
    p.add_argument("--as-of", required=True, type=_parse_date, metavar="YYYY-MM-DD")
    p.add_argument(
        "--residence",
        action="append",
        default=[],
        metavar="KIND:SINCE",
        help="residence basis, e.g. hukou:2001-05-01 (default: hukou since birth)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_score_explain)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _scheme(scheme_id: str) -> Scheme:
    if scheme_id not in list_schemes():
        raise CliError("UNKNOWN_SCHEME", f"unknown scheme {scheme_id!r}; try 'huxin schemes list'")
    return load_scheme(scheme_id)


def _schemes_list(args: argparse.Namespace) -> int:
    schemes = [load_scheme(s) for s in list_schemes()]
    if args.json:
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "version": s.version,
                "region": s.region,
                "range": [s.score_min, s.score_max],
                "base_score": s.base_score,
                "tiers": len(s.tiers),
                "illustrative": list(s.illustrative),
            }
            for s in schemes
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(
        f"{'id':<9} {'name':<12} {'version':<8} {'range':<10} {'base':>5} {'tiers':>5}  illustrative"
    )
    for s in schemes:
        rng = f"{s.score_min}-{s.score_max}"
        print(
            f"{s.id:<9} {s.name:<12} {s.version:<8} {rng:<10} {s.base_score:>5} {len(s.tiers):>5}  "
            f"{', '.join(s.illustrative) or '-'}"
        )
    return 0


def is_illustrative(s: Scheme, path: str) -> bool:
    """Whether the scheme lists ``path`` (dotted, e.g. ``categories.honour.cap``) or a
    table containing it as illustrative: a value of ours, not published by the region."""
    return any(fnmatchcase(path, p) or fnmatchcase(path, f"{p}.*") for p in s.illustrative)


def _cap_dict(s: Scheme, cap: PointCap, path: str) -> dict[str, Any]:
    return {
        "points": cap.points,
        "period_months": cap.period_months,
        "illustrative": is_illustrative(s, path),
    }


def limits_as_dict(s: Scheme) -> dict[str, Any]:
    """The scheme's expiry, validity ceiling and caps (H7, N11, N12; ADR 0003)."""
    vc = s.validity_cap
    return {
        "valid_until": None if s.valid_until is None else s.valid_until.isoformat(),
        "valid_until_illustrative": s.valid_until is not None and is_illustrative(s, "valid_until"),
        "validity_cap": None
        if vc is None
        else {
            "months": vc.months,
            "exempt": {cid: sorted(levels) for cid, levels in vc.exempt.items()},
            "illustrative": is_illustrative(s, "validity_cap"),
        },
        "category_caps": {
            cid: _cap_dict(s, c.cap, f"categories.{cid}.cap")
            for cid, c in s.categories.items()
            if c.cap is not None
        },
        "family_caps": {
            fid: {
                "name": f.name,
                "categories": sorted(f.categories),
                **_cap_dict(s, f.cap, f"families.{fid}.cap"),
            }
            for fid, f in s.families.items()
        },
    }


def scheme_as_dict(s: Scheme) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "version": s.version,
        "region": s.region,
        "effective": s.effective.isoformat(),
        "source": s.source,
        "score_min": s.score_min,
        "score_max": s.score_max,
        "base_score": s.base_score,
        "base_grade": s.base_grade,
        "incentive_tier": s.incentive_tier,
        "tiers": [asdict(t) for t in s.tiers],
        "eligibility": {
            "min_age": s.eligibility.min_age,
            "note": s.eligibility.note,
            "residence": [asdict(r) for r in s.eligibility.residence],
        },
        "objection_deadlines_working_days": dict(s.objection_deadlines),
        "categories": {
            cid: {
                "name": c.name,
                "polarity": c.polarity.value,
                "points": c.points,
                "validity_months": c.validity_months,
                "provenance": sorted(p.value for p in c.provenances),
                "level_multipliers": dict(c.level_multipliers),
                "severities": {k: asdict(v) for k, v in c.severities.items()},
                "requires_legal_document": c.requires_legal_document,
                "legal_document_kinds": sorted(c.legal_document_kinds),
                "excluded_flags": sorted(c.excluded_flags),
                "caps_grade": c.caps_grade,
            }
            for cid, c in s.categories.items()
        },
        **limits_as_dict(s),
        "illustrative": list(s.illustrative),
    }


def _schemes_show(args: argparse.Namespace) -> int:
    s = _scheme(args.scheme_id)
    if args.json:
        print(json.dumps(scheme_as_dict(s), ensure_ascii=False, indent=2))
        return 0
    print(f"{s.name} ({s.id} {s.version}, region {s.region}, effective {s.effective})")
    print(
        f"range {s.score_min}-{s.score_max}, base {s.base_score} (grade {s.base_grade}), "
        f"incentives from {s.incentive_tier}"
    )
    if s.illustrative:
        print(f"illustrative (not published by the region): {', '.join(s.illustrative)}")
    print("\ngrade  label     scores")
    for t in s.tiers:
        mark = "  <- incentives from here" if t.id == s.incentive_tier else ""
        print(f"{t.id:<6} {t.label:<8} {t.min_score}-{t.max_score}{mark}")
    deadlines = ", ".join(f"{k} {v}" for k, v in s.objection_deadlines)
    print(f"\nobjection deadlines (working days): {deadlines}")
    print(
        f"eligibility: age >= {s.eligibility.min_age}; "
        + "; ".join(
            r.kind + (f" >= {r.min_years} year(s)" if r.min_years else "")
            for r in s.eligibility.residence
        )
    )
    print("\ncategory                 polarity  points  validity")
    for cid, c in s.categories.items():
        sign = "+" if c.polarity.value == "positive" else "-"
        print(
            f"{cid:<24} {c.polarity.value:<9} {sign}{c.points:<6} {c.validity_months} months  {c.name}"
        )
    sys.stdout.write(render_limits(s))
    return 0


def _months(months: int) -> str:
    return f"{months // 12} years" if months % 12 == 0 else f"{months} months"


def _mark(s: Scheme, path: str) -> str:
    return "  (illustrative)" if is_illustrative(s, path) else ""


def render_limits(s: Scheme) -> str:
    """The scheme's expiry, validity ceiling and caps in words; values of ours are marked
    ``(illustrative)`` (H7, N11, N12; ADR 0003)."""
    lines = [""]
    if s.valid_until is None:
        lines.append("scheme expiry: none (scores every period from its effective date)")
    else:
        lines.append(
            f"scheme expiry: valid until {s.valid_until}; no period after it is scored"
            f" (SCHEME_EXPIRED){_mark(s, 'valid_until')}"
        )
    vc = s.validity_cap
    if vc is None:
        lines.append(
            "validity ceiling: none (a record counts for the validity its source set,"
            " else its category's default)"
        )
    else:
        exempt = "; ".join(f"{cid} at {', '.join(sorted(lv))}" for cid, lv in vc.exempt.items())
        lines.append(
            f"validity ceiling (H7): a record counts at most {_months(vc.months)} from"
            f" recognition{f', except {exempt}' if exempt else ''}{_mark(s, 'validity_cap')}"
        )
    caps = [(cid, c.name, c.cap) for cid, c in s.categories.items() if c.cap is not None]
    if not caps and not s.families:
        lines.append("caps on positive points: none")
        return "\n".join(lines) + "\n"
    lines.append("\ncaps on positive points (per calendar period)")
    for cid, name, cap in caps:
        lines.append(
            f"  category {cid:<22} {cap.points:>4} points per {cap.period_months} months  {name}"
            f"{_mark(s, f'categories.{cid}.cap')}"
        )
    for fid, f in s.families.items():
        lines.append(
            f"  family   {fid:<22} {f.cap.points:>4} points per {f.cap.period_months} months  "
            f"{f.name}: {', '.join(sorted(f.categories))}{_mark(s, f'families.{fid}.cap')}"
        )
    return "\n".join(lines) + "\n"


def _residences(values: list[str], born: date) -> tuple[Residence, ...]:
    if not values:
        return (Residence("hukou", born),)
    out = []
    for value in values:
        kind, _, since = value.partition(":")
        try:
            out.append(Residence(kind, date.fromisoformat(since)))
        except ValueError:
            raise CliError(
                "INVALID_ARGUMENT", f"--residence {value!r}: expected KIND:YYYY-MM-DD"
            ) from None
    return tuple(out)


def _score_explain(args: argparse.Namespace) -> int:
    scheme = _scheme(args.scheme)
    try:
        flag = "--subject" if args.subject_file is None else "--subject-file"
        subject_id = normalise_id_number(id_number_arg(args, "subject"), field=flag)
    except RecordError as exc:
        raise CliError(exc.code, str(exc)) from None
    try:
        lines = args.records.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(
            "NOT_FOUND", f"--records: cannot read {args.records}: {exc.strerror}"
        ) from None
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(
                "INVALID_RECORD", f"{args.records}:{lineno}: not JSON: {exc.msg}"
            ) from None
        try:
            if normalise_id_number(raw.get("subject_id")) != subject_id:
                continue
            records.append(validate_record(raw, scheme, args.as_of))
        except RecordError as exc:
            raise CliError(exc.code, f"{args.records}:{lineno}: {exc}") from None
    subject = Subject.from_id_number(subject_id, ())
    subject = Subject(subject.birth_date, _residences(args.residence, subject.birth_date))
    result = score(subject, records, scheme, args.as_of)
    if args.json:
        print(json.dumps(result_as_dict(result), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(render_report(result, scheme))
    return 0


def result_as_dict(result: ScoreResult) -> dict[str, Any]:
    out = asdict(result)
    out["as_of"] = result.as_of.isoformat()
    for c in out["contributions"]:
        c["polarity"] = str(c["polarity"])
        c["status"] = str(c["status"])
        c["recognised_on"] = c["recognised_on"].isoformat()
        c["valid_until"] = c["valid_until"].isoformat()
    return out


def render_report(result: ScoreResult, scheme: Scheme) -> str:
    """A citizen's explained report in plain words (N13)."""
    lines = [f"{scheme.name} ({scheme.key}) as of {result.as_of}"]
    if not result.eligible:
        lines.append(f"Not eligible: {result.ineligible_reason}. No score is computed.")
        return "\n".join(lines) + "\n"
    tier = scheme.tier(result.grade or "")
    lines.append(
        f"Score {result.score}, grade {grade_label(tier.id, scheme)}:"
        f" {tier.label}, {tier.min_score}-{tier.max_score}"
    )
    lines.append(
        f"= base {result.base_score} + {result.added} added - {result.deducted} deducted"
        + (f" (clamped from {result.unclamped})" if result.unclamped != result.score else "")
        + (f", capped by record {result.capped_by}" if result.capped_by else "")
    )
    if not result.contributions:  # H8: a clean resident holds the base score
        lines.append(
            f"No records are held about this person: the score is the scheme's base score,"
            f" {result.base_score}, which every eligible resident holds until a record counts."
        )
    if result.contributions:
        lines.append("")
        lines.append(f"{'record':<14} {'category':<24} {'points':>6}  {'status':<16} why")
        for c in result.contributions:
            lines.append(
                f"{c.record_id:<14} {c.category:<24} {c.points:>+6}  {c.status.value:<16} "
                f"{c.reason} (from {c.source}, {c.recognised_on}, valid to {c.valid_until})"
            )
    return "\n".join(lines) + "\n"
