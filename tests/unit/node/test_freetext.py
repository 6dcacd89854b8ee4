"""Free text with an ID number in it is refused, naming the field, never echoing it (review5 H3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node._errors import InvalidArgumentError
from node._freetext import contains_id_number, refuse_id_numbers
from node._testbed import make_id_number

ID = make_id_number(7)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param(ID, True, id="bare"),
        pytest.param(f"{ID}-2025-001", True, id="record-id-prefix"),
        pytest.param(f"batch-{ID}", True, id="suffix"),
        pytest.param(f"act {ID.lower()} x", True, id="lower-x-or-digit"),
        pytest.param("r-2025-000001", False, id="plain-reference"),
        pytest.param(ID[:17], False, id="17-digits"),
        pytest.param("9" + ID, False, id="inside-a-longer-run"),
        pytest.param(ID[:17] + ("0" if ID[17] != "0" else "1"), False, id="wrong-check-char"),
        pytest.param("110101199913450017", False, id="impossible-date"),
        pytest.param("", False, id="empty"),
        pytest.param(
            ID.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")),
            True,
            id="full-width",
        ),  # review6 M3
        pytest.param(f"{ID[:6]} {ID[6:14]} {ID[14:]}", True, id="grouped-spaces"),
        pytest.param(f"{ID[:6]}-{ID[6:14]}-{ID[14:]}", True, id="grouped-hyphens"),
        pytest.param(f"{ID[:6]}--{ID[6:14]}-{ID[14:]}", False, id="two-separators"),
        pytest.param(f"{ID}¼", True, id="nfkc-makes-a-digit-neighbour"),  # hypothesis found it
    ],
)
def test_contains_id_number(text: str, found: bool) -> None:
    assert contains_id_number(text) is found


def test_refusal_names_the_field_and_not_the_text() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        refuse_id_numbers("records[3].record_id", f"{ID}-1")
    assert (err.value.code, err.value.field) == ("ID_NUMBER_IN_FIELD", "records[3].record_id")
    assert ID not in str(err.value)
    refuse_id_numbers("purpose", "loan")  # clean text passes


@settings(max_examples=60)
@given(st.integers(1, 10**6), st.text(max_size=8), st.text(max_size=8))
def test_any_valid_id_anywhere_is_found(n: int, before: str, after: str) -> None:
    """Property: a valid ID number between any non-digit text is always found."""
    idn = make_id_number(n)
    if before[-1:].isdigit() or after[:1].isdigit():
        return
    assert contains_id_number(f"{before}{idn}{after}")
