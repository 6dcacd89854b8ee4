"""The console's federation page: peers, sync, push cursor, trust list, certificate and keys.

What ``huxin status`` reports from the database (``node.store._status_report``), read
here through the serving node's own reader and its live trust state
(``ctx.trust``, the list the node serves by, with key sets fetched from peers
overlaid), plus the expiry of what the operator must renew in time: the node's TLS
certificate, its signing key (as certified by its key set) and each peer's keys.

Invariants: read only; times are ISO 8601 UTC strings ("" when unknown); ``days_left``
is whole days (negative once expired) and ``state`` one of ``valid``,
``expires soon`` (fewer than :data:`node.federation._tlscert.WARN_DAYS` days),
``EXPIRED``, ``REVOKED``, ``not yet valid``; nothing here verifies or decrypts
(the trust state was verified when it was accepted).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from node.federation._tlscert import WARN_DAYS, CertError, read_certificate
from node.store import Connection
from node.store import _status_report as report

if TYPE_CHECKING:
    from keys import KeySet
    from node.rpc._context import NodeContext

__all__ = ["federation_state"]

DAY = 86_400
PEERS_MAX = 500  # peers listed at most (a province lists tens of regions)


def _iso(t: int | None) -> str:
    return "" if not t else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _expiry(valid_from: int, not_after: int, now: int, revoked_at: int = 0) -> dict[str, Any]:
    if revoked_at and now >= revoked_at:
        state = "REVOKED"
    elif now < valid_from:
        state = "not yet valid"
    elif now > not_after:
        state = "EXPIRED"
    elif not_after - now < WARN_DAYS * DAY:
        state = "expires soon"
    else:
        state = "valid"
    return {
        "not_before": _iso(valid_from),
        "not_after": _iso(not_after),
        "days_left": (not_after - now) // DAY,
        "state": state,
    }


def _newest_key(keys: KeySet, now: int) -> dict[str, Any]:
    """The key set's version and the expiry of its key valid longest (what signs next)."""
    valid = [k for k in keys.keys if k.problem_at(now) is None]
    pick = max(valid or keys.keys, key=lambda k: k.not_after, default=None)
    out: dict[str, Any] = {"version": keys.version, "keys": len(keys.keys)}
    if pick is not None:
        out.update(_expiry(pick.not_before, pick.not_after, now, pick.revoked_at))
        out["key_id"] = pick.key_id
    return out


async def federation_state(ctx: NodeContext) -> dict[str, Any]:
    """Everything the federation page shows, as one dict."""
    now = ctx.now_s()
    config, trust = ctx.config, ctx.trust
    fed = config.federation

    def fn(conn: Connection) -> dict[str, Any]:
        return {
            "sync": {r[0]: r[1:] for r in report.sync_peers(conn)},
            "material": [tuple(r) for r in report.peer_material(conn)],
            "push": [tuple(r) for r in report.push_states(conn)],
            "outbox": report.outbox_seq(conn),
            "refusals": [tuple(r) for r in report.trust_refusals(conn)],
            "stored": report.newest_trust_list(conn),
        }

    db = await ctx.db.read_unit(fn)
    doc: dict[str, Any] = {
        "region": config.region,
        "role": config.role,
        "hub": fed.hub if fed else "",
        "route": fed.route if fed else "static",
        "now": _iso(now),
    }
    listed = trust.trust
    if listed is not None:
        doc["trust_list"] = {
            "issuer": listed.issuer,
            "version": listed.version,
            "expires_at": _iso(listed.expires_at),
            "days_left": (listed.expires_at - now) // DAY,
            "expired": now >= listed.expires_at,
            "accepted_at": _iso(trust.accepted_at),
            "regions": len(listed.regions),
        }
    else:
        doc["trust_list"] = {"static_peers": list(trust.static_peers or config.peers)}
    if db["stored"]:
        doc["trust_list"]["stored_version"] = int(db["stored"][0][1])
    doc["trust_refusals"] = [
        {"at": _iso(at), "source": str(src), "version": v, "reason": str(why)}
        for at, src, v, why in db["refusals"]
    ]
    material: dict[str, dict[str, str]] = {}
    for region, item, version in db["material"]:
        material.setdefault(str(region), {})[str(item)] = str(version)
    regions = dict(listed.regions) if listed is not None else {}
    static = set(trust.static_peers or config.peers) if listed is None else set()
    names = sorted(
        set(regions) | set(db["sync"]) | static | ({fed.hub} if fed and fed.hub else set())
    )
    peers = []
    for name in names[:PEERS_MAX]:
        if name == config.region:
            continue
        r, s = regions.get(name), db["sync"].get(name)
        peers.append(
            {
                "peer": name,
                "listed": r is not None,
                "static": name in static,  # a standalone node's configured peer
                "endpoints": [e for e in r.endpoints if not e.startswith("role:")] if r else [],
                "keys": _newest_key(r.keys, now) if r else None,
                "status_list_at": _iso(int(material.get(name, {}).get("status_list", 0) or 0)),
                "last_attempt": _iso(s[0]) if s else "",
                "last_success": _iso(s[1]) if s else "",
                "failures": int(s[2]) if s else 0,
                "next_attempt": _iso(s[3]) if s else "",
                "last_error": str(s[4] or "") if s else "",
            }
        )
    doc["peers"] = peers
    seq = int(db["outbox"][0][0]) if db["outbox"] else 0
    doc["push"] = [
        {
            "hub": str(hub),
            "cursor": int(cursor),
            "outbox_seq": seq,
            "behind": max(seq - int(cursor), 0),
            "last_push": _iso(last),
            "failures": int(failures),
            "last_error": str(error or ""),
        }
        for hub, cursor, last, error, failures in db["push"]
    ]
    try:
        cert = read_certificate(ctx.secrets.tls_cert)
        doc["certificate"] = {
            "region": cert.region,
            "issuer": cert.issuer,
            **_expiry(int(cert.not_before.timestamp()), int(cert.not_after.timestamp()), now),
        }
    except CertError as exc:
        doc["certificate"] = {"error": exc.code}
    info = ctx.secrets.key_set.find(ctx.secrets.signing.key_id)
    doc["signing_key"] = (
        {"error": "KEY_NOT_VALID"}
        if info is None
        else {
            "key_id": info.key_id,
            "key_set_version": ctx.secrets.key_set.version,
            **_expiry(info.not_before, info.not_after, now, info.revoked_at),
        }
    )
    return doc
