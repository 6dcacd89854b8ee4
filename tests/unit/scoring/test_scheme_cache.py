"""Shipped scheme files are parsed once and cached; text a caller hands in is not (issue 17)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from scoring import (
    SchemeError,
    list_derived,
    list_schemes,
    load_derived,
    load_scheme,
    parse_scheme_toml,
)
from scoring._labels import shipped_scheme


@pytest.mark.parametrize("scheme_id", list_schemes())
def test_two_loads_of_a_shipped_scheme_return_the_same_object(scheme_id: str) -> None:
    """Issue 17: a shipped scheme file is parsed once per process, not on every call."""
    first = load_scheme(scheme_id)
    assert load_scheme(scheme_id) is first
    assert shipped_scheme(scheme_id, first.version) is first


@pytest.mark.parametrize("derived_id", list_derived())
def test_two_loads_of_a_shipped_derived_score_return_the_same_object(derived_id: str) -> None:
    """Issue 17: a shipped derived score is parsed once when validated against the
    shipped base, and its base is the cached shipped scheme."""
    first = load_derived(derived_id)
    assert load_derived(derived_id) is first
    assert load_scheme(first.base_id) is load_scheme(first.base_id)


def test_a_derived_score_checked_against_a_callers_base_is_parsed_each_time() -> None:
    """Issue 17: ``load_derived(id, base)`` validates against the caller's scheme on
    every call; only the no-base form is cached."""
    derived_id = list_derived()[0]
    base = load_scheme(load_derived(derived_id).base_id)
    one, two = load_derived(derived_id, base), load_derived(derived_id, base)
    assert one is not two
    assert one == two


def test_an_unknown_scheme_is_refused_on_every_call() -> None:
    """Issue 17: a failure is not cached as an answer; it raises each time."""
    for _ in range(2):
        with pytest.raises(SchemeError) as err:
            load_scheme("atlantis")
        assert err.value.code == "UNKNOWN_SCHEME"


def test_a_modified_scheme_file_is_not_served_stale(tmp_path: Path) -> None:
    """Issue 17: callers that pass their own file (a candidate scheme named with
    ``--candidate FILE``) parse its text on every call, so an edit is seen at once,
    and the cached shipped scheme is untouched by it."""
    shipped = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    path = tmp_path / "candidate.toml"
    path.write_text(shipped, encoding="utf-8")
    first = parse_scheme_toml(path.read_text(encoding="utf-8"))
    assert first == load_scheme("heihe")
    assert first is not load_scheme("heihe")
    version_line = f'version = "{first.version}"'
    assert version_line in shipped
    path.write_text(shipped.replace(version_line, 'version = "2099.9"', 1), encoding="utf-8")
    second = parse_scheme_toml(path.read_text(encoding="utf-8"))
    assert second.version == "2099.9"
    assert load_scheme("heihe").version == first.version
