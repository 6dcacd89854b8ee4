"""How a grade is printed: with its scheme, and marked when the scheme's grades are ours.

A grade means something only against the scheme's tiers and base score.  Where
a region has published neither (Hainan's measures give no range, base or tiers;
``scoring/schemes/hainan.toml`` lists them in ``illustrative``), the tiers the
engine uses are illustrative, and every printed grade of that scheme says so:
``B (hainan@2025.1, illustrative: Hainan has published neither tiers nor base)``.

Invariants: :func:`illustrative_note` is the one rule deciding the mark (a
scheme whose ``illustrative`` list names ``tiers`` or ``base_score``); every
printer (the demo, ``huxin verify``, ``huxin score explain``, ``huxin score
run``, ``huxin mapping``) formats through :func:`grade_label` or
:func:`illustrative_suffix`.  Pure: only the schemes shipped in this package are
read, once each.
"""

from __future__ import annotations

from functools import lru_cache

from ._derived import list_derived, load_derived
from ._errors import SchemeError
from ._scheme import Scheme, list_schemes, load_scheme

__all__ = ["grade_label", "illustrative_note", "illustrative_suffix", "shipped_scheme"]

#: The fields whose being illustrative makes the scheme's grades illustrative.
_GRADE_FIELDS = ("tiers", "base_score")


def illustrative_note(scheme: Scheme) -> str:
    """``''`` when the region published the scheme's tiers and base score, else why not,
    e.g. ``illustrative: Hainan has published neither tiers nor base``."""
    ours = [f for f in _GRADE_FIELDS if f in scheme.illustrative]
    if not ours:
        return ""
    region = scheme.region.title()
    if len(ours) == len(_GRADE_FIELDS):
        return f"illustrative: {region} has published neither tiers nor base"
    what = "its tiers" if ours == ["tiers"] else "its base score"
    return f"illustrative: {region} has not published {what}"


def grade_label(grade: str, scheme: Scheme) -> str:
    """``A (heihe@2025.1)``; ``B (hainan@2025.1, illustrative: …)`` (see the module)."""
    note = illustrative_note(scheme)
    return f"{grade} ({scheme.key}{', ' + note if note else ''})"


@lru_cache(maxsize=16)
def _derived_note(derived_id: str, version: str) -> str:
    """The note of a shipped derived score (N18) whose tiers or weights are ours."""
    if derived_id not in list_derived():
        return ""
    try:
        derived = load_derived(derived_id)
    except SchemeError:
        return ""
    ours = [f for f in ("tiers", "weights", "base_score") if f in derived.illustrative]
    if derived.version != version or not ours:
        return ""
    return f"illustrative: the derived score's {', '.join(ours)} are ours, not published"


@lru_cache(maxsize=64)
def shipped_scheme(scheme_id: str, version: str) -> Scheme | None:
    """The shipped scheme ``scheme_id`` if its version is ``version``, else None (a
    scheme this package does not carry: nothing is known about its tiers)."""
    if scheme_id not in list_schemes():
        return None
    try:
        scheme = load_scheme(scheme_id)
    except SchemeError:
        return None
    return scheme if scheme.version == version else None


def illustrative_suffix(*keys: str | None) -> str:
    """For a printer that holds scheme keys (``id@version``) only: ``''``, or one
    `` [<key> grades are illustrative: …]`` per distinct key whose grades are
    illustrative (:func:`illustrative_note`, or a shipped derived score's own
    ``illustrative`` list); empty or None keys are skipped."""
    out = []
    for key in dict.fromkeys(k for k in keys if k):
        scheme_id, _, version = key.partition("@")
        scheme = shipped_scheme(scheme_id, version)
        note = illustrative_note(scheme) if scheme is not None else ""
        note = note or _derived_note(scheme_id, version)
        if note:
            out.append(f" [{key} grades are {note}]")
    return "".join(out)
