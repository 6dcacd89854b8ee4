"""A subject whose published grade misses a consent's scenario: the consent ends, silently to others.

When the published grade falls below a consent's scenario after the grant, the
relying party must not learn that the person falls short (H14, N14).  Invariants:

* consents end where the grade is PUBLISHED, never on a relying party's request:
  :func:`end_unmet_consents` runs inside the write unit that finishes a monthly run
  (every active consent) and inside the rights unit that appends a correction (the
  corrected person's), so by the time anyone asks, the consent is withdrawn exactly
  as by the citizen -- ``withdrawn_reason`` ``SCENARIO_NOT_MET``, the attestations
  issued under it revoked, the citizen notified, a ``consent_ended`` leaf that only
  the citizen's log query names;
* a later request meets a withdrawn consent: refused with
  :func:`node.exchange._consent.withdrawn_error`, one ``request_refused`` leaf, no status
  change -- the same effects as after a withdrawal;
* should a request still find a consent whose grade does not meet its scenario
  (:func:`meets_published` false, e.g. a table withdrawn since the run), it is
  refused with the withdrawn error and NOTHING is ended or revoked in that unit
  (fail closed; the next publication ends it), so the request's observable effects
  are a withdrawn consent's;
* a derived score's scenario (N18) is decided by the person's derived tier under
  the version in force, computed as the request path computes it
  (:func:`node.derived.derived_grade`, read only);
* the decision is the request path's own (:func:`meets_published`); a consent whose
  terms or mapping the scheme in force does not allow is left to the request
  path, which refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from keys import MappedGrade
from node.core._errors import NodeError
from node.derived._attest import derived_grade, is_derived
from node.derived._in_force import derived_terms
from node.disclosure._recognise import unrecognised_for_threshold, wanted_version
from node.disclosure._scenarios import Scenario, grade_in_scenario, request_terms
from node.exchange._mapping import Mapper
from node.store import Connection
from node.store._consents import end_consent, notify_subject
from node.store._monthly import published_entry, published_run
from node.store._translog import LogWrite
from node.store._unmet import active_consents
from scoring import Disclosure, Scheme

__all__ = ["REASON", "end_unmet_consent", "end_unmet_consents", "meets_published"]

REASON = "SCENARIO_NOT_MET"


def meets_published(
    scenario: Scenario, disclosure: Disclosure, home: Scheme, grade: str, mapped: MappedGrade | None
) -> bool:
    """Whether the published ``grade`` (``mapped`` into the scenario's scheme when it is
    another's) meets ``scenario`` under ``disclosure`` -- the one test of the request
    path and of publication."""
    if unrecognised_for_threshold(scenario.scheme_id, disclosure, home, grade):
        return False
    return scenario.meets(grade_in_scenario(scenario, home.id, grade, mapped))


def end_unmet_consent(
    conn: Connection,
    *,
    consent_id: str,
    subject_key: bytes,
    scenario: Scenario,
    audience: str,
    now: int,
) -> LogWrite:
    """Withdraw the consent as a withdrawal does and notify the citizen; the
    ``consent_ended`` entry for the caller to append in the same unit."""
    end_consent(conn, consent_id, now=now, reason=REASON)
    said = (
        f"{REASON}: your published grade is below tier ≥ {scenario.min_tier} in {scenario.scheme}"
    )
    notify_subject(
        conn,
        subject_key,
        "consent",
        f"{said}; your consent for {scenario.ref} ({scenario.title}) to {audience} ended. "
        f"{audience} was told only that the consent was withdrawn.",
        datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
    )
    return LogWrite(
        "consent_ended",
        now,
        subject_key,
        consent_id=consent_id,
        requester=audience,
        purpose=scenario.ref,
        reason=said,
    )


def end_unmet_consents(
    conn: Connection,
    *,
    home: Scheme,
    mapper: Mapper,
    today: date,
    now: int,
    subjects: Iterable[bytes] | None = None,
) -> list[LogWrite]:
    """Inside the unit that publishes or corrects grades: end every active consent of
    ``subjects`` (None: of everyone) whose published grade under ``home`` does not
    meet its scenario; the ``consent_ended`` entries to append in the same unit.
    A person without a published entry is left alone (nothing was published)."""
    run = published_run(conn, home.id, home.version, today)
    if run is None:
        return []
    rows = active_consents(conn, now, subjects)
    writes: list[LogWrite] = []
    at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    for consent_id, key, audience, purpose, scope in rows:
        key = bytes(key)
        entry = published_entry(conn, run.run_id, key)
        if entry is None or not entry.eligible or entry.grade is None:
            continue  # the request path refuses a person without a grade by name
        try:
            scenario, disclosure, target = request_terms(str(purpose), home, int(scope), "")
            if is_derived(scenario):
                scenario, _, derived = derived_terms(conn, str(purpose), home, int(scope), "")
                tier = derived_grade(
                    conn, key, home, derived, today=today, at=at, publish=False
                ).result.grade
                met = scenario.meets(tier or "")
            else:
                want = wanted_version(scenario, target)
                mapped = (
                    mapper.map(entry.grade, target, today, target_version=want, source=home)
                    if target
                    else None
                )
                met = meets_published(scenario, disclosure, home, entry.grade, mapped)
        except NodeError:
            continue  # terms or mapping refused: the request path refuses it
        if not met:
            writes.append(
                end_unmet_consent(
                    conn,
                    consent_id=str(consent_id),
                    subject_key=key,
                    scenario=scenario,
                    audience=str(audience),
                    now=now,
                )
            )
    return writes
