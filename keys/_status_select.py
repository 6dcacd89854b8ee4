"""Which status list decides an attestation's status (docs/SPEC.md section 8).

A verifier may hold several status lists for the same issuer and list id: the
one its trust bundle carried when it was built, one fetched a minute ago, one
from last week.  The rule, applied by :func:`select_status_list` and by
nothing else:

1. every candidate is authenticated on its own (:func:`open_status_list`);
   one that fails is skipped and reported as a :class:`StatusWarning` with
   the failure's code (it cannot be told which list it claims to be);
2. of the authenticated lists, only those whose ``issuer_region`` and
   ``list_id`` are the attestation's count; one that is not in force at
   ``now`` (issued more than ``skew`` ahead: ``NOT_YET_VALID``; expired:
   ``EXPIRED``) is skipped with a warning;
3. of the rest, the one with the greatest ``issued_at`` decides, whatever the
   order of the candidates; two lists with that same ``issued_at`` whose
   entries differ decide nothing (``STATUS_UNAVAILABLE`` warning: the issuer
   said two things at once);
4. nothing left: no list (the verdict is then ``STATUS_UNAVAILABLE``).

So a list can only ever be outvoted by a newer authentic list of its issuer:
an older list cannot hide a revocation, a broken one cannot block a good one,
and a list dated in the future cannot pre-empt what the issuer says later.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keys.pb.v1 import attestation_pb2 as pb

from ._envelope import Envelope
from ._errors import VerificationError
from ._status import StatusList, open_status_list, status_list_problem
from ._timeutil import DEFAULT_SKEW_SECONDS, Instant, to_epoch
from ._trust import Trust

__all__ = ["StatusCandidate", "StatusPool", "StatusWarning", "select_status_list"]

#: A status list as a verifier may hold it: signed bytes or envelope (authenticated
#: here), or a :class:`StatusList` already returned by ``verify_status_list``.
StatusCandidate = StatusList | Envelope | bytes | pb.Envelope


@dataclass(frozen=True, slots=True)
class StatusWarning:
    """A candidate status list that was skipped: its position among the candidates,
    the reason code (one of ``keys.REASON_CODES``) and a message without personal data."""

    index: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"status list {self.index}: {self.code}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "code": self.code, "message": self.message}


def _as_list(status: StatusCandidate | Iterable[StatusCandidate]) -> list[StatusCandidate]:
    if isinstance(status, StatusList | Envelope | bytes | pb.Envelope):
        return [status]
    return list(status)


class StatusPool:
    """Candidates authenticated once (step 1), then selected per issuer and list id.

    Bulk verification selects once per (issuer, list id) for thousands of
    attestations; the selections are remembered for the ``now`` they were made at.
    """

    __slots__ = ("_chosen", "_failed", "_lists", "skew")

    def __init__(
        self,
        candidates: StatusCandidate | Iterable[StatusCandidate],
        trust: Trust,
        *,
        skew: int = DEFAULT_SKEW_SECONDS,
    ) -> None:
        self.skew = skew
        self._lists: list[tuple[int, StatusList]] = []
        self._failed: list[StatusWarning] = []
        self._chosen: dict[
            tuple[str, str, int], tuple[StatusList | None, tuple[StatusWarning, ...]]
        ]
        self._chosen = {}
        for i, c in enumerate(_as_list(candidates)):
            if isinstance(c, StatusList):
                self._lists.append((i, c))
                continue
            try:
                self._lists.append((i, open_status_list(c, trust)))
            except VerificationError as exc:
                self._failed.append(StatusWarning(i, exc.code, exc.message))

    def select(
        self, issuer: str, list_id: str, now: Instant
    ) -> tuple[StatusList | None, tuple[StatusWarning, ...]]:
        """Steps 2-4 of the module docstring: (the deciding list or None, warnings)."""
        t = to_epoch(now)
        key = (issuer, list_id, t)
        got = self._chosen.get(key)
        if got is None:
            got = self._chosen[key] = self._select(issuer, list_id, t)
        return got

    def _select(
        self, issuer: str, list_id: str, t: int
    ) -> tuple[StatusList | None, tuple[StatusWarning, ...]]:
        warnings = list(self._failed)
        usable: list[tuple[int, StatusList]] = []
        for i, sl in self._lists:
            if sl.issuer_region != issuer or sl.list_id != list_id:
                continue
            problem = status_list_problem(sl, t, self.skew)
            if problem is not None:
                warnings.append(StatusWarning(i, problem.code, problem.message))
            else:
                usable.append((i, sl))
        warnings.sort(key=lambda w: w.index)
        if not usable:
            return None, tuple(warnings)
        newest = max(sl.issued_at for _, sl in usable)
        top = [(i, sl) for i, sl in usable if sl.issued_at == newest]
        first = top[0][1]
        for i, sl in top[1:]:
            if sl.size != first.size or sl.raw_bits() != first.raw_bits():
                warnings.append(
                    StatusWarning(
                        i,
                        "STATUS_UNAVAILABLE",
                        "two different lists issued at the same time; neither decides",
                    )
                )
                return None, tuple(warnings)
        return first, tuple(warnings)


def select_status_list(
    candidates: StatusCandidate | Iterable[StatusCandidate],
    trust: Trust,
    issuer: str,
    list_id: str,
    now: Instant,
    *,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> tuple[StatusList | None, tuple[StatusWarning, ...]]:
    """The status list that decides for ``issuer``/``list_id`` at ``now`` (module
    docstring), or None when none is usable, and the warnings about skipped lists."""
    return StatusPool(candidates, trust, skew=skew).select(issuer, list_id, now)
