"""Population benchmark: load a city's residents through the population source, run the month.

Measured in one run (1,000,000 residents; ``--quick``: 20,000; ``--people N``
when run alone):

* the load: a CSV of residents (one ``move_in`` fact each) filed by
  ``huxin source submit``'s library function over real mutual TLS to a real
  ``huxin serve`` process (its own SQLite file), as the population authority
  ``heihe.hukou`` with its own client certificate: validation, keying (HMAC),
  sealing (AES-GCM), the fact trail and the batch rows included;
* the month: :func:`node._batch.run_month` over the loaded registry (every
  resident scored at the base, no records), two worker processes;
* the baseline: the same number of subject and residence rows (random keys,
  sealed-size blobs) inserted into a fresh node database with ``executemany``
  in transactions of 5,000, single process: the bare I/O of the load.

Target (issue 15): 1,000,000 residents load in "a few minutes".
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from node._batch import run_month
from node._init import init_region, load_or_create_ca
from node._storage import connect
from node._testbed import make_id_number, register_clients
from node.population._cli import SourceClientConfig, submit_file
from scoring import load_scheme

BATCH = 20_000


def _people(n: int) -> list[str]:
    start = date(1950, 1, 1)
    return [
        make_id_number(i % 1000, born=(start + timedelta(days=i // 1000)).strftime("%Y%m%d"))
        for i in range(n)
    ]


def _write_csv(path: Path, people: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "kind", "residence_kind", "on"])
        w.writerows([idn, "move_in", "hukou", "2000-01-01"] for idn in people)


def _baseline(db: Path, n: int) -> float:
    """Wall seconds of inserting ``n`` subject + residence rows with executemany."""
    conn = connect(db)
    start = time.perf_counter()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for lo in range(0, n, 5_000):
        keys = [os.urandom(32) for _ in range(min(5_000, n - lo))]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at)"
            " VALUES (?, '1980-01-01', ?, ?)",
            [(k, os.urandom(46), now) for k in keys],
        )
        conn.executemany(
            "INSERT INTO residences (subject_key, kind, since) VALUES (?, 'hukou', '2000-01-01')",
            [(k,) for k in keys],
        )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def _serve(toml: Path, ready: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "serve", "--config", str(toml), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the node did not start")
        time.sleep(0.05)
    return proc


def measure(n: int, root: Path) -> dict[str, float]:
    """Load ``n`` residents through a real node and run the month; figures in seconds."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    init_region(
        root / "heihe", "heihe", "heihe", ca, now, population=("heihe.hukou",),
        require_registry=True,
    )  # fmt: skip
    toml = root / "heihe" / "node.toml"
    dept = ca.issue("heihe.hukou", now)
    register_clients(toml, dept)
    (root / "ca.pem").write_bytes(ca.cert_pem)
    (root / "dept.pem").write_bytes(dept.cert_pem)
    (root / "dept.key").write_bytes(dept.key_pem)
    data = root / "residents.csv"
    _write_csv(data, _people(n))
    proc = _serve(toml, root / "ready.json")
    port = json.loads((root / "ready.json").read_text())["peer"]
    config = SourceClientConfig(
        endpoint=f"127.0.0.1:{port}", ca=root / "ca.pem", cert=root / "dept.pem",
        key=root / "dept.key", department="heihe.hukou", batch_size=BATCH,
        timeout_seconds=600,
    )  # fmt: skip
    try:
        start = time.perf_counter()
        report = asyncio.run(submit_file(config, data, "residence", progress=False))
        load = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(30)
    if report.stored != n or report.rejected:
        raise RuntimeError(f"load stored {report.stored} of {n}: {report.rejected[:3]}")
    scheme = load_scheme("heihe")
    start = time.perf_counter()
    summary = run_month(root / "heihe" / "node.db", scheme, f"{now:%Y-%m}", workers=2)
    month = time.perf_counter() - start
    if summary.eligible != n or summary.grades.get("A") != n:
        raise RuntimeError(f"month: {summary.eligible} eligible, grades {summary.grades}")
    baseline = _baseline(root / "baseline.db", n)
    return {"people": n, "load": load, "month": month, "baseline": baseline}


def run(args: argparse.Namespace) -> str:
    n = getattr(args, "people", None) or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="huxin-bench-pop-") as tmp:
        f = measure(n, Path(tmp))
    rate = f["people"] / f["load"]
    return (
        "## Population registry: a city through the population source (issue 15)\n\n"
        "`huxin source submit` (library) → `SourceService.SubmitResidenceFacts` over mutual TLS"
        f" to a `huxin serve` process, batches of {BATCH:,}; then the monthly run (2 workers).\n\n"
        "| residents | load (s) | residents/s | bare-I/O baseline (s) | load / baseline"
        " | month run (s) |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {f['people']:,.0f} | {f['load']:.1f} | {rate:,.0f} | {f['baseline']:.1f}"
        f" | {f['load'] / f['baseline']:.1f}x | {f['month']:.1f} |\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.population")
    parser.add_argument("--people", type=int, default=100_000)
    args = parser.parse_args()
    args.quick = False
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
