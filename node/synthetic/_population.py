"""Deterministic synthetic population: realistic people and credit records for a scheme.

Invariants:

* Everything is a function of the :class:`PopulationSpec` (scheme, number of
  people, seed, reference date): the same spec yields the same people, the
  same residences and the same records (only the AES-GCM nonces of the sealed
  ID numbers differ between runs).
* Person ``i``'s ID number is computed in closed form by
  :meth:`PopulationSpec.id_number`, so tests and the demo can recover any
  person's ID without it ever being stored in plain text: the database holds
  only ``subject_key = HMAC(secret, ID)`` and the ID sealed with AES-GCM.
* ID numbers are valid GB 11643 numbers (MOD 11-2 check character), unique
  within the population, with region codes of the scheme's place (local
  residents) or of elsewhere (residence-permit holders, migrants).
* Birth dates follow an age pyramid over 0-99 years including minors, with a
  bump of people turning 18 within ~3 months of the reference date.
* The secrets of a synthetic population are derived from the seed
  (:meth:`PopulationSpec.secrets`): fine for test data, never for real data.
* People are written in ``subject_key`` order, in chunks, one transaction per
  chunk.  Each chunk's rows depend only on (spec, chunk number) (its own RNG),
  so the output is the same for any number of worker processes; workers stage
  their chunks in private SQLite files that the single writer copies with
  ``INSERT … SELECT`` and removes at the end.
* Each person's record mix is described in :class:`_RecordMaker`; every
  person carries one latent conduct trait ``z`` (standard normal) that drives
  both their records and their OUTCOME label (:func:`outcome_probability`),
  stored in ``population_outcomes``: whether a serious dishonesty event
  (default, enforcement, penalty) happens in the ``OUTCOME_MONTHS`` after the
  reference date.  Because records only partly reveal ``z``, a grade
  discriminates the outcome genuinely but never perfectly (H11, N12).
* Calibration (docs/adr/0510): on a fixed seed the eligible population's
  grades fall near :data:`TARGET_SHARES`: most residents at the base grade
  (Heihe: A, H8), a few percent below it, honours rare, and every tier of
  Heihe's nine (H9) non-empty from about 20,000 people.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import multiprocessing
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

import keys
from node.core._errors import HuxinError
from node.store import Connection, connect
from node.store import _synthetic as synthetic_store
from node.store._synthetic import StagedChunk, read_outcomes  # read_outcomes: re-exported
from scoring import Category, Polarity, Provenance, Scheme, load_scheme

__all__ = [
    "OUTCOME_MONTHS",
    "REGIONS",
    "TARGET_SHARES",
    "GenerationStats",
    "PopulationError",
    "PopulationSecrets",
    "PopulationSpec",
    "RegionProfile",
    "chunk_rows",
    "generate",
    "outcome_probability",
    "read_outcomes",
    "read_spec",
]

GENERATOR_VERSION = "2"  # 2: latent trait, distinctions, outcome labels (ADR 0510)
MAX_AGE = 100
CHUNK_PEOPLE = 20_000
LOCAL_WEIGHT = 3  # a local region code is three times as likely as one from elsewhere
_REGISTERED_FLOOR = date(2021, 1, 1)  # synthetic registrations start here
MEAN_ADULT_RECORDS = 6.0  # with minors at none, about 5 records per person overall
OUTCOME_MONTHS = 12  # the outcome label covers the 12 months after the reference date
# Latent trait → outcome: P(adverse) = logistic(_OUTCOME_BASE - _OUTCOME_SLOPE * z).
# About 4.5% of adults have an adverse event in a year; a person two deviations
# below the mean about 28%, two above under 1%.
_OUTCOME_BASE = -3.3
_OUTCOME_SLOPE = 1.0
# Distinctions (honours, bravery, rescue, reward lists: uncapped positive
# categories) per adult: Poisson with mean exp(_DISTINCTION_BASE + _DISTINCTION_SLOPE * z),
# so they concentrate in the upper tail of the trait; see TARGET_SHARES.
_DISTINCTION_BASE = -0.7
_DISTINCTION_SLOPE = 0.8
_DISTINCTION_MAX = 9

#: The grade shares (of eligible adults) the generator is calibrated to, per
#: scheme, best grade first (docs/adr/0510).  Heihe (H8, H9): a clean
#: resident holds the base 600, grade A, so A holds most people; each honour
#: tier above it is rarer than the one below; B-D hold the few percent with
#: live dishonesty records.  Hainan's tiers and base are illustrative: the
#: base 500 lies in B, so B is the largest.
TARGET_SHARES: dict[str, dict[str, float]] = {
    "heihe": {
        "SSS": 0.0005, "SS": 0.0005, "S": 0.0015, "AAA": 0.005, "AA": 0.02,
        "A": 0.86, "B": 0.08, "C": 0.022, "D": 0.011,
    },
    "hainan": {"AAA": 0.0002, "AA": 0.002, "A": 0.035, "B": 0.84, "C": 0.095, "D": 0.028},
}  # fmt: skip
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # GB 11643 MOD 11-2
_CHECK = "10X98765432"


class PopulationError(HuxinError):
    """A population that cannot be generated; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RegionProfile:
    """Administrative division codes (GB/T 2260) of a scheme's place and of elsewhere."""

    local: tuple[str, ...]
    elsewhere: tuple[str, ...]
    court: str  # court abbreviation used in legal-document references

    @property
    def codes(self) -> tuple[str, ...]:
        return self.local + self.elsewhere


REGIONS: dict[str, RegionProfile] = {
    # 黑河: 爱辉区, 逊克县, 孙吴县, 北安市, 五大连池市, 嫩江市; migrants from Harbin, Qiqihar,
    # Beijing, Qingdao.
    "heihe": RegionProfile(
        ("231102", "231123", "231124", "231181", "231182", "231183"),
        ("230102", "230203", "110105", "370202"),
        "黑11",
    ),
    # 海南: 海口 秀英/龙华/琼山/美兰, 三亚 海棠/吉阳; migrants from Changsha, Guangzhou,
    # Chengdu, Harbin.
    "hainan": RegionProfile(
        ("460105", "460106", "460107", "460108", "460202", "460203"),
        ("430102", "440106", "510104", "230103"),
        "琼01",
    ),
    # 福州: 鼓楼, 台江, 仓山, 马尾, 晋安, 长乐; migrants from Xiamen, Nanchang.
    "fuzhou": RegionProfile(
        ("350102", "350103", "350104", "350105", "350111", "350112"),
        ("350203", "360102"),
        "闽01",
    ),
    # 威海市文登区; migrants from Yantai and Qingdao.
    "wendeng": RegionProfile(("371081",), ("370602", "370203"), "鲁1081"),
}

#: Relative weight of each age in years (an illustrative age pyramid).
_AGE_WEIGHTS = tuple(
    9 if a < 18 else 12 if a < 60 else 9 if a < 80 else max(1, 6 - (a - 80) // 4)
    for a in range(MAX_AGE)
)
_TURNING_18_DAYS = 90  # people born within this many days of 18 years before as_of
_TURNING_18_BOOST = 4


@dataclass(frozen=True)
class PopulationSecrets:
    """Development-only secrets of a synthetic population (derived from its seed)."""

    subject_secret: bytes
    seal_keys: dict[str, bytes]
    seal_current: str

    def sealer(self) -> keys.Sealer:
        return keys.Sealer(self.seal_keys, self.seal_current)

    def subject_key(self, id_number: str) -> bytes:
        return keys.subject_key(self.subject_secret, id_number)


@dataclass(frozen=True)
class PopulationSpec:
    scheme_id: str
    people: int
    seed: int = 1
    as_of: date = date(2026, 11, 30)

    def __post_init__(self) -> None:
        if self.scheme_id not in REGIONS:
            raise PopulationError(
                "UNKNOWN_SCHEME", f"no population profile for scheme {self.scheme_id!r}"
            )
        if not 1 <= self.people <= 50_000_000:
            raise PopulationError("INVALID_PEOPLE", "people must be between 1 and 50,000,000")

    # -- secrets -------------------------------------------------------
    def secrets(self) -> PopulationSecrets:
        def derive(label: str) -> bytes:
            material = f"huxin-synthetic\0{label}\0{self.scheme_id}\0{self.seed}".encode()
            return hashlib.sha256(material).digest()

        return PopulationSecrets(
            derive("subject-secret"), {"synthetic-1": derive("seal-key")}, "synthetic-1"
        )

    # -- ID numbers ------------------------------------------------------
    @property
    def region(self) -> RegionProfile:
        return REGIONS[self.scheme_id]

    @cached_property
    def _days(self) -> tuple[int, tuple[int, ...]]:
        """(first day ordinal, start slot of each day) of the birth-date distribution."""
        end = self.as_of.toordinal()
        first = _years_before(self.as_of, MAX_AGE).toordinal() + 1
        turning = _years_before(self.as_of, 18).toordinal()
        weights: list[int] = []
        for ordinal in range(first, end + 1):
            age = (end - ordinal) * 4 // 1461
            w = _AGE_WEIGHTS[min(age, MAX_AGE - 1)]
            if abs(ordinal - turning) <= _TURNING_18_DAYS:
                w *= _TURNING_18_BOOST
            weights.append(w)
        total = sum(weights)
        starts: list[int] = []
        acc = 0
        for w in weights:
            starts.append(acc * self.people // total)
            acc += w
        per_day = max(b - a for a, b in zip(starts, [*starts[1:], self.people], strict=True))
        capacity = (1000 // LOCAL_WEIGHT) * len(self._slots)
        if per_day > capacity:
            raise PopulationError(
                "POPULATION_TOO_LARGE",
                f"{self.people} people exceed {capacity} ID numbers per birth date",
            )
        return first, tuple(starts)

    @cached_property
    def _stride(self) -> tuple[int, int]:
        """(multiplier, offset) of the permutation from person index to birth slot."""
        n = self.people
        mult = max(1, int(n * 0.6180339887)) | 1
        while math.gcd(mult, n) != 1:
            mult += 1
        offset = int.from_bytes(hashlib.sha256(f"{self.seed}".encode()).digest()[:8]) % n
        return mult % n or 1, offset

    @cached_property
    def _digits(self) -> tuple[list[str], list[int], dict[str, int], list[int]]:
        """Birth-date strings per day and the MOD 11-2 partial sums of each ID part."""
        first, _starts = self._days
        end = self.as_of.toordinal()
        texts = [date.fromordinal(d).strftime("%Y%m%d") for d in range(first, end + 1)]
        w = _WEIGHTS
        day_sums = [sum(int(c) * w[6 + i] for i, c in enumerate(x)) for x in texts]
        code_sums = {
            code: sum(int(c) * w[i] for i, c in enumerate(code)) for code in self.region.codes
        }
        seq_sums = [sum(int(c) * w[14 + i] for i, c in enumerate(f"{s:03d}")) for s in range(1000)]
        return texts, day_sums, code_sums, seq_sums

    @cached_property
    def _slots(self) -> tuple[tuple[str, int], ...]:
        """(region code, sequence offset) slots: each local code has LOCAL_WEIGHT slots.

        Within one birth date, the k-th person takes slot ``(k + day) % len`` and
        sequence ``(k // len) * LOCAL_WEIGHT + offset``: distinct k give distinct
        (code, sequence) pairs, so ID numbers are unique.
        """
        local = [(code, sub) for sub in range(LOCAL_WEIGHT) for code in self.region.local]
        return (*local, *((code, 0) for code in self.region.elsewhere))

    def id_number(self, index: int) -> str:
        """The ID number of person ``index`` (0 ≤ index < people), in closed form."""
        if not 0 <= index < self.people:
            raise PopulationError("INVALID_INDEX", f"index must be in [0, {self.people})")
        return self._id_numbers(range(index, index + 1))[0]

    def id_numbers(self) -> list[str]:
        """The ID numbers of everyone, in index order."""
        return self._id_numbers(range(self.people))

    def _id_numbers(self, indices: range) -> list[str]:
        mult, offset = self._stride
        n = self.people
        _first, starts = self._days
        texts, day_sums, code_sums, seq_sums = self._digits
        slots = self._slots
        n_slots = len(slots)
        find = bisect.bisect_right
        out: list[str] = []
        for index in indices:
            slot = (index * mult + offset) % n
            day = find(starts, slot) - 1
            k = slot - starts[day]
            code, sub = slots[(k + day) % n_slots]
            seq = (k // n_slots) * LOCAL_WEIGHT + sub
            check = _CHECK[(code_sums[code] + day_sums[day] + seq_sums[seq]) % 11]
            out.append(f"{code}{texts[day]}{seq:03d}{check}")
        return out

    def is_local(self, id_number: str) -> bool:
        return id_number[:6] in self.region.local


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def read_spec(conn: Connection) -> PopulationSpec | None:
    """The spec a database was generated from (``node_meta``), or None."""
    meta = synthetic_store.population_meta(conn)
    if "population.scheme" not in meta:
        return None
    return PopulationSpec(
        meta["population.scheme"],
        int(meta["population.people"]),
        int(meta["population.seed"]),
        date.fromisoformat(meta["population.as_of"]),
    )


# -- records -----------------------------------------------------------------

_SOURCES = (
    ("honour", "civilisation_office"),
    ("award", "civilisation_office"),
    ("star", "village_committee"),
    ("volunteer", "civil_affairs"),
    ("charity", "civil_affairs"),
    ("blood", "health_commission"),
    ("rescue", "emergency_bureau"),
    ("bravery", "public_security"),
    ("deed", "civilisation_office"),
    ("tax", "tax_bureau"),
    ("utility", "utility_company"),
    ("loan", "bank"),
    ("licence", "market_regulator"),
    ("commitment", "development_reform"),
    ("enforcement", "court"),
    ("debtor", "court"),
    ("judgment", "court"),
    ("criminal", "court"),
    ("penalty", "market_regulator"),
    ("punishment", "development_reform"),
    ("market_ban", "securities_regulator"),
    ("fundraising", "financial_regulator"),
    ("exam", "education_bureau"),
    ("academic", "education_bureau"),
    ("government", "discipline_office"),
)
_SECOND_SOURCES = ("credit_office", "public_security", "market_regulator", "court")


def _source_for(category_id: str) -> str:
    for needle, source in _SOURCES:
        if needle in category_id:
            return source
    return "credit_office"


def _weight(cat: Category) -> float:
    if cat.caps_grade is not None:
        return 0.2
    if cat.polarity is Polarity.POSITIVE:
        if cat.level_multipliers:
            return 3.0
        return (
            10.0
            if cat.points <= 5
            else 6.0
            if cat.points <= 10
            else 3.0
            if cat.points <= 20
            else 1.0
        )
    p = cat.points
    return 6.0 if p <= 10 else 5.0 if p <= 30 else 3.0 if p <= 60 else 1.0 if p <= 150 else 0.4


@dataclass(frozen=True)
class _Catalogue:
    cats: tuple[Category, ...]
    cum: tuple[float, ...]

    @classmethod
    def build(cls, scheme: Scheme, polarity: Polarity, *, uncapped: bool = False) -> _Catalogue:
        """Categories of ``polarity``; with ``uncapped``, only positive ones no cap limits
        (honours, bravery, rescue, reward lists: the distinctions of ADR 0003)."""
        cats = tuple(
            c
            for c in scheme.categories.values()
            if c.polarity is polarity
            and not (uncapped and (c.id in scheme.category_caps or c.id in scheme.family_caps))
        )
        cum: list[float] = []
        acc = 0.0
        for c in cats:
            acc += _weight(c)
            cum.append(acc)
        return cls(cats, tuple(cum))

    def pick(self, r: float) -> Category:
        return self.cats[bisect.bisect_left(self.cum, r * self.cum[-1])]


_LEVEL_WEIGHTS = (50, 30, 15, 4, 1, 1, 1)
_SEVERITY_WEIGHTS = (60, 30, 10, 5, 5)


def _cumulative(options: tuple[str, ...], weights: tuple[int, ...]) -> tuple[float, ...]:
    total = float(sum(weights[: len(options)]))
    acc = 0.0
    out: list[float] = []
    for w in weights[: len(options)]:
        acc += w
        out.append(acc / total)
    return tuple(out)


@dataclass(frozen=True)
class _Plan:
    """What to draw for records of one category (precomputed once per scheme)."""

    cat: Category
    source: str
    levels: tuple[str, ...]
    level_cum: tuple[float, ...]
    severities: tuple[str, ...]
    severity_cum: tuple[float, ...]
    flags: tuple[str, ...]  # excluded flags, most common first
    provenance: str
    personal_ok: bool
    negative: bool

    @classmethod
    def build(cls, cat: Category) -> _Plan:
        levels = tuple(cat.level_multipliers)
        severities = tuple(cat.severities)
        flags = tuple(sorted(cat.excluded_flags, key=lambda f: (f != "simple_procedure", f)))
        public = Provenance.PUBLIC in cat.provenances
        return cls(
            cat,
            _source_for(cat.id),
            levels,
            _cumulative(levels, _LEVEL_WEIGHTS),
            severities,
            _cumulative(severities, _SEVERITY_WEIGHTS),
            flags,
            "public" if public else sorted(p.value for p in cat.provenances)[0],
            public and Provenance.PERSONAL_VERIFIED in cat.provenances,
            cat.polarity is Polarity.NEGATIVE,
        )


RecordRow = tuple[
    bytes, str, str, str, str, str, str, str | None, str | None, str | None, str | None,
    str, str, str, str, str,
]  # fmt: skip


class _RecordMaker:
    """Draws one person's records from the scheme's catalogue.

    Mix (illustrative, calibrated in docs/adr/0510): routine records (any
    category) about 6 per adult; negative ones only for the lower tail of the
    latent trait ``z`` (about 72% of adults never draw one: ``z > -0.6``);
    distinctions (uncapped positive categories, dated within their validity)
    Poisson with a mean rising steeply with ``z``, at higher levels the higher
    ``z`` is; honours come with levels, negatives with severities; 5% of
    acts are reported twice by different departments (dedup, H10); some
    records are masked, repaired or revoked; about 40% of responsible-individual
    deductions lack a legal document (H10); about a third of penalties with
    exclusion flags are simple-procedure or promptly corrected ones (N6); in
    Hainan, 15% of records carry a validity set by the source (N11).
    """

    def __init__(self, spec: PopulationSpec, scheme: Scheme) -> None:
        self.spec = spec
        self.rng = random.Random(0)
        self.positive = _Catalogue.build(scheme, Polarity.POSITIVE)
        self.negative = _Catalogue.build(scheme, Polarity.NEGATIVE)
        distinctions = _Catalogue.build(scheme, Polarity.POSITIVE, uncapped=True)
        self.distinctions = distinctions if distinctions.cats else self.positive
        self.plans = {cid: _Plan.build(cat) for cid, cat in scheme.categories.items()}
        self.prefix = spec.scheme_id[:2].upper()
        self.serial = 0
        self.act = 0
        self.chunk = 0
        self.today = spec.as_of.toordinal()
        self.explicit_validity = spec.scheme_id == "hainan"  # N11: validity set by the source
        self.court = spec.region.court

    def _record(  # noqa: PLR0917 - hot path, positional on purpose
        self,
        key: bytes,
        plan: _Plan,
        act: str,
        day: int,
        source: str,
        batch: str,
        lift: float = 1.0,
    ) -> RecordRow:
        """One record; ``lift`` < 1 draws higher levels (r ** lift moves r towards 1)."""
        rand = self.rng.random
        self.serial += 1
        level = severity = legal = valid_until = None
        if plan.levels:
            level = plan.levels[bisect.bisect_left(plan.level_cum, rand() ** lift)]
        if plan.severities:
            severity = plan.severities[bisect.bisect_left(plan.severity_cum, rand())]
        if plan.cat.requires_legal_document and rand() < 0.6:
            year = date.fromordinal(day).year
            # stored as intake stores a reference: "<kind> <number>" (scoring.parse_reference)
            legal = f"ruling （{year}）{self.court}执{int(rand() * 9998) + 1}号"
        flags = ""
        if plan.flags:
            r = rand()
            if r < 0.25:
                flags = plan.flags[0]
            elif r < 0.35:
                flags = plan.flags[-1]
        provenance = plan.provenance
        if plan.personal_ok and rand() < 0.1:
            provenance = "personal_verified"
        if self.explicit_validity and rand() < 0.15:
            valid_until = date.fromordinal(day + 180 + int(rand() * 900)).isoformat()
        r = rand()
        status = "active"
        if r < 0.035:
            status = (
                "masked" if r < 0.015 else "repaired" if r < 0.03 and plan.negative else "revoked"
            )
        recognised = date.fromordinal(day).isoformat()
        return (
            key,
            f"{self.prefix}{self.chunk:05d}{self.serial:07d}",
            source,
            plan.cat.id,
            plan.cat.polarity.value,
            act,
            recognised,
            valid_until,
            level,
            severity,
            legal,
            status,
            provenance,
            flags,
            batch,
            recognised + "T09:00:00Z",
        )

    def person(self, key: bytes, born: int, batch: str, z: float) -> list[RecordRow]:
        """The records of one person whose latent conduct trait is ``z``."""
        rand = self.rng.random
        today = self.today
        age_days = today - born
        if age_days < 16 * 365:
            return []
        n = int(self.rng.expovariate(1 / MEAN_ADULT_RECORDS) + 0.5)
        if age_days < 18 * 365:
            n //= 3
        earliest = max(born + 16 * 365, today - 5 * 365)
        rows: list[RecordRow] = []
        if age_days >= 18 * 365:
            self._distinctions(key, batch, z, max(earliest, born + 18 * 365), rows)
        if n == 0:
            return rows
        p_negative = 0.0 if z > -0.6 else 0.3 if z > -1.6 else 0.7
        span = today - earliest + 1
        made = 0
        n = min(n, 40)
        plans = self.plans
        while made < n:
            cat = (self.negative if rand() < p_negative else self.positive).pick(rand())
            plan = plans[cat.id]
            day = earliest + int(rand() * span)
            self.act += 1
            act = f"{self.prefix}-act-{self.chunk:05d}{self.act:07d}"
            rows.append(self._record(key, plan, act, day, plan.source, batch))
            made += 1
            if made < n and rand() < 0.05:  # the same act reported by a second department
                other = _SECOND_SOURCES[int(rand() * len(_SECOND_SOURCES))]
                later = min(today, day + int(rand() * 30))
                rows.append(self._record(key, plan, act, later, other, batch))
                made += 1
        return rows

    def _distinctions(
        self, key: bytes, batch: str, z: float, earliest: int, out: list[RecordRow]
    ) -> None:
        """Distinctions of an adult: Poisson(exp(base + slope·z)), each a distinct act
        dated within its category's validity so that it counts on the reference date."""
        mean = math.exp(_DISTINCTION_BASE + _DISTINCTION_SLOPE * z)
        rand = self.rng.random
        # Poisson by inversion; most people (mean ≈ 0.03) cost one draw
        u, k, p = rand(), 0, math.exp(-mean)
        cum = p
        while u > cum and k < _DISTINCTION_MAX:
            k += 1
            p *= mean / k
            cum += p
        if k == 0:
            return
        lift = 1.0 / (1.0 + 0.5 * max(0.0, z - 1.5))
        today = self.today
        for _ in range(k):
            plan = self.plans[self.distinctions.pick(rand()).id]
            first = max(earliest, today - plan.cat.validity_months * 30 + 30)
            day = first + int(rand() * max(1, today - first + 1))
            self.act += 1
            act = f"{self.prefix}-act-{self.chunk:05d}{self.act:07d}"
            out.append(self._record(key, plan, act, day, plan.source, batch, lift))


# -- people ------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationStats:
    people: int
    records: int
    residences: int
    seconds: float


def _residences(
    spec: PopulationSpec, rng: random.Random, key: bytes, local: bool, born: int
) -> list[tuple[bytes, str, str]]:
    today = spec.as_of.toordinal()
    adult = born + 18 * 365
    if local:
        return [(key, "hukou", date.fromordinal(born).isoformat())]
    if rng.random() < 0.08:
        return []  # a visitor: no residence basis here
    earliest = min(today, max(born, adult, today - 8 * 365))
    since = rng.randrange(earliest, today + 1)
    if spec.scheme_id == "hainan" and rng.random() < 0.3:
        since = rng.randrange(max(earliest, today - 540), today + 1)  # around the 1-year rule
    rows = [(key, "residence_permit", date.fromordinal(since).isoformat())]
    if spec.scheme_id == "hainan":
        if rng.random() < 0.4:
            ins = rng.randrange(earliest, today + 1)
            rows.append((key, "social_insurance", date.fromordinal(ins).isoformat()))
        if rng.random() < 0.2:
            tax = rng.randrange(earliest, today + 1)
            rows.append((key, "income_tax", date.fromordinal(tax).isoformat()))
    return rows


SubjectRow = tuple[bytes, str, int, bytes, str, str | None]
ResidenceRow = tuple[bytes, str, str]
OutcomeRow = tuple[bytes, int]  # (subject_key, 1 if adverse in the OUTCOME_MONTHS)
ChunkRows = tuple[list[SubjectRow], list[ResidenceRow], list[RecordRow], list[OutcomeRow]]


def outcome_probability(z: float) -> float:
    """P(a serious dishonesty event in the OUTCOME_MONTHS) for latent trait ``z``;
    strictly decreasing in ``z``."""
    return 1.0 / (1.0 + math.exp(-(_OUTCOME_BASE - _OUTCOME_SLOPE * z)))


class _ChunkMaker:
    """Builds the rows of one chunk of people; its output depends only on (spec, chunk)."""

    def __init__(self, spec: PopulationSpec, scheme: Scheme) -> None:
        self.spec = spec
        self.records = _RecordMaker(spec, scheme)
        self.sealer = spec.secrets().sealer()
        self.today = spec.as_of.toordinal()

    def __call__(self, job: tuple[int, list[tuple[bytes, str]]]) -> ChunkRows:
        chunk_no, people = job
        spec = self.spec
        rng = random.Random(f"huxin-population:{spec.seed}:{chunk_no}")
        maker = self.records
        maker.rng = rng
        maker.chunk = chunk_no
        maker.serial = maker.act = 0
        rand = rng.random
        today = self.today
        batch = f"synthetic-{spec.seed}-{chunk_no:05d}"
        floor = _REGISTERED_FLOOR.toordinal()
        subjects: list[SubjectRow] = []
        residences: list[ResidenceRow] = []
        records: list[RecordRow] = []
        outcomes: list[OutcomeRow] = []
        gauss = rng.gauss
        for key, id_number in people:
            born_day = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
            born = born_day.toordinal()
            capacity = 0 if rand() < 0.004 else 1
            registered = min(today, max(born, floor) + int(rand() * 365))
            deregistered = None
            if rand() < 0.003:
                gone = registered + int(rand() * (today - registered + 1))
                deregistered = date.fromordinal(gone).isoformat() + "T00:00:00Z"
            subjects.append(
                (
                    key,
                    born_day.isoformat(),
                    capacity,
                    self.sealer.seal(id_number.encode("ascii"), key),
                    date.fromordinal(registered).isoformat() + "T00:00:00Z",
                    deregistered,
                )
            )
            residences.extend(_residences(spec, rng, key, spec.is_local(id_number), born))
            z = gauss(0.0, 1.0)
            records.extend(maker.person(key, born, batch, z))
            outcomes.append((key, 1 if rand() < outcome_probability(z) else 0))
        return subjects, residences, records, outcomes


class _Stager:
    """Worker side: build a chunk and write it to this worker's own staging database.

    Writing in the workers (in parallel) and copying with ``INSERT … SELECT`` in
    the writer is several times cheaper for the single writer than binding every
    row there with ``executemany``.
    """

    def __init__(self, spec: PopulationSpec, scheme: Scheme, staging_dir: str) -> None:
        self.maker = _ChunkMaker(spec, scheme)
        self.path = str(Path(staging_dir) / f"stage-{os.getpid()}.db")
        self.conn = synthetic_store.open_stage(self.path)

    def __call__(self, job: tuple[int, list[tuple[bytes, str]]]) -> StagedChunk:
        rows = self.maker(job)
        ranges = synthetic_store.stage_rows(self.conn, rows)
        return StagedChunk(
            self.path, ranges, (len(rows[0]), len(rows[1]), len(rows[2]), len(rows[3]))
        )


_worker_stager: _Stager | None = None


def _worker_init(spec: PopulationSpec, scheme: Scheme, staging_dir: str) -> None:
    global _worker_stager  # noqa: PLW0603 - one stager per worker process
    _worker_stager = _Stager(spec, scheme, staging_dir)


def _worker_chunk(job: tuple[int, list[tuple[bytes, str]]]) -> StagedChunk:
    assert _worker_stager is not None
    return _worker_stager(job)


def generate(
    spec: PopulationSpec,
    out: str | Path,
    *,
    scheme: Scheme | None = None,
    chunk_people: int = CHUNK_PEOPLE,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationStats:
    """Write the population of ``spec`` into a new database at ``out``.

    ``workers`` > 0 builds chunks in that many processes while this one
    writes; the output is the same for any number of workers.
    """
    started = time.perf_counter()
    # a postgresql:// URL names an empty database (issue 18); anything else a new file
    url = str(out) if str(out).startswith(("postgresql://", "postgres://")) else None
    path = Path(tempfile.gettempdir()) / "pg" if url else Path(out)
    if url is None and path.exists():
        raise PopulationError("DB_EXISTS", f"{str(path)!r} already exists; choose a new file")
    scheme = scheme or load_scheme(spec.scheme_id)
    secrets = spec.secrets()
    ids = spec.id_numbers()
    subject_keys = [secrets.subject_key(x) for x in ids]
    order = sorted(range(spec.people), key=subject_keys.__getitem__)
    jobs = (
        (n, [(subject_keys[i], ids[i]) for i in order[start : start + chunk_people]])
        for n, start in enumerate(range(0, spec.people, chunk_people))
    )
    pool = None
    staging: tempfile.TemporaryDirectory[str] | None = None
    results: Iterator[ChunkRows | StagedChunk]
    if workers > 0:
        staging = tempfile.TemporaryDirectory(prefix=".huxin-stage-", dir=path.parent)
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(spec, scheme, staging.name))
        results = pool.imap(_worker_chunk, jobs)
    else:
        results = map(_ChunkMaker(spec, scheme), jobs)
    conn = connect(url or path)
    if url is not None and synthetic_store.population_meta(conn):
        conn.close()
        raise PopulationError("DB_EXISTS", "the PostgreSQL database holds a population already")
    synthetic_store.tune_for_bulk(conn)
    n_records = n_res = done = 0

    def written(counts: tuple[int, int, int, int]) -> None:
        nonlocal done, n_res, n_records
        done += counts[0]
        n_res += counts[1]
        n_records += counts[2]
        if progress is not None:
            progress(done, spec.people)

    meta = [
        ("population.scheme", spec.scheme_id),
        ("population.people", str(spec.people)),
        ("population.seed", str(spec.seed)),
        ("population.as_of", spec.as_of.isoformat()),
        ("population.generator", GENERATOR_VERSION),
        ("population.outcome_months", str(OUTCOME_MONTHS)),
    ]
    try:
        synthetic_store.write_population(conn, meta, results, written)
    finally:
        conn.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        if staging is not None:
            staging.cleanup()
    return GenerationStats(spec.people, n_records, n_res, time.perf_counter() - started)


def chunk_rows(
    spec: PopulationSpec, scheme: Scheme | None = None, *, chunk_people: int = CHUNK_PEOPLE
) -> Iterator[tuple[dict[bytes, str], ChunkRows]]:
    """The rows :func:`generate` writes, chunk by chunk (the same chunks, the same rows),
    each with its people's ID numbers by subject key: for writers other than a node's
    database, such as the departments' files of ``huxin demo`` (node/demo/_population_files.py)."""
    scheme = scheme or load_scheme(spec.scheme_id)
    secrets = spec.secrets()
    ids = spec.id_numbers()
    subject_keys = [secrets.subject_key(x) for x in ids]
    order = sorted(range(spec.people), key=subject_keys.__getitem__)
    maker = _ChunkMaker(spec, scheme)
    for n, start in enumerate(range(0, spec.people, chunk_people)):
        people = [(subject_keys[i], ids[i]) for i in order[start : start + chunk_people]]
        yield dict(people), maker((n, people))
