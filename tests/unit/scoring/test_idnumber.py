"""GB 11643 ID numbers: MOD 11-2 check digit, birth date, normalisation (H6)."""

from __future__ import annotations

from datetime import date

import pytest

from scoring import RecordError, birth_date, check_character, normalise_id_number

from .conftest import make_id


def test_known_check_characters() -> None:
    # Published examples of GB 11643 (check digit X and a digit).
    assert check_character("11010519491231002") == "X"
    assert check_character("44052418800101001") == "4"


def test_normalise_accepts_lower_x_and_whitespace() -> None:
    assert normalise_id_number(" 11010519491231002x ") == "11010519491231002X"


def test_birth_date() -> None:
    assert birth_date(make_id(born=date(2008, 2, 29))) == date(2008, 2, 29)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param("11010519491231002", "18 characters", id="too-short"),
        pytest.param("11010519491231002XX", "18 characters", id="too-long"),
        pytest.param("1101051949123100AX", "digits", id="letter-in-body"),
        pytest.param("01010519491231002X", "digits", id="leading-zero"),
        pytest.param("110105194912310021", "check character does not match", id="wrong-check"),
        pytest.param("11010519491231002Y", "check character must be", id="bad-check-char"),
        pytest.param("110105194913310027", "birth date", id="month-13"),
        pytest.param("110105199902300020", "birth date", id="feb-30"),
        pytest.param(11010519491231002, "string", id="not-a-string"),
        pytest.param("１１０１０５１９４９１２３１００２X", "digits", id="fullwidth-digits"),
    ],
)
def test_invalid_id_numbers(value: object, fragment: str) -> None:
    with pytest.raises(RecordError) as info:
        normalise_id_number(value)
    assert info.value.code == "INVALID_ID_NUMBER"
    assert info.value.field == "subject_id"
    assert fragment in str(info.value)
    if isinstance(value, str):
        assert value.strip()[:17] not in str(info.value), "ID number leaked into the message"
