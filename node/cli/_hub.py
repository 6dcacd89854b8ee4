"""CLI of the hub helper: ``huxin hub register|trust-list``, ``huxin push``, ``huxin score publish``.

* ``huxin score publish --config region.toml --period YYYY-MM`` (and the same
  ``huxin score run --config region.toml --period YYYY-MM``) runs the month
  (``node.monthly._batch.run_month``, idempotent) with the scheme version IN FORCE on
  the node today (:func:`node.model._rollout.active_scheme`: the stored
  rollout, as a running or restarted node serves it — H11, N12), and signs it
  as Merkle batches under the province pseudonym (:mod:`node.monthly._snapshots`, H3),
  queued in the outbox; the attestations name that version;
* ``huxin push --config region.toml`` pushes the outbox to the hub once
  (resumes from the hub's cursor; the background loop of ``huxin serve`` does
  the same every ``[hub] push_interval_seconds``);
* ``huxin hub register --config hub.toml --region-dir DIR`` adds or updates a
  region in the hub's registry from the region's node directory (its
  ``node.toml``, key set, root public key, and the certificates it pins: the
  live one and a staged next one, ``node.federation._tlscert.certificate_pins``);
* ``huxin hub trust-list --config hub.toml [--out FILE]`` signs a new trust
  list version if due (``--force``: now) and prints or writes the envelope.

Errors print ``error: CODE: message`` (exit 2); ``--json`` for machine output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from keys import KeysError, decode_private_key
from node.cli._main import CliError, SubParsers, subgroup
from node.cli._storage import STORAGE_ERRORS, storage_failure
from node.core._config import ConfigError, NodeConfig, load_config
from node.core._secrets import NodeSecrets, load_secrets
from node.federation._tlscert import certificate_pins
from node.hub._registry import RegistryError, publish_if_due, register_region
from node.model._rollout import active_scheme
from node.monthly._batch import BatchError, run_month
from node.monthly._snapshots import (
    SnapshotError,
    sign_run,
    signer_from_config,
)
from node.store import _rollouts as rollouts
from node.store import connect, immediate, offline_job
from node.store._backend import Target
from scoring import Scheme, load_scheme

__all__ = ["publish", "register", "scheme_in_force"]


def register(sub: SubParsers) -> None:
    score = subgroup(sub, "score", "score people: explain one, run a month")
    p = score.add_parser("publish", help="run the month and sign it as Merkle batches (H3)")
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--period", required=True, metavar="YYYY-MM")
    p.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_publish)

    p = sub.add_parser("push", help="push the outbox to the provincial hub once (H13)")
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--max-events", type=int, default=None, help="push at most N events")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_push)

    hub = subgroup(sub, "hub", "provincial hub: region registry and trust list")
    p = hub.add_parser("register", help="add or update a region in the hub's registry")
    p.add_argument("--config", required=True, type=Path, metavar="FILE", help="the hub's config")
    p.add_argument("--region-dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--endpoint", default="", metavar="HOST:PORT", help="default: its [listen] peer")
    p.add_argument("--name", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_register)

    p = hub.add_parser("trust-list", help="sign the trust list if due; print or write it")
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--out", type=Path, help="write the signed envelope here")
    p.add_argument("--force", action="store_true", help="sign a new version now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_trust_list)


def _config(path: Path) -> NodeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _secrets(config: NodeConfig) -> NodeSecrets:
    passphrase = os.environ.get("HUXIN_KEY_PASSPHRASE")
    try:
        return load_secrets(config, passphrase.encode() if passphrase else None)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if args.json else text)


def scheme_in_force(storage: Target, shipped: Scheme, today: date) -> Scheme:
    """The version the node scores with on ``today`` (its stored rollout; the shipped
    scheme when there is none) — the same decision as the running server's.
    ``storage`` is a storage target (``config.storage``; issue 18)."""
    conn = connect(storage, create=False)
    try:
        row = rollouts.scheme_row(conn, shipped.id)
    finally:
        conn.close()
    return active_scheme(row[0] if row else None, row[1] if row else None, shipped, today)


def publish(args: argparse.Namespace) -> int:
    """``score publish`` / ``score run --config``: run the month with the version in
    force, sign it as Merkle batches, queue them for the hub."""
    return _publish(args)


def _publish(args: argparse.Namespace) -> int:
    from node.cli._batch import ended_period

    ended_period(args.period)  # first: a month not over yet is never signed
    config = _config(args.config)
    secrets = _secrets(config)
    now = _now()
    # the run's database: [storage] whole, so its password_file is read (issue 18)
    db = config.storage
    try:
        scheme = scheme_in_force(
            config.storage, load_scheme(config.scheme), datetime.fromtimestamp(now, UTC).date()
        )
        signer = signer_from_config(config, secrets)
        with offline_job(config.storage):  # run and signing: restore refuses meanwhile
            run = run_month(
                db, scheme, args.period, workers=args.workers,
                records_through=records_through(now),  # reproducible: docs/adr/0514
            )  # fmt: skip
            conn = connect(config.storage, create=False)
            try:
                signed = sign_run(conn, run.run_id, signer, now)
            finally:
                conn.close()
    except STORAGE_ERRORS as exc:
        raise storage_failure(config, exc) from None
    except (SnapshotError, BatchError) as exc:
        raise CliError(exc.code, str(exc)) from None
    _emit(
        args,
        {"run_id": run.run_id, "period": run.period, "scheme": scheme.key,
         "subjects": run.subjects,
         "eligible": run.eligible, "batches": signed.batches,
         "batches_signed": signed.batches_signed, "leaves": signed.leaves},
        f"{run.period} ({scheme.key}): {run.subjects:,} scored, {run.eligible:,} eligible;"
        f" {signed.leaves:,}"
        f" attestations in {signed.batches} signed batches ({signed.batches_signed} new),"
        f" queued for the hub",
    )  # fmt: skip
    return 0


def records_through(now: int) -> str:
    """The instant up to which a run started at ``now`` reads records: the second before
    (records of that second may still be arriving), in the form of records.submitted_at."""
    return datetime.fromtimestamp(now - 1, UTC).isoformat(timespec="seconds")


def _push(args: argparse.Namespace) -> int:
    config = _config(args.config)
    secrets = _secrets(config)

    async def go() -> Any:
        from node.federation._push import Pusher
        from node.store._db import Database

        db = await Database.open(config.storage)
        try:
            return await Pusher(db, config, secrets).push_once(
                _now(), timeout=args.timeout, max_events=args.max_events
            )
        finally:
            await db.close()

    from node.federation._push import PushError
    from node.rpc._client import reason_of

    try:
        result = asyncio.run(go())
    except PushError as exc:
        raise CliError(exc.code, str(exc)) from None
    except Exception as exc:
        reason = reason_of(exc)
        if not reason:
            raise
        raise CliError(reason, f"the hub refused the push: {reason}", exit_code=1) from None
    _emit(
        args,
        {"hub": result.hub, "cursor": result.cursor, "events": result.events,
         "receipts": result.receipts, "witnessed_log_size": result.witnessed_size},
        f"pushed {result.events} events to {result.hub}; hub cursor {result.cursor};"
        f" {result.receipts} receipts stored; log witnessed at size {result.witnessed_size}",
    )  # fmt: skip
    return 0


def _register(args: argparse.Namespace) -> int:
    hub_config = _config(args.config)
    if hub_config.role != "hub":
        raise CliError("NOT_A_HUB", f"{args.config} is not a hub config (role = 'hub')")
    region = _config(args.region_dir / "node.toml")
    try:
        root = decode_private_key(region.keys.root.read_bytes())
        key_set = region.keys.key_set.read_bytes()
        region.tls.cert.read_bytes()  # the live certificate must be there
        tls = certificate_pins(region)  # live and staged next (ADR 0415)
    except (OSError, KeysError) as exc:
        raise CliError("REGION_FILES_UNREADABLE", f"{args.region_dir}: {exc}") from None
    endpoint = args.endpoint or region.listen.peer
    conn = connect(hub_config.storage)
    try:
        with immediate(conn):
            version = register_region(
                conn, region=region.region, root_public_key=root.public_key, key_set=key_set,
                now=_now(), schemes=(load_scheme(region.scheme).key,), endpoints=(endpoint,),
                tls_sha256=tls, name=args.name,
            )  # fmt: skip
    except RegistryError as exc:
        raise CliError(exc.code, str(exc)) from None
    finally:
        conn.close()
    _emit(
        args,
        {"region": region.region, "key_set_version": version, "endpoint": endpoint},
        f"registered {region.region} (key set v{version}, endpoint {endpoint});"
        " the trust list is re-signed by the running hub within a minute",
    )
    return 0


def _trust_list(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config.role != "hub":
        raise CliError("NOT_A_HUB", f"{args.config} is not a hub config (role = 'hub')")
    secrets = _secrets(config)
    from node.hub._ingest import own_entry

    endpoints = (config.hub.endpoint,) if config.hub.endpoint else ()
    own = own_entry(
        config.region, secrets.root.public_key, secrets.key_set_envelope, endpoints,
        tls_sha256=certificate_pins(config),
    )  # fmt: skip
    conn = connect(config.storage)
    try:
        with immediate(conn):
            publish_if_due(
                conn, hub_id=config.region, hub_root=secrets.root, own=own, now=_now(),
                ttl=config.hub.trust_list_ttl_seconds,
                refresh=config.hub.trust_list_refresh_seconds, force=args.force,
            )  # fmt: skip
        from node.hub._registry import current_trust_list

        row = current_trust_list(conn)
    except RegistryError as exc:
        raise CliError(exc.code, str(exc)) from None
    finally:
        conn.close()
    assert row is not None
    if args.out:
        args.out.write_bytes(row.envelope)
    elif not args.json:
        sys.stdout.buffer.write(row.envelope)
        return 0
    _emit(
        args,
        {"version": row.version, "issued_at": row.issued_at, "expires_at": row.expires_at,
         "out": str(args.out) if args.out else None},
        f"trust list v{row.version}, expires at {row.expires_at}, written to {args.out}",
    )  # fmt: skip
    return 0
