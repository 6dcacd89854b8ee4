"""Free text with an ID number in it is found however it is written, and refused naming
the field, never echoing it; ordinary numbers pass.

REQ: H6 (the ID number is the join key only), H17 (no ID in plain text at rest, on the
wire or in logs) — issue 14 item 3: the one check, ``node.core._freetext.contains_id_number``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core._errors import InvalidArgumentError
from node.core._freetext import contains_id_number, refuse_id_numbers
from node.demo._testbed import make_id_number
from scoring import check_character

ID = make_id_number(7)  # 231100198503120078
IDX = make_id_number(6)  # 23110019850312006X: check character X
WRONG = ID[:17] + ("1" if ID[17] != "1" else "2")

_SCRIPTS = {
    "ascii": "0123456789",
    "full-width": "０１２３４５６７８９",
    "arabic-indic": "٠١٢٣٤٥٦٧٨٩",
    "eastern-arabic-indic": "۰۱۲۳۴۵۶۷۸۹",
    "devanagari": "०१२३४५६७८९",
    "bengali": "০১২৩৪৫৬৭৮৯",
    "thai": "๐๑๒๓๔๕๖๗๘๙",
    "mathematical-bold": "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",
    "chinese-numerals": "〇一二三四五六七八九",
    # digits with a numeric or digit value but no decimal value, and the
    # characters written for digits that Unicode gives none
    "financial-numerals": "零壹贰叁肆伍陆柒捌玖",
    "financial-numerals-traditional": "零壹貳參肆伍陸柒捌玖",
    "white-circle-zero": "○一二三四五六七八九",
    "large-circle-zero": "◯一二三四五六七八九",
    "spoken-yao-liang": "〇幺两三四五六七八九",
    "negative-circled": "⓿❶❷❸❹❺❻❼❽❾",
    "circled": "⓪①②③④⑤⑥⑦⑧⑨",
    "dingbat-circled-sans-serif": "⓪➀➁➂➃➄➅➆➇➈",
    "parenthesised": "0⑴⑵⑶⑷⑸⑹⑺⑻⑼",
    "digit-full-stop": "0⒈⒉⒊⒋⒌⒍⒎⒏⒐",
    "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹",
}
_CHECK_X = ("X", "x", "Ｘ", "ｘ")


def _script(text: str, script: str) -> str:
    return text.translate(str.maketrans("0123456789", _SCRIPTS[script]))


def _join(text: str, sep: str, every: int = 1) -> str:
    return sep.join(text[i : i + every] for i in range(0, len(text), every))


def _id(born: date, area: str = "110101", seq: str = "123") -> str:
    first17 = f"{area}{born:%Y%m%d}{seq}"
    return first17 + check_character(first17)


# ------------------------------------------------------------------ disguises: found

FOUND = [
    pytest.param(ID, id="bare"),
    pytest.param(IDX, id="check-character-X"),
    pytest.param(IDX.lower(), id="check-character-lower-x"),
    pytest.param(f"r-{ID}-2025-001", id="between-text"),
    pytest.param("2024" + ID, id="prefix-digits"),
    pytest.param(ID + "2024", id="suffix-digits"),
    pytest.param("2024" + ID + "0001", id="inside-a-longer-run"),
    pytest.param("9" + ID, id="one-digit-before"),
    pytest.param(_join(ID, " ", 4), id="groups-of-4-spaces"),
    pytest.param(_join(ID, "-", 4), id="groups-of-4-dashes"),
    pytest.param(f"{ID[:6]} {ID[6:14]} {ID[14:]}", id="groups-6-8-4"),
    pytest.param(f"{ID[:6]}--{ID[6:14]} - {ID[14:]}", id="runs-of-separators"),
    pytest.param(_join(ID, "_"), id="underscores"),
    pytest.param(_join(ID, ".", 3), id="dots"),
    pytest.param(_join(ID, "-"), id="dashes"),
    pytest.param(_join(ID, "/", 6), id="slashes"),
    pytest.param(_join(ID, "\u200b"), id="zero-width-spaces"),
    pytest.param(_join(ID, "\u00ad", 2), id="soft-hyphens"),
    pytest.param(_join(ID, "\u2014", 3), id="em-dashes"),
    pytest.param(_join(ID, "·", 3), id="middle-dots"),
    pytest.param(_join(ID[:17], "(", 5) + ")" + ID[17], id="brackets"),
    pytest.param(f"{ID[:6]}\n{ID[6:14]}\t{ID[14:]}", id="line-breaks-and-tabs"),
    pytest.param(_join(ID, "+", 6), id="math-symbols"),
    pytest.param(_join(IDX[:17], " ") + " X", id="separated-check-character"),
    pytest.param(_script(ID, "full-width"), id="full-width-digits"),
    pytest.param(_join(_script(ID, "full-width"), "－", 4), id="full-width-dashes"),
    pytest.param(_join(_script(ID, "full-width"), "＿", 4), id="full-width-underscores"),
    pytest.param(_join(_script(ID, "full-width"), "．", 4), id="full-width-dots"),
    pytest.param(_join(ID, "\u3000", 6), id="ideographic-spaces"),
    pytest.param(_script(IDX[:17], "full-width") + "Ｘ", id="full-width-X"),
    pytest.param(_script(ID, "arabic-indic"), id="arabic-indic"),
    pytest.param(_script(ID, "eastern-arabic-indic"), id="eastern-arabic-indic"),
    pytest.param(_script(ID, "devanagari"), id="devanagari"),
    pytest.param(_script(ID, "bengali"), id="bengali"),
    pytest.param(_script(ID, "thai"), id="thai"),
    pytest.param(_script(ID, "mathematical-bold"), id="mathematical-bold"),
    pytest.param(_script(ID, "chinese-numerals"), id="chinese-numerals"),
    pytest.param(
        _script(ID[:6], "arabic-indic") + "-" + _script(ID[6:14], "devanagari") + ID[14:],
        id="mixed-scripts",
    ),
    pytest.param(
        "编号：" + _join(_script(ID, "full-width"), "・", 3) + "。", id="mixed-in-chinese-text"
    ),
    pytest.param("".join("①②③④⑤⑥⑦⑧⑨"[int(c) - 1] if c != "0" else "⓪" for c in ID), id="circled"),
    pytest.param(f"{ID}¼", id="nfkc-makes-a-digit-neighbour"),
    # numerals without a decimal value, characters written for digits
    pytest.param(_script(ID, "financial-numerals"), id="financial-numerals"),
    pytest.param(_script(IDX, "financial-numerals"), id="financial-numerals-check-X"),
    pytest.param(
        _script(ID, "financial-numerals-traditional"), id="financial-numerals-traditional"
    ),
    pytest.param(_script(ID, "white-circle-zero"), id="white-circle-for-zero"),
    pytest.param(_script(ID, "large-circle-zero"), id="large-circle-for-zero"),
    pytest.param(ID.replace("0", "○"), id="white-circle-zero-among-ascii"),
    pytest.param(_script(ID, "spoken-yao-liang"), id="yao-for-1-liang-for-2"),
    pytest.param(_script(ID, "negative-circled"), id="dingbat-negative-circled"),
    pytest.param(_script(ID, "dingbat-circled-sans-serif"), id="dingbat-circled-sans-serif"),
    pytest.param(_script(ID, "parenthesised"), id="parenthesised-digits"),
    pytest.param(_script(ID, "digit-full-stop"), id="digit-full-stops"),
    pytest.param(_script(ID, "superscript"), id="superscript-digits"),
    # invisible or blank-rendering code points between digits
    pytest.param(_join(ID, "\u3164"), id="hangul-filler"),
    pytest.param(_join(ID, "\u115f"), id="hangul-choseong-filler"),
    pytest.param(_join(ID, "\u1160"), id="hangul-jungseong-filler"),
    pytest.param(_join(ID, "\uffa0"), id="halfwidth-hangul-filler"),
    pytest.param(_join(ID, "\u2800"), id="braille-blank"),
    pytest.param(_join(ID, "\ufe0f"), id="variation-selector"),
    pytest.param(_join(ID, "\U000e0101"), id="variation-selector-supplement"),
    pytest.param(_join(ID, "\U000e0020"), id="tag-characters"),
    pytest.param(_join(ID, "\u2060"), id="word-joiner"),
    pytest.param(_join(ID, "\u034f"), id="combining-grapheme-joiner"),
    pytest.param(_join(ID, "\u20e3"), id="keycaps"),
    pytest.param(_join(ID, "\u180e"), id="mongolian-vowel-separator"),
    pytest.param(
        "身份证号" + _join(_script(IDX, "financial-numerals"), "\u3164", 3) + "。",
        id="financial-numerals-with-fillers-in-chinese-text",
    ),
]


@pytest.mark.parametrize("text", FOUND)
def test_an_id_number_is_found_however_it_is_written(text: str) -> None:
    """Issue 14 item 3: after NFKC, any decimal digit script as ASCII, separators between
    digits removed, any 17 digits + check character that are a valid GB 11643 number
    with a plausible birth date are an ID number, wherever they sit."""
    assert contains_id_number(text)


# ------------------------------------------------------------------ ordinary text: passes

NOT_FOUND = [
    pytest.param("", id="empty"),
    pytest.param("r-2025-000001", id="plain-reference"),
    pytest.param(ID[:17], id="17-digits"),
    pytest.param(WRONG, id="18-digits-bad-check-character"),
    pytest.param(_join(WRONG, " ", 4), id="bad-check-character-grouped"),
    pytest.param("110101199913450017", id="impossible-date-month-13"),
    pytest.param(_id(date(1899, 12, 31)), id="born-before-1900"),
    pytest.param(_id(datetime.now(UTC).date() + timedelta(days=400)), id="born-in-the-future"),
    pytest.param("0" + _id(date(1985, 3, 12))[1:], id="leading-zero"),
    pytest.param("13800138000 13912345678 15012345678", id="mobile-phone-numbers"),
    pytest.param("+86 10 6552 9988, +86 451 8888 6666", id="landline-numbers"),
    pytest.param("2026-01-05T12:34:56.789012Z", id="timestamp"),
    pytest.param("罚款 1,000,000.00 元，缴费单号 2024-0001", id="amounts-and-references"),
    pytest.param("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", id="sha256"),
    pytest.param("550e8400-e29b-41d4-a716-446655440000", id="uuid"),
    pytest.param(f"{ID[:6]}a{ID[6:14]}b{ID[14:]}", id="letters-break-a-run"),
    pytest.param("第一二三条", id="few-chinese-numerals"),
    # Chinese prose with numerals scattered in it never holds 18 in a row
    pytest.param(
        "二〇二六年十二月七日，第三次会议在五楼举行，共有四十二人参加。", id="chinese-date-in-prose"
    ),
    pytest.param("二○二六年十二月七日", id="chinese-date-white-circle"),
    pytest.param(
        "罚款壹拾贰万叁仟肆佰伍拾陆元整，限于二〇二六年一月五日前缴纳。",
        id="financial-amount-in-words",
    ),
    pytest.param(
        "一心一意，三心二意，七上八下，九九归一，四面八方，五湖四海。", id="idioms-with-numerals"
    ),
    pytest.param("幺三八〇〇幺三八〇〇〇", id="phone-number-read-aloud"),
    pytest.param("❶ 登记 ❷ 审核 ❸ 公示 ⑴ 受理 ⑵ 决定", id="numbered-list-markers"),
    pytest.param("\u3164".join("9f86d081884c7d65"), id="hex-digest-with-fillers"),
]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_ordinary_numbers_pass(text: str) -> None:
    """Issue 14 item 3, false-positive guard: phone numbers, amounts, digests, 18 digits
    with a bad check character or an impossible or implausible birth date pass."""
    assert not contains_id_number(text)


def test_refusal_names_the_field_and_not_the_text() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        refuse_id_numbers("records[3].record_id", f"{ID}-1")
    assert (err.value.code, err.value.field) == ("ID_NUMBER_IN_FIELD", "records[3].record_id")
    assert ID not in str(err.value)
    refuse_id_numbers("purpose", "loan")  # clean text passes


# ------------------------------------------------------------------ properties

_SEPARATORS = st.sampled_from(
    [
        *("", "", "", " ", "-", "_", ".", "/", "\u200b", "\u3000", "－", "＿", "．", "·", ", "),
        " - ",
        # invisible and blank-rendering code points
        *("\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\ufe0f", "\U000e0101"),
        *("\U000e0020", "\u2060", "\u034f", "\u20e3", "\u00ad", "\ufeff"),
    ]
)


@st.composite
def disguised_ids(draw: st.DrawFn) -> tuple[str, str]:
    """A valid ID number (any area, a birth date 1900-2020, any sequence) and the same
    number written digit by digit in random scripts with random separators between."""
    area = draw(st.integers(100_000, 999_999))
    born = draw(st.dates(date(1900, 1, 1), date(2020, 12, 31)))
    seq = draw(st.integers(0, 999))
    idn = _id(born, f"{area}", f"{seq:03d}")
    out = []
    for i, c in enumerate(idn):
        if i:
            out.append(draw(_SEPARATORS))
        if c == "X":
            out.append(draw(st.sampled_from(_CHECK_X)))
        else:
            out.append(_SCRIPTS[draw(st.sampled_from(sorted(_SCRIPTS)))][int(c)])
    return idn, "".join(out)


@settings(max_examples=300, deadline=None)
@given(disguised_ids(), st.text(max_size=8), st.text(max_size=8))
def test_any_disguised_id_anywhere_is_found(
    disguised: tuple[str, str], before: str, after: str
) -> None:
    """Issue 14 item 3, property: any valid ID, written in any mix of digit scripts with
    any separators, between any text (digits too), is found."""
    _, text = disguised
    assert contains_id_number(f"{before}{text}{after}")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[1-9][0-9]{16}", fullmatch=True), st.sampled_from("0123456789X"))
def test_eighteen_digits_with_a_wrong_check_character_pass(first17: str, check: str) -> None:
    """Issue 14 item 3, false-positive property: 18 characters whose check character does
    not match are never an ID number, however the date reads."""
    if check == check_character(first17):
        return
    assert not contains_id_number(first17 + check)
