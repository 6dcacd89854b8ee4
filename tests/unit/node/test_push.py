"""Push client: [hub] config, hub resolution, backoff, receipts checked, resume rules (H13)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keys import KeyPair
from node.cli._init import init_region, load_or_create_ca
from node.core._config import ConfigError, HubConfig, parse_config
from node.core._secrets import load_secrets
from node.federation._push import Pusher, PushError, hub_target
from node.monthly._snapshots import sign_run
from node.rpc._server import NodeServer
from node.store import connect

BASE: dict[str, Any] = {
    "node": {"region": "heihe", "scheme": "heihe"},
    "tls": {"cert": "t.pem", "key": "t.key", "ca": "ca.pem"},
    "keys": {"root": "r", "signing": "s", "key_set": "k", "storage_secret": "x", "seal": "y"},
}


def _cfg(tmp: Path, **hub: Any) -> Any:
    return parse_config({**BASE, "hub": hub}, tmp)


def test_hub_section_defaults_and_paths(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, province_key="keys/p.key", hub_key="ab" * 32, endpoint="h:1", hub_id="hl")
    assert cfg.hub.province_key == tmp_path / "keys/p.key"
    assert cfg.hub.batch_leaves == HubConfig().batch_leaves == 10_000
    assert hub_target(cfg).hub_key == bytes.fromhex("ab" * 32)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"hub_key": "zz"}, "hub.hub_key"),
        ({"hub_key": "ab"}, "hub.hub_key"),
        ({"max_items_per_push": 0}, "hub.max_items_per_push"),
        ({"push_interval_seconds": -1}, "hub.push_interval_seconds"),
        ({"trust_list_ttl_seconds": 100, "trust_list_refresh_seconds": 60},
         "hub.trust_list_refresh_seconds"),
        ({"unknown": 1}, "hub.unknown"),
        ({"province_key": 3}, "hub.province_key"),
    ],
    ids=["hub-key-not-hex", "hub-key-short", "zero-items", "negative-interval",
         "refresh-over-half-ttl", "unknown-key", "province-key-not-path"],
)  # fmt: skip
def test_bad_hub_section_refused(tmp_path: Path, values: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, **values)
    assert err.value.field == field


def test_no_hub_configured(tmp_path: Path) -> None:
    with pytest.raises(PushError) as err:
        hub_target(_cfg(tmp_path))
    assert err.value.code == "PUSH_NOT_CONFIGURED"


async def _setup(tmp_path: Path, *, hub_key: bytes | None = None) -> tuple[NodeServer, Any, Any]:
    """An in-process hub (role hub, mTLS on port 0) and a region with a signed month."""
    from tests.support.hub_world import populate_sealed  # real node keys, sealed IDs

    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    init_region(tmp_path / "hub", "heilongjiang", "heihe", ca, now, role="hub")
    hub_cfg = parse_config_file(tmp_path / "hub/node.toml")
    hub = await NodeServer.create(hub_cfg)
    ports = await hub.start()
    hub_pk = hub.ctx.secrets.root.public_key if hub_key is None else hub_key
    init_region(tmp_path / "heihe", "heihe", "heihe", ca, now)
    (tmp_path / "heihe/keys/province.key").write_text(KeyPair.generate().seed.hex())
    with (tmp_path / "heihe/node.toml").open("a") as fh:
        fh.write(
            f'\n[hub]\nprovince_key = "keys/province.key"\nendpoint = "127.0.0.1:{ports.peer}"\n'
            f'hub_id = "heilongjiang"\nhub_key = "{hub_pk.hex()}"\npush_interval_seconds = 0\n'
            "batch_leaves = 5\n"
        )
    from node.cli._main import main

    assert main(["hub", "register", "--config", str(tmp_path / "hub/node.toml"),
                 "--region-dir", str(tmp_path / "heihe")]) == 0  # fmt: skip
    await hub.hub_role.hub.reload()  # type: ignore[union-attr]
    from node.demo._testbed import make_id_number

    populate_sealed(tmp_path / "heihe", [make_id_number(i) for i in range(12)])
    region_cfg = parse_config_file(tmp_path / "heihe/node.toml")
    from node.monthly._batch import run_month
    from node.monthly._snapshots import signer_from_config
    from scoring import load_scheme

    run_month(region_cfg.database, load_scheme("heihe"), "2026-10", workers=1)
    conn = connect(region_cfg.database)
    sign_run(
        conn, 1, signer_from_config(region_cfg, load_secrets(region_cfg)), int(now.timestamp())
    )
    conn.close()
    return hub, region_cfg, load_secrets(region_cfg)


def parse_config_file(path: Path) -> Any:
    from node.core._config import load_config

    return load_config(path)


async def test_push_once_stores_verified_receipts_and_resumes(tmp_path: Path) -> None:
    """REQ: H13 — receipts verified under the hub key set; a second push sends nothing."""
    from node.store._db import Database

    hub, cfg, secrets = await _setup(tmp_path)
    db = await Database.open(cfg.database)
    try:
        pusher = Pusher(db, cfg, secrets)
        now = int(datetime.now(UTC).timestamp())
        first = await pusher.push_once(now, max_events=2)
        assert (first.events, first.cursor) == (2, 2)
        rest = await pusher.push_once(now)
        assert (rest.events, rest.cursor) == (1, 3)
        assert (await pusher.push_once(now)).events == 0
        rows = await db.fetchall("SELECT seq, verified FROM push_receipts ORDER BY seq")
        assert [tuple(r) for r in rows] == [(1, 1), (2, 1), (3, 1)]
        assert pusher.backoff() <= cfg.hub.backoff_base_seconds
    finally:
        await db.close()
        await hub.stop(0.5)


async def test_receipt_under_unknown_hub_key_refused(tmp_path: Path) -> None:
    """Fail closed: a hub whose key set does not verify under the pinned key is not trusted."""
    from node.store._db import Database

    hub, cfg, secrets = await _setup(tmp_path, hub_key=KeyPair.generate().public_key)
    db = await Database.open(cfg.database)
    try:
        with pytest.raises(Exception) as err:
            await Pusher(db, cfg, secrets).push_once(int(datetime.now(UTC).timestamp()))
        assert getattr(err.value, "code", "") in ("BAD_KEY_SET", "BAD_RECEIPT")
        assert (await db.fetchone("SELECT count(*) FROM push_receipts"))[0] == 0
    finally:
        await db.close()
        await hub.stop(0.5)


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, endpoint="h:1", hub_id="hl", backoff_base_seconds=1.0,
               backoff_max_seconds=8.0)  # fmt: skip
    p = Pusher.__new__(Pusher)
    p._config = cfg
    delays = []
    for failures in range(8):
        p._failures = failures
        delays.append(p.backoff())
    assert all(0.5 * min(8, 2**f) <= d <= min(8, 2**f) for f, d in enumerate(delays))
    assert max(delays) <= 8.0


def test_pusher_refuses_to_run_without_pinned_hub_key(tmp_path: Path) -> None:
    """REQ: H13 — receipts must be signed by the hub: no pinned key, no pusher."""
    cfg = _cfg(tmp_path, endpoint="h:1", hub_id="hl")
    with pytest.raises(PushError) as err:
        Pusher(None, cfg, None)  # type: ignore[arg-type]
    assert (err.value.code, err.value.field) == ("HUB_KEY_REQUIRED", "hub.hub_key")


def _tamper_receipt(field: str) -> Any:
    def change(r: Any) -> None:
        if field == "content_sha256":
            r.content_sha256 = bytes(32)
        elif field == "leaves":
            r.leaves = r.leaves - 1
        elif field == "kind":
            r.kind = "status_list"
        else:
            r.event_id = "another-event"

    return change


@pytest.mark.parametrize(
    "field", ["content_sha256", "leaves", "kind", "event_id"],
    ids=["other-content", "partial-leaves", "other-kind", "other-event"],
)  # fmt: skip
async def test_receipt_not_matching_the_event_sent_refused(tmp_path: Path, field: str) -> None:
    """REQ: H13 — a correctly SIGNED receipt whose content hash, leaf count, kind or event
    differs from the outbox event sent is BAD_RECEIPT naming the field; it is not stored
    and the event does not count as acknowledged."""
    from types import SimpleNamespace

    from keys import sign
    from keys.pb.v1 import attestation_pb2
    from node.federation._push import HubTarget
    from node.hub._ingest import RECEIPT_TYPE
    from node.pb.v1 import hub_pb2
    from node.store._db import Database
    from tests.support.hub_world import HUB, NOW, make_world

    w = await make_world(tmp_path)
    good = attestation_pb2.Envelope.FromString(await w.hub.ingest("heihe", w.items[0], NOW + 1))
    receipt = hub_pb2.Receipt.FromString(good.payload)
    _tamper_receipt(field)(receipt)
    forged = sign(RECEIPT_TYPE, receipt.SerializeToString(), w.hub_signing).to_proto()
    db = await Database.open(w.region.path)
    try:
        p = Pusher.__new__(Pusher)
        p._db, p._config = db, SimpleNamespace(region="heihe")  # type: ignore[assignment]
        p.target = HubTarget(HUB, "unused:1", b"k" * 32, "")
        p._hub_keys = {w.hub_signing.key_id: w.hub_signing.public_key}
        for sent in ({1: w.items[0]}, None):  # answering a stream / fetched later
            if sent is None and field == "leaves":
                receipt.leaves = 99  # a fetched receipt may not exceed the batch either
                forged = sign(RECEIPT_TYPE, receipt.SerializeToString(), w.hub_signing).to_proto()
            with pytest.raises(PushError) as err:
                await p._store_receipts(None, [forged], sent)  # type: ignore[arg-type]
            assert (err.value.code, err.value.field) == ("BAD_RECEIPT", field)
        assert (await db.fetchone("SELECT count(*) FROM push_receipts"))[0] == 0
        assert await p._store_receipts(None, [good], {1: w.items[0]}) == 1  # type: ignore[arg-type]
        with pytest.raises(PushError) as err:  # a stream answered without all its receipts
            await p._store_receipts(None, [good], {1: w.items[0], 2: w.items[1]})  # type: ignore[arg-type]
        assert err.value.field == "receipts"
    finally:
        await db.close()


async def test_push_stream_too_long_names_events(tmp_path: Path) -> None:
    """A stream with more events than the hub's limit: RESOURCE_EXHAUSTED PUSH_TOO_LONG,
    field ``events`` (trailing metadata)."""
    import dataclasses

    from grpc import StatusCode, aio

    from node.store._db import Database

    hub, cfg, secrets = await _setup(tmp_path)
    small = dataclasses.replace(hub.ctx.config.hub, max_items_per_push=1)
    object.__setattr__(hub.ctx, "config", dataclasses.replace(hub.ctx.config, hub=small))
    db = await Database.open(cfg.database)
    try:
        with pytest.raises(aio.AioRpcError) as err:
            await Pusher(db, cfg, secrets).push_once(int(datetime.now(UTC).timestamp()))
        meta = dict(err.value.trailing_metadata() or ())
        assert err.value.code() == StatusCode.RESOURCE_EXHAUSTED
        assert (meta["huxin-reason"], meta["huxin-field"]) == ("PUSH_TOO_LONG", "events")
    finally:
        await db.close()
        await hub.stop(0.5)
