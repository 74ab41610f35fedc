"""The vocabulary of a stack's settings: typed values, problems, and the facts they are checked against.

The bottom layer: it imports nothing of ours, so every other module (stack-file loading, domain
rules, components, the policy pack) can depend on it without a circle. Parsing raw config into
these types happens in `domain.config`; the rules that span several settings live with their
domain (`domain.capacity` for the workload's timing and capacity).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:  # only for annotations: this module must import without the Pulumi SDK
    import pulumi

PROJECT = "gke-voice-agents"


def setting_key(name: str) -> str:
    """The full config key of one of our settings, as users write it in a stack file."""
    return f"{PROJECT}:{name}"


# Regions with GKE Autopilot and Artifact Registry: data with its source and date, beside us.
KNOWN_REGIONS = frozenset(json.loads((Path(__file__).parent / "data" / "regions.json").read_text())["regions"])
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
EXCLUSION_SCOPES = ("NO_UPGRADES", "NO_MINOR_UPGRADES", "NO_MINOR_OR_NODE_UPGRADES")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Call identifiers (room names, participant identities, phone numbers) in the agent's logs: the
# agent's own list is agent/voice_agent/privacy.py LOG_CALL_IDS_MODES (tests/k8s compares them).
LOG_CALL_IDS_MODES = ("off", "hashed", "plain")
# Where the agent's LiveKit API key and secret come from (k8s/livekit_files.py):
# "secretManager": Secret Manager secrets the cluster's add-on mounts into the pod as files;
# "kubernetesSecret": a Kubernetes Secret read into environment variables (any cluster).
LIVEKIT_CREDENTIAL_SOURCES = ("secretManager", "kubernetesSecret")
# GKE asks for maintenance windows of at least 4 contiguous hours (GKE maintenance windows docs).
MIN_MAINTENANCE_WINDOW = timedelta(hours=4)
# GKE allows a NO_UPGRADES exclusion of at most 30 days (GKE maintenance exclusions docs).
MAX_NO_UPGRADES_EXCLUSION = timedelta(days=30)
# GKE refuses a maintenance policy that leaves less than 48 hours of maintenance availability in
# some rolling 32-day window ("Configure maintenance windows and exclusions", GKE docs; the API
# error reads "would go longer than 32d without 48h maintenance availability").
MIN_MAINTENANCE_AVAILABILITY = timedelta(hours=48)
MAINTENANCE_AVAILABILITY_PERIOD = timedelta(days=32)


def shown_value(value: Any) -> str:
    """A value the way a user writes it in a stack file, not the way Python prints it."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Problem:
    """One invalid setting: which key, what it holds, and what would be accepted.

    A secret's value is never shown, only whether it is set."""

    key: str
    value: Any
    rule: str
    secret: bool = False

    def __str__(self) -> str:
        shown = "(secret, not shown)" if self.secret and self.value is not None else shown_value(self.value)
        return f"{self.key} = {shown}: {self.rule}"


class ConfigError(ValueError):
    """All the problems of one stack's configuration, one per line."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid stack configuration ({len(self.problems)} problem(s)):\n{lines}")


# ---------------------------------------------------------------------------------------------
# How a setting is declared: once, in domain/declarations.py. Pulumi.yaml's config block, the
# loader's single-value checks (domain/config.py) and docs/settings.md all come from it.

REQUIRED = None  # a Setting without a default: every stack must set it

# kind -> the type Pulumi.yaml declares (its project schema knows string, integer, boolean and
# array only, so numbers are strings read as numbers); maps are not declared there at all.
PULUMI_TYPES = {"text": "string", "cidr": "string", "number": "string", "integer": "integer",
                "boolean": "boolean", "secret": "string"}


@dataclass(frozen=True)
class Setting:
    """One stack setting: what it is, what it may hold, where its value lands, and why."""

    name: str                  # "nodeCidr" (this project's namespace) or "gcp:region"
    kind: str                  # text | integer | number | boolean | cidr | map | secret
    group: str                 # the section of Pulumi.yaml and docs/settings.md
    description: str
    default: Any = REQUIRED
    to: str = ""               # where the typed value lands in StackConfig: "workload.hpa.min_replicas"
    low: float | None = None   # integer/number bounds; for cidr, prefix lengths
    high: float | None = None
    low_open: bool = False     # number: the low bound itself is refused
    unit: str = ""             # " s", " pods", " %": appended to the bounds in messages
    why: str = ""              # where the bounds come from, said in the error and the docs
    choices: Sequence[str] = ()
    what: str = ""             # a long list's kind and home: "GKE Autopilot region, domain/data/regions.json"
    pattern: re.Pattern[str] | None = None
    allowed: str = ""          # the pattern in words: the rule reads "must be {allowed}"
    empty_ok: bool = False     # "" passes the pattern (an optional value)
    # A single-value rule the kinds above cannot say: value -> the rule it breaks, or None.
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return self.name if ":" in self.name else setting_key(self.name)

    @property
    def ours(self) -> bool:
        """Declared in Pulumi.yaml: our namespace, and a type its project schema has."""
        return ":" not in self.name and self.kind in PULUMI_TYPES

    @property
    def secret(self) -> bool:
        return self.kind == "secret"


# ---------------------------------------------------------------------------------------------
# Typed settings. Components receive these, never raw config.


@dataclass(frozen=True)
class MaintenanceExclusion:
    start: str
    end: str
    scope: str


@dataclass(frozen=True)
class NetworkSettings:
    node_cidr: str
    pod_cidr: str
    service_cidr: str
    nat_min_ports_per_vm: int
    nat_tcp_established_idle_timeout_sec: int
    nat_tcp_transitory_idle_timeout_sec: int
    nat_udp_idle_timeout_sec: int


@dataclass(frozen=True)
class ClusterSettings:
    release_channel: str
    deletion_protection: bool
    maintenance_start: str
    maintenance_end: str
    maintenance_recurrence: str
    maintenance_exclusions: Mapping[str, MaintenanceExclusion]
    # name -> CIDR. Empty keeps the control plane's IP endpoint closed to the internet; CI and
    # people reach the cluster through the IAM-gated DNS endpoint instead.
    authorized_networks: Mapping[str, str]
    # Hardening (issue 15). Their defaults (the secure/operable choice) live in
    # domain/declarations.py alone, like every setting's; settings built in code name each field.
    # Kubernetes state metrics (HPA, Deployment, Pod) next to the always-on system metrics.
    workload_state_metrics: bool
    # GKE upgrade and security-bulletin notifications to a Pub/Sub topic of the stack.
    upgrade_notifications: bool
    # Kubernetes Secrets encrypted at the application layer with a Cloud KMS key of the stack.
    secrets_encryption: bool
    # Only images from the stack's registry are admitted (Binary Authorization, project policy).
    binary_authorization: bool
    # projects/<p>/attestors/<id>: every image of the stack's registry needs its attestation
    # (signed by the CI build job alone, bootstrap/attestation.py); empty = the registry as a whole.
    binary_authorization_attestor: str
    # Per-namespace and per-label cost breakdown in Cloud Billing (GKE cost allocation).
    cost_allocation: bool


@dataclass(frozen=True)
class RegistrySettings:
    keep_recent: int
    untagged_retention_days: int
    # Any version (tagged ones too: CI tags every image with its commit) older than this is
    # deleted, unless it is one of the keep_recent newest.
    retention_days: int


@dataclass(frozen=True)
class HpaSettings:
    min_replicas: int
    max_replicas: int
    target_cpu_utilization: int  # percent of the CPU request
    scale_up_window_seconds: int
    scale_down_window_seconds: int
    scale_down_pods_per_period: int
    scale_down_period_seconds: int
    # active calls per pod, percent of the pod's call cap (k8s/capacity.calls_target)
    target_calls_percent: int


@dataclass(frozen=True)
class CallSettings:
    """How the agent ends and rescues a call (the agent's AGENT_* call-life variables)."""

    warning_seconds: int
    silence_timeout_seconds: int
    gemini_connect_retries: int
    gemini_fallback_location: str  # empty: no fallback region
    gemini_fallback_model: str  # empty: the primary model
    log_conversation_text: bool
    log_call_ids: str  # off | hashed | plain (LOG_CALL_IDS_MODES)


@dataclass(frozen=True)
class WorkloadSettings:
    namespace: str
    image_name: str
    image_tag: str
    image_digest: str  # empty: deploy by tag (immutable in the registry)
    size: str
    cpu_bursting: bool
    drain_timeout_seconds: int
    load_threshold: float
    max_session_minutes: int
    spare_capacity_pods: int
    hpa: HpaSettings
    livekit_url: str
    vertex_location: str
    gemini_model: str
    log_level: str
    call: CallSettings
    # The worker keeps controller.kubernetes.io/pod-deletion-cost on its pod (idle pods go first
    # on scale-down); needs a token and a Role that lets it patch pods (k8s/deletion_cost.py).
    pod_deletion_cost: bool
    # "placeholders": low-priority pause pods; "capacityBuffer": GKE's CapacityBuffer (GKE
    # 1.35.2-gke.1842000 or later), k8s/spare_capacity.py.
    spare_capacity_mode: str
    # Crash recovery (docs/recovery.md): checkpoints in the stack's Cloud SQL database through a
    # Cloud SQL Auth Proxy sidecar (k8s/cloudsql_proxy.py), and the watcher that re-dispatches a
    # dead agent's calls (AGENT_RECOVERY_WATCHER; off on LiveKit Cloud, which restarts jobs).
    recovery_enabled: bool
    recovery_watcher: bool
    # AGENT_CHECKPOINT_RETENTION_SECONDS: how long a dead call's checkpoint row lives.
    recovery_retention_seconds: int
    # Empty: the stack's Artifact Registry; else a full repository (any registry), deployed by
    # digest only (k8s/workload.image_reference) and admitted by infra/binauthz.py.
    image_repository: str
    # AGENT_VOICE: a Gemini Live voice for every call; empty = the persona's own.
    agent_voice: str
    # LIVEKIT_CREDENTIAL_SOURCES; files from Secret Manager unless a stack opts out.
    livekit_credentials: str
    dispatch: DispatchSettings
    # Other stacks allowed to use the same livekitUrl (domain/stages.py refuses an unacknowledged one).
    livekit_shared_with: tuple[str, ...]
    # Derived, not a setting: USD per million Gemini tokens by "<direction>_<modality>" from
    # domain/data/prices.json and priceOverrides; the agent's session_ended cost estimate.
    model_prices: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DispatchSettings:
    """How LiveKit hands calls to the workers (issue 12)."""

    # AGENT_NAME: rooms get this agent only when a token or the CreateDispatch API asks for it
    # (explicit dispatch); empty = every new room in the LiveKit project gets a Gemini session.
    agent_name: str
    # The LiveKit server's agents.target_load (livekit-server v1.13.5 pkg/agent/config.go,
    # DefaultTargetLoad 0.7): it routes no job to a worker reporting this load or more.
    livekit_target_load: float
    # AGENT_PERSONA: module:attribute of the persona the calls get (agent/voice_agent/persona_api.py).
    persona: str


@dataclass(frozen=True)
class ToolServerSettings:
    """The Places MCP tool server (tools/places, k8s/tool_server.py): on or off, and how many."""

    places_enabled: bool
    places_replicas: int
    # sha256:... of the places-mcp image (CI sets it); empty = the tag agentImageTag.
    places_image_digest: str


@dataclass(frozen=True)
class DatabaseSettings:
    """The checkpoint database of crash recovery (Cloud SQL for PostgreSQL, infra/database.py;
    docs/recovery.md). Checked by domain/database_rules.py."""

    tier: str
    disk_size_gb: int
    version: str
    retained_backups: int
    transaction_log_retention_days: int
    psa_prefix_length: int
    # First address of the private services access range: fixed, so the agent's egress rule
    # names the database's CIDR at plan time.
    psa_range_address: str
    # Point-in-time recovery, REGIONAL availability and deletion protection; shared-core tiers
    # refused. A setting of its own rather than deletionProtection's echo: a stack that lifts
    # its cluster's protection for a rebuild must not lose its callers' checkpoints' HA with it.
    production: bool


@dataclass(frozen=True)
class StackConfig:
    stack: str
    project: str
    region: str
    network: NetworkSettings
    cluster: ClusterSettings
    registry: RegistrySettings
    workload: WorkloadSettings
    # Secrets stay Outputs so they are never printed or written in plain text.
    livekit_api_key: pulumi.Output[str] = field(repr=False, compare=False)
    livekit_api_secret: pulumi.Output[str] = field(repr=False, compare=False)
    tool_server: ToolServerSettings
    # latencyAlertP95Seconds: the slow-answers alert's p95 time to first audio (domain/runbook.py)
    latency_alert_p95_seconds: float
    # priceOverrides: price name -> USD, on top of domain/data/prices.json (domain/cost.py)
    price_overrides: Mapping[str, float]
    # Parsed and checked for every stack; declared only with workload.recovery_enabled.
    database: DatabaseSettings | None = None
