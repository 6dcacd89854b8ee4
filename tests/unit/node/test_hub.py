"""Hub ingest: verify before acknowledging, one transaction, signed receipts, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from keys import (
    KeyPair,
    KeySet,
    VerificationError,
    issue_batch,
    leaf_hash,
    load_trust,
    pae,
    province_pseudonym,
    verified_signer,
    verify_key_set,
)
from keys.pb.v1 import attestation_pb2
from node.core._config import HubConfig
from node.core._errors import NodeError
from node.hub._ingest import RECEIPT_TYPE
from node.hub._registry import RegistryError, register_region
from node.pb.v1 import hub_pb2
from node.rpc._status import status_of
from node.store._db import Database
from tests.support.hub_world import (  # noqa: F401 (close_databases: an autouse fixture)
    HUB,
    NOW,
    PROVINCE,
    Region,
    World,
    close_databases,
    make_region,
    make_world,
)

TABLES = ("hub_batches", "hub_leaves", "hub_events", "hub_status_lists")


async def _counts(db: Database) -> dict[str, int]:
    return {t: (await db.fetchone(f"SELECT count(*) FROM {t}"))[0] for t in TABLES}


def _receipt(w: World, blob: bytes) -> hub_pb2.Receipt:
    payload, _ = verified_signer(
        blob, {w.hub_signing.key_id: w.hub_signing.public_key}, RECEIPT_TYPE
    )
    return hub_pb2.Receipt.FromString(payload)


async def test_batches_verified_stored_and_receipted(tmp_path: Path) -> None:
    """REQ: H13 — every pushed batch is verified, stored in one transaction, receipted."""
    w = await make_world(tmp_path)
    receipts = [await w.hub.ingest("heihe", it, NOW + 1) for it in w.items]
    got = [_receipt(w, r) for r in receipts]
    assert [(r.seq, r.region, r.hub, r.kind) for r in got] == [
        (i + 1, "heihe", HUB, "snapshot_batch") for i in range(3)
    ]
    assert sum(r.leaves for r in got) == 9
    counts = await _counts(w.db)
    assert counts["hub_leaves"] == 9 and counts["hub_events"] == 3
    cur = await w.hub.cursor("heihe")
    assert cur.cursor == 3 and cur.last_receipt.SerializeToString() == receipts[-1]
    ps = province_pseudonym(PROVINCE, w.region.ids[0])
    row = await w.db.fetchone("SELECT count(*) FROM hub_leaves WHERE pseudonym = ?", (ps,))
    assert row[0] == 1


async def test_duplicate_applied_once(tmp_path: Path) -> None:
    """REQ: H13 — a resent event is not applied twice; its stored receipt comes back."""
    w = await make_world(tmp_path)
    first = await w.hub.ingest("heihe", w.items[0], NOW + 1)
    again = await w.hub.ingest("heihe", w.items[0], NOW + 2)
    assert again == first
    assert (await _counts(w.db))["hub_leaves"] == 4


def _tamper_payload(it: hub_pb2.PushItem) -> None:
    p = bytearray(it.snapshot_batch.payloads[1])
    p[-1] ^= 1
    it.snapshot_batch.payloads[1] = bytes(p)


def _drop_leaf(it: hub_pb2.PushItem) -> None:
    del it.snapshot_batch.payloads[-1]


def _swap_leaves(it: hub_pb2.PushItem) -> None:
    p = it.snapshot_batch.payloads
    p[0], p[1] = p[1], p[0]


def _bad_signature(it: hub_pb2.PushItem) -> None:
    sig = bytearray(it.snapshot_batch.checkpoint.signatures[0].sig)
    sig[0] ^= 1
    it.snapshot_batch.checkpoint.signatures[0].sig = bytes(sig)


def _bad_period(it: hub_pb2.PushItem) -> None:
    it.snapshot_batch.period = "2026-11"


def _fake_redaction(it: hub_pb2.PushItem) -> None:
    it.snapshot_batch.redacted.add(index=0, leaf_hash=b"\x00" * 32)
    it.snapshot_batch.payloads[0] = b""


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_tamper_payload, "BAD_PROOF"),
        (_drop_leaf, "BAD_PROOF"),
        (_swap_leaves, "BAD_PROOF"),
        (_bad_signature, "BAD_SIGNATURE"),
        (_bad_period, "LEAF_MISMATCH"),
        (_fake_redaction, "BAD_PROOF"),
    ],
    ids=["payload-byte", "dropped-leaf", "swapped-leaves", "signature", "period", "fake-redaction"],
)
async def test_tampered_batch_refused_nothing_stored(
    tmp_path: Path, tamper: object, code: str
) -> None:
    """REQ: H13, H17 — the hub verifies before acknowledging; a tampered batch stores nothing."""
    w = await make_world(tmp_path)
    item = hub_pb2.PushItem()
    item.CopyFrom(w.items[0])
    tamper(item)  # type: ignore[operator]
    with pytest.raises((VerificationError, NodeError)) as err:
        await w.hub.ingest("heihe", item, NOW + 1)
    assert getattr(err.value, "code", None) == code
    assert await _counts(w.db) == dict.fromkeys(TABLES, 0)
    assert (await w.hub.cursor("heihe")).cursor == 0


async def test_leaf_for_another_audience_refused(tmp_path: Path) -> None:
    """A correctly signed batch whose leaves are not for this hub is refused whole."""
    w = await make_world(tmp_path)
    payload = attestation_pb2.Attestation(
        attestation_id="x", issuer_region="heihe", scheme_id="heihe", scheme_version="2024.1",
        grade="A", period="2026-10", issued_at=NOW, expires_at=NOW + 99,
        subject_binding=b"s" * 32, audience="another-hub",
    ).SerializeToString()  # fmt: skip
    batch = issue_batch([payload], w.region.signing, "heihe", NOW)
    item = hub_pb2.PushItem(seq=1, event_id="b", kind="snapshot_batch")
    b = item.snapshot_batch
    b.batch_id, b.period, b.scheme_id, b.scheme_version = "b", "2026-10", "heihe", "2024.1"
    b.payload_type = batch.payload_type
    b.payloads.append(payload)
    b.checkpoint.CopyFrom(batch.checkpoint.to_proto())
    with pytest.raises(NodeError) as err:
        await w.hub.ingest("heihe", item, NOW + 1)
    assert err.value.code == "LEAF_MISMATCH"
    assert await _counts(w.db) == dict.fromkeys(TABLES, 0)


async def test_region_cannot_push_another_regions_batch(tmp_path: Path) -> None:
    """REQ: H17 — the checkpoint must be signed by the CALLER's certified key."""
    w = await make_world(tmp_path)
    other = make_region(tmp_path / "o", "hainan")
    await w.db.write_unit(
        lambda c: register_region(
            c,
            region="hainan",
            root_public_key=other.root.public_key,
            key_set=other.key_set,
            now=NOW,
        )
    )
    await w.hub.reload()
    with pytest.raises(VerificationError) as err:
        await w.hub.ingest("hainan", w.items[0], NOW + 1)
    assert err.value.code in ("ISSUER_MISMATCH", "UNKNOWN_KEY")
    assert await _counts(w.db) == dict.fromkeys(TABLES, 0)


async def test_unregistered_region_refused(tmp_path: Path) -> None:
    """REQ: H17 — a region not in the registry is refused and counted."""
    w = await make_world(tmp_path, register=False)
    with pytest.raises(NodeError) as err:
        await w.hub.ingest("heihe", w.items[0], NOW + 1)
    assert err.value.code == "REGION_NOT_REGISTERED"
    assert w.hub.metrics.refused_regions.labels("heihe")._value.get() == 1


@pytest.mark.parametrize(
    ("seq", "event_id", "code"),
    [(2, None, "SEQUENCE_GAP"), (1, "other-id", "EVENT_CONFLICT")],
    ids=["gap", "seq-reused-with-other-id"],
)
async def test_sequence_rules(tmp_path: Path, seq: int, event_id: str | None, code: str) -> None:
    w = await make_world(tmp_path)
    if code == "EVENT_CONFLICT":
        await w.hub.ingest("heihe", w.items[0], NOW + 1)
    item = hub_pb2.PushItem()
    item.CopyFrom(w.items[1] if code == "SEQUENCE_GAP" else w.items[0])
    item.seq = seq
    if event_id:
        item.event_id = event_id
    with pytest.raises(NodeError) as err:
        await w.hub.ingest("heihe", item, NOW + 1)
    assert err.value.code == code


async def test_deregistration_deletes_region_leaves_and_redacted_batch_verifies(
    tmp_path: Path,
) -> None:
    """REQ: H2 — a deregistration deletes what the hub holds for the province pseudonym;
    a batch signed before the deregistration still verifies with the deleted leaf's hash."""
    w = await make_world(tmp_path)
    await w.hub.ingest("heihe", w.items[0], NOW + 1)
    idn = w.region.ids[0]
    ps = province_pseudonym(PROVINCE, idn)
    in_first = any(ps in p for p in w.items[0].snapshot_batch.payloads)
    dereg = hub_pb2.PushItem(seq=2, event_id="dereg-1", kind="deregistration")
    dereg.deregistration.province_pseudonym = ps
    dereg.deregistration.deregistered_at = NOW
    before = (await _counts(w.db))["hub_leaves"]
    r = _receipt(w, await w.hub.ingest("heihe", dereg, NOW + 2))
    after = (await _counts(w.db))["hub_leaves"]
    assert before - after == r.leaves == int(in_first)
    # a later batch with a redacted leaf (deleted at the region) still verifies
    item = hub_pb2.PushItem()
    item.CopyFrom(w.items[1])
    item.seq = 3
    b = item.snapshot_batch
    h = leaf_hash(pae(b.payload_type, b.payloads[2]))
    b.redacted.add(index=2, leaf_hash=h)
    b.payloads[2] = b""
    r3 = _receipt(w, await w.hub.ingest("heihe", item, NOW + 3))
    assert r3.leaves == 3


async def test_status_list_stored(tmp_path: Path) -> None:
    from keys import StatusList

    w = await make_world(tmp_path)
    env = StatusList("heihe", "attestations-1", 131072).sign(w.region.signing, NOW, NOW + 60)
    item = hub_pb2.PushItem(seq=1, event_id="status/1", kind="status_list")
    item.status_list.CopyFrom(env.to_proto())
    r = _receipt(w, await w.hub.ingest("heihe", item, NOW + 3600))  # arrives after expiry
    assert r.kind == "status_list"
    assert (await _counts(w.db))["hub_status_lists"] == 1


async def test_trust_list_published_versioned_and_refreshed(tmp_path: Path) -> None:
    """The hub signs a versioned, expiring trust list; re-signs on schedule or change."""
    w = await make_world(tmp_path)
    first = await w.hub.refresh_trust_list(NOW)
    assert first is not None and first.version == 1
    assert await w.hub.refresh_trust_list(NOW + 10) is None  # fresh and unchanged
    trust = load_trust(first.envelope, w.hub_root.public_key, NOW + 10)
    assert set(trust.regions) == {"heihe", HUB}
    assert trust.expires_at == NOW + HubConfig().trust_list_ttl_seconds
    later = await w.hub.refresh_trust_list(NOW + HubConfig().trust_list_refresh_seconds)
    assert later is not None and later.version == 2
    other = make_region(tmp_path / "o", "hainan")
    await w.db.write_unit(
        lambda c: register_region(
            c,
            region="hainan",
            root_public_key=other.root.public_key,
            key_set=other.key_set,
            now=NOW,
        )
    )
    changed = await w.hub.refresh_trust_list(NOW + HubConfig().trust_list_refresh_seconds + 5)
    assert changed is not None and changed.version == 3
    at = NOW + HubConfig().trust_list_refresh_seconds + 5  # not before it was issued
    assert set(load_trust(changed.envelope, w.hub_root.public_key, at).regions) == {
        "heihe", "hainan", HUB,
    }  # fmt: skip
    with pytest.raises(VerificationError) as err:
        load_trust(first.envelope, w.hub_root.public_key, NOW, min_version=3)
    assert err.value.code == "TRUST_ROLLBACK"


@pytest.mark.parametrize(
    ("change", "code"),
    [("root", "ROOT_KEY_CHANGED"), ("weak", "WEAK_KEY"), ("foreign-key-set", "BAD_KEY_SET")],
    ids=["root-changed", "weak-root", "key-set-of-other-root"],
)
async def test_registration_refused(tmp_path: Path, change: str, code: str) -> None:
    w = await make_world(tmp_path)
    other = make_region(tmp_path / "o", "heihe")
    kwargs = {
        "root": {"root_public_key": other.root.public_key, "key_set": other.key_set},
        "weak": {"root_public_key": b"\x00" * 32, "key_set": w.region.key_set},
        "foreign-key-set": {"root_public_key": w.region.root.public_key, "key_set": other.key_set},
    }[change]
    with pytest.raises(RegistryError) as err:
        await w.db.write_unit(lambda c: register_region(c, region="heihe", now=NOW, **kwargs))  # type: ignore[arg-type]
    assert err.value.code == code


async def test_hub_own_entry_in_its_trust_list(tmp_path: Path) -> None:
    """The hub lists ITSELF (role hub, its key set) so regions can verify its receipts."""
    w = await make_world(tmp_path)
    row = await w.hub.refresh_trust_list(NOW)
    assert row is not None
    trust = load_trust(row.envelope, w.hub_root.public_key, NOW)
    own = trust.regions[HUB]
    assert own.root_public_key == w.hub_root.public_key
    assert [k.key_id for k in own.keys.keys] == [w.hub_signing.key_id]
    assert trust.signing_key(w.hub_signing.key_id) is not None


async def test_region_registered_while_running_is_admitted(tmp_path: Path) -> None:
    """A region registered after the hub started is admitted without a restart."""
    w = await make_world(tmp_path, register=False)
    with pytest.raises(NodeError):
        await w.hub.admit("heihe")
    await w.db.write_unit(
        lambda c: register_region(
            c,
            region="heihe",
            root_public_key=w.region.root.public_key,
            key_set=w.region.key_set,
            now=NOW,
        )
    )
    w.hub._reloaded = 0.0  # the one-per-second re-read budget is available again
    await w.hub.admit("heihe")
    assert _receipt(w, await w.hub.ingest("heihe", w.items[0], NOW + 1)).seq == 1


def _status_item(w: World, issued: int, seq: int = 1, signer: KeyPair | None = None,
                 list_id: str = "attestations-1") -> hub_pb2.PushItem:  # fmt: skip
    from keys import StatusList

    env = StatusList("heihe", list_id, 131072).sign(
        signer or w.region.signing, issued, issued + 86_400
    )
    item = hub_pb2.PushItem(seq=seq, event_id=f"status/{seq}", kind="status_list")
    item.status_list.CopyFrom(env.to_proto())
    return item


async def _reregister(w: World, ks: KeySet) -> None:
    await w.db.write_unit(
        lambda c: register_region(
            c, region="heihe", root_public_key=w.region.root.public_key,
            key_set=ks.sign(w.region.root, NOW).to_bytes(), now=NOW, schemes=("heihe@2024.1",),
        )
    )  # fmt: skip
    await w.hub.reload()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("future", "NOT_YET_VALID"),
        ("backdated-before-revocation", "KEY_REVOKED"),
        ("revoked-before-issue", "KEY_REVOKED"),
        ("key-not-yet-valid", "KEY_NOT_VALID"),
    ],
    ids=["future-beyond-skew", "backdated-revoked-key", "revoked-before-issue", "key-not-valid"],
)
async def test_status_list_time_and_key_checks(tmp_path: Path, case: str, code: str) -> None:
    """REQ: H3-review, N23 — a pushed status list is refused if dated beyond now + skew,
    if its key is revoked by now (a backdated list cannot slip in), or if the key was not
    usable at its issue time; nothing is stored and the cursor does not move."""
    w = await make_world(tmp_path)
    ks = verify_key_set(w.region.key_set, w.region.root.public_key, "heihe")
    kid = w.region.signing.key_id
    issued = NOW
    signer = None
    if case == "future":
        issued = NOW + 3600
    elif case == "backdated-before-revocation":
        await _reregister(w, ks.revoke(kid, NOW - 500))
        issued = NOW - 1000  # before the revocation: fine at issue time, revoked now
    elif case == "revoked-before-issue":
        await _reregister(w, ks.revoke(kid, NOW - 500))
    else:
        late = KeyPair.generate()
        await _reregister(w, ks.add_key(late.public_key, NOW + 10_000, NOW + 99_999))
        signer = late
    with pytest.raises(VerificationError) as err:
        await w.hub.ingest("heihe", _status_item(w, issued, signer=signer), NOW)
    assert err.value.code == code
    assert (await _counts(w.db))["hub_status_lists"] == 0
    assert (await w.hub.cursor("heihe")).cursor == 0


async def test_older_status_list_refused_explicitly(tmp_path: Path) -> None:
    """REQ: N23 — a list older than the stored one is refused with STATUS_LIST_STALE
    (field issued_at), not silently ignored; the stored list and cursor stay as they were."""
    w = await make_world(tmp_path)
    newer = _status_item(w, NOW, seq=1)
    await w.hub.ingest("heihe", newer, NOW)
    with pytest.raises(NodeError) as err:
        await w.hub.ingest("heihe", _status_item(w, NOW - 60, seq=2), NOW + 1)
    assert (err.value.code, err.value.field) == ("STATUS_LIST_STALE", "issued_at")
    row = await w.db.fetchone("SELECT issued_at, envelope FROM hub_status_lists")
    assert tuple(row) == (NOW, newer.status_list.SerializeToString())
    assert (await w.hub.cursor("heihe")).cursor == 1
    await w.hub.ingest("heihe", _status_item(w, NOW + 60, seq=2), NOW + 61)  # newer: accepted


async def test_empty_batch_is_invalid_argument(tmp_path: Path) -> None:
    """An empty batch is INVALID_ARGUMENT EMPTY_BATCH (field payloads); too large stays
    RESOURCE_EXHAUSTED BATCH_TOO_LARGE naming the same field."""
    import grpc

    w = await make_world(tmp_path)
    empty = hub_pb2.PushItem()
    empty.CopyFrom(w.items[0])
    del empty.snapshot_batch.payloads[:]
    with pytest.raises(NodeError) as err:
        await w.hub.ingest("heihe", empty, NOW + 1)
    assert (status_of(err.value), err.value.code, err.value.field) == (
        grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_BATCH", "payloads",
    )  # fmt: skip
    w.hub._config = HubConfig(max_leaves_per_batch=2)
    with pytest.raises(NodeError) as err:
        await w.hub.ingest("heihe", w.items[0], NOW + 1)
    assert (status_of(err.value), err.value.code, err.value.field) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED, "BATCH_TOO_LARGE", "payloads",
    )  # fmt: skip
