"""Fixtures for scoring tests: fixed ID numbers built with the real check digit."""

from __future__ import annotations

from datetime import date

import pytest

from scoring import Residence, Scheme, Subject, check_character, load_scheme


def make_id(region: str = "231102", born: date = date(1990, 5, 17), seq: str = "123") -> str:
    first17 = f"{region}{born:%Y%m%d}{seq}"
    return first17 + check_character(first17)


@pytest.fixture(scope="session")
def heihe() -> Scheme:
    return load_scheme("heihe")


@pytest.fixture(scope="session")
def hainan() -> Scheme:
    return load_scheme("hainan")


@pytest.fixture
def resident() -> Subject:
    return Subject(date(1990, 5, 17), (Residence("hukou", date(1990, 5, 17)),))
