"""CLI: ``huxin source submit`` — a department files a CSV/JSONL file through SourceService.

``huxin source submit --config source.toml --file F.csv [--kind records|residence|listings]
--rejects OUT.csv`` streams the file as many batches over mutual TLS with the
department's own client certificate, shows a progress bar on stderr, and
writes every refused row to ``OUT.csv`` (``line,field,code,message``).

Invariants:

* batch ids are derived from the file's content hash and the batch number
  (``<stem>-<sha8>-<n>``), so running the same file again replays every batch
  (the node answers "replayed", nothing is written twice);
* the node refuses a batch whole; the CLI then files the batch again without
  the refused rows (batch id ``…-r<k>``) until the rest is stored, so one bad
  row never loses its 4,999 neighbours;
* the rejects file never holds an ID number: it names the line, the field and
  the reason only (the node's messages never echo an ID either);
* exit 0 when every row was stored, 1 when some were refused (the report is
  written), 2 for bad input (config, file, an unreachable node).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from node.cli._main import CliError, SubParsers, subgroup
from node.cli._progress import Progress
from node.core._freetext import contains_id_number
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.population._facts import FACTS_MAX
from node.population._file import KINDS, Message, Row, RowProblem, count_rows, read_rows
from node.rpc._client import batch_rejection_of, peer_channel, reason_of

__all__ = ["SourceClientConfig", "SubmitReport", "load_source_config", "register", "submit_file"]

MAX_RETRIES = 20  # rounds of "drop the refused rows, file the rest"; each drops >= 1 row
IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class SourceClientConfig:
    """``[source]`` of a department's ``source.toml`` (paths relative to the file).

    ``batch_size`` 1..50,000 rows (residence facts; record batches are also capped
    by the node's ``max_batch_records``, default 10,000).
    """

    endpoint: str
    ca: Path
    cert: Path
    key: Path
    department: str
    server_name: str = ""
    batch_size: int = 5_000
    timeout_seconds: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= FACTS_MAX:
            raise CliError("INVALID_CONFIG", f"source.batch_size must be 1..{FACTS_MAX}")
        if not 1 <= self.timeout_seconds <= 3600:
            raise CliError("INVALID_CONFIG", "source.timeout_seconds must be 1..3600")


def load_source_config(path: Path) -> SourceClientConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError("INVALID_CONFIG", f"{path}: {exc}") from None
    src = data.get("source")
    if not isinstance(src, dict):
        raise CliError("INVALID_CONFIG", f"{path}: needs a [source] table")
    base = path.parent
    try:
        return SourceClientConfig(
            endpoint=str(src["endpoint"]),
            ca=base / str(src["ca"]),
            cert=base / str(src["cert"]),
            key=base / str(src["key"]),
            department=str(src["department"]),
            server_name=str(src.get("server_name", "")),
            batch_size=int(src.get("batch_size", 5_000)),
            timeout_seconds=float(src.get("timeout_seconds", 120.0)),
        )
    except KeyError as exc:
        raise CliError("INVALID_CONFIG", f"{path}: source.{exc.args[0]} is required") from None


@dataclass
class SubmitReport:
    rows: int = 0
    stored: int = 0
    replayed: int = 0
    batches: int = 0
    rejected: list[RowProblem] = field(default_factory=list)


def _batches(rows: Iterator[Row], size: int, report: SubmitReport) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        report.rows += 1
        if row.message is None:
            assert row.problem is not None
            report.rejected.append(row.problem)
            continue
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _request(kind: str, batch_id: str, rows: list[Row]) -> Any:
    messages: list[Message] = [r.message for r in rows if r.message is not None]
    if kind == "residence":
        facts = [m for m in messages if isinstance(m, node_pb2.ResidenceFact)]
        return node_pb2.SubmitResidenceFactsRequest(batch_id=batch_id, facts=facts)
    if kind == "listings":  # H10: organisations on the severe-dishonesty list
        listings = [m for m in messages if isinstance(m, node_pb2.OrganisationListing)]
        return node_pb2.SubmitOrganisationListingsRequest(batch_id=batch_id, listings=listings)
    records = [m for m in messages if isinstance(m, scoring_pb2.CreditRecord)]
    return node_pb2.SubmitRecordsRequest(batch_id=batch_id, records=records)


def _shown(text: str) -> str:
    return "(withheld: held an ID number)" if contains_id_number(text) else text


async def _file_batch(  # noqa: PLR0917 - private helper of submit_file
    call: Any, kind: str, batch_id: str, rows: list[Row], report: SubmitReport, timeout: float
) -> int:
    """File one batch, dropping refused rows and retrying; returns rows handled."""
    total = len(rows)
    for attempt in range(MAX_RETRIES + 1):
        bid = batch_id if attempt == 0 else f"{batch_id}-r{attempt}"
        if not rows:
            return total
        try:
            resp = await call(_request(kind, bid, rows), timeout=timeout)
        except aio.AioRpcError as err:
            rejection = batch_rejection_of(err)
            if rejection is None or not rejection.rejections:
                if err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS,
                                  grpc.StatusCode.FAILED_PRECONDITION):  # fmt: skip
                    report.rejected += [
                        RowProblem(r.line, "", reason_of(err), _shown(err.details() or ""))
                        for r in rows
                    ]
                    return total
                raise
            refused = {int(r.index) for r in rejection.rejections}
            report.rejected += [
                RowProblem(rows[r.index].line, r.field, r.code, _shown(r.message))
                for r in rejection.rejections
                if r.index < len(rows)
            ]
            rows = [r for i, r in enumerate(rows) if i not in refused]
            continue
        report.batches += 1
        report.stored += resp.accepted if not resp.replayed else 0
        report.replayed += resp.accepted if resp.replayed else 0
        return total
    report.rejected += [
        RowProblem(r.line, "", "GAVE_UP", f"batch refused {MAX_RETRIES} times") for r in rows
    ]
    return total


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:8]


async def submit_file(
    config: SourceClientConfig,
    path: Path,
    kind: str,
    *,
    progress: bool = True,
    batch_prefix: str = "",
) -> SubmitReport:
    """File ``path`` (``kind`` residence|records|listings) through SourceService; see the module."""
    if kind not in KINDS:
        raise CliError("INVALID_ARGUMENT", f"--kind must be one of {sorted(KINDS)}")
    try:
        ca, cert, key = config.ca.read_bytes(), config.cert.read_bytes(), config.key.read_bytes()
        total = count_rows(path)
        prefix = batch_prefix or f"{path.stem[:80]}-{_file_sha(path)}"
    except OSError as exc:
        raise CliError("INVALID_ARGUMENT", str(exc)) from None
    report = SubmitReport()
    bar = Progress(total, f"{config.department} {kind}", unit="rows") if progress else None
    channel = peer_channel(
        config.endpoint, ca, cert, key, server_name=config.server_name or None,
        max_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    stub = node_pb2_grpc.SourceServiceStub(channel)
    call = {
        "residence": stub.SubmitResidenceFacts,
        "listings": stub.SubmitOrganisationListings,
    }.get(kind, stub.SubmitRecords)
    gate = asyncio.Semaphore(IN_FLIGHT)
    done = 0
    tasks: set[asyncio.Task[int]] = set()

    async def one(n: int, rows: list[Row]) -> int:
        nonlocal done
        try:
            handled = await _file_batch(
                call, kind, f"{prefix}-{n:06d}", rows, report, config.timeout_seconds
            )
        finally:
            gate.release()
        done += handled
        if bar is not None:
            bar.update(min(done, total))
        return handled

    try:
        for n, rows in enumerate(_batches(read_rows(path, kind), config.batch_size, report)):
            await gate.acquire()
            task = asyncio.create_task(one(n, rows))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)
    except aio.AioRpcError as err:
        raise CliError(reason_of(err) or err.code().name, _shown(err.details() or "")) from None
    finally:
        for t in tasks:
            t.cancel()
        await channel.close(None)
        if bar is not None:
            bar.update(total)
            bar.close()
    report.rejected.sort(key=lambda p: p.line)
    return report


def write_rejects(path: Path, rejected: list[RowProblem]) -> None:
    """``line,field,code,message`` per refused row (never an ID number)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["line", "field", "code", "message"])
        for p in rejected:
            out.writerow([p.line, p.field, p.code, _shown(p.message)])


def register(sub: SubParsers) -> None:
    group = subgroup(sub, "source", "a source department files data with its own certificate")
    p = group.add_parser("submit", help="file a CSV or JSONL file through SourceService")
    p.add_argument("--config", required=True, type=Path, metavar="FILE", help="source.toml")
    p.add_argument("--file", required=True, type=Path, metavar="F.csv|F.jsonl")
    p.add_argument("--kind", choices=sorted(KINDS), default="records")
    p.add_argument("--rejects", required=True, type=Path, metavar="OUT.csv")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_submit)


def _submit(args: argparse.Namespace) -> int:
    config = load_source_config(args.config)
    report = asyncio.run(submit_file(config, args.file, args.kind, progress=not args.no_progress))
    write_rejects(args.rejects, report.rejected)
    refused_rows = len({p.line for p in report.rejected})
    print(
        f"{report.rows} rows: {report.stored} stored, {report.replayed} already stored "
        f"(replayed), {refused_rows} refused (see {args.rejects}); {report.batches} batches",
        file=sys.stdout,
    )
    return 1 if refused_rows else 0
