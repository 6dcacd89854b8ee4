"""CLI: ``huxin mapping table|check|grade`` — grade mapping between schemes.

* ``table FROM TO [--method anchored|equipercentile|agreement]`` builds a table
  (anchored from the scheme files; equipercentile from two signed histogram
  files and a keys file; agreement as an unsigned draft from ``--grades``),
  checks it and prints it with its method and content hash.
* ``check FILE`` loads a table document (hash first), checks it against every
  invariant (pivots: the published tables of the same method plus ``--with``
  files), its validity on ``--today`` and its signatures (``--keys``); exit 1
  on a failed check.
* ``sign FILE --key KEYFILE`` adds one signature (a region signing an
  agreement) after checking the table's hash and invariants; the key file is
  ``keys``' format, its passphrase (if encrypted) read from ``--passphrase-env``.
* ``grade FROM TO GRADE [--score N] [--config node.toml]`` maps one grade over
  the most conservative route through the published (and ``--table``) tables,
  and a disclosed score with the intervals it comes from; and lists which of
  the target region's incentive scenarios the recognised grade unlocks (N20):
  from the target scheme's catalogue the node of ``--config`` fetched from its
  peer, if it holds one, else the shipped scheme's (docs/adr/0205).  A grade
  that is not recognised unlocks nothing, and says so.

A keys file is JSON ``{"<region>": ["<hex public key>", ...]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from mapping import (
    DEFAULT_MIN_POPULATION,
    INVARIANTS,
    MappingError,
    MappingTable,
    Method,
    RegionKeys,
    agreement_table,
    anchored_table,
    check_table,
    check_validity,
    equipercentile_table,
    histogram_from_json,
    key_id,
    load_schemes,
    map_score,
    most_conservative,
    published_tables,
    require_valid,
    sign_table,
    strict_loads,
    table_from_document,
    verify_table,
)
from node.catalogue import Unlocks, target_catalogue, unlocks
from node.cli._main import CliError, SubParsers, subgroup
from node.cli._mapping_approve import register_approve
from node.cli._recognition import register_tables
from node.core._config import ConfigError, load_config
from scoring import Scheme, grade_label, illustrative_suffix

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    group = subgroup(sub, "mapping", "map grades between schemes (mutual recognition)")
    register_approve(group)  # approve: the hub signs an approval record (批准或备案, H13)

    p = group.add_parser("table", help="build, check and print a mapping table")
    p.add_argument("source", metavar="FROM")
    p.add_argument("target", metavar="TO")
    p.add_argument("--method", choices=[m.value for m in Method], default="anchored")
    p.add_argument("--histograms", nargs=2, type=Path, metavar=("SRC.json", "TGT.json"))
    p.add_argument("--keys", type=Path, help="JSON {region: [hex public key, ...]}")
    p.add_argument("--min-population", type=int, default=DEFAULT_MIN_POPULATION)
    p.add_argument("--grades", help="agreement: SRC=TGT,SRC=TGT,...")
    p.add_argument("--effective", type=_parse_date, metavar="YYYY-MM-DD")
    p.add_argument("--expires", type=_parse_date, metavar="YYYY-MM-DD")
    p.add_argument("--version", dest="table_version", default="1")
    p.add_argument("--out", type=Path, help="also write the table document here")
    p.add_argument("--json", action="store_true", help="print the full table document")
    p.set_defaults(func=_table)

    p = group.add_parser("check", help="check a table file against every invariant")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--keys", type=Path, help="JSON {region: [hex public key, ...]}")
    p.add_argument(
        "--with",
        dest="others",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="another table of the set (pivots, reverse)",
    )
    p.add_argument("--today", type=_parse_date, metavar="YYYY-MM-DD")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_check)

    p = group.add_parser("sign", help="add a signature to a table file (e.g. an agreement)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--key", required=True, type=Path, metavar="KEYFILE")
    p.add_argument(
        "--passphrase-env", metavar="VAR", help="environment variable with the passphrase"
    )
    p.add_argument("--out", type=Path, help="write here instead of updating FILE")
    p.set_defaults(func=_sign)

    p = group.add_parser("grade", help="map one grade (and optionally its score)")
    p.add_argument("source", metavar="FROM")
    p.add_argument("target", metavar="TO")
    p.add_argument("grade", metavar="GRADE")
    p.add_argument("--score", type=int)
    p.add_argument(
        "--table",
        dest="tables",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="an extra table to consider besides the published ones",
    )
    p.add_argument("--keys", type=Path, help="JSON {region: [hex public key, ...]} for --table")
    p.add_argument(
        "--all-routes",
        action="store_true",
        help="take the lowest grade over the direct table AND every pivot route",
    )
    p.add_argument("--today", type=_parse_date, metavar="YYYY-MM-DD")
    p.add_argument(
        "--config",
        type=Path,
        metavar="node.toml",
        help="read the target's catalogue as this node fetched it (default: the shipped one)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_grade)

    register_tables(group)  # install | list | retire on a node (node.recognition, C3, H13)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError("FILE_NOT_READABLE", f"{path}: {exc.strerror}") from None


def _load_keys(path: Path | None) -> RegionKeys:
    if path is None:
        return {}
    raw = strict_loads(_read(path), what=str(path))
    if not isinstance(raw, dict):
        raise CliError("MALFORMED_KEYS", f"{path}: must be an object {{region: [hex keys]}}")
    out: dict[str, dict[str, bytes]] = {}
    for region, hex_keys in raw.items():
        if not isinstance(hex_keys, list):
            raise CliError("MALFORMED_KEYS", f"{path}: {region} must list hex public keys")
        keys: dict[str, bytes] = {}
        for h in hex_keys:
            try:
                pub = bytes.fromhex(h)
            except (TypeError, ValueError):
                raise CliError("MALFORMED_KEYS", f"{path}: {region}: not hex") from None
            if len(pub) != 32:
                raise CliError("MALFORMED_KEYS", f"{path}: {region}: keys are 32 bytes")
            keys[key_id(pub)] = pub
        out[region] = keys
    return out


def _schemes(*ids: str) -> list[Scheme]:
    schemes = load_schemes(*ids)
    return [schemes[i] for i in ids]


def _print_table(table: MappingTable, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(table.to_json_bytes().decode("utf-8"))
        return
    expires = f", expires {table.expires}" if table.expires else ""
    print(f"table    {table.id} v{table.version}")
    print(f"method   {table.method.value}")
    marks = illustrative_suffix(table.source.key, table.target.key)
    print(f"source   {table.source.key}  ->  target {table.target.key}{marks}")
    print(f"valid    from {table.effective_from}{expires}")
    print(f"hash     {table.content_hash}")
    print(f"signed   {len(table.signatures)} signature(s)")
    width = max(len(g) for g, _ in table.grades)
    for src, tgt in table.grades:
        print(f"  {src:<{width}}  ->  {'not recognised' if tgt is None else tgt}")


def _table(args: argparse.Namespace) -> int:
    source, target = _schemes(args.source, args.target)
    method = Method(args.method)
    if method is Method.ANCHORED:
        table = anchored_table(
            source,
            target,
            version=args.table_version,
            effective_from=args.effective,
            expires=args.expires,
        )
    elif method is Method.EQUIPERCENTILE:
        if not args.histograms or args.keys is None:
            raise CliError("MISSING_ARGUMENT", "equipercentile needs --histograms and --keys")
        hs, ht = (
            histogram_from_json(strict_loads(_read(p), what=str(p)), str(p))
            for p in args.histograms
        )
        table = equipercentile_table(
            source,
            target,
            hs,
            ht,
            keys=_load_keys(args.keys),
            min_population=args.min_population,
            version=args.table_version,
            effective_from=args.effective,
            expires=args.expires,
        )
    else:
        if not args.grades or args.effective is None:
            raise CliError("MISSING_ARGUMENT", "agreement needs --grades and --effective")
        grades: dict[str, str] = {}
        for pair in args.grades.split(","):
            src, sep, tgt = pair.partition("=")
            if not sep:
                raise CliError("MISSING_ARGUMENT", f"--grades entry {pair!r} is not SRC=TGT")
            grades[src.strip()] = tgt.strip()
        table = agreement_table(
            source,
            target,
            grades,
            effective_from=args.effective,
            expires=args.expires,
            version=args.table_version,
        )
    if args.out is not None:
        args.out.write_bytes(table.to_json_bytes())
    _print_table(table, args.json)
    return 0


def _check(args: argparse.Namespace) -> int:
    table = table_from_document(_read(args.file))
    source, target = _schemes(table.source.scheme, table.target.scheme)
    others = [table_from_document(_read(p)) for p in args.others]
    pool = [t for t in published_tables() if t.method is table.method] + others
    reverse = next(
        (t for t in others if t.source == table.target and t.target == table.source), None
    )
    violations = check_table(table, source, target, reverse=reverse, tables=pool)
    problems: list[dict[str, Any]] = [
        {
            "code": f"INVARIANT_{v.invariant.upper()}",
            "invariant": v.invariant,
            "grades": list(v.grades),
            "detail": v.detail,
        }
        for v in violations
    ]
    today = args.today or date.today()
    for step in (
        lambda: check_validity(table, today),
        lambda: verify_table(table, _load_keys(args.keys), source=source, target=target),
    ):
        try:
            step()
        except MappingError as exc:
            problems.append({"code": exc.code, "field": exc.field, "detail": exc.message})
    if args.json:
        print(
            json.dumps(
                {
                    "table": table.id,
                    "version": table.version,
                    "method": table.method.value,
                    "content_hash": table.content_hash,
                    "ok": not problems,
                    "problems": problems,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for p in problems:
            print(f"error: {p['code']}: {p['detail']}", file=sys.stderr)
        if not problems:
            print(
                f"ok: {table.id} v{table.version} ({table.method.value}) passes all "
                f"{len(INVARIANTS)} invariants, is valid on {today} and its signatures verify; "
                f"{table.content_hash}"
            )
    if problems:
        if args.json:
            return 1
        first = problems[0]
        raise CliError(first["code"], f"{args.file}: {len(problems)} problem(s)", exit_code=1)
    return 0


def _sign(args: argparse.Namespace) -> int:
    import os

    from keys import KeysError, decode_private_key

    table = table_from_document(_read(args.file))
    source, target = _schemes(table.source.scheme, table.target.scheme)
    passphrase = None
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if value is None:
            raise CliError(
                "MISSING_PASSPHRASE", f"environment variable {args.passphrase_env} is not set"
            )
        passphrase = value.encode("utf-8")
    try:
        key = decode_private_key(_read(args.key), passphrase)
    except KeysError as exc:
        raise CliError(exc.code, f"{args.key}: {exc}") from None
    signed = sign_table(table, source, target, key)
    (args.out or args.file).write_bytes(signed.to_json_bytes())
    print(f"signed {table.id} v{table.version} with key {key.key_id}; {table.content_hash}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    source, target = _schemes(args.source, args.target)
    if args.grade not in source.grades:
        raise CliError(
            "UNKNOWN_GRADE",
            f"{source.key} has no grade {args.grade!r} ({', '.join(source.grades)})",
        )
    tables = list(published_tables())
    for path in args.tables:
        extra = table_from_document(_read(path))
        ends = _schemes(extra.source.scheme, extra.target.scheme)
        require_valid(extra, *ends)  # an extra table is checked before it is used
        verify_table(extra, _load_keys(args.keys), source=ends[0], target=ends[1])
        tables.append(extra)
    recognition = most_conservative(
        source,
        target,
        tables,
        today=args.today or date.today(),
        prefer_direct=not args.all_routes,
    )
    _, mapped, route = recognition.route_entry(args.grade)
    result: dict[str, Any] = {
        "source": source.key,
        "target": target.key,
        "grade": args.grade,
        "mapped_grade": mapped,
        "route": list(route.path),
        "tables": [
            {"id": i, "version": v, "content_hash": h, "method": m} for i, v, h, m in route.cite()
        ],
    }
    if args.score is not None:
        sm = map_score(source, target, args.score)
        if sm.source_grade != args.grade:
            raise CliError(
                "SCORE_GRADE_MISMATCH",
                f"score {args.score} is grade {sm.source_grade} in {source.key}, not {args.grade}",
            )
        result["score"] = {
            "score": sm.score,
            "target_score": sm.target_score,
            "target_grade": sm.target_grade,
            "target_interval": list(sm.target_interval),
            "source_interval": list(sm.source_interval),
            "capped_by": list(sm.capped_by),
        }
    unlocked = _unlocks(args.config, target.id, mapped)
    result["unlocks"] = unlocked.as_dict()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    hops = " -> ".join(route.path)
    shown = (
        grade_label(mapped, target)
        if mapped is not None
        else f"not recognised in {target.key} (below the incentive tier: no grade is carried)"
    )
    print(f"{grade_label(args.grade, source)}  ->  {shown}   (route {hops})")
    for i, v, h, m in route.cite():
        print(f"  table {i} v{v} [{m}] {h}")
    if args.score is not None:
        s = result["score"]
        lo, hi = s["target_interval"]
        slo, shi = s["source_interval"]
        caps = f", capped by {', '.join(s['capped_by'])}" if s["capped_by"] else ""
        print(
            f"score {args.score}  ->  {s['target_score']} in {target.key}: grade "
            f"{grade_label(s['target_grade'], target)}, {lo}-{hi}; source scores {slo}-{shi}"
            f" map to it{caps}"
        )
    print("\n".join(unlocked.lines()))
    return 0


def _unlocks(config: Path | None, scheme_id: str, grade: str | None) -> Unlocks:
    """What ``grade`` unlocks in ``scheme_id``'s catalogue (fetched by the node, or shipped)."""
    database = None
    if config is not None:
        try:
            database = load_config(config).storage
        except ConfigError as exc:
            raise CliError(exc.code, str(exc)) from None
    cat, origin = target_catalogue(scheme_id, database)
    return unlocks(cat, origin, grade)
