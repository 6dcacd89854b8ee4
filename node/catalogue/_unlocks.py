"""Which of a region's incentive scenarios a recognised grade unlocks (N20; docs/adr/0205).

Shared incentives: a grade recognised in another region (mapped by a table
into that region's scheme) unlocks the scenarios of that region's catalogue
whose qualifying grades include it.  The catalogue is the one the node fetched
from the region (peer sync, verified when stored) when it holds one of that
scheme, else the catalogue of the scheme file shipped with the software.

Invariants: a grade that is not recognised (``None``, below the source's
incentive tier in an incentive-tier table) unlocks nothing, and the output says
so; a catalogue of another scheme version than the mapped grade's is still
read by grade name (tiers are compared by the names the catalogue lists, never
by position), and the output names the catalogue's scheme version.
"""

from __future__ import annotations

from dataclasses import dataclass

from keys.pb.v1 import catalogue_pb2
from node.catalogue._held import held_catalogue
from node.catalogue._publish import catalogue_message
from node.catalogue._render import illustrative_note
from node.store._backend import Target
from scoring import Publication, build_catalogue, load_scheme

__all__ = ["Unlocks", "shipped_catalogue", "target_catalogue", "unlocks"]


@dataclass(frozen=True, slots=True)
class Unlocks:
    """The scenarios a (possibly unrecognised) grade unlocks in one catalogue."""

    catalogue: catalogue_pb2.Catalogue
    origin: str  # "fetched from <region>" | "shipped"
    grade: str | None  # None: not recognised
    scenarios: tuple[catalogue_pb2.CatalogueScenario, ...]

    def as_dict(self) -> dict[str, object]:
        cat = self.catalogue
        return {
            "catalogue": f"{cat.scheme_id}@{cat.scheme_version} {cat.version}",
            "origin": self.origin,
            "recognised": self.grade is not None,
            "scenarios": [s.ref for s in self.scenarios],
            "of": len(cat.scenarios),
        }

    def lines(self) -> list[str]:
        cat = self.catalogue
        head = f"{cat.scheme_id}@{cat.scheme_version} catalogue {cat.version}, {self.origin}"
        if self.grade is None:
            return [f"unlocks nothing in {cat.region}: the grade is not recognised there ({head})"]
        if not self.scenarios:
            return [
                f"unlocks none of {cat.region}'s {len(cat.scenarios)} incentive scenarios "
                f"with grade {self.grade} ({head})"
            ]
        out = [
            f"unlocks {len(self.scenarios)} of {cat.region}'s {len(cat.scenarios)} incentive "
            f"scenarios with grade {self.grade} ({head}):"
        ]
        note = illustrative_note(cat)
        if note:
            out.append(f"  {note}")
        out += [
            f"  {s.ref}  tier >= {s.min_grade}  {s.title} / {s.title_en}" for s in self.scenarios
        ]
        return out


def shipped_catalogue(scheme_id: str) -> catalogue_pb2.Catalogue:
    """The catalogue of the shipped scheme file (its own version and date, no guide)."""
    scheme = load_scheme(scheme_id)
    publication = Publication(scheme.version, scheme.effective)
    return catalogue_message(build_catalogue(scheme, scheme.region, publication))


def target_catalogue(
    scheme_id: str, database: Target | None
) -> tuple[catalogue_pb2.Catalogue, str]:
    """The catalogue of ``scheme_id`` to read: the fetched one if held, else the shipped."""
    held = None if database is None else held_catalogue(database, scheme_id)
    if held is not None:
        return held, f"fetched from {held.region}"
    return shipped_catalogue(scheme_id), "shipped"


def unlocks(cat: catalogue_pb2.Catalogue, origin: str, grade: str | None) -> Unlocks:
    """The scenarios of ``cat`` that ``grade`` qualifies for (none when not recognised)."""
    found = () if grade is None else tuple(s for s in cat.scenarios if grade in s.qualifying_grades)
    return Unlocks(cat, origin, grade, found)
