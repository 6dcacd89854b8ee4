"""Node configuration: one TOML file per node, loaded into frozen dataclasses.

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

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

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
    "TlsFiles",
    "check_address",
    "check_id",
    "load_config",
    "parse_config",
]

DEFAULT_CONSENT_DAYS = 90
MAX_USES_CAP = 1000  # uses of one consent; node.rpc._citizen's cap (kept equal by a test)
# region and certificate identities: the pattern of keys' node certificates
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
OBJECTION_STEPS = ("handle", "forward", "source", "reply")  # [rights] objection_deadlines
MAX_DEADLINE_DAYS = 60
REPLAY_ENTRIES = (1_000, 10_000_000)  # [identity] replay_cache_entries bounds
DEFAULT_REPLAY_ENTRIES = 100_000
MAX_IDENTITY_AGE = 86_400  # [identity] max_age_seconds: an assertion lives at most a day
HARD_CONSENT_DAYS = 366
MAX_ACTIVE_CONSENTS_CAP = 10_000  # [consent] max_active_consents
MAX_GRANTS_PER_HOUR = 3_600  # [consent] grants_per_hour
MAX_SUPPLEMENTS_PER_HOUR = 3_600  # [rights] supplements_per_hour
MAX_PENDING_SUPPLEMENTS_CAP = 10_000  # [rights] max_pending_supplements


class ConfigError(Exception):
    """A config file that cannot be used; ``field`` is the dotted key."""

    code = "INVALID_CONFIG"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


MAX_PEER_WORKERS = 32
PEER_CONNECTION_AGE = 600  # seconds; the default with peer_workers > 1
# [listen] port limits (docs/adr/0321): key -> (smallest, largest) accepted value
PORT_LIMIT_BOUNDS: Mapping[str, tuple[float, float]] = {
    "citizen_max_connections": (1, 1_000_000),
    "peer_max_connections": (1, 1_000_000),
    "handshake_timeout_seconds": (0.5, 60),
    "idle_timeout_seconds": (1, 86_400),
    "citizen_max_streams": (1, 1_000),
    "peer_max_streams": (1, 10_000),
    "request_timeout_seconds": (0.5, 600),
    "citizen_max_public_calls": (1, 100_000),
    "public_request_timeout_seconds": (0.5, 600),
}


@dataclass(frozen=True, slots=True)
class ListenConfig:
    peer: str = "127.0.0.1:0"  # mutual TLS: PeerService, SourceService
    citizen: str = "127.0.0.1:0"  # server TLS: CitizenService
    metrics: str = ""  # host:port of the Prometheus endpoint; empty = off
    # processes serving the peer port (SO_REUSEPORT; region role only; docs/adr/0312).
    # Worker i > 0 serves its own metrics on the metrics port + i (any port if 0).
    peer_workers: int = 1
    # Seconds after which a peer connection is asked to reconnect (gRPC GOAWAY; calls
    # in flight finish first), so that long-lived peer connections are spread over
    # the workers again. None: PEER_CONNECTION_AGE with workers, never without; 0: never.
    peer_connection_age_seconds: int | None = None
    # What each port accepts (docs/adr/0321; bounds in PORT_LIMIT_BOUNDS). Connections
    # per port: None = a share of this process's file descriptors (node.rpc._port_limits).
    citizen_max_connections: int | None = None
    peer_max_connections: int | None = None
    handshake_timeout_seconds: float = 5.0  # TLS and the client's HTTP/2 SETTINGS
    idle_timeout_seconds: int = 300  # a connection without calls for this long is closed
    citizen_max_streams: int = 16  # concurrent calls on one citizen connection
    peer_max_streams: int = 256  # concurrent calls on one peer connection
    request_timeout_seconds: float = 30.0  # for each request message after the call opened
    # Calls that carry no verified identity (public methods on the citizen port) in
    # flight at once on this node, over all connections; more are refused at once
    # (RESOURCE_EXHAUSTED TOO_MANY_PUBLIC_CALLS) before any message is read.
    citizen_max_public_calls: int = 256
    # A public method's request is empty or tiny: it must arrive within this many
    # seconds (at most request_timeout_seconds) — see public_request_timeout().
    public_request_timeout_seconds: float = 5.0

    def public_request_timeout(self) -> float:
        """The message deadline of a public method (never longer than any other's)."""
        return min(self.request_timeout_seconds, self.public_request_timeout_seconds)

    def peer_connection_age(self) -> int:
        """The age in effect (0 = connections are never recycled)."""
        if self.peer_connection_age_seconds is not None:
            return self.peer_connection_age_seconds
        return PEER_CONNECTION_AGE if self.peer_workers > 1 else 0


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
    public_keys: tuple[bytes, ...] = ()  # raw Ed25519 keys of trusted identity providers
    max_age_seconds: int = 600
    # assertions remembered during their lifetime (each accepted once, docs/adr/0416);
    # when full, new sign-ins are refused until some expire
    replay_cache_entries: int = DEFAULT_REPLAY_ENTRIES


@dataclass(frozen=True, slots=True)
class ConsentConfig:
    """``[consent]``: validity and uses of a grant, and how many a citizen may hold
    and grant (docs/adr/0324): at most ``grants_per_hour`` grants in any rolling
    hour and ``grant_burst`` in any rolling minute, and ``max_active_consents``
    active (not withdrawn, expired or used up) at once."""

    max_validity_days: int = DEFAULT_CONSENT_DAYS
    default_max_uses: int = 10
    max_active_consents: int = 100  # 1..MAX_ACTIVE_CONSENTS_CAP
    grants_per_hour: int = 30  # 1..MAX_GRANTS_PER_HOUR
    grant_burst: int = 20  # 1..grants_per_hour


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_per_peer: int = 64
    max_batch_records: int = 10_000
    attestation_ttl_seconds: int = 600
    per_peer_message_bytes: Mapping[str, int] = field(default_factory=dict)
    per_peer_concurrency: Mapping[str, int] = field(default_factory=dict)

    def message_bytes_for(self, peer: str) -> int:
        return self.per_peer_message_bytes.get(peer, self.max_message_bytes)

    def concurrency_for(self, peer: str) -> int:
        return self.per_peer_concurrency.get(peer, self.max_concurrent_per_peer)


@dataclass(frozen=True, slots=True)
class RightsConfig:
    """``[rights]``: third-party query rate limits, holiday files, scheduler (docs/adr/0503)."""

    queries_per_minute: int = 0  # per requester (certificate identity); 0 = no limit
    query_burst: int = 60
    per_requester_per_minute: Mapping[str, int] = field(default_factory=dict)
    holiday_files: tuple[Path, ...] = ()  # operator holiday files for years chinese-calendar lacks
    scheduler_interval_seconds: float = 60.0
    # per-step working days overriding the scheme's (e.g. a local regulation); empty = scheme's
    objection_deadlines: Mapping[str, int] = field(default_factory=dict)
    # UploadSupplement per citizen: at most this many uploads in any
    # rolling hour (1..MAX_SUPPLEMENTS_PER_HOUR) and this many awaiting their
    # department's decision at once (1..MAX_PENDING_SUPPLEMENTS_CAP)
    supplements_per_hour: int = 10
    max_pending_supplements: int = 20
    # H11 rollout thresholds, measured on a synthetic population of rollout_population
    # people (docs/adr/0510); the shipped schemes pass them (AUC ~0.60, KS ~0.18).
    rollout_min_auc: float = 0.55
    rollout_min_ks: float = 0.10
    rollout_max_monthly_psi: float = 0.10
    rollout_population: int = 5_000
    # N21: working days the operator has for an objection to the score itself when the
    # scheme names no "handle" step (Heihe); Hainan's "handle" (3) wins when present.
    score_objection_days: int = 3
    # N22: working days the department has to decide a repair application.  Neither
    # seed gives a number; 5 mirrors N21's source step (docs/adr/0509).
    repair_decision_days: int = 5

    def rate_for(self, requester: str) -> int:
        return self.per_requester_per_minute.get(requester, self.queries_per_minute)


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """``[federation]``: the hub, its pinned root key and the trust list (docs/adr/0410)."""

    hub: str  # hub id = the trust list's issuer
    hub_key: bytes  # pinned hub root public key (raw Ed25519)
    trust_list: Path | None = None  # seed TrustList envelope or bundle file
    hub_endpoint: str = ""  # host:port of the hub's peer port ("" on the hub itself)
    allow_stale: bool = False  # accept an expired trust list (reported by `huxin status`)
    route: str = "auto"  # auto: direct endpoint if listed, else the hub | hub | direct
    sync: bool = True  # run the background peer sync in `huxin serve`
    sync_interval_seconds: float = 30.0
    sync_timeout_seconds: float = 5.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class HubConfig:
    """``[hub]``: pushing to the provincial hub (region role) and serving as one (hub role).

    ``endpoint``, ``hub_id`` and ``hub_key`` default to ``[federation]``'s
    ``hub_endpoint``, ``hub`` and ``hub_key`` (docs/adr/0400).
    """

    province_key: Path | None = None  # hex file: HMAC key of province pseudonyms (H13)
    endpoint: str = ""  # host:port of the hub's peer port
    hub_id: str = ""  # the hub's region id (audience of snapshot batches, receipt issuer)
    hub_key: bytes = b""  # hub root public key (verifies the hub key set, hence receipts)
    server_name: str = ""  # TLS name of the hub, if not the endpoint's host
    push_interval_seconds: float = 30.0  # background push in `huxin serve`; 0 = off
    max_items_per_push: int = 16  # events per Push stream (bounded batches)
    batch_leaves: int = 10_000  # attestations per signed snapshot batch
    snapshot_ttl_days: int = 62  # validity of a snapshot attestation
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    trust_list_ttl_seconds: int = 7 * 86_400  # hub role: validity of a signed trust list
    trust_list_refresh_seconds: int = 86_400  # hub role: re-sign this long after issuing
    max_leaves_per_batch: int = 100_000  # hub role: larger pushed batches are refused


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

    monthly_day: int = 1
    monthly_hour: int = 2  # 10:00 Beijing time
    monthly_workers: int = 1  # scoring processes of the run (1: in the node's process)
    retry_minutes: int = 60  # a failed run is tried again this long after it failed
    interval_seconds: float = 60.0  # how often the node checks whether a run is due


# (key, type, default, low, high) of every [schedule] key
_SCHEDULE_BOUNDS: tuple[tuple[str, type, float, float, float], ...] = (
    ("monthly_day", int, 1, 1, 28),
    ("monthly_hour", int, 2, 0, 23),
    ("monthly_workers", int, 1, 1, 64),
    ("retry_minutes", int, 60, 1, 1_440),
    ("interval_seconds", float, 60.0, 1.0, 3_600.0),
)


def _schedule(raw: Mapping[str, Any]) -> ScheduleConfig:
    values: dict[str, Any] = {}
    for key, kind, default, low, high in _SCHEDULE_BOUNDS:
        value = _get(raw, "schedule", key, kind, kind(default))
        if not low <= value <= high:
            raise ConfigError(f"schedule.{key}", f"must be between {kind(low)} and {kind(high)}")
        values[key] = value
    return ScheduleConfig(**values)


@dataclass(frozen=True, slots=True)
class CatalogueConfig:
    """``[catalogue]``: the operator's publication of the incentive catalogue (N17,
    docs/adr/0511).  The scenarios themselves are the scheme's; empty values publish
    under the scheme's version and effective date with the default guide."""

    version: str = ""  # 1-32 of [0-9A-Za-z._-]; "" = the scheme version in force
    published_on: date | None = None  # 2000-01-01..2099-12-31; None = the scheme's effective
    guide: Path | None = None  # TOML application guide, at most MAX_GUIDE_BYTES (node.catalogue)


#: [mapping] bounds: table and approval files, authorities, authority id length
MAX_MAPPING_FILES = 64
MAX_AUTHORITY_ID = 64


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """``[mapping]``: governed tables (C3, H13, docs/adr/0207).  ``tables`` are table
    documents and ``approvals`` serialized approval envelopes (at most
    :data:`MAX_MAPPING_FILES` each, relative to the config file); ``min_reach`` an
    optional incentive-reach floor, a decimal share in [0, 1] written as text;
    ``authorities`` approving authority id (at most :data:`MAX_AUTHORITY_ID`
    characters) -> raw 32-byte Ed25519 key, beyond the ``[federation]`` hub."""

    tables: tuple[Path, ...] = ()
    approvals: tuple[Path, ...] = ()
    min_reach: str = ""  # "" = no floor
    authorities: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    region: str
    scheme: str
    database: Path
    tls: TlsFiles
    keys: KeyFiles
    role: str = "region"
    listen: ListenConfig = ListenConfig()
    identity: IdentityConfig = IdentityConfig()
    consent: ConsentConfig = ConsentConfig()
    limits: Limits = Limits()
    peers: tuple[str, ...] = ()  # standalone nodes only: static allow-list (H17)
    federation: FederationConfig | None = None  # federated: the trust list decides (H17)
    sources: tuple[str, ...] = ()  # certificate identities allowed to submit records
    # [sources] population: identities allowed to submit residence facts (docs/adr/0508)
    population: tuple[str, ...] = ()
    # [sources] require_registry: records only about registered adults (H7); False for
    # configs written before the registry (their people exist through their records)
    require_registry: bool = False
    log_file: Path | None = None
    grace_seconds: float = 10.0
    hub: HubConfig = HubConfig()  # [hub]: push (region) and hub role settings
    rights: RightsConfig = RightsConfig()
    clients: ClientsConfig = ClientsConfig()
    schedule: ScheduleConfig = ScheduleConfig()  # [schedule]: the monthly run (H3)
    catalogue: CatalogueConfig = CatalogueConfig()  # N17: publication of the catalogue
    mapping: MappingConfig = MappingConfig()  # [mapping]: governed tables (C3, H13)


_SECTIONS = {
    "node": {"region", "scheme", "role", "database", "log_file", "grace_seconds"},
    "listen": {
        "peer",
        "citizen",
        "metrics",
        "peer_workers",
        "peer_connection_age_seconds",
        *PORT_LIMIT_BOUNDS,
    },
    "tls": {"cert", "key", "ca"},
    "keys": {"root", "signing", "key_set", "storage_secret", "seal"},
    "identity": {"issuer", "public_keys", "max_age_seconds", "replay_cache_entries"},
    "consent": {
        "max_validity_days",
        "default_max_uses",
        "max_active_consents",
        "grants_per_hour",
        "grant_burst",
    },
    "limits": {
        "max_message_bytes",
        "max_concurrent_per_peer",
        "max_batch_records",
        "attestation_ttl_seconds",
        "per_peer_message_bytes",
        "per_peer_concurrency",
    },
    "peers": {"allowed"},
    "hub": {
        "province_key",
        "endpoint",
        "hub_id",
        "hub_key",
        "server_name",
        "push_interval_seconds",
        "max_items_per_push",
        "batch_leaves",
        "snapshot_ttl_days",
        "backoff_base_seconds",
        "backoff_max_seconds",
        "trust_list_ttl_seconds",
        "trust_list_refresh_seconds",
        "max_leaves_per_batch",
    },
    "federation": {
        "hub",
        "hub_key",
        "trust_list",
        "hub_endpoint",
        "allow_stale",
        "route",
        "sync",
        "sync_interval_seconds",
        "sync_timeout_seconds",
        "backoff_base_seconds",
        "backoff_max_seconds",
    },
    "sources": {"allowed", "population", "require_registry"},
    "clients": {"registry"},
    "catalogue": {"version", "published_on", "guide"},
    "mapping": {"tables", "approvals", "min_reach", "authorities"},
    "rights": {
        "queries_per_minute",
        "query_burst",
        "per_requester_per_minute",
        "holiday_files",
        "scheduler_interval_seconds",
        "objection_deadlines",
        "supplements_per_hour",
        "max_pending_supplements",
        "rollout_min_auc",
        "rollout_min_ks",
        "rollout_max_monthly_psi",
        "rollout_population",
        "score_objection_days",
        "repair_decision_days",
    },
    "schedule": {
        "monthly_day",
        "monthly_hour",
        "monthly_workers",
        "retry_minutes",
        "interval_seconds",
    },
}


# (key, type, default, low, high): bounds of the H11 rollout thresholds
_ROLLOUT_BOUNDS: tuple[tuple[str, type, float, float, float], ...] = (
    ("rollout_min_auc", float, 0.55, 0.0, 1.0),
    ("rollout_min_ks", float, 0.10, 0.0, 1.0),
    ("rollout_max_monthly_psi", float, 0.10, 0.0, 10.0),
    ("rollout_population", int, 5_000, 1_000, 1_000_000),
)


def _rollout_thresholds(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind, default, low, high in _ROLLOUT_BOUNDS:
        value = _get(raw, "rights", key, kind, kind(default))
        if not low <= value <= high:
            raise ConfigError(f"rights.{key}", f"must be between {kind(low)} and {kind(high)}")
        out[key] = value
    return out


def _get(table: Mapping[str, Any], section: str, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{section}.{key}", "is required")
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{section}.{key}", "must be an integer")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{section}.{key}", f"must be {_KIND_NAMES.get(kind, kind.__name__)}")
    return value


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _positive(value: int, name: str) -> int:
    if value <= 0:
        raise ConfigError(name, "must be positive")
    return value


def _non_negative(value: int, name: str) -> int:
    if value < 0:
        raise ConfigError(name, "must be 0 (no limit) or positive")
    return value


def _int_map(raw: Any, name: str) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ConfigError(name, "must be a table of peer = integer")
    out: dict[str, int] = {}
    for k, v in raw.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{name}.{k}", "must be a positive integer")
        out[str(k)] = v
    return out


def _str_list(raw: Any, name: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(name, "must be a list of strings")
    return tuple(raw)


def check_address(value: str, name: str, *, min_port: int = 0) -> str:
    """``host:port`` (``[v6]:port`` too) with a port of ``min_port``..65535; returned as is."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ConfigError(name, f"{value!r} is not host:port")
    if not min_port <= int(port) <= 65535:
        raise ConfigError(name, f"port {port} is not in {min_port}..65535")
    if host.startswith("[") != host.endswith("]") or any(c.isspace() for c in host):
        raise ConfigError(name, f"{value!r} is not host:port")
    return value


def check_id(value: str, name: str) -> str:
    """A region or certificate identity (``heihe``, ``heihe.court``): :data:`ID_PATTERN`."""
    if not ID_PATTERN.match(value):
        raise ConfigError(
            name, f"{value!r} is not an id (lower-case letters, digits, '.', '_', '-'; max 63)"
        )
    return value


def _ids(raw: Any, name: str) -> tuple[str, ...]:
    values = _str_list(raw, name)
    for v in values:
        check_id(v, name)
    return values


def _listen(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = _get(raw, "listen", key, str, default)
    return value if key == "metrics" and value == "" else check_address(value, f"listen.{key}")


def parse_config(data: Mapping[str, Any], base: Path) -> NodeConfig:
    """Build a :class:`NodeConfig` from parsed TOML; paths relative to ``base``."""
    for section, value in data.items():
        if section not in _SECTIONS:
            raise ConfigError(section, "unknown section")
        if not isinstance(value, Mapping):
            raise ConfigError(section, "must be a table")
        for key in value:
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{section}.{key}", "unknown key")

    def path(section: str, key: str, default: str | None = None) -> Path:
        value = _get(data.get(section, {}), section, key, str, default)
        p = Path(value)
        return p if p.is_absolute() else base / p

    node = data.get("node", {})
    region = check_id(_get(node, "node", "region", str, None), "node.region")
    scheme = _get(node, "node", "scheme", str, None)
    role = _get(node, "node", "role", str, "region")
    if role not in ("region", "hub"):
        raise ConfigError("node.role", "must be 'region' or 'hub'")
    log_file = node.get("log_file")
    listen_raw = data.get("listen", {})
    listen = ListenConfig(
        peer=_listen(listen_raw, "peer", "127.0.0.1:0"),
        citizen=_listen(listen_raw, "citizen", "127.0.0.1:0"),
        metrics=_listen(listen_raw, "metrics", ""),
        peer_workers=_positive(
            _get(listen_raw, "listen", "peer_workers", int, 1), "listen.peer_workers"
        ),
        peer_connection_age_seconds=(
            None
            if "peer_connection_age_seconds" not in listen_raw
            else _non_negative(
                _get(listen_raw, "listen", "peer_connection_age_seconds", int, 0),
                "listen.peer_connection_age_seconds",
            )
        ),
    )
    listen = replace(listen, **_port_limits(listen_raw))
    if listen.peer_workers > MAX_PEER_WORKERS:
        raise ConfigError("listen.peer_workers", f"must be at most {MAX_PEER_WORKERS}")
    if listen.peer_workers > 1 and role != "region":
        raise ConfigError("listen.peer_workers", "a hub serves its peer port in one process")
    ident_raw = data.get("identity", {})
    keys_hex = _str_list(ident_raw.get("public_keys", []), "identity.public_keys")
    try:
        idp_keys = tuple(bytes.fromhex(k) for k in keys_hex)
    except ValueError:
        raise ConfigError("identity.public_keys", "must be hex strings") from None
    if any(len(k) != 32 for k in idp_keys):
        raise ConfigError("identity.public_keys", "each key must be 32 bytes")
    identity = IdentityConfig(
        issuer=_get(ident_raw, "identity", "issuer", str, "dev-idp"),
        public_keys=idp_keys,
        max_age_seconds=_positive(
            _get(ident_raw, "identity", "max_age_seconds", int, 600), "identity.max_age_seconds"
        ),
        replay_cache_entries=_get(
            ident_raw, "identity", "replay_cache_entries", int, DEFAULT_REPLAY_ENTRIES
        ),
    )
    if identity.max_age_seconds > MAX_IDENTITY_AGE:
        raise ConfigError("identity.max_age_seconds", f"must be at most {MAX_IDENTITY_AGE}")
    low, high = REPLAY_ENTRIES
    if not low <= identity.replay_cache_entries <= high:
        raise ConfigError("identity.replay_cache_entries", f"must be {low:_} to {high:_}")
    consent_raw = data.get("consent", {})
    max_days = _positive(
        _get(consent_raw, "consent", "max_validity_days", int, DEFAULT_CONSENT_DAYS),
        "consent.max_validity_days",
    )
    if max_days > HARD_CONSENT_DAYS:
        raise ConfigError("consent.max_validity_days", f"must be at most {HARD_CONSENT_DAYS}")
    consent = _consent(consent_raw, max_days)
    lim = data.get("limits", {})
    d = Limits()
    limits = Limits(
        max_message_bytes=_positive(
            _get(lim, "limits", "max_message_bytes", int, d.max_message_bytes),
            "limits.max_message_bytes",
        ),
        max_concurrent_per_peer=_positive(
            _get(lim, "limits", "max_concurrent_per_peer", int, d.max_concurrent_per_peer),
            "limits.max_concurrent_per_peer",
        ),
        max_batch_records=_positive(
            _get(lim, "limits", "max_batch_records", int, d.max_batch_records),
            "limits.max_batch_records",
        ),
        attestation_ttl_seconds=_positive(
            _get(lim, "limits", "attestation_ttl_seconds", int, d.attestation_ttl_seconds),
            "limits.attestation_ttl_seconds",
        ),
        per_peer_message_bytes=_int_map(
            lim.get("per_peer_message_bytes", {}), "limits.per_peer_message_bytes"
        ),
        per_peer_concurrency=_int_map(
            lim.get("per_peer_concurrency", {}), "limits.per_peer_concurrency"
        ),
    )
    rights_raw = data.get("rights", {})
    rights = RightsConfig(
        queries_per_minute=_non_negative(
            _get(rights_raw, "rights", "queries_per_minute", int, 0), "rights.queries_per_minute"
        ),
        query_burst=_positive(
            _get(rights_raw, "rights", "query_burst", int, 60), "rights.query_burst"
        ),
        per_requester_per_minute=_int_map(
            rights_raw.get("per_requester_per_minute", {}), "rights.per_requester_per_minute"
        ),
        holiday_files=tuple(
            p if p.is_absolute() else base / p
            for p in map(
                Path, _str_list(rights_raw.get("holiday_files", []), "rights.holiday_files")
            )
        ),
        scheduler_interval_seconds=_get(
            rights_raw, "rights", "scheduler_interval_seconds", float, 60.0
        ),
        score_objection_days=_positive(
            _get(rights_raw, "rights", "score_objection_days", int, 3),
            "rights.score_objection_days",
        ),
        repair_decision_days=_positive(
            _get(rights_raw, "rights", "repair_decision_days", int, 5),
            "rights.repair_decision_days",
        ),
    )
    for name in ("score_objection_days", "repair_decision_days"):
        if getattr(rights, name) > MAX_DEADLINE_DAYS:
            raise ConfigError(f"rights.{name}", f"at most {MAX_DEADLINE_DAYS}")
    if rights.scheduler_interval_seconds <= 0:
        raise ConfigError("rights.scheduler_interval_seconds", "must be positive")
    deadlines = _int_map(rights_raw.get("objection_deadlines", {}), "rights.objection_deadlines")
    for step, days in deadlines.items():
        if step not in OBJECTION_STEPS:
            raise ConfigError(
                f"rights.objection_deadlines.{step}", f"must be one of {', '.join(OBJECTION_STEPS)}"
            )
        if days > MAX_DEADLINE_DAYS:
            raise ConfigError(f"rights.objection_deadlines.{step}", f"at most {MAX_DEADLINE_DAYS}")
    per_hour, pending = _supplement_limits(rights_raw)
    rights = replace(
        rights,
        objection_deadlines=deadlines,
        supplements_per_hour=per_hour,
        max_pending_supplements=pending,
        **_rollout_thresholds(rights_raw),
    )
    peers = _ids(data.get("peers", {}).get("allowed", []), "peers.allowed")
    federation = _federation(data.get("federation"), base)
    hub = _hub(data.get("hub", {}), base)
    if role == "hub" and hub.province_key is not None:
        # ID numbers have little entropy: whoever holds the key reverses pseudonyms (ADR 0400)
        raise ConfigError(
            "hub.province_key", "a hub must not hold the province key; only regions do"
        )
    if federation is not None and peers:
        raise ConfigError(
            "peers.allowed", "cannot be used with [federation]: the trust list decides"
        )
    return NodeConfig(
        region=region,
        scheme=scheme,
        role=role,
        database=path("node", "database", "node.db"),
        tls=TlsFiles(cert=path("tls", "cert"), key=path("tls", "key"), ca=path("tls", "ca")),
        keys=KeyFiles(
            root=path("keys", "root"),
            signing=path("keys", "signing"),
            key_set=path("keys", "key_set"),
            storage_secret=path("keys", "storage_secret"),
            seal=path("keys", "seal"),
        ),
        listen=listen,
        identity=identity,
        consent=consent,
        limits=limits,
        peers=peers,
        federation=federation,
        sources=_ids(data.get("sources", {}).get("allowed", []), "sources.allowed"),
        population=_ids(data.get("sources", {}).get("population", []), "sources.population"),
        require_registry=_get(data.get("sources", {}), "sources", "require_registry", bool, False),
        log_file=None if log_file is None else (base / str(log_file)),
        grace_seconds=_get(node, "node", "grace_seconds", float, 10.0),
        hub=hub,
        rights=rights,
        clients=ClientsConfig(registry=path("clients", "registry", "clients.json")),
        schedule=_schedule(data.get("schedule", {})),
        catalogue=_catalogue(data.get("catalogue", {}), base),
        mapping=_mapping(data.get("mapping", {}), base),
    )


def _consent(raw: Mapping[str, Any], max_days: int) -> ConsentConfig:
    d = ConsentConfig()

    def bounded(key: str, default: int, most: int, why: str = "") -> int:
        value = _positive(_get(raw, "consent", key, int, default), f"consent.{key}")
        if value > most:
            raise ConfigError(f"consent.{key}", f"must be at most {most}{why}")
        return value

    per_hour = bounded("grants_per_hour", d.grants_per_hour, MAX_GRANTS_PER_HOUR)
    return ConsentConfig(
        max_validity_days=max_days,
        default_max_uses=bounded(
            "default_max_uses", d.default_max_uses, MAX_USES_CAP, " (the node's cap)"
        ),
        max_active_consents=bounded(
            "max_active_consents", d.max_active_consents, MAX_ACTIVE_CONSENTS_CAP
        ),
        grants_per_hour=per_hour,
        grant_burst=bounded("grant_burst", d.grant_burst, per_hour, " (grants_per_hour)"),
    )


def _supplement_limits(raw: Mapping[str, Any]) -> tuple[int, int]:
    """``[rights] supplements_per_hour`` and ``max_pending_supplements``, each within
    its bound."""
    d = RightsConfig()
    out = []
    for key, most in (
        ("supplements_per_hour", MAX_SUPPLEMENTS_PER_HOUR),
        ("max_pending_supplements", MAX_PENDING_SUPPLEMENTS_CAP),
    ):
        value = _positive(_get(raw, "rights", key, int, getattr(d, key)), f"rights.{key}")
        if value > most:
            raise ConfigError(f"rights.{key}", f"must be at most {most}")
        out.append(value)
    return out[0], out[1]


def _port_limits(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[listen]`` port limits present in ``raw``, each checked against its bounds."""
    out: dict[str, Any] = {}
    defaults = ListenConfig()
    for key, (low, high) in PORT_LIMIT_BOUNDS.items():
        if key not in raw:
            continue
        default = getattr(defaults, key)
        kind = float if isinstance(default, float) else int
        value = _get(raw, "listen", key, kind, default)
        if not low <= value <= high:
            raise ConfigError(f"listen.{key}", f"must be between {low:g} and {high:g}")
        out[key] = value
    return out


def _endpoint(value: str, name: str) -> str:
    """A hub's address (empty = none): ``host:port`` with a real port (1..65535)."""
    return value and check_address(value, name, min_port=1)


def _federation(raw: Mapping[str, Any] | None, base: Path) -> FederationConfig | None:
    if raw is None:
        return None
    s = "federation"
    key_hex = _get(raw, s, "hub_key", str, None)
    try:
        hub_key = bytes.fromhex(key_hex)
    except ValueError:
        raise ConfigError("federation.hub_key", "must be hex") from None
    if len(hub_key) != 32:
        raise ConfigError("federation.hub_key", "must be a 32-byte Ed25519 public key")
    route = _get(raw, s, "route", str, "auto")
    if route not in ("auto", "hub", "direct"):
        raise ConfigError("federation.route", "must be 'auto', 'hub' or 'direct'")
    trust = raw.get("trust_list")
    if trust is not None and not isinstance(trust, str):
        raise ConfigError("federation.trust_list", "must be a string")
    d = FederationConfig("", b"")

    def seconds(key: str, default: float) -> float:
        value = float(_get(raw, s, key, float, default))
        if value <= 0:
            raise ConfigError(f"federation.{key}", "must be positive")
        return value

    return FederationConfig(
        hub=_get(raw, s, "hub", str, None),
        hub_key=hub_key,
        trust_list=None if trust is None else base / trust,
        hub_endpoint=_endpoint(_get(raw, s, "hub_endpoint", str, ""), "federation.hub_endpoint"),
        allow_stale=_get(raw, s, "allow_stale", bool, False),
        route=route,
        sync=_get(raw, s, "sync", bool, True),
        sync_interval_seconds=seconds("sync_interval_seconds", d.sync_interval_seconds),
        sync_timeout_seconds=seconds("sync_timeout_seconds", d.sync_timeout_seconds),
        backoff_base_seconds=seconds("backoff_base_seconds", d.backoff_base_seconds),
        backoff_max_seconds=seconds("backoff_max_seconds", d.backoff_max_seconds),
    )


def _hub(raw: Mapping[str, Any], base: Path) -> HubConfig:
    s, d = "hub", HubConfig()
    key_path = raw.get("province_key")
    if key_path is not None and not isinstance(key_path, str):
        raise ConfigError("hub.province_key", "must be a path")
    key_hex = _get(raw, s, "hub_key", str, "")
    try:
        hub_key = bytes.fromhex(key_hex)
    except ValueError:
        raise ConfigError("hub.hub_key", "must be hex") from None
    if hub_key and len(hub_key) != 32:
        raise ConfigError("hub.hub_key", "must be 32 bytes")

    def num(key: str, kind: type, default: Any, minimum: float) -> Any:
        value = _get(raw, s, key, kind, default)
        if value < minimum:
            raise ConfigError(f"hub.{key}", f"must be at least {minimum}")
        return value

    hub = HubConfig(
        province_key=None
        if key_path is None
        else (Path(key_path) if Path(key_path).is_absolute() else base / key_path),
        endpoint=_endpoint(_get(raw, s, "endpoint", str, ""), "hub.endpoint"),
        hub_id=_get(raw, s, "hub_id", str, ""),
        hub_key=hub_key,
        server_name=_get(raw, s, "server_name", str, ""),
        push_interval_seconds=num("push_interval_seconds", float, d.push_interval_seconds, 0),
        max_items_per_push=num("max_items_per_push", int, d.max_items_per_push, 1),
        batch_leaves=num("batch_leaves", int, d.batch_leaves, 1),
        snapshot_ttl_days=num("snapshot_ttl_days", int, d.snapshot_ttl_days, 1),
        backoff_base_seconds=num("backoff_base_seconds", float, d.backoff_base_seconds, 0.01),
        backoff_max_seconds=num("backoff_max_seconds", float, d.backoff_max_seconds, 0.01),
        trust_list_ttl_seconds=num("trust_list_ttl_seconds", int, d.trust_list_ttl_seconds, 60),
        trust_list_refresh_seconds=num(
            "trust_list_refresh_seconds", int, d.trust_list_refresh_seconds, 1
        ),
        max_leaves_per_batch=num("max_leaves_per_batch", int, d.max_leaves_per_batch, 1),
    )
    if hub.trust_list_refresh_seconds * 2 > hub.trust_list_ttl_seconds:
        raise ConfigError(
            "hub.trust_list_refresh_seconds", "must be at most half of trust_list_ttl_seconds"
        )
    return hub


MAX_GUIDE_BYTES = 256 * 1024  # [catalogue] guide: 64 scenarios of full guide text fit
_CATALOGUE_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
_PUBLISHED_RANGE = (date(2000, 1, 1), date(2099, 12, 31))


def _catalogue(raw: Mapping[str, Any], base: Path) -> CatalogueConfig:
    version = _get(raw, "catalogue", "version", str, "")
    if version and not _CATALOGUE_VERSION.match(version):
        raise ConfigError(
            "catalogue.version", "must be 1-32 letters, digits, '.', '_' or '-' (a version)"
        )
    published = raw.get("published_on")
    if published is not None:
        if not isinstance(published, date) or isinstance(published, datetime):
            raise ConfigError("catalogue.published_on", "must be a date (YYYY-MM-DD)")
        low, high = _PUBLISHED_RANGE
        if not low <= published <= high:
            raise ConfigError("catalogue.published_on", f"must be between {low} and {high}")
    guide = _get(raw, "catalogue", "guide", str, "")
    return CatalogueConfig(
        version=version,
        published_on=published,
        guide=None if not guide else (Path(guide) if Path(guide).is_absolute() else base / guide),
    )


_DECIMAL = re.compile(r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$")


def _mapping(raw: Mapping[str, Any], base: Path) -> MappingConfig:
    def files(key: str) -> tuple[Path, ...]:
        names = _str_list(raw.get(key, []), f"mapping.{key}")
        if len(names) > MAX_MAPPING_FILES:
            raise ConfigError(f"mapping.{key}", f"at most {MAX_MAPPING_FILES} files")
        return tuple(p if p.is_absolute() else base / p for p in map(Path, names))

    floor = _get(raw, "mapping", "min_reach", str, "")
    if floor and not _DECIMAL.match(floor):
        raise ConfigError("mapping.min_reach", 'must be a decimal share in [0, 1], e.g. "0.5"')
    auth_raw = raw.get("authorities", {})
    if not isinstance(auth_raw, Mapping):
        raise ConfigError("mapping.authorities", "must be a table of id = hex key")
    if len(auth_raw) > MAX_MAPPING_FILES:
        raise ConfigError("mapping.authorities", f"at most {MAX_MAPPING_FILES} authorities")
    authorities: dict[str, bytes] = {}
    for name, value in auth_raw.items():
        where = f"mapping.authorities.{name}"
        if not 1 <= len(name) <= MAX_AUTHORITY_ID:
            raise ConfigError(where, f"an authority id has 1-{MAX_AUTHORITY_ID} characters")
        try:
            key = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ConfigError(where, "must be a 32-byte Ed25519 public key in hex")
        authorities[name] = key
    return MappingConfig(
        tables=files("tables"),
        approvals=files("approvals"),
        min_reach=floor,
        authorities=authorities,
    )


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
