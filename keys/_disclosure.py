"""What an attestation may disclose, and the scenario catalogue a verifier trusts.

A consented attestation names the incentive scenario its consent was granted for
(``scenario`` = ``"<scheme id>/<scenario id>"``), its disclosure kind and the
scenario's requirement (``threshold``: scheme, version, minimum tier) that the
subject meets.  The kinds, from least to most (docs/SPEC.md section 3):

* ``threshold`` -- "meets the scenario": NEITHER grade NOR score, and a mapped
  grade only as the mapping's name (its ``grade`` empty);
* ``grade`` -- the grade (and the mapped grade), no score;
* ``grade_and_score`` -- grade and score (H12: "in principle only grade and score");
* ``statutory`` -- not a consented disclosure: a monthly snapshot leaf pushed to
  the provincial hub (H13), with grade and score, no consent, no scenario, the
  purpose :data:`STATUTORY_PURPOSE` and the hub as its audience.

Invariants:

* :func:`disclosure_problem` is the one rule of which fields each kind carries;
  the issuer refuses to serialise an attestation that breaks it
  (``Attestation.check``) and the verifier refuses one (``DISCLOSURE_MISMATCH``);
  a consented attestation's ``purpose`` IS its ``scenario`` (the consent was
  granted for that scenario and no other use), a statutory one's is
  :data:`STATUTORY_PURPOSE`;
* a statutory attestation is accepted only when addressed to the hub of the
  verifier's trust material (``Trust.issuer``): grade and score go to the
  provincial platform, never to a relying party (``DISCLOSURE_MISMATCH``,
  field ``audience``) -- :func:`disclosure_verdict`;
* a consented attestation is accepted only when its scenario, at the version its
  threshold names, is in the :class:`ScenarioCatalogue` the verifier was given,
  with the same minimum tier (``SCENARIO_NOT_TRUSTED``; no catalogue at all is
  the same refusal) and a disclosure no greater than the catalogue allows
  (``DISCLOSURE_NOT_ALLOWED``) -- :func:`scenario_problem`;
* a derived score's scenario (docs/adr/0006) is listed with its ``base``
  (``"<scheme id>@<version>"``): its attestation names the derived score as its
  scheme (``scheme_id``/``scheme_version`` = the threshold's), and is accepted
  only when its ``model_version`` IS that base and, where the trust list names
  the region's schemes, the base is one of them (:func:`scheme_listed`);
* the catalogue is trust material signed by the hub root key (type
  :data:`SCENARIOS_TYPE`, carried in ``TrustBundle.scenarios``), canonically
  encoded, its entries well formed, sorted and unique; anything else is
  ``TRUST_INVALID`` when the bundle is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from keys.pb.v1 import attestation_pb2 as pb

from ._ed25519 import KeyPair, key_id
from ._envelope import Envelope, sign, verified_signer
from ._errors import VerificationError
from ._strict import parse_signed
from ._timeutil import Instant, to_epoch

__all__ = [
    "CONSENTED_KINDS",
    "DISCLOSURE_KINDS",
    "GRADE",
    "GRADE_AND_SCORE",
    "SCENARIOS_TYPE",
    "SCENARIO_MAX",
    "STATUTORY",
    "STATUTORY_PURPOSE",
    "THRESHOLD",
    "ScenarioCatalogue",
    "Threshold",
    "TrustedScenario",
    "disclosure_problem",
    "disclosure_rank",
    "disclosure_verdict",
    "scenario_problem",
    "scenario_scheme",
    "scheme_listed",
    "verify_scenario_catalogue",
]

THRESHOLD, GRADE, GRADE_AND_SCORE, STATUTORY = "threshold", "grade", "grade_and_score", "statutory"
#: consented kinds, least to most
CONSENTED_KINDS = (THRESHOLD, GRADE, GRADE_AND_SCORE)
DISCLOSURE_KINDS = (*CONSENTED_KINDS, STATUTORY)
#: the purpose of every statutory attestation (node.monthly._snapshots builds them with it)
STATUTORY_PURPOSE = "provincial-push"
SCENARIOS_TYPE = "application/vnd.huxin.scenarios.v1+proto"
#: a scenario reference: at most 96 characters, ``<scheme id>/<scenario id>``
SCENARIO_MAX = 96
_SCENARIO = re.compile(r"^([a-z][a-z0-9_-]{0,31})/[a-z][a-z0-9-]{0,62}$")
#: a derived score's base: ``<scheme id>@<version>``, at most 65 characters
_BASE = re.compile(r"^[a-z][a-z0-9_-]{0,31}@[0-9A-Za-z._-]{1,32}$")
_TIER_MAX = 32
_TITLE_MAX = 256
CATALOGUE_MAX = 4096  # scenarios in one catalogue


def disclosure_rank(kind: str) -> int:
    """0 for ``threshold`` .. 2 for ``grade_and_score``; -1 for anything else."""
    return CONSENTED_KINDS.index(kind) if kind in CONSENTED_KINDS else -1


def scenario_scheme(scenario: str) -> str | None:
    """The scheme id of a well-formed scenario reference, else None."""
    if len(scenario) > SCENARIO_MAX:
        return None
    m = _SCENARIO.match(scenario)
    return None if m is None else m.group(1)


@dataclass(frozen=True, slots=True)
class Threshold:
    """The scenario's requirement: a grade of ``min_tier`` or better in the scheme."""

    scheme_id: str
    scheme_version: str
    min_tier: str

    @property
    def scheme(self) -> str:
        return f"{self.scheme_id}@{self.scheme_version}"


def disclosure_problem(att: pb.Attestation) -> tuple[str, str] | None:
    """``(field, message)`` when the fields contradict the disclosure kind, else None."""
    kind = att.disclosure
    has_score = att.HasField("score")
    mapped = att.mapped if att.HasField("mapped") else None
    if kind == STATUTORY:
        if att.consent_id or att.scenario or att.HasField("threshold"):
            return "disclosure", "a statutory push names no consent and no scenario"
        if att.purpose != STATUTORY_PURPOSE:
            return "purpose", f"a statutory push has the purpose {STATUTORY_PURPOSE!r}"
        return ("grade", "a statutory push carries the grade") if not att.grade else None
    if kind not in CONSENTED_KINDS:
        return "disclosure", "must be threshold, grade, grade_and_score or statutory"
    if not att.consent_id:
        return "consent_id", "a consented disclosure names its consent"
    scheme = scenario_scheme(att.scenario)
    if scheme is None:
        return "scenario", "must be '<scheme id>/<scenario id>' (at most 96 characters)"
    if att.purpose != att.scenario:
        return "purpose", "a consented disclosure's purpose is its scenario"
    th = att.threshold
    if not att.HasField("threshold") or th.scheme_id != scheme:
        return "threshold", "must name the scenario's scheme"
    if not th.scheme_version or not th.min_tier:
        return "threshold", "must name the scheme version and the minimum tier"
    if th.scheme_id != att.scheme_id and (
        mapped is None
        or (mapped.scheme_id, mapped.scheme_version) != (th.scheme_id, th.scheme_version)
    ):
        return "mapped", "a scenario of another scheme is met by the grade mapped into it"
    if th.scheme_id == att.scheme_id and th.scheme_version != att.scheme_version:
        # a tier of one version says nothing about a grade of another (issue 16, H13)
        return "threshold", "a scenario of the attestation's own scheme is met at its version"
    if kind == THRESHOLD:
        if att.grade:
            return "grade", "a threshold attestation carries no grade"
        if has_score:
            return "score", "a threshold attestation carries no score"
        if mapped is not None and mapped.grade:
            return "mapped.grade", "a threshold attestation carries no mapped grade"
        return None
    if not att.grade:
        return "grade", "a grade disclosure carries the grade"
    if has_score != (kind == GRADE_AND_SCORE):
        return "score", "only a grade_and_score disclosure carries the score"
    if mapped is not None and not mapped.grade:
        return "mapped.grade", "a grade disclosure carries the mapped grade"
    return None


@dataclass(frozen=True, slots=True)
class TrustedScenario:
    """One catalogue scenario at one scheme version, as the verifier trusts it."""

    scenario: str
    scheme_version: str
    min_tier: str
    disclosure: str
    title: str = ""
    base: str = ""  # a derived score's base scheme "<id>@<version>"; "" for a scheme's own

    def problem(self) -> str | None:
        if scenario_scheme(self.scenario) is None:
            return "scenario must be '<scheme id>/<scenario id>'"
        if not 0 < len(self.scheme_version) <= _TIER_MAX or not 0 < len(self.min_tier) <= _TIER_MAX:
            return "scheme_version and min_tier are 1-32 characters"
        if self.disclosure not in CONSENTED_KINDS:
            return "disclosure must be threshold, grade or grade_and_score"
        if self.base and not _BASE.match(self.base):
            return "base must be '<scheme id>@<version>'"
        return None if len(self.title) <= _TITLE_MAX else "title of at most 256 characters"

    @property
    def key(self) -> tuple[str, str]:
        return self.scenario, self.scheme_version


@dataclass(frozen=True)
class ScenarioCatalogue:
    """The scenarios a verifier accepts (hub-signed trust material, docs/SPEC.md section 6)."""

    issuer: str
    issued_at: int
    scenarios: tuple[TrustedScenario, ...]
    _index: Mapping[tuple[str, str], TrustedScenario] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index = {s.key: s for s in self.scenarios}
        bad = next((p for p in map(TrustedScenario.problem, self.scenarios) if p), None)
        if bad or len(index) != len(self.scenarios) or len(index) > CATALOGUE_MAX:
            raise VerificationError(
                "TRUST_INVALID",
                f"scenario catalogue: {bad or 'duplicated scenario, or more than 4096'}",
                field="scenarios",
            )
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(
        cls, issuer: str, issued_at: Instant, scenarios: Iterable[TrustedScenario]
    ) -> ScenarioCatalogue:
        """A catalogue with its entries in canonical (sorted) order."""
        ordered = tuple(sorted(scenarios, key=lambda s: s.key))
        return cls(issuer, to_epoch(issued_at, field="issued_at"), ordered)

    def find(self, scenario: str, scheme_version: str) -> TrustedScenario | None:
        return self._index.get((scenario, scheme_version))

    def to_bytes(self) -> bytes:
        return pb.ScenarioCatalogue(
            issuer=self.issuer,
            issued_at=self.issued_at,
            scenarios=[
                pb.TrustedScenario(
                    scenario=s.scenario,
                    scheme_version=s.scheme_version,
                    min_tier=s.min_tier,
                    disclosure=s.disclosure,
                    title=s.title,
                    base=s.base,
                )
                for s in self.scenarios
            ],
        ).SerializeToString(deterministic=True)

    def sign(self, hub_root: KeyPair) -> Envelope:
        return sign(SCENARIOS_TYPE, self.to_bytes(), hub_root)

    @classmethod
    def from_bytes(cls, data: bytes) -> ScenarioCatalogue:
        """Parse signed catalogue bytes: canonical encoding, sorted unique entries."""
        m = parse_signed(pb.ScenarioCatalogue, data, "TRUST_INVALID", "scenarios", "catalogue")
        entries = tuple(
            TrustedScenario(s.scenario, s.scheme_version, s.min_tier, s.disclosure, s.title, s.base)
            for s in m.scenarios
        )
        if list(entries) != sorted(entries, key=lambda s: s.key):
            raise VerificationError(
                "TRUST_INVALID", "scenario catalogue is not sorted", field="scenarios"
            )
        return cls(m.issuer, m.issued_at, entries)


def verify_scenario_catalogue(
    envelope: Envelope | bytes | pb.Envelope, hub_root_public_key: bytes, issuer: str
) -> ScenarioCatalogue:
    """The catalogue, once its hub signature holds and it names ``issuer`` (the trust
    list's hub); ``TRUST_INVALID`` otherwise."""
    keys = {key_id(hub_root_public_key): bytes(hub_root_public_key)}
    try:
        payload, _ = verified_signer(envelope, keys, SCENARIOS_TYPE)
    except VerificationError as exc:
        raise VerificationError(
            "TRUST_INVALID", f"scenario catalogue signature: {exc.code}", field="scenarios"
        ) from None
    catalogue = ScenarioCatalogue.from_bytes(payload)
    if catalogue.issuer != issuer:
        raise VerificationError(
            "TRUST_INVALID", "scenario catalogue of another hub", field="scenarios"
        )
    return catalogue


def scenario_problem(
    att: pb.Attestation, catalogue: ScenarioCatalogue | None
) -> tuple[str, str, str] | None:
    """``(code, field, message)`` when a consented attestation's scenario is not one the
    verifier trusts, or discloses more than it allows; None otherwise (statutory too).
    Call after :func:`disclosure_problem` held."""
    if att.disclosure == STATUTORY:
        return None
    if catalogue is None:
        return "SCENARIO_NOT_TRUSTED", "scenario", "the trust material holds no scenario catalogue"
    entry = catalogue.find(att.scenario, att.threshold.scheme_version)
    if entry is None:
        return "SCENARIO_NOT_TRUSTED", "scenario", "scenario not in the trusted catalogue"
    if entry.base and (att.model_version != entry.base or att.scheme_id != att.threshold.scheme_id):
        return (
            "SCENARIO_NOT_TRUSTED",
            "model_version",
            f"a derived score's attestation names its base {entry.base} as model_version",
        )
    if entry.min_tier != att.threshold.min_tier:
        return "SCENARIO_NOT_TRUSTED", "threshold.min_tier", "tier differs from the catalogue's"
    if disclosure_rank(att.disclosure) > disclosure_rank(entry.disclosure):
        return (
            "DISCLOSURE_NOT_ALLOWED",
            "disclosure",
            f"the scenario allows at most {entry.disclosure}",
        )
    return None


def scheme_listed(
    att: pb.Attestation, schemes: frozenset[str], catalogue: ScenarioCatalogue | None
) -> bool:
    """Whether the trust list lets the region issue in ``att``'s scheme: it names no
    schemes, it names this one, or ``att`` is a derived score's (its catalogue entry has
    a ``base``) whose base, named as ``model_version``, is one the region's listed."""
    if not schemes or f"{att.scheme_id}@{att.scheme_version}" in schemes:
        return True
    entry = None if catalogue is None else catalogue.find(att.scenario, att.scheme_version)
    return (
        entry is not None
        and bool(entry.base)
        and entry.base == att.model_version
        and entry.base in schemes
        and att.scheme_id == scenario_scheme(att.scenario)
    )


def disclosure_verdict(
    att: pb.Attestation, catalogue: ScenarioCatalogue | None, hub: str
) -> tuple[str, str, str] | None:
    """``(code, field, message)`` of the first disclosure check that fails, else None.

    ``hub`` is the hub of the verifier's trust material (``Trust.issuer``), the only
    audience a statutory push may have."""
    bad = disclosure_problem(att)
    if bad is not None:
        return "DISCLOSURE_MISMATCH", bad[0], bad[1]
    if att.disclosure == STATUTORY and (not hub or att.audience != hub):
        return "DISCLOSURE_MISMATCH", "audience", "a statutory push is addressed to the hub"
    return scenario_problem(att, catalogue)
