"""Scoring benchmark: monthly recomputation of a population, SQLite to stored snapshots.

Measured in one run on the same freshly generated database (1,000,000 people
with about 5,000,000 records; ``--quick``: 20,000 people):

* the baseline: a bare ``sqlite3`` read of the same rows the batch job reads
  (subjects, residences, records, by subject-key range, chunk by chunk) and
  an insert of one snapshot row per subject in the same chunked transactions,
  single process, no scoring;
* ``huxin score run`` as a subprocess (both cores), wall time and peak memory:
  the largest sum of the resident set sizes of the process and all of its
  children, sampled every 50 ms from /proc.

Targets (issue 2): wall <= 60 s, peak memory <= 1 GB, ratio to baseline <= 3x.

The same population, generated with the same seed into a fresh PostgreSQL database
(a throwaway local server, :mod:`bench._pg`), is scored by the same ``huxin score
run --db URL`` in the same run (issue 18: server-side cursors in, binary COPY out):
its wall time, this side's CPU and the database server's CPU.  Target (issue 18):
PostgreSQL wall <= 1.5x SQLite's.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import _pg
from node.monthly._batch import CHUNK_SUBJECTS, Chunk, chunk_bounds, period_as_of
from node.store import connect
from node.synthetic._population import PopulationSpec, generate

PERIOD = "2026-10"  # a month that is over (score run refuses later ones)


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _baseline(db: Path) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, subjects, records) of a bare read-and-insert of the same rows."""
    as_of = period_as_of(PERIOD)
    day_after = as_of.isoformat()
    conn = connect(db)
    cur = conn.execute(
        "INSERT INTO snapshot_runs (period, scheme_id, scheme_version, as_of, chunks, started_at)"
        " VALUES ('1900-01', 'baseline', '0', ?, 1, '1900-01-01T00:00:00Z')",
        (as_of.isoformat(),),
    )
    run_id = cur.lastrowid
    start = time.perf_counter()
    cpu = _cpu_self()
    (subjects,) = conn.execute("SELECT count(*) FROM subjects").fetchone()
    chunks = chunk_bounds(max(1, math.ceil(subjects / CHUNK_SUBJECTS)))
    n_subjects = n_records = 0
    for chunk in chunks:
        cond, args = _cond(chunk)
        people = conn.execute(
            "SELECT subject_key, birth_date, full_civil_capacity FROM subjects"
            f" WHERE {cond} AND registered_at < ? AND (deregistered_at IS NULL"
            " OR deregistered_at >= ?) ORDER BY subject_key",
            (*args, day_after, day_after),
        ).fetchall()
        conn.execute(
            f"SELECT subject_key, kind, since FROM residences WHERE {cond}", args
        ).fetchall()
        records = conn.execute(
            "SELECT subject_key, record_id, category, act_id, source, recognised_on,"
            " valid_until, level, severity, legal_document, status, flags FROM records"
            f" WHERE {cond} ORDER BY subject_key, record_id",
            args,
        ).fetchall()
        rows = [(run_id, p[0], 1, 600, "A", None) for p in people]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO snapshots (run_id, subject_key, eligible, score, grade,"
            " reason) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        n_subjects += len(people)
        n_records += len(records)
    elapsed = time.perf_counter() - start
    cpu = _cpu_self() - cpu
    conn.close()
    return elapsed, cpu, n_subjects, n_records


def _cond(chunk: Chunk) -> tuple[str, tuple[bytes, ...]]:
    if chunk.hi is None:
        return "subject_key >= ?", (chunk.lo,)
    return "subject_key >= ? AND subject_key < ?", (chunk.lo, chunk.hi)


def _tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/statm", encoding="ascii") as fh:
                pages = int(fh.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        pid = int(entry)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE")
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _run_scoring(db: Path | str, workers: int) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the tree, peak summed RSS of the tree in bytes, stdout)."""
    cmd = [sys.executable, "-m", "node", "score", "run", "--db", str(db), "--scheme", "heihe",
           "--period", PERIOD, "--workers", str(workers)]  # fmt: skip
    peak = 0
    cpu = _cpu_children()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"score run failed with exit code {proc.returncode}")
    return elapsed, _cpu_children() - cpu, peak, out


def _postgresql(people: int, workers: int) -> dict[str, float]:
    """The same population on PostgreSQL: generation, then the scored run."""
    with _pg.pg_server() as pg:
        url = _pg.fresh_database(pg, "scoring")
        gen = generate(PopulationSpec("heihe", people, seed=1), url, workers=workers)
        db0 = _pg.server_cpu(pg)
        run_s, run_cpu, peak, _out = _run_scoring(url, workers)
        db_cpu = _pg.server_cpu(pg) - db0
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM monthly_snapshots WHERE period = %s AND scheme_id = 'heihe'",
                (PERIOD,),
            ).fetchone()
    assert row is not None
    return {"gen": gen.seconds, "wall": run_s, "cpu": run_cpu, "db_cpu": db_cpu,
            "peak": peak, "stored": int(row[0])}  # fmt: skip


def run(args: argparse.Namespace) -> str:
    people = 20_000 if args.quick else 1_000_000
    workers = 2
    with tempfile.TemporaryDirectory(prefix="huxin-bench-scoring-") as tmp:
        db = Path(tmp) / "population.db"
        spec = PopulationSpec("heihe", people, seed=1)
        gen = generate(spec, db, workers=workers)
        base_s, base_cpu, base_subjects, base_records = _baseline(db)
        run_s, run_cpu, peak, _out = _run_scoring(db, workers)
        conn = connect(db, readonly=True)
        (stored,) = conn.execute(
            "SELECT count(*) FROM monthly_snapshots WHERE period = ? AND scheme_id = 'heihe'",
            (PERIOD,),
        ).fetchone()
        conn.close()
    pg = None if getattr(args, "sqlite_only", False) else _postgresql(people, workers)
    ratio = run_s / base_s if base_s else float("inf")
    mb = 1024 * 1024
    load = os.getloadavg()[0]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "## Scoring: monthly recomputation",
        "",
        f"{people:,} people, {gen.records:,} records (heihe, seed 1), {workers} worker"
        f" processes; {stored:,} snapshots stored for {PERIOD}.",
        "",
        "| measure | value | target |",
        "| --- | ---: | --- |",
        f"| `huxin score run` wall time | {run_s:.1f} s | <= 60 s: {verdict(run_s <= 60)} |",
        f"| throughput | {base_subjects / run_s:,.0f} people/s,"
        f" {base_records / run_s:,.0f} records/s | |",
        f"| peak memory (process tree, summed RSS) | {peak / mb:.0f} MB"
        f" | <= 1024 MB: {verdict(peak <= 1024 * mb)} |",
        f"| baseline: bare sqlite3 read + insert of the same rows (1 process) | {base_s:.1f} s | |",
        f"| ratio run / baseline (wall) | {ratio:.2f}x | <= 3x: {verdict(ratio <= 3)} |",
        f"| CPU time: run (all processes) / baseline | {run_cpu:.1f} s / {base_cpu:.1f} s"
        f" = {run_cpu / base_cpu:.2f}x | |",
        f"| population generation (not part of the run) | {gen.seconds:.1f} s | |",
        "",
        f"1-minute load average at the end: {load:.2f} on {os.cpu_count()} cores"
        " (other jobs on the machine inflate wall times).",
    ]
    if pg is not None:
        pg_ratio = pg["wall"] / run_s
        lines += [
            "",
            "### The same run on PostgreSQL (issue 18)",
            "",
            f"Same people and records (generated with the same seed into a fresh database of"
            f" a throwaway local PostgreSQL 15, unix socket, 512 MB shared buffers, default"
            f" durability), same command (`huxin score run --db postgresql://…`),"
            f" {pg['stored']:,} snapshots stored.",
            "",
            "| measure | SQLite | PostgreSQL | ratio | target |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| wall time | {run_s:.1f} s | {pg['wall']:.1f} s | {pg_ratio:.2f}x"
            f" | <= 1.5x: {verdict(pg_ratio <= 1.5)} |",
            f"| CPU, the run's processes | {run_cpu:.1f} s | {pg['cpu']:.1f} s"
            f" | {pg['cpu'] / run_cpu:.2f}x | |",
            f"| CPU, the database server | (in the run) | {pg['db_cpu']:.1f} s | | |",
            f"| peak memory of the run's processes | {peak / mb:.0f} MB | {pg['peak'] / mb:.0f}"
            " MB | | |",
            f"| generation (not part of the run) | {gen.seconds:.1f} s | {pg['gen']:.1f} s | | |",
        ]
    return "\n".join(lines) + "\n"
