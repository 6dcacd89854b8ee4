"""Population benchmark: load a city's residents through the population source, run the month.

Measured in one run (1,000,000 residents; ``--quick``: 20,000; ``--people N``
when run alone as ``python -m bench.population``):

* the load: a CSV of residents (one ``move_in`` fact each) filed by
  ``huxin source submit`` (the CLI, a subprocess, its progress bar on stderr)
  over real mutual TLS to a real ``huxin serve`` process (its own SQLite
  file), as the population authority ``heihe.hukou`` with its own client
  certificate: CSV parsing, protobuf, TLS, the guard, validation, keying
  (HMAC), sealing (AES-GCM), the fact trail and the batch rows included.
  Reported: wall time, residents/s, the server's CPU seconds (its
  ``/proc/<pid>/stat`` user + system time over the load) per 1,000
  residents, the CLI's CPU seconds, the server's peak resident set (VmHWM);
* the month: :func:`node.monthly._batch.run_month` over the loaded registry (every
  resident scored at the base, no records), two worker processes: wall time,
  CPU (this process and its workers) and both per resident;
* the baseline: the rows the load stores (subjects, residences, the fact
  trail: random 32-byte keys, sealed-size blobs) inserted into a fresh node
  database with ``executemany`` in transactions of one batch each, rows in
  key order as the load writes them, single process: the bare I/O of the
  load.  ``load / baseline`` is the figure to compare across machines;
* the machine: ``nproc`` and the 1-minute load average, sampled every 5 s
  during the run (other work on the machine shows there).

Target (issue 15): 1,000,000 residents load in "a few minutes".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from node.cli._init import init_region, load_or_create_ca
from node.demo._testbed import make_id_number, register_clients
from node.monthly._batch import run_month
from node.population import FACTS_MAX
from node.store import connect
from scoring import load_scheme

BATCH = FACTS_MAX  # the largest batch the node takes: fewer commits of the same pages
DEPARTMENT = "heihe.hukou"


def residents(n: int) -> list[str]:
    """``n`` distinct valid ID numbers of adults (1,000 a birth day from 1950-01-01)."""
    start = date(1950, 1, 1)
    return [
        make_id_number(i % 1000, born=(start + timedelta(days=i // 1000)).strftime("%Y%m%d"))
        for i in range(n)
    ]


def write_csv(path: Path, n: int) -> None:
    """The population authority's file: one ``move_in`` (hukou, 2000) per resident."""
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "kind", "residence_kind", "on"])
        w.writerows([idn, "move_in", "hukou", "2000-01-01"] for idn in residents(n))


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc/<pid>/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _LoadAverage:
    """The 1-minute load average sampled every ``every`` seconds while running."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> _LoadAverage:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def _baseline(db: Path, n: int) -> float:
    """Wall seconds of inserting the load's rows (no checks, keys, seals, RPC) with executemany."""
    conn = connect(db)
    start = time.perf_counter()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for batch, lo in enumerate(range(0, n, BATCH)):
        keys = sorted(os.urandom(32) for _ in range(min(BATCH, n - lo)))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at)"
            " VALUES (?, '1980-01-01', ?, ?)",
            [(k, os.urandom(48), now) for k in keys],
        )
        conn.executemany(
            "INSERT INTO residences (subject_key, kind, since) VALUES (?, 'hukou', '2000-01-01')",
            [(k,) for k in keys],
        )
        conn.executemany(
            "INSERT INTO population_facts (submitted_by, batch_id, seq, subject_key, kind,"
            " residence_kind, on_date) VALUES (?, ?, ?, ?, 'move_in', 'hukou', '2000-01-01')",
            [(DEPARTMENT, f"baseline-{batch:06d}", seq, k) for seq, k in enumerate(keys)],
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


def source_toml(root: Path, port: int) -> Path:
    """The source CLI's config for the population authority against ``port``."""
    toml = root / "source.toml"
    toml.write_text(
        "[source]\n"
        f'endpoint = "127.0.0.1:{port}"\n'
        'ca = "ca.pem"\ncert = "dept.pem"\nkey = "dept.key"\n'
        f'department = "{DEPARTMENT}"\n'
        f"batch_size = {BATCH}\ntimeout_seconds = 600\n",
        encoding="utf-8",
    )
    return toml


def _load(root: Path, toml: Path, data: Path, progress: bool) -> dict[str, float]:
    """File ``data`` with the source CLI against a fresh ``huxin serve``; figures of the load."""
    proc = _serve(toml, root / "ready.json")
    try:
        port = json.loads((root / "ready.json").read_text())["peer"]
        source = source_toml(root, port)
        server_cpu, client_cpu = _proc_cpu(proc.pid), _cpu_children()
        start = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "node", "source", "submit", "--config", str(source),
             "--file", str(data), "--kind", "residence", "--rejects", str(root / "rejects.csv"),
             *([] if progress else ["--no-progress"])],
            stdout=subprocess.PIPE, stderr=None if progress else subprocess.DEVNULL, check=False,
        )  # fmt: skip
        load = time.perf_counter() - start
        client_cpu = _cpu_children() - client_cpu
        server_cpu = _proc_cpu(proc.pid) - server_cpu
        rss = _peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    if cli.returncode != 0:
        raise RuntimeError(f"source submit exited {cli.returncode}: {cli.stdout.decode()[-500:]}")
    return {"load": load, "server_cpu": server_cpu, "client_cpu": client_cpu, "server_rss": rss}


def measure(n: int, root: Path, *, progress: bool = True) -> dict[str, float]:
    """Load ``n`` residents through a real node and run the month; see the module."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    init_region(
        root / "heihe", "heihe", "heihe", ca, now, population=(DEPARTMENT,),
        require_registry=True,
    )  # fmt: skip
    toml = root / "heihe" / "node.toml"
    dept = ca.issue(DEPARTMENT, now)
    register_clients(toml, dept)
    (root / "ca.pem").write_bytes(ca.cert_pem)
    (root / "dept.pem").write_bytes(dept.cert_pem)
    (root / "dept.key").write_bytes(dept.key_pem)
    data = root / "residents.csv"
    write_csv(data, n)
    db = root / "heihe" / "node.db"
    with _LoadAverage() as loadavg:
        figures = _load(root, toml, data, progress)
        conn = connect(db, readonly=True)
        (stored,) = conn.execute("SELECT count(*) FROM subjects").fetchone()
        conn.close()
        if stored != n:
            raise RuntimeError(f"load stored {stored} of {n} residents")
        scheme = load_scheme("heihe")
        cpu = _cpu_self() + _cpu_children()
        start = time.perf_counter()
        # the current month: its last day is after the residents' registration
        summary = run_month(db, scheme, f"{now:%Y-%m}", workers=2)
        figures["month"] = time.perf_counter() - start
        figures["month_cpu"] = _cpu_self() + _cpu_children() - cpu
        if summary.eligible != n or summary.grades.get("A") != n:
            raise RuntimeError(f"month: {summary.eligible} eligible, grades {summary.grades}")
        figures["baseline"] = _baseline(root / "baseline.db", n)
    samples = loadavg.samples
    figures |= {
        "people": n,
        "load_avg_mean": sum(samples) / len(samples),
        "load_avg_max": max(samples),
        "nproc": os.cpu_count() or 0,
    }
    return figures


def section(f: dict[str, float]) -> str:
    n = f["people"]
    per_k = n / 1000
    return (
        "## Population registry: a city through the population source (issue 15)\n\n"
        "`huxin source submit --kind residence` (CLI subprocess) → "
        "`SourceService.SubmitResidenceFacts` over mutual TLS to a `huxin serve` process,"
        f" batches of {BATCH:,} (4 in flight); then the monthly run (2 workers) over the"
        " loaded registry, every resident at the base (no records). Baseline: the same"
        " subject, residence and fact-trail rows inserted with `executemany`, one transaction"
        " per batch, no checks, keys, seals or RPC.\n\n"
        "| residents | load (s) | residents/s | server CPU (s) per 1,000 | client CPU (s)"
        " | server peak RSS (MiB) | bare-I/O baseline (s) | load / baseline |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {n:,.0f} | {f['load']:.1f} | {n / f['load']:,.0f} | {f['server_cpu'] / per_k:.3f}"
        f" | {f['client_cpu']:.1f} | {f['server_rss']:,.0f} | {f['baseline']:.1f}"
        f" | {f['load'] / f['baseline']:.1f}x |\n\n"
        "| month run (s) | µs per resident (wall) | CPU (s), 2 workers | µs CPU per resident"
        " | machine |\n"
        "|---:|---:|---:|---:|---|\n"
        f"| {f['month']:.1f} | {f['month'] / n * 1e6:,.0f} | {f['month_cpu']:.1f}"
        f" | {f['month_cpu'] / n * 1e6:,.0f} | {f['nproc']:.0f} cores, load average"
        f" {f['load_avg_mean']:.1f} mean / {f['load_avg_max']:.1f} max during the run |\n"
    )


def run(args: argparse.Namespace) -> str:
    n = getattr(args, "people", None) or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="huxin-bench-pop-") as tmp:
        figures = measure(n, Path(tmp), progress=not getattr(args, "no_progress", False))
    return section(figures)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.population")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args()
    args.quick = False
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
