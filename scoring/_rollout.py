"""Model rollout (H11, N12): evaluate → trial → active, with an effective date.

A candidate scheme version is evaluated against the current one (grade
distribution, population stability index, tier moves — computed by the batch
job), then run on trial (shadow-scored next to the current version, its
differences reported but never published), then made active from a stated
effective date.  Attestations name the version that produced them, which is
:meth:`Rollout.version_on` for the scoring date.

Rules (each refusal is a :class:`RolloutError` naming the field):

* a trial needs an evaluation whose PSI is at most ``max_psi`` unless the
  operator explicitly accepts the shift (``accept_shift=True`` is recorded);
* activation needs at least ``min_trial_days`` of trial and an effective date
  not before the activation day;
* H11: where ``min_auc`` or ``min_ks`` is configured, activation also needs an
  evaluation whose discrimination against a later outcome
  (:func:`scoring.discrimination`) reaches it; an evaluation without outcome
  measures is refused then; likewise ``max_monthly_psi`` against the
  candidate's largest month-to-month PSI (stability over months).  A
  candidate failing a threshold is refused with code ``ROLLOUT_THRESHOLD``,
  the field naming the measure (``evaluation.auc``, ``evaluation.ks``,
  ``evaluation.monthly_psi``) and the message its value against the threshold;
* the candidate must differ from the current version and belong to the same scheme;
* N12: :meth:`Rollout.revision_due` is true when the active version has been in
  force for a year or more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date

from ._errors import ScoringError
from ._scheme import Scheme, add_months

__all__ = ["MAX_PSI_BOUND", "THRESHOLD_CODE", "Evaluation", "Rollout", "RolloutError", "Stage"]

THRESHOLD_CODE = "ROLLOUT_THRESHOLD"
MAX_PSI_BOUND = 10.0  # a PSI above this means a different population; no sane threshold


class RolloutError(ScoringError):
    code = "INVALID_ROLLOUT"


class Stage(enum.StrEnum):
    CURRENT_ONLY = "current_only"
    EVALUATED = "evaluated"
    TRIAL = "trial"
    SCHEDULED = "scheduled"  # activated with an effective date in the future


@dataclass(frozen=True)
class Evaluation:
    """What the batch evaluation found; ``auc``/``ks`` are None without outcome labels,
    ``monthly_psi`` (the candidate's largest PSI between consecutive month-end grade
    distributions) None without a month series."""

    candidate_version: str
    psi: float
    people: int
    moved_up: int
    moved_down: int
    auc: float | None = None
    ks: float | None = None
    monthly_psi: float | None = None


@dataclass(frozen=True)
class Rollout:
    scheme_id: str
    current_version: str
    current_since: date
    stage: Stage = Stage.CURRENT_ONLY
    candidate_version: str | None = None
    evaluation: Evaluation | None = None
    shift_accepted: bool = False
    trial_started: date | None = None
    effective: date | None = None
    max_psi: float = 0.25
    min_trial_days: int = 30
    min_auc: float | None = None  # H11: no threshold unless configured
    min_ks: float | None = None
    max_monthly_psi: float | None = None  # H11 stability: no threshold unless configured

    def __post_init__(self) -> None:
        for name in ("min_auc", "min_ks"):
            floor = getattr(self, name)
            if floor is not None and not 0.0 <= floor <= 1.0:
                raise RolloutError(name, f"must be between 0 and 1, not {floor}")
        ceiling = self.max_monthly_psi
        if ceiling is not None and not 0.0 <= ceiling <= MAX_PSI_BOUND:
            raise RolloutError(
                "max_monthly_psi", f"must be between 0 and {MAX_PSI_BOUND}, not {ceiling}"
            )

    @classmethod
    def start(cls, scheme: Scheme) -> Rollout:
        return cls(scheme.id, scheme.version, scheme.effective)

    def evaluate(self, candidate: Scheme, evaluation: Evaluation) -> Rollout:
        if candidate.id != self.scheme_id:
            raise RolloutError("candidate.id", f"{candidate.id!r} is not scheme {self.scheme_id!r}")
        if candidate.version == self.current_version:
            raise RolloutError("candidate.version", "is the current version")
        if evaluation.candidate_version != candidate.version:
            raise RolloutError("evaluation.candidate_version", "does not match the candidate")
        if evaluation.people <= 0:
            raise RolloutError("evaluation.people", "an evaluation needs a population")
        return replace(
            self,
            stage=Stage.EVALUATED,
            candidate_version=candidate.version,
            evaluation=evaluation,
            shift_accepted=False,
            trial_started=None,
            effective=None,
        )

    def start_trial(self, today: date, *, accept_shift: bool = False) -> Rollout:
        if self.stage is not Stage.EVALUATED or self.evaluation is None:
            raise RolloutError(
                "stage", f"a trial needs an evaluated candidate (stage is {self.stage})"
            )
        if self.evaluation.psi > self.max_psi and not accept_shift:
            raise RolloutError(
                "evaluation.psi",
                f"PSI {self.evaluation.psi:.3f} exceeds {self.max_psi}; "
                "re-evaluate or accept the shift explicitly",
            )
        return replace(self, stage=Stage.TRIAL, trial_started=today, shift_accepted=accept_shift)

    def activate(self, today: date, effective: date) -> Rollout:
        if self.stage is not Stage.TRIAL or self.trial_started is None:
            raise RolloutError(
                "stage", f"only a candidate on trial can be activated (stage is {self.stage})"
            )
        trial_days = (today - self.trial_started).days
        if trial_days < self.min_trial_days:
            raise RolloutError(
                "trial_started",
                f"trial ran {trial_days} days; at least {self.min_trial_days} required",
            )
        if effective < today:
            raise RolloutError("effective", f"{effective} is before today ({today})")
        self._check_discrimination()
        return replace(self, stage=Stage.SCHEDULED, effective=effective)

    def _check_discrimination(self) -> None:
        """H11: a candidate below a configured AUC or KS threshold, or less stable over
        months than ``max_monthly_psi`` allows, is never activated."""
        ev = self.evaluation
        for name, floor in (("auc", self.min_auc), ("ks", self.min_ks)):
            if floor is None:
                continue
            value = None if ev is None else getattr(ev, name)
            if value is None:
                raise RolloutError(
                    f"evaluation.{name}",
                    f"a {name.upper()} of at least {floor} is required and the evaluation has none "
                    "(no outcome labels)",
                    code=THRESHOLD_CODE,
                )
            if value < floor:
                raise RolloutError(
                    f"evaluation.{name}",
                    f"{name.upper()} {value:.3f} is below the minimum {floor}",
                    code=THRESHOLD_CODE,
                )
        ceiling = self.max_monthly_psi
        if ceiling is None:
            return
        psi = None if ev is None else ev.monthly_psi
        if psi is None:
            raise RolloutError(
                "evaluation.monthly_psi",
                f"a month-to-month PSI of at most {ceiling} is required and the evaluation has "
                "none (no month series)",
                code=THRESHOLD_CODE,
            )
        if psi > ceiling:
            raise RolloutError(
                "evaluation.monthly_psi",
                f"month-to-month PSI {psi:.3f} exceeds the maximum {ceiling}",
                code=THRESHOLD_CODE,
            )

    def version_on(self, day: date) -> str:
        """The version that scores (and is named in attestations) on ``day``."""
        if self.stage is Stage.SCHEDULED and self.effective is not None and day >= self.effective:
            assert self.candidate_version is not None
            return self.candidate_version
        return self.current_version

    def shadow_version(self, day: date) -> str | None:
        """The version shadow-scored on ``day`` (trial), never published."""
        if self.stage is Stage.TRIAL:
            return self.candidate_version
        return None

    def settle(self, day: date) -> Rollout:
        """Once the effective date has passed, the candidate becomes the current version."""
        if self.stage is Stage.SCHEDULED and self.effective is not None and day >= self.effective:
            assert self.candidate_version is not None
            return Rollout(
                self.scheme_id,
                self.candidate_version,
                self.effective,
                max_psi=self.max_psi,
                min_trial_days=self.min_trial_days,
                min_auc=self.min_auc,
                min_ks=self.min_ks,
                max_monthly_psi=self.max_monthly_psi,
            )
        return self

    def revision_due(self, day: date) -> bool:
        """N12: the indicator system is revised yearly."""
        return day >= add_months(self.current_since, 12)
