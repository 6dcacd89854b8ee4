"""The demo's synthetic population as the files its departments file with ``huxin source submit``.

``huxin demo`` never writes a node's database: the synthetic people of
:mod:`node.synthetic._population` become what a city's departments would hold — the
population authority's residence facts (CSV, ``--kind residence``) and each
record department's records (JSONL, ``--kind records``, docs/source-files.md)
— and the demo files them over mutual TLS with each department's own
certificate through :func:`node.cli._population.submit_file`, the library
behind ``huxin source submit``.

What the population authority files (ADR 0508): adults only (facts about a
minor are refused; the authority files them when they come of age), one
``move_in`` (hukou) or ``permit_issued`` fact per residence basis the person
holds and ``capacity_lost`` for those without full civil capacity.  People
who deregistered (H2) and visitors without a residence basis are not filed:
records about them are refused at intake (H7), as are records about minors.
Departments file the records as generated, each under its own name; the
market departments (bills, loans: H7, N4) first record the written collection
consent of each customer the registry holds.

Invariants: every file is owner-only (0600) in a 0700 directory and is
removed by :func:`remove_files` as soon as it is filed (the files hold ID
numbers in plain text, as a department's own files do; the node keeps them
sealed); everything is a function of the :class:`PopulationSpec` and the day
of filing (``today``).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TextIO

from node.monthly._batch import RecordRow as ScoringRow
from node.population._file import FACT_COLUMNS
from node.synthetic._population import PopulationSpec, chunk_rows
from node.synthetic._population import RecordRow as GeneratedRecord
from scoring import Residence, Scheme, Subject, birth_date, score, years_between

__all__ = [
    "AUTHORITY",
    "DEPARTMENT_NAMES",
    "STATED_USE",
    "DemoPopulation",
    "remove_files",
    "write_files",
]

AUTHORITY = "hukou"  # the population authority's organisation (REGION.hukou)
#: The generator's source name -> the department's organisation, where they differ
#: (``hainan.bank`` is the demo's integrator: Heihe's lending bank is another name).
_RENAMED = {"bank": "rural_bank"}
#: Every record department the generator may name (its sources, renamed).
DEPARTMENT_NAMES = (
    "civil_affairs", "civilisation_office", "court", "credit_office", "development_reform",
    "discipline_office", "education_bureau", "emergency_bureau", "financial_regulator",
    "health_commission", "market_regulator", "public_security", "rural_bank",
    "securities_regulator", "tax_bureau", "utility_company", "village_committee",
)  # fmt: skip
CANDIDATES = 50  # people kept per kind of candidate
STATED_USE = "credit information for the integrity score (H7): bills and loans"


@dataclass
class DemoPopulation:
    """The files written for one spec, and who is who (ID numbers stay in memory).

    ``no_records``: adults with a hukou here, full capacity and no record at all;
    ``below_base``: adults whose records, scored by the engine on ``as_of``, put them
    in the grade just below the base grade (Heihe: B, below the base A) — candidates
    the demo confirms by asking the node.
    """

    spec: PopulationSpec
    directory: Path
    residence: Path
    records: dict[str, Path] = field(default_factory=dict)  # department -> its file
    consents: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (ID, signed on)
    people: int = 0
    filed: int = 0  # adults the authority files
    facts: int = 0
    minors: int = 0
    not_filed: int = 0  # deregistered or without a residence basis here
    record_rows: int = 0
    no_records: list[str] = field(default_factory=list)
    below_base: list[str] = field(default_factory=list)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _open_private(path: Path) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _fact_rows(
    kind_rows: list[tuple[str, str]], capacity: int, as_of: date
) -> list[tuple[str, str, str]]:
    """(kind, residence_kind, on) of one adult's facts."""
    out: list[tuple[str, str, str]] = []
    for kind, since in kind_rows:
        if kind == "hukou":
            out.append(("move_in", "hukou", since))
        elif kind == "residence_permit":
            out.append(("permit_issued", "residence_permit", since))
        else:  # social_insurance, income_tax (Hainan, N1)
            out.append(("contribution_year", kind, since))
    if not capacity:
        out.append(("capacity_lost", "", as_of.isoformat()))
    return out


def _record_json(row: GeneratedRecord, id_number: str) -> dict[str, object]:
    (_key, rid, source, category, polarity, act, recognised, valid_until, level, severity,
     legal, status, provenance, flags, _batch, _at) = row  # fmt: skip
    doc: dict[str, object] = {
        "record_id": rid, "subject_id": id_number, "source": _RENAMED.get(source, source),
        "category": category, "polarity": polarity, "act_id": act,
        "recognised_on": recognised, "status": status, "provenance": provenance,
    }  # fmt: skip
    for name, value in (("valid_until", valid_until), ("level", level),
                        ("severity", severity), ("legal_document", legal)):  # fmt: skip
        if value:
            doc[name] = value
    if flags:
        doc["flags"] = [f for f in str(flags).split(",") if f]
    return doc


def _scored(row: GeneratedRecord) -> ScoringRow:
    (_key, rid, source, category, _pol, act, recognised, valid_until, level, severity,
     legal, status, _prov, flags, _batch, _at) = row  # fmt: skip
    return ScoringRow(
        rid, category, act, source, date.fromisoformat(recognised),
        date.fromisoformat(valid_until) if valid_until else None, level, severity, legal,
        status, frozenset(f for f in str(flags).split(",") if f),
    )  # fmt: skip


def write_files(
    spec: PopulationSpec, scheme: Scheme, directory: Path, today: date
) -> DemoPopulation:
    """Write the authority's and the departments' files for ``spec`` into ``directory``."""
    out = _private_dir(directory)
    pop = DemoPopulation(spec, out, out / "residents.csv", people=spec.people)
    adult_age = scheme.eligibility.min_age
    handles: dict[str, TextIO] = {}
    first_market: dict[tuple[str, str], str] = {}
    try:
        with _open_private(pop.residence) as fh:
            facts = csv.writer(fh)
            facts.writerow(FACT_COLUMNS)
            for by_key, (subjects, residences, records, _outcomes) in chunk_rows(spec, scheme):
                bases: dict[bytes, list[tuple[str, str]]] = {}
                for key, kind, since in residences:
                    bases.setdefault(key, []).append((kind, since))
                held: dict[bytes, list[GeneratedRecord]] = {}
                for row in records:
                    held.setdefault(row[0], []).append(row)
                filed: set[bytes] = set()
                for key, born, capacity, _sealed, _at, deregistered in subjects:
                    id_number = by_key[key]
                    if years_between(date.fromisoformat(born), today) < adult_age:
                        pop.minors += 1
                        continue
                    if deregistered is not None or key not in bases:
                        pop.not_filed += 1
                        continue
                    rows = _fact_rows(bases[key], capacity, spec.as_of)
                    for kind, residence_kind, on in rows:
                        facts.writerow((id_number, kind, residence_kind, on))
                    pop.filed += 1
                    pop.facts += len(rows)
                    filed.add(key)
                    _classify(pop, scheme, id_number, capacity, bases[key], held.get(key, []))
                for row in records:
                    name = _RENAMED.get(row[2], row[2])
                    if name not in handles:
                        path = out / f"records-{name}.jsonl"
                        handles[name] = _open_private(path)
                        pop.records[name] = path
                    handles[name].write(
                        json.dumps(_record_json(row, by_key[row[0]]), ensure_ascii=False) + "\n"
                    )
                    pop.record_rows += 1
                    if row[12] == "market" and row[0] in filed:
                        slot = (name, by_key[row[0]])
                        first_market[slot] = min(first_market.get(slot, row[6]), row[6])
    finally:
        for h in handles.values():
            h.close()
    for (name, id_number), signed_on in sorted(first_market.items()):
        pop.consents.setdefault(name, []).append((id_number, signed_on))
    return pop


def _classify(  # noqa: PLR0917 - one person's generated rows
    pop: DemoPopulation,
    scheme: Scheme,
    id_number: str,
    capacity: int,
    bases: list[tuple[str, str]],
    records: list[GeneratedRecord],
) -> None:
    """Note a filed adult as a no-record or a below-base candidate (engine on ``as_of``)."""
    as_of = pop.spec.as_of
    if not records:
        local = capacity and any(k == "hukou" for k, _ in bases)
        adult = years_between(birth_date(id_number), as_of) >= scheme.eligibility.min_age
        if local and adult and len(pop.no_records) < CANDIDATES:
            pop.no_records.append(id_number)
        return
    if len(pop.below_base) >= CANDIDATES or not capacity:
        return
    subject = Subject(
        birth_date(id_number), tuple(Residence(k, date.fromisoformat(s)) for k, s in bases)
    )
    result = score(subject, [_scored(r) for r in records], scheme, as_of, explain=False)
    below = scheme.grades[scheme.grades.index(scheme.base_grade) + 1]
    if result.eligible and result.grade == below:
        pop.below_base.append(id_number)


def remove_files(pop: DemoPopulation) -> None:
    """Remove the files once filed: the node holds the ID numbers sealed only."""
    for path in (pop.residence, *pop.records.values()):
        path.unlink(missing_ok=True)
