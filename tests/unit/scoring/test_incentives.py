"""Incentive catalogues: incentives only, never punishment or gated basic services.

Issue 15 §2: the catalogue validator refuses any scenario that restricts a basic public
service or a legal right, or that serves punishment (H14, N14); the shipped catalogues
hold every measure of Heihe's section 四 (H14) and Hainan's 第十八条/第二十一条 (N16,
N19), published with what the relying party may see (H12, N17).
"""

from __future__ import annotations

from typing import Any

import pytest

from scoring import (
    Disclosure,
    IncentiveEffect,
    SchemeError,
    list_schemes,
    load_scheme,
    parse_incentives,
    parse_scheme_toml,
)
from scoring._incentives import INCENTIVES_MAX, punitive_word

HEIHE_GRADES = load_scheme("heihe").grades

# Heihe plan, section 四: every measure a relying party can name, by scenario id.
HEIHE_MEASURES = {
    "四(一)1 绿色通道、容缺受理": ["gov-fast-lane"],
    "四(一)2 财政补贴、政策支持、项目扶持": ["subsidy-priority"],
    "四(一)3 招聘录用、职务晋升、评先评优": [
        "hiring-priority",
        "promotion-priority",
        "commendation-priority",
    ],
    "四(一)4 公共交通减免或折扣": ["transit-discount"],
    "四(一)5 媒体推介、荣誉评选": ["media-recognition", "honour-selection"],
    "四(二)1 信用贷款……减免保险费用": ["credit-loans", "insurance-discount"],
    "四(二)2 旅游、交通、医疗便民优惠": [
        "tourism-benefits",
        "transport-benefits",
        "medical-pay-later",
    ],
    "四(二)3 医疗绿色通道、先治疗后付费": ["medical-pay-later"],
    "四(二)4 图书、应急日用品免押金、延长租借": ["deposit-free-rental", "rental-extension"],
    "四(二)5 住宿减免押金、延迟退房": ["hotel-deposit-waiver", "hotel-late-checkout"],
    "四(二)6 机动车服务减免或折扣": ["vehicle-services-discount"],
    "四(二)7 经营主体其他惠民激励": ["merchant-offers"],
}
# Hainan measures, 第十八条 (N16) and 第二十一条 (N19).
HAINAN_MEASURES = {
    "第十八条(一) 绿色通道、容缺受理、程序简化": ["fast-lane"],
    "第十八条(二) 媒体推介、荣誉评选": ["media-recognition", "honours"],
    "第十八条(三) 财政性资金、招商引资": ["funding-priority", "investment-incentives"],
    "第十八条(四) 孵化基地、优秀创业项目": ["incubator-priority", "startup-selection"],
    "第二十一条 金融信贷、诚信积分信用卡": ["bank-credit", "integrity-credit-card"],
}


def test_heihe_catalogue_has_every_measure_of_section_four_all_from_a() -> None:
    """Issue 15 §2, H14: Heihe's section 四 measures are all scenarios, each for A and above
    (对A级及以上自然人); the catch-alls (四(一)6, 四(二)8, 四(三)) name none."""
    scheme = load_scheme("heihe")
    ids = [i.id for i in scheme.incentives]
    wanted = {sid for sids in HEIHE_MEASURES.values() for sid in sids}
    assert set(ids) == wanted
    assert len(ids) == len(wanted) == 19
    assert {i.min_grade for i in scheme.incentives} == {"A"}
    by_id = {i.id: i for i in scheme.incentives}
    # what other parts of the product rely on (consents, attestations)
    assert by_id["credit-loans"].disclosure is Disclosure.GRADE_AND_SCORE
    assert by_id["gov-fast-lane"].basic_public_service
    assert {i.id for i in scheme.incentives if i.disclosure is not Disclosure.THRESHOLD} == {
        "credit-loans"
    }


def test_hainan_catalogue_has_every_named_measure_and_marks_its_tiers_illustrative() -> None:
    """Issue 15 §2, N16, N19: Hainan's 第十八条 and 第二十一条 measures are scenarios; their
    tiers are ours and the scheme says so."""
    scheme = load_scheme("hainan")
    wanted = {sid for sids in HAINAN_MEASURES.values() for sid in sids}
    assert {i.id for i in scheme.incentives} == wanted
    assert "incentives.*.min_grade" in scheme.illustrative
    by_id = {i.id: i for i in scheme.incentives}
    assert (by_id["bank-credit"].min_grade, by_id["bank-credit"].disclosure) == (
        "AA",
        Disclosure.THRESHOLD,
    )
    assert by_id["fast-lane"].basic_public_service


@pytest.mark.parametrize("scheme_id", list_schemes())
def test_every_shipped_catalogue_offers_incentives_only(scheme_id: str) -> None:
    """H14, N14: every shipped scenario is at or above the incentive tier, basic public
    services only faster and told only the threshold, and no wording reads as a penalty."""
    scheme = load_scheme(scheme_id)
    assert scheme.incentives
    for entry in scheme.incentives:
        assert scheme.is_incentive_grade(entry.min_grade)
        if entry.basic_public_service:
            assert entry.effect is IncentiveEffect.FAST_LANE
            assert entry.disclosure is Disclosure.THRESHOLD
        for text in (entry.id, entry.title, entry.title_en, entry.provider):
            assert punitive_word(text) is None, text
        assert entry.title_en and entry.provider


def _entry(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "x",
        "title": "优惠",
        "title_en": "an offer",
        "sector": "commerce",
        "effect": "discount",
        "min_grade": "A",
        "provider": "商户",
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


_PUNISH = "reads as a punishment or restriction; the score is for incentives only (H14, N14)"
_BASIC_FASTER = (
    "a basic public service may only be made faster for high grades (fast_lane), "
    "never conditioned on a grade (H14, N14)"
)
_BASIC_SECTOR = (
    "must be true: %s is a basic public service, only ever made faster (fast_lane) and told "
    "only the threshold (H14, N14)"
)
_EFFECTS = "fast_lane, priority, discount, deposit_waiver, credit_terms, recognition, convenience"


@pytest.mark.parametrize(
    ("entries", "field", "message"),
    [
        # punishment, in English ...
        pytest.param([_entry(effect="deny_service")], "incentives[0].effect",
                     f"'deny' {_PUNISH}", id="en-deny-effect"),
        pytest.param([_entry(effect="surcharge")], "incentives[0].effect",
                     f"'surcharge' {_PUNISH}", id="en-surcharge-effect"),
        pytest.param([_entry(id="blacklist-check")], "incentives[0].id",
                     f"'blacklist' {_PUNISH}", id="en-blacklist-id"),
        pytest.param([_entry(title_en="Housing subsidy refused below B")],
                     "incentives[0].title_en", f"'refused' {_PUNISH}", id="en-refused-title"),
        pytest.param([_entry(title_en="Travel BAN for low grades")], "incentives[0].title_en",
                     f"'ban' {_PUNISH}", id="en-ban-title"),
        pytest.param([_entry(title_en="Restricted access to hospitals")],
                     "incentives[0].title_en", f"'restricted' {_PUNISH}", id="en-restricted"),
        pytest.param([_entry(provider="penalty office")], "incentives[0].provider",
                     f"'penalty' {_PUNISH}", id="en-penalty-provider"),
        pytest.param([_entry(title_en="Denying housing to low grades")], "incentives[0].title_en",
                     f"'denying' {_PUNISH}", id="en-denying"),
        pytest.param([_entry(id="denyhousing-check")], "incentives[0].id",
                     f"'denyhousing' {_PUNISH}", id="en-denyhousing-id"),
        pytest.param([_entry(id="blocklist-check")], "incentives[0].id",
                     f"'blocklist' {_PUNISH}", id="en-blocklist-id"),
        pytest.param([_entry(title_en="Debarment from tenders")], "incentives[0].title_en",
                     f"'debarment' {_PUNISH}", id="en-debarment"),
        pytest.param([_entry(id="evict-tenant")], "incentives[0].id",
                     f"'evict' {_PUNISH}", id="en-evict-id"),
        pytest.param([_entry(id="decline-loan")], "incentives[0].id",
                     f"'decline' {_PUNISH}", id="en-decline-id"),
        pytest.param([_entry(id="downgrade-rate")], "incentives[0].id",
                     f"'downgrade' {_PUNISH}", id="en-downgrade-id"),
        pytest.param([_entry(title_en="Freeze accounts of low grades")], "incentives[0].title_en",
                     f"'freeze' {_PUNISH}", id="en-freeze"),
        # ... and in Chinese
        pytest.param([_entry(title="限制乘坐高铁")], "incentives[0].title",
                     f"'限制' {_PUNISH}", id="zh-restrict"),
        pytest.param([_entry(title="禁止入住酒店")], "incentives[0].title",
                     f"'禁止' {_PUNISH}", id="zh-forbid"),
        pytest.param([_entry(title="拒绝办理住房补贴")], "incentives[0].title",
                     f"'拒绝' {_PUNISH}", id="zh-refuse"),
        pytest.param([_entry(title="低分不予贷款")], "incentives[0].title",
                     f"'不予' {_PUNISH}", id="zh-not-granted"),
        pytest.param([_entry(title="取消补贴资格")], "incentives[0].title",
                     f"'取消' {_PUNISH}", id="zh-cancel"),
        pytest.param([_entry(title="失信联合惩戒")], "incentives[0].title",
                     f"'惩戒' {_PUNISH}", id="zh-joint-punishment"),
        pytest.param([_entry(title="黑名单查询")], "incentives[0].title",
                     f"'黑名单' {_PUNISH}", id="zh-blacklist"),
        pytest.param([_entry(title="失信人员核查")], "incentives[0].title",
                     f"'失信' {_PUNISH}", id="zh-dishonest"),
        pytest.param([_entry(title="行政处罚加重")], "incentives[0].title",
                     f"'处罚' {_PUNISH}", id="zh-penalty"),
        pytest.param([_entry(title="扣减补贴")], "incentives[0].title",
                     f"'扣减' {_PUNISH}", id="zh-deduct"),
        pytest.param([_entry(provider="从严审核部门")], "incentives[0].provider",
                     f"'从严' {_PUNISH}", id="zh-stricter-scrutiny"),
        pytest.param([_entry(title="限高消费")], "incentives[0].title",
                     f"'限高' {_PUNISH}", id="zh-limit-high-spending"),
        pytest.param([_entry(title="限贷审核")], "incentives[0].title",
                     f"'限贷' {_PUNISH}", id="zh-limit-loans"),
        pytest.param([_entry(title="拒贷名单")], "incentives[0].title",
                     f"'拒贷' {_PUNISH}", id="zh-refuse-loans"),
        pytest.param([_entry(title="冻结账户")], "incentives[0].title",
                     f"'冻结' {_PUNISH}", id="zh-freeze"),
        pytest.param([_entry(title="不准入住")], "incentives[0].title",
                     f"'不准' {_PUNISH}", id="zh-not-allowed"),
        pytest.param([_entry(title="停发补贴")], "incentives[0].title",
                     f"'停发' {_PUNISH}", id="zh-stop-paying"),
        pytest.param([_entry(title="排除投标")], "incentives[0].title",
                     f"'排除' {_PUNISH}", id="zh-exclude"),
        # structural: a basic public service only made faster, told only the threshold
        pytest.param([_entry(basic_public_service=True, effect="discount")],
                     "incentives[0].effect", _BASIC_FASTER, id="basic-service-discount"),
        pytest.param([_entry(basic_public_service=True, effect="priority")],
                     "incentives[0].effect", _BASIC_FASTER, id="basic-service-priority"),
        pytest.param([_entry(basic_public_service=True, effect="fast_lane", disclosure="grade")],
                     "incentives[0].disclosure",
                     "a basic public service learns only that the tier is met (threshold) "
                     "(H12, H14)", id="basic-service-told-the-grade"),
        pytest.param([_entry(sector="government_services", effect="fast_lane")],
                     "incentives[0].basic_public_service", _BASIC_SECTOR % "government_services",
                     id="government-services-not-marked-basic"),
        pytest.param([_entry(sector="healthcare", effect="fast_lane",
                             basic_public_service=False)],
                     "incentives[0].basic_public_service", _BASIC_SECTOR % "healthcare",
                     id="healthcare-marked-not-basic"),
        pytest.param([_entry(sector="healthcare", effect="discount")],
                     "incentives[0].basic_public_service", _BASIC_SECTOR % "healthcare",
                     id="healthcare-discount"),
        pytest.param([_entry(basic_public_service="yes")], "incentives[0].basic_public_service",
                     "must be true or false", id="basic-not-boolean"),
        # tiers
        pytest.param([_entry(min_grade="B")], "incentives[0].min_grade",
                     "B is below the incentive tier A (H14)", id="below-incentive-tier"),
        pytest.param([_entry(min_grade="D")], "incentives[0].min_grade",
                     "D is below the incentive tier A (H14)", id="grade-d"),
        pytest.param([_entry(min_grade="Z")], "incentives[0].min_grade",
                     "'Z' is not a grade of this scheme", id="unknown-grade"),
        pytest.param([_entry(min_grade=None)], "incentives[0].min_grade",
                     "None is not a grade of this scheme", id="no-grade"),
        # kinds the catalogue does not know
        pytest.param([_entry(disclosure="everything")], "incentives[0].disclosure",
                     "must be one of threshold, grade, grade_and_score", id="unknown-disclosure"),
        pytest.param([_entry(effect="teleport")], "incentives[0].effect",
                     f"must be one of {_EFFECTS}", id="unknown-effect"),
        pytest.param([_entry(sector="police")], "incentives[0].sector",
                     "must be one of government_services, public_funding, employment, honours, "
                     "media, transport, finance, insurance, tourism, healthcare, rental, "
                     "hospitality, vehicles, entrepreneurship, commerce", id="unknown-sector"),
        pytest.param([_entry(domain="police")], "incentives[0].domain",
                     "must be one of public_service, market, other", id="unknown-domain"),
        pytest.param([_entry(min_grde="A")], "incentives[0].min_grde",
                     "is not a field of a catalogue entry", id="unknown-field"),
        # ids
        pytest.param([_entry(), _entry()], "incentives[1].id", "'x' is listed twice",
                     id="duplicate-id"),
        pytest.param([_entry(id="Credit Loans")], "incentives[0].id",
                     "must be 1-63 lower-case letters, digits and '-'", id="malformed-id"),
        pytest.param([_entry(id="x" * 64)], "incentives[0].id",
                     "must be 1-63 lower-case letters, digits and '-'", id="id-too-long"),
        # strings: required and bounded
        pytest.param([_entry(title="")], "incentives[0].title",
                     "is required (a non-empty string)", id="no-title"),
        pytest.param([_entry(title_en=None)], "incentives[0].title_en",
                     "is required (a non-empty string)", id="no-title-en"),
        pytest.param([_entry(provider=" ")], "incentives[0].provider",
                     "is required (a non-empty string)", id="blank-provider"),
        pytest.param([_entry(title="优" * 65)], "incentives[0].title",
                     "must be at most 64 characters", id="title-too-long"),
        pytest.param([_entry(title_en="a" * 161)], "incentives[0].title_en",
                     "must be at most 160 characters", id="title-en-too-long"),
        pytest.param([_entry(provider="商" * 121)], "incentives[0].provider",
                     "must be at most 120 characters", id="provider-too-long"),
        pytest.param([_entry(id=f"s{i}") for i in range(INCENTIVES_MAX + 1)], "incentives",
                     "must list at most 64 scenarios", id="too-many-scenarios"),
        pytest.param(["gov-fast-lane"], "incentives[0]", "must be a table", id="not-a-table"),
    ],
)  # fmt: skip
def test_refused_entries(entries: list[Any], field: str, message: str) -> None:
    """Issue 15 §2 (H14, N14): each bad entry is refused with its exact path and reason."""
    with pytest.raises(SchemeError) as info:
        parse_incentives(entries, HEIHE_GRADES, "A")
    assert (info.value.field, info.value.message, info.value.code) == (
        field,
        message,
        "INVALID_SCHEME",
    )


@pytest.mark.parametrize(
    "title_en",
    [
        pytest.param("Urban bank offers", id="urban-bank"),
        pytest.param("Exclusive credit card", id="exclusive"),
        pytest.param("Late checkout", id="late-checkout"),
        pytest.param("Deposit-free rentals", id="deposit-free"),
        pytest.param("Banquet hall discount", id="banquet"),
        pytest.param("Blockchain invoice fast lane", id="blockchain"),
        pytest.param("Unlimited library loans", id="unlimited"),
        pytest.param("Evening classes", id="evening-not-evict"),
        pytest.param("Preferential loan rate", id="preferential"),
        pytest.param("Limousine transfer discount", id="limousine-not-limit"),
    ],
)
def test_ordinary_words_are_not_mistaken_for_punishment(title_en: str) -> None:
    """Issue 15 §2 (H14, N14): words that contain a punitive stem inside them ('urban',
    'bank', 'exclusive', 'blockchain', 'unlimited') or only begin like one are accepted."""
    (entry,) = parse_incentives([_entry(title_en=title_en)], HEIHE_GRADES, "A")
    assert entry.title_en == title_en


def test_a_scheme_with_a_punitive_scenario_does_not_load() -> None:
    """Issue 15 §2, H14: the refusal happens when the scheme loads, naming the entry."""
    from importlib import resources

    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    bad = text + (
        '\n[[incentives]]\nid = "housing-check"\ntitle = "低等级不予住房补贴"\n'
        'title_en = "Housing subsidy check"\nsector = "public_funding"\neffect = "priority"\n'
        'min_grade = "A"\nprovider = "住建部门"\n'
    )
    with pytest.raises(SchemeError) as info:
        parse_scheme_toml(bad)
    assert info.value.field == "incentives[19].title"
    assert info.value.message == f"'不予' {_PUNISH}"


@pytest.mark.parametrize(
    "title",
    [
        pytest.param("限时优惠", id="limited-time-offer"),
        pytest.param("信用贷款利率优惠", id="credit-loan-rate"),
        pytest.param("免押金租借", id="deposit-free"),
        pytest.param("高铁出行优惠", id="high-speed-rail"),
    ],
)
def test_ordinary_chinese_titles_are_not_mistaken_for_punishment(title: str) -> None:
    """Issue 15 §2 (H14, N14): Chinese titles that share a character with a punitive word
    ('限', '贷', '高') are accepted; only the whole word is refused."""
    (entry,) = parse_incentives([_entry(title=title)], HEIHE_GRADES, "A")
    assert entry.title == title


@pytest.mark.parametrize("sector", ["government_services", "healthcare"])
def test_a_basic_service_sector_marked_basic_loads(sector: str) -> None:
    """Issue 15 §2 (H14, N14): a basic-service sector loads when it is a threshold fast lane."""
    (entry,) = parse_incentives(
        [_entry(sector=sector, effect="fast_lane", basic_public_service=True)], HEIHE_GRADES, "A"
    )
    assert (entry.basic_public_service, entry.disclosure) == (True, Disclosure.THRESHOLD)
