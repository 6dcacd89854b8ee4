"""Node configuration: one TOML file per node, loaded into frozen dataclasses.

Each key is declared once, as a field of its section's dataclass: its type, default,
bounds and any check live in the field (:func:`setting` and friends), and the one
generic parser (:mod:`node.core._config_parse`) derives the accepted keys from them.

Invariants: relative paths are resolved against the config file's directory;
unknown sections or keys are refused (a typo must not silently disable a
limit); the consent validity cap defaults to 90 days and cannot be raised
above 366; ``[consent] default_max_uses`` is at most :data:`MAX_USES_CAP` (the
node's cap: a larger default would fail every default grant, blaming the
citizen); addresses are ``host:port`` with a port of 0–65535 (``listen.*``;
0 = any free port) or 1–65535 (hub endpoints); the node's region and every id in
``[peers]``/``[sources] allowed`` match :data:`ID_PATTERN` (the region pattern
of node certificates, ``keys``); every ``[listen]`` port limit lies within its
:data:`PORT_LIMIT_BOUNDS`; nothing here reads the environment or flags
(only the CLI does).
Secrets are not in the TOML: it names the files that hold them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from node.core import _config_checks as checks
from node.core._config_checks import (
    MAX_DEADLINE_DAYS,
)
from node.core._config_parse import (
    ID_PATTERN,
    ConfigError,
    at_least,
    between,
    check_address,
    check_id,
    parse_root,
    positive,
    setting,
)
from node.core._config_storage import StorageConfig

__all__ = [
    "ID_PATTERN",
    "MAX_GUIDE_BYTES",
    "MAX_USES_CAP",
    "PORT_LIMIT_BOUNDS",
    "CatalogueConfig",
    "ClientsConfig",
    "ConfigError",
    "ConsentConfig",
    "FederationConfig",
    "HubConfig",
    "IdentityConfig",
    "KeyFiles",
    "Limits",
    "ListenConfig",
    "MappingConfig",
    "NodeConfig",
    "RightsConfig",
    "ScheduleConfig",
    "StorageConfig",
    "TlsFiles",
    "check_address",
    "check_id",
    "load_config",
    "parse_config",
]

DEFAULT_CONSENT_DAYS = 90
MAX_USES_CAP = 1000  # uses of one consent; node.rpc._citizen's cap (kept equal by a test)
DEFAULT_REPLAY_ENTRIES = 100_000
MAX_IDENTITY_AGE = 86_400  # [identity] max_age_seconds: an assertion lives at most a day
HARD_CONSENT_DAYS = 366
MAX_ACTIVE_CONSENTS_CAP = 10_000  # [consent] max_active_consents
MAX_GRANTS_PER_HOUR = 3_600  # [consent] grants_per_hour
MAX_SUPPLEMENTS_PER_HOUR = 3_600  # [rights] supplements_per_hour
MAX_PENDING_SUPPLEMENTS_CAP = 10_000  # [rights] max_pending_supplements
MAX_PEER_WORKERS = 32
PEER_CONNECTION_AGE = 600  # seconds; the default with peer_workers > 1
MAX_GUIDE_BYTES = 256 * 1024  # [catalogue] guide: 64 scenarios of full guide text fit
_NO_LIMIT = "must be 0 (no limit) or positive"
_DEADLINE_TEXT = f"at most {MAX_DEADLINE_DAYS}"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    # mutual TLS: PeerService, SourceService
    peer: str = setting("127.0.0.1:0", check=checks.listen_address)
    citizen: str = setting("127.0.0.1:0", check=checks.listen_address)  # server TLS: CitizenService
    # host:port of the Prometheus endpoint; empty = off
    metrics: str = setting("", check=checks.listen_address)
    # processes serving the peer port (SO_REUSEPORT; region role only; docs/adr/0312).
    # Worker i > 0 serves its own metrics on the metrics port + i (any port if 0).
    peer_workers: int = positive(1, most=MAX_PEER_WORKERS)
    # Seconds after which a peer connection is asked to reconnect (gRPC GOAWAY; calls
    # in flight finish first), so that long-lived peer connections are spread over
    # the workers again. None: PEER_CONNECTION_AGE with workers, never without; 0: never.
    peer_connection_age_seconds: int | None = setting(None, min=0, min_text=_NO_LIMIT)
    # What each port accepts (docs/adr/0321; bounds in PORT_LIMIT_BOUNDS). Connections
    # per port: None = a share of this process's file descriptors (node.rpc._port_limits).
    citizen_max_connections: int | None = checks.port_limit(None, 1, 1_000_000)
    peer_max_connections: int | None = checks.port_limit(None, 1, 1_000_000)
    # TLS and the client's HTTP/2 SETTINGS
    handshake_timeout_seconds: float = checks.port_limit(5.0, 0.5, 60)
    # a connection without calls for this long is closed
    idle_timeout_seconds: int = checks.port_limit(300, 1, 86_400)
    # concurrent calls on one citizen connection
    citizen_max_streams: int = checks.port_limit(16, 1, 1_000)
    peer_max_streams: int = checks.port_limit(
        256, 1, 10_000
    )  # concurrent calls on one peer connection
    # for each request message after the call opened
    request_timeout_seconds: float = checks.port_limit(30.0, 0.5, 600)
    # Calls that carry no verified identity (public methods on the citizen port) in
    # flight at once on this node, over all connections; more are refused at once
    # (RESOURCE_EXHAUSTED TOO_MANY_PUBLIC_CALLS) before any message is read.
    citizen_max_public_calls: int = checks.port_limit(256, 1, 100_000)
    # A public method's request is empty or tiny: it must arrive within this many
    # seconds (at most request_timeout_seconds) — see public_request_timeout().
    public_request_timeout_seconds: float = checks.port_limit(5.0, 0.5, 600)

    def public_request_timeout(self) -> float:
        """The message deadline of a public method (never longer than any other's)."""
        return min(self.request_timeout_seconds, self.public_request_timeout_seconds)

    def peer_connection_age(self) -> int:
        """The age in effect (0 = connections are never recycled)."""
        if self.peer_connection_age_seconds is not None:
            return self.peer_connection_age_seconds
        return PEER_CONNECTION_AGE if self.peer_workers > 1 else 0


# [listen] port limits (docs/adr/0321): key -> (smallest, largest) accepted value
PORT_LIMIT_BOUNDS: Mapping[str, tuple[float, float]] = {
    f.name: (f.metadata["min"], f.metadata["max"])
    for f in fields(ListenConfig)
    if f.metadata.get("port")
}


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True, slots=True)
class KeyFiles:
    root: Path  # key file (keys.encode_private_key) of the region root key
    signing: Path  # key file of the current signing key
    key_set: Path  # the KeySet envelope certifying the signing key(s), signed by the root
    storage_secret: Path  # hex, HMAC key of subject keys
    seal: Path  # hex AES-256 key for sealed ID numbers


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    issuer: str = "dev-idp"
    # raw Ed25519 keys of trusted identity providers
    public_keys: tuple[bytes, ...] = setting((), parse=checks.idp_keys)
    max_age_seconds: int = positive(600, most=MAX_IDENTITY_AGE)
    # assertions remembered during their lifetime (each accepted once, docs/adr/0416);
    # when full, new sign-ins are refused until some expire
    replay_cache_entries: int = between(
        DEFAULT_REPLAY_ENTRIES, 1_000, 10_000_000, text="must be 1_000 to 10_000_000"
    )


@dataclass(frozen=True, slots=True)
class ConsentConfig:
    """``[consent]``: validity and uses of a grant, and how many a citizen may hold
    and grant (docs/adr/0324): at most ``grants_per_hour`` grants in any rolling
    hour and ``grant_burst`` in any rolling minute, and ``max_active_consents``
    active (not withdrawn, expired or used up) at once."""

    max_validity_days: int = positive(DEFAULT_CONSENT_DAYS, most=HARD_CONSENT_DAYS)
    default_max_uses: int = positive(
        10, most=MAX_USES_CAP, text=f"must be at most {MAX_USES_CAP} (the node's cap)"
    )
    max_active_consents: int = positive(100, most=MAX_ACTIVE_CONSENTS_CAP)
    grants_per_hour: int = positive(30, most=MAX_GRANTS_PER_HOUR)
    grant_burst: int = positive(20)  # at most grants_per_hour (parse_config)


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = positive(4 * 1024 * 1024)
    max_concurrent_per_peer: int = positive(64)
    max_batch_records: int = positive(10_000)
    attestation_ttl_seconds: int = positive(600)
    per_peer_message_bytes: Mapping[str, int] = setting(factory=dict)
    per_peer_concurrency: Mapping[str, int] = setting(factory=dict)

    def message_bytes_for(self, peer: str) -> int:
        return self.per_peer_message_bytes.get(peer, self.max_message_bytes)

    def concurrency_for(self, peer: str) -> int:
        return self.per_peer_concurrency.get(peer, self.max_concurrent_per_peer)


@dataclass(frozen=True, slots=True)
class RightsConfig:
    """``[rights]``: third-party query rate limits, holiday files, scheduler (docs/adr/0503)."""

    # per requester (certificate identity); 0 = no limit
    queries_per_minute: int = setting(0, min=0, min_text=_NO_LIMIT)
    query_burst: int = positive(60)
    per_requester_per_minute: Mapping[str, int] = setting(factory=dict)
    holiday_files: tuple[Path, ...] = ()  # operator holiday files for years chinese-calendar lacks
    scheduler_interval_seconds: float = positive(60.0)
    # per-step working days overriding the scheme's (e.g. a local regulation); empty = scheme's
    objection_deadlines: Mapping[str, int] = setting(factory=dict, check=checks.deadlines)
    # UploadSupplement per citizen: at most this many uploads in any
    # rolling hour (1..MAX_SUPPLEMENTS_PER_HOUR) and this many awaiting their
    # department's decision at once (1..MAX_PENDING_SUPPLEMENTS_CAP)
    supplements_per_hour: int = positive(10, most=MAX_SUPPLEMENTS_PER_HOUR)
    max_pending_supplements: int = positive(20, most=MAX_PENDING_SUPPLEMENTS_CAP)
    # H11 rollout thresholds, measured on a synthetic population of rollout_population
    # people (docs/adr/0510); the shipped schemes pass them (AUC ~0.60, KS ~0.18).
    rollout_min_auc: float = between(0.55, 0.0, 1.0)
    rollout_min_ks: float = between(0.10, 0.0, 1.0)
    rollout_max_monthly_psi: float = between(0.10, 0.0, 10.0)
    rollout_population: int = between(5_000, 1_000, 1_000_000)
    # N21: working days the operator has for an objection to the score itself when the
    # scheme names no "handle" step (Heihe); Hainan's "handle" (3) wins when present.
    score_objection_days: int = positive(3, most=MAX_DEADLINE_DAYS, text=_DEADLINE_TEXT)
    # N22: working days the department has to decide a repair application.  Neither
    # seed gives a number; 5 mirrors N21's source step (docs/adr/0509).
    repair_decision_days: int = positive(5, most=MAX_DEADLINE_DAYS, text=_DEADLINE_TEXT)

    def rate_for(self, requester: str) -> int:
        return self.per_requester_per_minute.get(requester, self.queries_per_minute)


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """``[federation]``: the hub, its pinned root key and the trust list (docs/adr/0410)."""

    hub: str  # hub id = the trust list's issuer
    # pinned hub root public key (raw Ed25519)
    hub_key: bytes = field(
        metadata={"parse": checks.hex_key("must be a 32-byte Ed25519 public key")}
    )
    trust_list: Path | None = None  # seed TrustList envelope or bundle file
    hub_endpoint: str = setting("", check=checks.endpoint)  # the hub's peer port; "" on the hub
    allow_stale: bool = False  # accept an expired trust list (reported by `huxin status`)
    # auto: direct endpoint if listed, else the hub | hub | direct
    route: str = setting("auto", choices=("auto", "hub", "direct"))
    sync: bool = True  # run the background peer sync in `huxin serve`
    sync_interval_seconds: float = positive(30.0)
    sync_timeout_seconds: float = positive(5.0)
    backoff_base_seconds: float = positive(1.0)
    backoff_max_seconds: float = positive(300.0)


@dataclass(frozen=True, slots=True)
class HubConfig:
    """``[hub]``: pushing to the provincial hub (region role) and serving as one (hub role).

    ``endpoint``, ``hub_id`` and ``hub_key`` default to ``[federation]``'s
    ``hub_endpoint``, ``hub`` and ``hub_key`` (docs/adr/0400).
    """

    # hex file: HMAC key of province pseudonyms (H13)
    province_key: Path | None = setting(None, type_text="must be a path")
    endpoint: str = setting("", check=checks.endpoint)  # host:port of the hub's peer port
    hub_id: str = ""  # the hub's region id (audience of snapshot batches, receipt issuer)
    # hub root public key (verifies the hub key set, hence receipts)
    hub_key: bytes = setting(b"", parse=checks.hex_key("must be 32 bytes"))
    server_name: str = ""  # TLS name of the hub, if not the endpoint's host
    push_interval_seconds: float = at_least(30.0, 0)  # background push in `huxin serve`; 0 = off
    max_items_per_push: int = at_least(16, 1)  # events per Push stream (bounded batches)
    batch_leaves: int = at_least(10_000, 1)  # attestations per signed snapshot batch
    snapshot_ttl_days: int = at_least(62, 1)  # validity of a snapshot attestation
    backoff_base_seconds: float = at_least(1.0, 0.01)
    backoff_max_seconds: float = at_least(300.0, 0.01)
    # hub role: validity of a signed trust list
    trust_list_ttl_seconds: int = at_least(7 * 86_400, 60)
    # hub role: re-sign this long after issuing
    trust_list_refresh_seconds: int = at_least(86_400, 1)
    max_leaves_per_batch: int = at_least(100_000, 1)  # hub role: larger pushed batches are refused


@dataclass(frozen=True, slots=True)
class ClientsConfig:
    """``[clients]``: the registry of this node's integrator and department
    certificates (``huxin client issue/revoke``, docs/adr/0415)."""

    registry: Path = Path("clients.json")  # resolved against the config's directory


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """``[schedule]``: the node's own monthly run (H3, docs/adr/0514).

    A region node runs the last finished month once, on ``monthly_day`` (1..28, so
    every month has it) at ``monthly_hour`` (0..23, UTC like every date the node
    keeps) or at its first check after that; a hub never runs it."""

    monthly_day: int = between(1, 1, 28)
    monthly_hour: int = between(2, 0, 23)  # 10:00 Beijing time
    # scoring processes of the run (1: in the node's process)
    monthly_workers: int = between(1, 1, 64)
    # a failed run is tried again this long after it failed
    retry_minutes: int = between(60, 1, 1_440)
    # how often the node checks whether a run is due
    interval_seconds: float = between(60.0, 1.0, 3_600.0)


@dataclass(frozen=True, slots=True)
class CatalogueConfig:
    """``[catalogue]``: the operator's publication of the incentive catalogue (N17,
    docs/adr/0511).  The scenarios themselves are the scheme's; empty values publish
    under the scheme's version and effective date with the default guide."""

    # 1-32 of [0-9A-Za-z._-]; "" = the scheme version in force
    version: str = setting("", check=checks.version)
    # 2000-01-01..2099-12-31; None = the scheme's effective
    published_on: date | None = setting(None, parse=checks.published)
    # TOML application guide, at most MAX_GUIDE_BYTES (node.catalogue)
    guide: Path | None = setting(None, parse=checks.guide)


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """``[mapping]``: governed tables (C3, H13, docs/adr/0207).  ``tables`` are table
    documents and ``approvals`` serialized approval envelopes (at most
    :data:`MAX_MAPPING_FILES` each, relative to the config file); ``min_reach`` an
    optional incentive-reach floor, a decimal share in [0, 1] written as text;
    ``authorities`` approving authority id (at most :data:`MAX_AUTHORITY_ID`
    characters) -> raw 32-byte Ed25519 key, beyond the ``[federation]`` hub."""

    tables: tuple[Path, ...] = setting((), check=checks.files)
    approvals: tuple[Path, ...] = setting((), check=checks.files)
    min_reach: str = setting("", check=checks.reach)  # "" = no floor
    authorities: Mapping[str, bytes] = setting(factory=dict, parse=checks.authorities)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    # required keys are plain dataclasses.field: the checker knows they have no default
    region: str = field(metadata={"check": check_id})
    scheme: str
    database: Path = field(metadata={"toml_default": "node.db"})
    tls: TlsFiles
    keys: KeyFiles
    role: str = setting("region", choices=("region", "hub"))
    listen: ListenConfig = ListenConfig()
    identity: IdentityConfig = IdentityConfig()
    consent: ConsentConfig = ConsentConfig()
    limits: Limits = Limits()
    # standalone nodes only: static allow-list (H17)
    peers: tuple[str, ...] = setting((), toml="peers.allowed", check=checks.ids)
    federation: FederationConfig | None = None  # federated: the trust list decides (H17)
    # certificate identities allowed to submit records
    sources: tuple[str, ...] = setting((), toml="sources.allowed", check=checks.ids)
    # [sources] population: identities allowed to submit residence facts (docs/adr/0508)
    population: tuple[str, ...] = setting((), toml="sources.population", check=checks.ids)
    # [sources] require_registry: records only about registered adults (H7); False for
    # configs written before the registry (their people exist through their records)
    require_registry: bool = setting(False, toml="sources.require_registry")
    log_file: Path | None = setting(None, parse=checks.any_path)
    grace_seconds: float = 10.0
    hub: HubConfig = HubConfig()  # [hub]: push (region) and hub role settings
    rights: RightsConfig = RightsConfig()
    clients: ClientsConfig = ClientsConfig()
    schedule: ScheduleConfig = ScheduleConfig()  # [schedule]: the monthly run (H3)
    catalogue: CatalogueConfig = CatalogueConfig()  # N17: publication of the catalogue
    mapping: MappingConfig = MappingConfig()  # [mapping]: governed tables (C3, H13)
    # [storage]: SQLite (default: [node] database) or PostgreSQL (issue 18, docs/adr/0700)
    storage: StorageConfig = setting(factory=StorageConfig)


def parse_config(data: Mapping[str, Any], base: Path) -> NodeConfig:
    """Build a :class:`NodeConfig` from parsed TOML; paths relative to ``base``.

    Every key goes through the generic parser; what remains here are the rules
    that tie two keys together."""
    config: NodeConfig = parse_root(NodeConfig, data, base)
    config = _storage_default(config, data)
    if config.listen.peer_workers > 1 and config.storage.dialect == "postgresql":
        # peer-port workers share a SQLite file; on PostgreSQL replicas do that job
        raise ConfigError(
            "listen.peer_workers", "must be 1 on PostgreSQL: run several replicas instead"
        )
    if config.listen.peer_workers > 1 and config.role != "region":
        raise ConfigError("listen.peer_workers", "a hub serves its peer port in one process")
    consent = config.consent
    if consent.grant_burst > consent.grants_per_hour:
        raise ConfigError(
            "consent.grant_burst", f"must be at most {consent.grants_per_hour} (grants_per_hour)"
        )
    if config.role == "hub" and config.hub.province_key is not None:
        # ID numbers have little entropy: whoever holds the key reverses pseudonyms (ADR 0400)
        raise ConfigError(
            "hub.province_key", "a hub must not hold the province key; only regions do"
        )
    if config.federation is not None and config.peers:
        raise ConfigError(
            "peers.allowed", "cannot be used with [federation]: the trust list decides"
        )
    if config.hub.trust_list_refresh_seconds * 2 > config.hub.trust_list_ttl_seconds:
        raise ConfigError(
            "hub.trust_list_refresh_seconds", "must be at most half of trust_list_ttl_seconds"
        )
    return config


def _storage_default(config: NodeConfig, data: Mapping[str, Any]) -> NodeConfig:
    """``[storage] url`` and ``[node] database`` name one SQLite file: the URL defaults
    to the database, a SQLite URL alone sets the database, and two different files
    are refused."""
    storage = config.storage
    if not storage.url:
        return replace(
            config, storage=replace(storage, url=StorageConfig.for_database(config.database).url)
        )
    path = storage.sqlite_path
    if path is None:
        return config  # PostgreSQL: [node] database names no file in use
    if "database" in data.get("node", {}) and path != config.database:
        raise ConfigError("storage.url", "names another file than node.database; set one of them")
    return replace(config, database=path)


def load_config(path: str | Path) -> NodeConfig:
    """Read and check one node TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config", f"{str(p)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"not valid TOML: {exc}") from None
    return parse_config(data, p.resolve().parent)
