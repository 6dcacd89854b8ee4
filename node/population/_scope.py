"""Record intake's scope check: records only about people the scheme covers (H7, H1, N1).

With ``[sources] require_registry = true`` a record batch is refused whole
(per-record reasons, nothing stored) when a record is about a person who is
not in scope on the intake day:

* ``SUBJECT_MINOR``: under the scheme's minimum age (from the ID number);
* ``SUBJECT_NOT_REGISTERED``: the population registry does not hold them
  (a non-resident, or a resident the authority has not filed yet);
* ``SUBJECT_DECEASED`` / ``SUBJECT_NOT_RESIDENT``: the registry recorded a
  death, or every residence the person held has ended.

Minimal and necessary collection (H7): such a record would be stored "for
later" about someone the scheme does not score.  Nodes configured before the
registry keep ``require_registry = false`` and accept as before (their people
exist through their records).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from node.population._facts import FactProblem
from node.population._registry import registry_state
from node.store import Connection
from scoring import CreditRecord, Scheme, birth_date, years_between

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["person_scope_problem", "scope_problems"]

_SERVED_CODES = ("SUBJECT_DECEASED", "SUBJECT_NOT_RESIDENT")


def _registry_problems(
    conn: Connection, keys: Sequence[bytes], today: date
) -> dict[bytes, tuple[str, str]]:
    out: dict[bytes, tuple[str, str]] = {}
    for key in set(keys):
        state = registry_state(conn, key)
        if state is None:
            out[key] = (
                "SUBJECT_NOT_REGISTERED",
                "the population registry does not hold this person; the population "
                "authority files them first (H1, H7, N1)",
            )
        elif state.died_on is not None and state.died_on <= today:
            out[key] = ("SUBJECT_DECEASED", "the population authority recorded a death")
        elif not state.current and state.ended:
            out[key] = ("SUBJECT_NOT_RESIDENT", "the person no longer holds a residence here")
    return out


async def scope_problems(
    ctx: NodeContext, records: Sequence[CreditRecord], scheme: Scheme, today: date
) -> list[FactProblem]:
    """Per-record problems (index, record id, field, code, message) of records about
    people out of scope; empty when every record may be stored."""
    problems: list[FactProblem] = []
    minimum = scheme.eligibility.min_age
    keys = [ctx.records.key_of(r.subject_id) for r in records]
    checked: list[int] = []
    for i, r in enumerate(records):
        if years_between(birth_date(r.subject_id), today) < minimum:
            problems.append(
                (i, r.record_id, "subject_id", "SUBJECT_MINOR",
                 f"under {minimum}: not a subject of the scheme, nothing is collected (H1, H7)")
            )  # fmt: skip
        else:
            checked.append(i)
    wanted = [keys[i] for i in checked]
    found = await ctx.db.read_unit(lambda conn: _registry_problems(conn, wanted, today))
    for i in checked:
        why = found.get(keys[i])
        if why is not None:
            problems.append((i, records[i].record_id, "subject_id", why[0], why[1]))
    problems.sort(key=lambda p: p[0])
    return problems


async def person_scope_problem(
    ctx: NodeContext, id_number: str, scheme: Scheme, today: date
) -> tuple[str, str] | None:
    """(code, message) when one person is out of scope (the checks of
    :func:`scope_problems`), e.g. before a collection consent would store them."""
    minimum = scheme.eligibility.min_age
    if years_between(birth_date(id_number), today) < minimum:
        return "SUBJECT_MINOR", f"under {minimum}: not a subject of the scheme (H1, H7)"
    key = ctx.records.key_of(id_number)
    found = await ctx.db.read_unit(lambda conn: _registry_problems(conn, [key], today))
    return found.get(key)
