"""Public trust material as static signed files: no credentials, strong ETags, 304s.

What an integrator, a verifier or a CDN fetches to check this node's signatures
offline: ``/trust/key-set.bin`` (this region's root-certified key set),
``/trust/trust-list.bin`` (the hub-signed trust list the node holds, when
federated), ``/trust/status-list.bin`` (the signed attestation status list),
``/trust/checkpoint.bin`` (the transparency log's signed checkpoint),
``/trust/catalogue.bin`` (the signed scenario and incentive catalogue, N17),
``/trust/mapping-tables.json`` (the approved mapping tables in use: id, version,
schemes, SHA-256) with each table's canonical bytes and its signed approval
under ``/trust/mapping-tables/<id>/<version>/``, and ``/trust/index.json`` (every
file with its SHA-256).  Each ``.bin`` is the serialised signed envelope,
exactly as ``huxin verify`` and the gRPC methods hand it out.

Invariants: each answer carries a strong ``ETag`` (the SHA-256 of its bytes) and
``Cache-Control``; ``If-None-Match`` with that tag is ``304`` without a body; the
same content gives the same bytes (signatures are Ed25519, deterministic; the
checkpoint is cached per tree size; the status list's last signed bytes are served
again while its content is unchanged and they are younger than
:data:`REISSUE_SECONDS`, half its validity, so its ETag changes only when a status
does or a verifier's copy nears expiry), so a cache revalidates cheaply; the status
list is rendered at most once per :data:`RENDER_SECONDS` (a render is a write unit);
calls without credentials are capped node-wide by ``[listen]
citizen_max_public_calls`` (``RESOURCE_EXHAUSTED TOO_MANY_PUBLIC_CALLS``), as on
the gRPC citizen port.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from keys.pb.v1 import attestation_pb2
from node.core._bounds import check_length
from node.core._errors import NotFoundError, ResourceExhaustedError, own_data
from node.http._context import HttpContext, cached_response
from node.store._status_list import STATUS_TTL_SECONDS, render_status_list

__all__ = ["REISSUE_SECONDS", "RENDER_SECONDS", "TRUST_FILES", "trust_routes"]

RENDER_SECONDS = 5.0
#: the age (of its issue time) up to which unchanged status-list bytes are served again:
#: half STATUS_TTL_SECONDS, so a copy fetched just before reissue is still valid for half
REISSUE_SECONDS = STATUS_TTL_SECONDS // 2
ENVELOPE = "application/vnd.huxin.envelope"  # a serialised keys.Envelope (DSSE)
SLOW = "public, max-age=300, must-revalidate"  # key set, trust list, catalogue, tables
FAST = "public, max-age=30, must-revalidate"  # status list and checkpoint change often


@dataclass(frozen=True, slots=True)
class TrustFile:
    path: str
    summary: str
    content_type: str
    cache_control: str


#: the fixed files (the per-table ones are listed in mapping-tables.json)
TRUST_FILES: tuple[TrustFile, ...] = (
    TrustFile("/trust/key-set.bin", "This region's root-certified key set", ENVELOPE, SLOW),
    TrustFile("/trust/trust-list.bin", "The hub-signed trust list this node holds", ENVELOPE, SLOW),
    TrustFile("/trust/status-list.bin", "The signed attestation status list", ENVELOPE, FAST),
    TrustFile("/trust/checkpoint.bin", "The transparency log's signed checkpoint", ENVELOPE, FAST),
    TrustFile("/trust/catalogue.bin", "The signed scenario and incentive catalogue", ENVELOPE, SLOW),
    TrustFile("/trust/mapping-tables.json", "The approved mapping tables in use",
              "application/json", SLOW),
    TrustFile("/trust/index.json", "Every trust file with its SHA-256", "application/json", FAST),
)  # fmt: skip


#: one approved mapping table's files (listed in mapping-tables.json): name -> type
TABLE_FILE_PATH = "/trust/mapping-tables/{id}/{version}/{name}"
TABLE_FILES = {"table.json": "application/json", "approval.bin": ENVELOPE}
TABLE_SEGMENT_MAX = 256  # a table id or version in that path (INVALID_FIELD beyond)


class TrustMaterial:
    """The bytes of each trust file, read from the node's collaborators."""

    def __init__(self, hc: HttpContext) -> None:
        self.hc = hc
        self._status: tuple[float, bytes] | None = None
        # the last signed status list: (digest of its content, issued_at, its bytes)
        self._signed: tuple[bytes, int, bytes] | None = None

    async def key_set(self) -> bytes:
        return self.hc.node.secrets.key_set_envelope.to_bytes()

    async def trust_list(self) -> bytes:
        data = self.hc.node.trust.envelope
        if not data:
            raise NotFoundError("TRUST_LIST_NOT_HELD", "this node is not federated")
        return bytes(data)

    async def status_list(self) -> bytes:
        if self._status is not None and time.monotonic() - self._status[0] < RENDER_SECONDS:
            return self._status[1]
        node = self.hc.node
        with own_data("the status list"):
            env = await render_status_list(
                node.db, node.config.region, node.secrets.signing, node.clock.now()
            )
        data = self._unchanged(env.payload, int(node.clock.now().timestamp()), env.to_bytes())
        self._status = (time.monotonic(), data)
        return data

    def _unchanged(self, payload: bytes, now: int, data: bytes) -> bytes:
        """``data``, or the last signed bytes if they say the same and are younger than
        :data:`REISSUE_SECONDS` (each render dates the list ``now``, and a new issue
        time alone would give every cache a new ETag every :data:`RENDER_SECONDS`)."""
        signed = attestation_pb2.StatusList.FromString(payload)
        content = (signed.issuer_region, signed.list_id, signed.size, signed.bits)
        digest = hashlib.sha256(repr(content).encode()).digest()
        last = self._signed
        if last is not None and last[0] == digest and 0 <= now - last[1] < REISSUE_SECONDS:
            return last[2]
        self._signed = (digest, int(signed.issued_at), data)
        return data

    async def checkpoint(self) -> bytes:
        node = self.hc.node
        _size, env = await node.log.current_checkpoint(node.now_s())
        return env.to_bytes()

    async def catalogue(self) -> bytes:
        node = self.hc.node
        _cat, env = self.hc.extras["publisher"].signed(node.scheme, node.secrets, node.now_s())
        return bytes(env.to_bytes())

    def tables(self) -> list[tuple[str, str, bytes, bytes, dict[str, str]]]:
        """(id, version, canonical bytes, approval envelope, summary) of approved tables."""
        node = self.hc.node
        out = []
        for table, approval in node.mapper.served(node.today()):
            if not approval:
                continue  # only approved tables are published (H13)
            content = table.to_json_bytes()
            summary = {
                "id": table.id,
                "version": table.version,
                "source_scheme": table.source.key,
                "target_scheme": table.target.key,
                "method": table.method.value,
                "sha256": hashlib.sha256(content).hexdigest(),
                "table": f"/trust/mapping-tables/{table.id}/{table.version}/table.json",
                "approval": f"/trust/mapping-tables/{table.id}/{table.version}/approval.bin",
            }
            out.append((table.id, table.version, content, approval, summary))
        return out

    async def mapping_tables(self) -> bytes:
        return _json({"tables": [t[4] for t in self.tables()]})

    async def index(self) -> bytes:
        files = {}
        for f in TRUST_FILES[:-1]:
            try:
                data = await self.read(f.path)
            except NotFoundError:
                continue
            files[f.path] = hashlib.sha256(data).hexdigest()
        for _id, _v, content, approval, summary in self.tables():
            files[summary["table"]] = hashlib.sha256(content).hexdigest()
            files[summary["approval"]] = hashlib.sha256(approval).hexdigest()
        return _json({"region": self.hc.node.config.region, "files": files})

    async def read(self, path: str) -> bytes:
        readers: dict[str, Callable[[], Awaitable[bytes]]] = {
            "/trust/key-set.bin": self.key_set,
            "/trust/trust-list.bin": self.trust_list,
            "/trust/status-list.bin": self.status_list,
            "/trust/checkpoint.bin": self.checkpoint,
            "/trust/catalogue.bin": self.catalogue,
            "/trust/mapping-tables.json": self.mapping_tables,
            "/trust/index.json": self.index,
        }
        return await readers[path]()


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1).encode()


class PublicCalls:
    """Calls without credentials in flight on this node (the gRPC citizen port's cap)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight = 0

    def enter(self) -> None:
        if self.inflight >= self.limit:
            raise ResourceExhaustedError(
                "TOO_MANY_PUBLIC_CALLS",
                "too many calls without an identity on this node; retry later",
            )
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1


def trust_routes(hc: HttpContext) -> list[web.AbstractRouteDef]:
    material = TrustMaterial(hc)
    calls = PublicCalls(hc.node.config.listen.citizen_max_public_calls)
    hc.extras["public_calls"] = calls

    def serve(f: TrustFile) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            calls.enter()
            try:
                data = await material.read(f.path)
            finally:
                calls.leave()
            return cached_response(request, data, f.content_type, cache_control=f.cache_control)

        return handle

    async def table_file(request: web.Request) -> web.StreamResponse:
        ident, version, name = (request.match_info[k] for k in ("id", "version", "name"))
        check_length("id", ident, TABLE_SEGMENT_MAX)
        check_length("version", version, TABLE_SEGMENT_MAX)
        calls.enter()
        try:
            for tid, tversion, content, approval, _s in material.tables():
                if (tid, tversion) == (ident, version):
                    if name == "table.json":
                        return cached_response(
                            request, content, "application/json", cache_control=SLOW
                        )
                    if name == "approval.bin":
                        return cached_response(request, approval, ENVELOPE, cache_control=SLOW)
        finally:
            calls.leave()
        raise NotFoundError("ROUTE_NOT_FOUND", "no such approved mapping table")

    return [
        *(web.get(f.path, serve(f)) for f in TRUST_FILES),
        web.get(TABLE_FILE_PATH, table_file),
    ]
