"""Write mapping/_reference_data.py: each shipped scheme's reference grade distribution.

    python tools/gen_reference_population.py

Incentive reach (mapping._reach, ADR 0202) is measured on these distributions.
Heihe and Hainan use the calibrated target shares of the synthetic population
(ADR 0510, ``node.synthetic._population.TARGET_SHARES``); Fuzhou and Wendeng have no
calibration, so their shares are measured on the synthetic population the
generator makes for them (seed 1, 20,000 people, eligible adults graded on
2026-11-30, generator version as recorded).  Shares are stored as integer
parts per million (no floats in data the mapping package reads), each scheme
summing to whatever its source sums to; readers normalise.  The output is a
Python module so that the pure ``mapping`` package reads it without package
data or I/O.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.monthly._batch import chunk_bounds, read_chunk  # noqa: E402
from node.store import connect  # noqa: E402
from node.synthetic._population import (  # noqa: E402
    GENERATOR_VERSION,
    TARGET_SHARES,
    PopulationSpec,
    generate,
)
from scoring import list_schemes, load_scheme, score  # noqa: E402

OUT = ROOT / "mapping" / "_reference_data.py"
AS_OF = date(2026, 11, 30)
PEOPLE = 20_000
SEED = 1
PPM = 1_000_000


def _measured(scheme_id: str, workdir: Path) -> dict[str, int]:
    scheme = load_scheme(scheme_id)
    db = workdir / f"{scheme_id}.db"
    generate(PopulationSpec(scheme_id, PEOPLE, SEED, AS_OF), db)
    grades: Counter[str] = Counter()
    conn = connect(db, readonly=True)
    try:
        (chunk,) = chunk_bounds(1)
        for _key, subject, records in read_chunk(conn, chunk, AS_OF):
            grade = score(subject, records, scheme, AS_OF, explain=False).grade
            if grade is not None:
                grades[grade] += 1
    finally:
        conn.close()
    total = sum(grades.values())
    return {g: grades[g] * PPM // total for g in scheme.grades}


def build(workdir: Path) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for scheme_id in list_schemes():
        scheme = load_scheme(scheme_id)
        if scheme_id in TARGET_SHARES:
            shares = {g: round(TARGET_SHARES[scheme_id][g] * PPM) for g in scheme.grades}
            basis = "calibrated target shares of the synthetic population (ADR 0510)"
        else:
            shares = _measured(scheme_id, workdir)
            basis = (
                f"measured: synthetic population generator v{GENERATOR_VERSION}, seed {SEED}, "
                f"{PEOPLE} people, eligible adults graded on {AS_OF.isoformat()}"
            )
        entries.append(
            {
                "scheme": scheme.id,
                "version": scheme.version,
                "basis": basis,
                "shares_ppm": shares,
            }
        )
    return entries


HEADER = '''"""Reference grade distributions for incentive reach (generated; do not edit).

Written by ``python tools/gen_reference_population.py``; each entry says where
its shares come from (``basis``).  Shares are integer parts per million.
"""

from typing import Any

__all__ = ["REFERENCE_POPULATIONS"]

REFERENCE_POPULATIONS: tuple[dict[str, Any], ...] = '''


def render(entries: list[dict[str, object]]) -> str:
    # JSON of strings and integers is a Python literal; ruff format then gives it the
    # project's style (the caller runs it).
    return HEADER + "(" + json.dumps(entries, ensure_ascii=False, indent=4)[1:-1] + ",)\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        doc = build(Path(tmp))
    OUT.write_text(render(doc), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "ruff", "format", str(OUT)], check=True)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
