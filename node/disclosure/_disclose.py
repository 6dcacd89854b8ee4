"""What an attestation carries under a consent's disclosure, and the citizen's preview.

Invariants:

* :func:`disclosed` is the ONE place that decides which of grade, score and
  mapped grade an attestation carries: a threshold attestation carries neither
  grade nor score and names a mapping without its grade (H12: "in principle
  only grade and score", and by default not even those); every consented
  attestation names its scenario, its disclosure kind and the scenario's
  requirement (``threshold``);
* :func:`preview` lists exactly the attestation fields the relying party will
  see, computed by running :func:`disclosed` on a template attestation, so the
  preview and the attestation cannot drift apart; it stores, signs and logs
  nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.protobuf.message import Message

from keys import Attestation, MappedGrade
from node.disclosure._scenarios import Scenario
from node.pb.v1 import node_pb2
from scoring import Disclosure

__all__ = ["disclosed", "field_paths", "preview", "withheld_fields"]

#: every field a consented attestation may carry that says something about the person
_PERSONAL = ("grade", "score", "mapped.grade")


def disclosed(
    scenario: Scenario,
    disclosure: Disclosure,
    *,
    grade: str,
    score: int | None,
    mapped: MappedGrade | None,
) -> dict[str, Any]:
    """The disclosure fields of an :class:`keys.Attestation` (keyword arguments)."""
    if disclosure is Disclosure.THRESHOLD:
        grade, score = "", None
        mapped = None if mapped is None else replace(mapped, grade="")
    elif disclosure is Disclosure.GRADE:
        score = None
    return {
        "grade": grade,
        "score": score,
        "mapped": mapped,
        "scenario": scenario.ref,
        "disclosure": disclosure.value,
        "threshold": scenario.threshold,
    }


def field_paths(message: Message, prefix: str = "") -> list[str]:
    """Dotted paths of the fields set in ``message`` (sub-messages expanded), sorted."""
    out: list[str] = []
    for desc, value in message.ListFields():
        path = prefix + desc.name
        if isinstance(value, Message):
            out.extend(field_paths(value, path + "."))
        else:
            out.append(path)
    return sorted(out)


def _template(
    scenario: Scenario, disclosure: Disclosure, audience: str, mapping: MappedGrade | None
) -> Attestation:
    """An attestation as the relying party would get it, with placeholder values."""
    return Attestation(
        attestation_id="-",
        issuer_region="-",
        scheme_id="-",
        scheme_version="-",
        period="2000-01",
        model_version="-",
        issued_at=1,
        expires_at=2,
        subject_binding=b"\x01" * 32,
        consent_id="-",
        consent_sha256=b"\x01" * 32,
        audience=audience,
        purpose=scenario.ref,
        nonce=b"\x01",
        status_list_id="-",
        status_index=1,
        **disclosed(scenario, disclosure, grade="-", score=1, mapped=mapping),
    )


def withheld_fields(disclosed_paths: list[str], mapping: MappedGrade | None) -> list[str]:
    """The personal fields (grade, score, mapped grade) the relying party never sees."""
    candidates = _PERSONAL if mapping is not None else _PERSONAL[:2]
    return [p for p in candidates if p not in disclosed_paths]


def preview(
    scenario: Scenario,
    disclosure: Disclosure,
    *,
    audience: str,
    not_after: int,
    max_uses: int,
    mapping: MappedGrade | None,
) -> node_pb2.ConsentPreview:
    """What a consent for ``scenario`` lets ``audience`` see (docs/adr/0512)."""
    shown = field_paths(_template(scenario, disclosure, audience, mapping).to_proto())
    what = {
        Disclosure.THRESHOLD: "only that you meet it, not your grade or score",
        Disclosure.GRADE: "your grade, not your score",
        Disclosure.GRADE_AND_SCORE: "your grade and your score",
    }[disclosure]
    via = "" if mapping is None else f", your grade mapped by {mapping.mapping_id}"
    return node_pb2.ConsentPreview(
        scenario=scenario.ref,
        title=scenario.title,
        scheme_id=scenario.scheme_id,
        scheme_version=scenario.scheme_version,
        min_tier=scenario.min_tier,
        disclosure=disclosure.value,
        allowed_disclosure=scenario.allowed.value,
        disclosed_fields=shown,
        withheld_fields=withheld_fields(shown, mapping),
        audience=audience,
        not_after=not_after,
        max_uses=max_uses,
        mapping="" if mapping is None else f"{mapping.mapping_id}@{mapping.mapping_version}",
        statement=(
            f"{audience} will learn, for {scenario.title} ({scenario.ref}: tier ≥ "
            f"{scenario.min_tier} in {scenario.scheme}{via}): {what}"
        ),
    )
