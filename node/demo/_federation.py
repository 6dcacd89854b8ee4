"""``huxin init federation``: lay out a whole federation on one machine.

One CA; per hub a hub node directory (``role = "hub"``) with its registry
already filled and trust list version 1 signed; per region a region node
directory whose ``[federation]`` section pins its hub's root key and seeds
the trust list.  Layout under ``out`` (docs/adr/0413)::

    federation.json            summary: hubs, regions, ports, key ids, fingerprints
    ca/ca.pem, ca/ca.key       the federation CA (issues every node and client cert)
    <hub>/node.toml            the hub (role = "hub"), node.db holds the registry
    <region>/node.toml         a region node ([federation] + [hub] sections)
    <node>/trust/trustlist.bin its hub's signed TrustList (seed; sync keeps it current)
    <region>/keys/province.key the province key: the same file in every region of one
                               province (one hub), never in a hub's directory (ADR 0400)
    trust/<hub>.bundle         TrustBundle for offline verifiers (`huxin verify --trust`)
    trust/<hub>.hubkey         the hub root public key (hex) for `--hub-key`
    <region>/mapping/<id>.json the published tables between the federation's schemes
    <region>/mapping/<id>.approval  their approval records signed by the national authority
                               (批准, H13), named in the region's ``[mapping]`` section;
                               the hub's bundle carries the same approvals as its
                               signed approved list (docs/adr/0206)
    clients/<id>.pem, .key     integrator and source client certificates (``hainan.bank``,
                               ``heihe.court``: an identity ``<region>.<org>`` belongs to
                               its region)

Invariants: ports are loopback ports that were free at init time (or
``base_port``, ``base_port + 1``, … when given) and are written into the
configs AND the signed trust list, so they cannot change without a new
trust list; a region belongs to exactly one hub; every hub lists every
region of the federation (its own tagged ``hub:<self>``, the others
``hub:<their hub>``) and every peer hub (tagged ``role:hub``), so an
attestation of any region verifies offline with any hub's bundle;
nothing is overwritten (``INIT_EXISTS``); a province key is generated here
per province (per hub) and written ONLY into the directories of that
province's regions: the hub holds nothing that computes or reverses a
province pseudonym (its config does not name one, and it refuses to start
with one: :func:`node.hub._role.refuse_province_key`).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from keys import Envelope, KeyPair, certificate_fingerprint, decode_private_key
from keys.pb.v1 import attestation_pb2
from node.cli._init import InitError, init_region, issue_client_cert, load_or_create_ca
from node.core._config import load_config
from node.core._secrets import write_hex
from node.disclosure import shipped_catalogue
from node.federation._clients import REGISTRY_FILE
from node.federation._trust import HUB_ENDPOINT_PREFIX, HUB_TAG, region_of_identity
from node.hub._ingest import own_entry
from node.hub._registry import publish_if_due, register_region
from node.recognition._approvals import ApprovalRecord, shipped_approvals
from node.store import connect, immediate
from scoring import list_schemes, load_scheme

__all__ = ["FederationLayout", "NodeLayout", "free_ports", "init_federation"]

TRUST_TTL = 7 * 86_400
TRUST_REFRESH = 86_400
#: The id of the demo's national approving authority (``[mapping.authorities]`` of every region).
NATIONAL_AUTHORITY = "national"


@dataclass(frozen=True, slots=True)
class NodeLayout:
    id: str
    role: str  # region | hub
    hub: str  # the hub it belongs to (itself for a hub)
    scheme: str
    directory: Path
    peer_port: int
    citizen_port: int

    @property
    def config(self) -> Path:
        return self.directory / "node.toml"

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.peer_port}"


@dataclass(frozen=True)
class FederationLayout:
    root: Path
    nodes: dict[str, NodeLayout] = field(default_factory=dict)
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def summary(self) -> Path:
        return self.root / "federation.json"

    def bundle(self, hub: str) -> Path:
        return self.root / "trust" / f"{hub}.bundle"

    def hub_key_file(self, hub: str) -> Path:
        return self.root / "trust" / f"{hub}.hubkey"

    @classmethod
    def read(cls, root: Path) -> FederationLayout:
        doc = json.loads((root / "federation.json").read_text(encoding="utf-8"))
        nodes = {
            n["id"]: NodeLayout(
                n["id"], n["role"], n["hub"], n["scheme"], root / n["dir"], n["peer"], n["citizen"]
            )
            for n in doc["nodes"]
        }
        clients = {c: (root / p[0], root / p[1]) for c, p in doc["clients"].items()}
        return cls(root, nodes, clients)


def free_ports(n: int, base_port: int = 0) -> list[int]:
    """``n`` distinct loopback ports: free right now (``base_port`` 0) or consecutive."""
    if base_port:
        return list(range(base_port, base_port + n))
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _parse_hub_peers(specs: Sequence[str], regions: Sequence[str]) -> dict[str, list[str]]:
    """``--hub-peers hainan-hub=hainan+sanya`` -> {"hainan-hub": ["hainan", "sanya"]}."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        hub, sep, members = spec.partition("=")
        if not sep or not hub or not members:
            raise InitError("INVALID_ARGUMENT", f"--hub-peers {spec!r}: expected HUB=REGION+REGION")
        out[hub] = [m for m in members.split("+") if m]
        for m in out[hub]:
            if m not in regions:
                raise InitError("INVALID_ARGUMENT", f"--hub-peers: {m!r} is not in --regions")
    return out


def _federation_toml(
    hub: str, hub_key: bytes, hub_endpoint: str, route: str, sync_interval: float
) -> str:
    return f"""
[federation]
# The hub and its pinned root key: the trust list it signs decides who may call (H17).
hub = "{hub}"
hub_key = "{hub_key.hex()}"
hub_endpoint = "{hub_endpoint}"
trust_list = "trust/trustlist.bin"
route = "{route}"
sync_interval_seconds = {sync_interval}
sync_timeout_seconds = 5.0
"""


def init_federation(
    out: Path,
    regions: Sequence[str],
    hub: str,
    now: datetime,
    *,
    schemes: dict[str, str] | None = None,
    hub_peers: Sequence[str] = (),
    clients: Sequence[str] = (),
    sources: Sequence[str] = (),
    population: Sequence[str] = (),
    require_registry: bool = False,
    base_port: int = 0,
    route: str = "hub",
    sync_interval: float = 30.0,
    push_interval: float = 30.0,
    web: Sequence[str] = (),
    storage: Callable[[str], str] | None = None,
) -> FederationLayout:
    """Write the whole federation under ``out`` (see the module docstring).

    ``sources`` and ``population`` (population authorities, docs/adr/0508) are
    organisations per region: ``REGION.ORG`` gets a client certificate and may file
    records, resp. residence facts, with its region's node; ``require_registry``
    makes each region's record intake refuse people its registry does not hold.  The
    regions in ``web`` serve the HTTPS listeners on loopback port 0 (their ready files
    name the ports) with the development sign-in form (the demo, issue 19).
    ``storage`` gives a node id its ``[storage] url`` (a PostgreSQL database of the
    demo's, issue 18); without it every node keeps a SQLite file."""
    if (out / "federation.json").exists():
        raise InitError("INIT_EXISTS", f"{str(out / 'federation.json')!r} already exists")
    if not regions:
        raise InitError("INVALID_ARGUMENT", "--regions names no region")
    if len(set(regions)) != len(regions):
        raise InitError("INVALID_ARGUMENT", "--regions lists a region twice")
    known = set(list_schemes())
    schemes = dict(schemes or {})
    for r in regions:
        schemes.setdefault(r, r)
        if schemes[r] not in known:
            raise InitError("UNKNOWN_SCHEME", f"region {r}: no scheme {schemes[r]!r}; use --scheme")
    peers = _parse_hub_peers(hub_peers, regions)
    if hub in peers or hub in regions or any(h in regions for h in peers):
        raise InitError("INVALID_ARGUMENT", "hub ids and region ids must all differ")
    home = dict.fromkeys(regions, hub)
    for h, members in peers.items():
        for m in members:
            home[m] = h
    hubs = [hub, *peers]
    ids = hubs + list(regions)
    ports = free_ports(2 * len(ids), base_port)
    layout = FederationLayout(out)
    for i, node_id in enumerate(ids):
        is_hub = node_id in hubs
        first = next((r for r in regions if home[r] == node_id), regions[0])
        layout.nodes[node_id] = NodeLayout(
            node_id,
            "hub" if is_hub else "region",
            node_id if is_hub else home[node_id],
            schemes[first] if is_hub else schemes[node_id],
            out / node_id,
            ports[2 * i],
            ports[2 * i + 1],
        )
    out.mkdir(parents=True, exist_ok=True)
    ca = load_or_create_ca(out / "ca", now)
    # Hubs first: every region config pins its hub's root key (the trust-list signer).
    hub_roots: dict[str, KeyPair] = {}
    # Per hub: its approved list and records of the tables between the federation's schemes.
    approvals: dict[str, tuple[Envelope, tuple[ApprovalRecord, ...]]] = {}
    federation_schemes = sorted({schemes[r] for r in regions})
    # One province key per province (the regions of one hub); only ever written to regions.
    province_keys = {h: KeyPair.generate().seed for h in hubs}
    # The national authority approves the tables: they map between regions of different
    # provinces, which a hub may not approve itself (issue 16, docs/adr/0207).
    national = KeyPair.generate()
    ordered = sorted(layout.nodes.values(), key=lambda n: n.role != "hub")
    for node in ordered:
        h = node.hub
        hub_key = hub_roots[h].public_key if h in hub_roots else bytes(32)
        extra = _federation_toml(
            h, hub_key, "" if node.role == "hub" else layout.nodes[h].peer, route, sync_interval
        )
        if node.role == "hub":
            extra += f"""
[hub]
endpoint = "{node.peer}"
trust_list_ttl_seconds = {TRUST_TTL}
trust_list_refresh_seconds = {TRUST_REFRESH}
"""
        else:
            extra += f"""
[hub]
province_key = "keys/province.key"
push_interval_seconds = {push_interval}
"""
            extra += _mapping_toml(approvals[h][1], national.public_key)
        init_region(
            node.directory,
            node.id,
            node.scheme,
            ca,
            now,
            peer_listen=node.peer,
            citizen_listen=f"127.0.0.1:{node.citizen_port}",
            role=node.role,
            extra_toml=extra,
            sources=[] if node.role == "hub" else [f"{node.id}.{x}" for x in sources],
            population=[] if node.role == "hub" else [f"{node.id}.{x}" for x in population],
            require_registry=require_registry and node.role != "hub",
            http_listen=("127.0.0.1:0", "127.0.0.1:0") if node.id in web else ("", ""),
            dev_sign_in=node.id in web,
        )
        if storage is not None:
            with node.config.open("a", encoding="utf-8") as f:
                f.write(f'\n[storage]\nurl = "{storage(node.id)}"\n')
        if node.role == "region":
            write_hex(node.directory / "keys" / "province.key", province_keys[h])
            _write_mapping_files(node.directory, approvals[h][1])
        if node.role == "hub":  # its own root key signs its trust lists: pin it
            root = decode_private_key((node.directory / "keys" / "root.key").read_bytes())
            hub_roots[h] = root
            approvals[h] = shipped_approvals(
                h,
                int(now.timestamp()),
                root,
                schemes=federation_schemes,
                authority=(NATIONAL_AUTHORITY, national),
            )
            text = node.config.read_text(encoding="utf-8")
            node.config.write_text(
                text.replace(
                    f'hub_key = "{bytes(32).hex()}"', f'hub_key = "{root.public_key.hex()}"'
                ),
                encoding="utf-8",
            )
    _registries(
        layout, hubs, home, regions, hub_roots, now, {h: a[0] for h, a in approvals.items()}
    )
    for region in regions:
        clients = [*clients, *(f"{region}.{x}" for x in (*sources, *population))]
    for c in clients:  # registered with the node of the client's region (ADR 0415)
        owner = layout.nodes.get(region_of_identity(c, layout.nodes))
        registry = owner.directory / REGISTRY_FILE if owner is not None else None
        layout.clients[c] = issue_client_cert(ca, c, out / "clients", now, registry=registry)
    _write_summary(layout, hub_roots)
    return layout


def _mapping_toml(records: Sequence[ApprovalRecord], national: bytes) -> str:
    """The region's ``[mapping]`` section naming the files :func:`_write_mapping_files` writes."""
    names = [r.approval.mapping_id for r in records]
    tables = ", ".join(f'"mapping/{n}.json"' for n in names)
    approvals = ", ".join(f'"mapping/{n}.approval"' for n in names)
    return f"""
[mapping]
# Tables between the federation's schemes and their approvals by the national
# authority (H13, ADR 0206/0207); the hub vouches for them in its bundle.
tables = [{tables}]
approvals = [{approvals}]

[mapping.authorities]
{NATIONAL_AUTHORITY} = "{national.hex()}"
"""


def _write_mapping_files(directory: Path, records: Sequence[ApprovalRecord]) -> None:
    """``mapping/<id>.json`` (the published table) and ``mapping/<id>.approval`` (its record)."""
    out = directory / "mapping"
    out.mkdir(exist_ok=True)
    for r in records:
        (out / f"{r.approval.mapping_id}.json").write_bytes(r.table.to_json_bytes())
        (out / f"{r.approval.mapping_id}.approval").write_bytes(r.to_bytes())


def _entry(node: NodeLayout) -> tuple[bytes, bytes, bytes]:
    """(root public key, key set envelope bytes, TLS fingerprint) of a node directory."""
    root = decode_private_key((node.directory / "keys" / "root.key").read_bytes())
    ks = (node.directory / "keys" / "keyset.bin").read_bytes()
    fp = certificate_fingerprint((node.directory / "tls" / "node.pem").read_bytes())
    return root.public_key, ks, fp


def _registries(  # noqa: PLR0917
    layout: FederationLayout,
    hubs: list[str],
    home: dict[str, str],
    regions: Sequence[str],
    hub_roots: dict[str, KeyPair],
    now: datetime,
    approved: dict[str, Envelope],
) -> None:
    t = int(now.timestamp())
    for h in hubs:
        hub_node = layout.nodes[h]
        conn = connect(load_config(hub_node.config).storage)  # SQLite or PostgreSQL
        try:
            with immediate(conn):
                for r in regions:
                    node = layout.nodes[r]
                    root_pk, ks, fp = _entry(node)
                    register_region(
                        conn,
                        region=r,
                        root_public_key=root_pk,
                        key_set=ks,
                        now=t,
                        schemes=(load_scheme(node.scheme).key,),
                        endpoints=(node.peer, f"{HUB_ENDPOINT_PREFIX}{home[r]}"),
                        tls_sha256=(fp,),
                        name=r,
                    )
                for other in hubs:
                    if other == h:
                        continue
                    node = layout.nodes[other]
                    root_pk, ks, fp = _entry(node)
                    register_region(
                        conn,
                        region=other,
                        root_public_key=root_pk,
                        key_set=ks,
                        now=t,
                        endpoints=(node.peer, HUB_TAG),
                        tls_sha256=(fp,),
                        name=f"hub {other}",
                    )
                own_pk, own_ks, own_fp = _entry(hub_node)
                own = own_entry(
                    h, own_pk, Envelope.from_bytes(own_ks), (hub_node.peer,), tls_sha256=(own_fp,)
                )
                row = publish_if_due(
                    conn,
                    hub_id=h,
                    hub_root=hub_roots[h],
                    own=own,
                    now=t,
                    ttl=TRUST_TTL,
                    refresh=TRUST_REFRESH,
                )
        finally:
            conn.close()
        assert row is not None
        (layout.root / "trust").mkdir(exist_ok=True)
        bundle = attestation_pb2.TrustBundle(
            trust_list=Envelope.from_bytes(row.envelope).to_proto(),
            scenarios=shipped_catalogue(h, t, hub_roots[h]).to_proto(),  # offline verifiers
            mapping_approvals=approved[h].to_proto(),  # the tables a mapped grade may cite
        )
        layout.bundle(h).write_bytes(bundle.SerializeToString())
        layout.hub_key_file(h).write_text(hub_roots[h].public_key.hex() + "\n", encoding="ascii")
        for node in layout.nodes.values():
            if node.hub == h:
                (node.directory / "trust").mkdir(exist_ok=True)
                (node.directory / "trust" / "trustlist.bin").write_bytes(row.envelope)


def _write_summary(layout: FederationLayout, hub_roots: dict[str, KeyPair]) -> None:
    nodes = []
    for n in layout.nodes.values():
        _pk, _ks, fp = _entry(n)
        nodes.append(
            {
                "id": n.id,
                "role": n.role,
                "hub": n.hub,
                "scheme": n.scheme,
                "dir": n.id,
                "peer": n.peer_port,
                "citizen": n.citizen_port,
                "tls_sha256": fp.hex(),
            }
        )
    doc = {
        "ca": "ca/ca.pem",
        "hub_keys": {h: k.public_key.hex() for h, k in hub_roots.items()},
        "nodes": nodes,
        "clients": {
            c: [str(p.relative_to(layout.root)), str(k.relative_to(layout.root))]
            for c, (p, k) in layout.clients.items()
        },
    }
    layout.summary.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
