"""Every stack setting, declared once: name, kind, group, description, default, bounds, unit,
why, and where the typed value lands.

From this table come Pulumi.yaml's `config:` block and docs/settings.md
(`python -m domain.declarations` writes both; tests/infra/test_declarations.py checks that the
committed files equal what it writes), and the loader's single-value checks and messages
(domain/config.py reads every setting through its declaration; no reader per setting).
Rules that span several settings stay explicit code beside their domain (domain/capacity.py,
domain/database_rules.py, domain/maintenance.py, and the sections of domain/config.py).

Adding a setting: one `Setting(...)` here (and the field it lands in, in domain/settings.py),
then `python -m domain.declarations` to regenerate Pulumi.yaml and docs/settings.md.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from datetime import datetime
from pathlib import Path

from domain.database_rules import POSTGRES_VERSIONS, RANGES as DATABASE_RANGES
from domain.maintenance import RECURRENCE, RECURRENCE_HELP
from domain.runbook import LATENCY_ALERT_P95_RANGE
from domain.settings import (
    KNOWN_REGIONS, LIVEKIT_CREDENTIAL_SOURCES, LOG_CALL_IDS_MODES, LOG_LEVELS, PULUMI_TYPES, RELEASE_CHANNELS, REQUIRED,
    Setting,
)
from domain.capacity import MAX_DRAIN_TIMEOUT_S, MAX_SESSION_MINUTES, NODE_UPGRADE_GRACE_CAP_S, SHUTDOWN_BUDGET_S
from domain.capacity import SPARE_CAPACITY_MODES
from domain.sizes import SIZES

ROOT = Path(__file__).resolve().parents[1]
GCP_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Binary Authorization attestor resource name (attestors.create: an id of letters, digits, - and _).
ATTESTOR = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/attestors/[A-Za-z0-9_-]{1,100}$")
STAGE_LIST = re.compile(r"^\s*[a-z]([a-z0-9-]{0,61}[a-z0-9])?\s*(,\s*[a-z]([a-z0-9-]{0,61}[a-z0-9])?\s*)*$")
LIVEKIT_URL = re.compile(r"^wss?://[^\s/]+(/\S*)?$")
# The agent's own checks (agent/voice_agent/env_declarations.py) allow the same forms.
AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PERSONA = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
GEMINI_MODEL = re.compile(r"^[a-z0-9][a-z0-9.\-]{2,80}$")
# A full image repository: a registry host with a dot (else Docker reads it as a Docker Hub
# path) and an optional port, then lower-case path components (the distribution reference
# grammar), no tag and no digest.
IMAGE_REPOSITORY = re.compile(
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?"
    r"(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$")
VERTEX_LOCATIONS = tuple(sorted(KNOWN_REGIONS | {"global"}))
# The agent's voice list is the agent's own (one home, the plugin's list with its source).
VOICES_FILE = ROOT / "agent" / "voice_agent" / "data" / "gemini_voices.json"
DRAIN_WHY = (f"GKE node upgrades honour at most {NODE_UPGRADE_GRACE_CAP_S} s of grace, {SHUTDOWN_BUDGET_S} s of which "
             "the worker needs to shut down after its drain")
SESSION_WHY = f"a drain can carry a call to its end for at most drainTimeoutSeconds {MAX_DRAIN_TIMEOUT_S}"


def rfc3339(value: str) -> datetime | None:
    """An RFC 3339 time with its zone, or None. A time without a zone cannot be compared with
    the zoned ones GKE and the other settings use."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        return None
    return parsed if parsed.tzinfo is not None else None


def rfc3339_rule(value: str) -> str | None:
    if rfc3339(value) is not None:
        return None
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return "must be an RFC 3339 time such as 2026-01-03T03:00:00Z"
    return ("must be an RFC 3339 time such as 2026-01-03T03:00:00Z, with its zone: add Z for UTC or an offset "
            "such as +01:00 (GKE reads a time without a zone as UTC; this project does not guess)")


def voice_rule(value: str) -> str | None:
    if not value:  # the persona's voice; the list is read only when there is a voice to check
        return None
    voices = json.loads(VOICES_FILE.read_text())["voices"]
    if value in voices:
        return None
    near = difflib.get_close_matches(value.capitalize(), voices, cutoff=0.75)
    hint = f"; did you mean {near[0]}?" if near else ""
    return (f"must be empty (the persona's voice) or a Gemini Live voice{hint} ({len(voices)} allowed, listed in "
            "agent/voice_agent/data/gemini_voices.json)")


def fallback_location_rule(value: str) -> str | None:
    if not value or value in VERTEX_LOCATIONS:
        return None
    near = difflib.get_close_matches(value, VERTEX_LOCATIONS, cutoff=0.8)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"must be empty or a Vertex AI location (a region in domain/data/regions.json, or global){hint}"


def database_range(name: str) -> dict:
    """The bounds of a database setting, from domain/database_rules.py (which re-checks
    settings built in code)."""
    (low, high), unit, why = DATABASE_RANGES[name]
    return {"low": low, "high": high, "unit": unit, "why": why}


GROUPS = {
    "stack": "the project and region (the gcp provider's own keys)",
    "network": "network",
    "cluster": "cluster",
    "registry": "registry",
    "agent workload": "agent workload",
    "dispatch": 'dispatch (docs/agent.md "Explicit dispatch")',
    "call life": 'call life (agent/voice_agent/call_life.py; docs/agent.md "Call life")',
    "latency and cost": "latency and cost (docs/cost.md; domain/runbook.py, domain/cost.py)",
    "crash recovery": "crash recovery (docs/recovery.md; infra/database.py, k8s/cloudsql_proxy.py)",
}

SETTINGS: tuple[Setting, ...] = (
    # --- stack
    Setting("gcp:project", "text", "stack", "The GCP project every resource of the stack lives in.",
            to="project", pattern=GCP_PROJECT_ID, allowed="a GCP project id (6-30 lower-case letters, digits, dashes)"),
    Setting("gcp:region", "text", "stack", "The region of the cluster, network, registry and database.",
            to="region", choices=tuple(sorted(KNOWN_REGIONS)), what="GKE Autopilot region, domain/data/regions.json"),
    # --- network
    Setting('nodeCidr', 'cidr', 'network',
            'Primary range of the node subnet (Private Google Access on).',
            default='10.10.0.0/20', to='network.node_cidr', low=8, high=28),
    Setting('podCidr', 'cidr', 'network',
            'Secondary range for pods (/21 or larger).',
            default='10.16.0.0/14', to='network.pod_cidr', low=9, high=21,
            why='Autopilot wants room for many pods: at most /21 for the pod range (GKE IP planning)'),
    Setting('serviceCidr', 'cidr', 'network',
            'Secondary range for services.',
            default='10.20.0.0/20', to='network.service_cidr', low=16, high=27),
    Setting('natMinPortsPerVm', 'integer', 'network',
            'Cloud NAT ports reserved per node. Explicit allocation; each agent session holds a WebSocket to LiveKit, '
            'one to Vertex AI and UDP flows to the SFU.',
            default=4096, to='network.nat_min_ports_per_vm', low=64, high=65536, unit=' ports'),
    Setting('natTcpEstablishedIdleTimeoutSec', 'integer', 'network',
            'Idle timeout of established TCP flows through NAT; long enough for quiet but open WebSockets.',
            default=3600, to='network.nat_tcp_established_idle_timeout_sec', low=30, high=86400, unit=' s'),
    Setting('natTcpTransitoryIdleTimeoutSec', 'integer', 'network',
            'Idle timeout of half-open TCP flows through NAT.',
            default=30, to='network.nat_tcp_transitory_idle_timeout_sec', low=30, high=3600, unit=' s'),
    Setting('natUdpIdleTimeoutSec', 'integer', 'network',
            'Idle timeout of UDP (WebRTC media) flows through NAT.',
            default=60, to='network.nat_udp_idle_timeout_sec', low=30, high=3600, unit=' s'),
    # --- cluster
    Setting('releaseChannel', 'text', 'cluster',
            'GKE release channel (RAPID, REGULAR, STABLE, EXTENDED).',
            default='REGULAR', to='cluster.release_channel', choices=RELEASE_CHANNELS),
    Setting('deletionProtection', 'boolean', 'cluster',
            'Refuse to delete the cluster. Secure by default; dev turns it off.',
            default=True, to='cluster.deletion_protection'),
    Setting('maintenanceStartTime', 'text', 'cluster',
            'Start of the recurring maintenance window (RFC 3339, UTC); pick the quietest hours for calls.',
            default='2026-01-03T02:00:00Z', to='cluster.maintenance_start', check=rfc3339_rule),
    Setting('maintenanceEndTime', 'text', 'cluster',
            'End of the first maintenance window; at least 4 hours after the start.',
            default='2026-01-03T08:00:00Z', to='cluster.maintenance_end', check=rfc3339_rule),
    Setting('maintenanceRecurrence', 'text', 'cluster',
            'Recurrence of the maintenance window, FREQ=DAILY or FREQ=WEEKLY;BYDAY=<days>; with the NO_UPGRADES '
            'exclusions it must leave GKE at least 48 hours in every 32 days.',
            default='FREQ=WEEKLY;BYDAY=SA,SU', to='cluster.maintenance_recurrence', pattern=RECURRENCE, allowed=RECURRENCE_HELP),
    Setting('workloadStateMetrics', 'boolean', 'cluster',
            'Send HPA, Deployment and Pod state metrics to Cloud Monitoring next to the system metrics that are '
            'always on (costs metric ingestion).',
            default=True, to='cluster.workload_state_metrics'),
    Setting('upgradeNotifications', 'boolean', 'cluster',
            "Publish GKE upgrade, upgrade-available and security-bulletin events to the stack's Pub/Sub topic (node "
            'upgrades drain live calls; subscribe to be warned).',
            default=True, to='cluster.upgrade_notifications'),
    Setting('secretsEncryption', 'boolean', 'cluster',
            'Encrypt Kubernetes Secrets at the application layer with a Cloud KMS key of the stack. Off unless chosen, '
            'as the key ring can never be deleted and each key version is billed (prod turns it on).',
            default=False, to='cluster.secrets_encryption'),
    Setting('binaryAuthorization', 'boolean', 'cluster',
            "Admit only images from the stack's Artifact Registry repository (Binary Authorization project policy, "
            'enforced by the cluster). Off unless chosen (prod turns it on).',
            default=False, to='cluster.binary_authorization'),
    Setting('binaryAuthorizationAttestor', 'text', 'cluster',
            "Empty = Binary Authorization admits the stack's registry as a whole. Else the attestor "
            "(projects/<project>/attestors/<id>, the bootstrap's output buildAttestor) whose attestation every image "
            "of the stack's registry needs; only the CI build job can sign for it (docs/ci.md \"Only images CI "
            'built"). Needs binaryAuthorization.',
            default='', to='cluster.binary_authorization_attestor', pattern=ATTESTOR, empty_ok=True,
            allowed="empty or an attestor's resource name projects/<project>/attestors/<id> (the bootstrap's output "
                    "buildAttestor)"),
    Setting('costAllocation', 'boolean', 'cluster',
            "GKE cost allocation, so Cloud Billing breaks the cluster's cost down by namespace and label.",
            default=True, to='cluster.cost_allocation'),
    # Map-valued: Pulumi.yaml cannot declare them (project config types are string, integer,
    # boolean and array), so they are optional and set only in a stack file.
    Setting('maintenanceExclusions', 'map', 'cluster',
            'Periods without upgrades, by stable name: {name: {start: RFC 3339, end: RFC 3339, scope: NO_UPGRADES '
            '| NO_MINOR_UPGRADES | NO_MINOR_OR_NODE_UPGRADES}}; a NO_UPGRADES exclusion lasts at most 30 days and, '
            'with the window, must leave GKE 48 hours in every 32 days.',
            to='cluster.maintenance_exclusions'),
    Setting('controlPlaneAuthorizedNetworks', 'map', 'cluster',
            "{name: CIDR} allowed to reach the control plane's IP endpoint; empty keeps it closed (CI and people "
            "use the IAM-gated DNS endpoint). 0.0.0.0/0 is refused.",
            to='cluster.authorized_networks'),
    # --- registry
    Setting('registryKeepRecent', 'integer', 'registry',
            'Image versions kept by the registry cleanup policy (KEEP wins over DELETE).',
            default=20, to='registry.keep_recent', low=1, high=1000, unit=' versions'),
    Setting('registryUntaggedRetentionDays', 'integer', 'registry',
            'Untagged images older than this are deleted; 1 to 365 days.',
            default=14, to='registry.untagged_retention_days', low=1, high=365, unit=' days'),
    Setting('registryRetentionDays', 'integer', 'registry',
            'Any image version, tagged or not, older than this is deleted unless it is one of the registryKeepRecent '
            'newest (CI tags every image, so without this nothing is ever deleted); 7 to 3650 days.',
            default=90, to='registry.retention_days', low=7, high=3650, unit=' days',
            why='a week is the least that leaves a rollback target, ten years the most anybody means'),
    # --- agent workload
    Setting('agentNamespace', 'text', 'agent workload',
            'Kubernetes namespace of the agent.',
            default='voice-agents', to='workload.namespace', pattern=DNS_LABEL, allowed='a DNS label (lower-case letters, digits, dashes; at most 63)'),
    Setting('agentImageName', 'text', 'agent workload',
            "Image name inside the stack's Artifact Registry repository.",
            default='voice-agent', to='workload.image_name', pattern=DNS_LABEL, allowed='a lower-case image name such as voice-agent'),
    Setting('agentImageTag', 'text', 'agent workload',
            'Image tag to deploy when no digest is given (tags are immutable in the registry).',
            default='0.1.0', to='workload.image_tag', pattern=IMAGE_TAG, allowed='a Docker tag (letters, digits, _ . -; at most 128)'),
    Setting('agentImageDigest', 'text', 'agent workload',
            'Image digest (sha256:...) to deploy; CI sets it so dev and prod run the same build.',
            default='', to='workload.image_digest', pattern=IMAGE_DIGEST, empty_ok=True, allowed='empty or sha256: followed by 64 lower-case hex digits'),
    Setting('agentImageRepository', 'text', 'agent workload',
            "Empty = the stack's Artifact Registry (agentImageName inside it). Else the full image repository to "
            'deploy from, any registry, e.g. europe-docker.pkg.dev/p/r/agent or ghcr.io/org/agent (agentImageName '
            "unused); needs agentImageDigest, because tags outside the stack's registry are mutable. The Binary "
            'Authorization policy admits it (repository@*).',
            default='', to='workload.image_repository', pattern=IMAGE_REPOSITORY, empty_ok=True, allowed="empty (the stack's Artifact Registry) or a full image repository without tag or digest, such as europe-docker.pkg.dev/my-project/my-repo/agent or ghcr.io/my-org/agent"),
    Setting('agentVoice', 'text', 'agent workload',
            'Gemini Live voice of every call (AGENT_VOICE), one of the voices in '
            "agent/voice_agent/data/gemini_voices.json (livekit-plugins-google 1.8.9); empty = the persona's own "
            "voice (the sample's is Puck).",
            default='', to='workload.agent_voice', check=voice_rule),
    Setting('agentSize', 'text', 'agent workload',
            'T-shirt size of an agent pod (see domain/sizes.py).',
            default='M', to='workload.size', choices=tuple(SIZES)),
    Setting('cpuBursting', 'boolean', 'agent workload',
            'Let the CPU limit exceed the request (Autopilot bursting, GKE 1.30.2+ on cgroup v2).',
            default=False, to='workload.cpu_bursting'),
    Setting('drainTimeoutSeconds', 'integer', 'agent workload',
            'How long a terminating worker waits for its running sessions (livekit-agents drain_timeout); 30 to 3500, '
            'because GKE node upgrades honour at most 3600 s of grace and the worker needs 100 s after its drain.',
            default=1800, to='workload.drain_timeout_seconds', low=30, high=MAX_DRAIN_TIMEOUT_S, unit=' s', why=DRAIN_WHY),
    Setting('loadThreshold', 'number', 'agent workload',
            'Worker load (CPU used / CPU limit) at which it reports itself full (livekit-agents load_threshold), a '
            'number in (0, 1].',
            default='0.7', to='workload.load_threshold', low=0.0, high=1.0, low_open=True),
    Setting('maxSessionMinutes', 'integer', 'agent workload',
            'Longest call the platform must carry through a drain; 1 to 58 minutes (a drain lasts at most 3500 s) and '
            'at most drainTimeoutSeconds / 60.',
            default=30, to='workload.max_session_minutes', low=1, high=MAX_SESSION_MINUTES, unit=' min', why=SESSION_WHY),
    Setting('placesToolEnabled', 'boolean', 'agent workload',
            'Run the Places MCP tool server (tools/places) with its own identity; the agent reaches it with an '
            'audience-bound token and holds no Places credential. On in both committed stacks (docs/tools.md).',
            default=False, to='tool_server.places_enabled'),
    Setting('placesToolReplicas', 'integer', 'agent workload',
            'Places tool server pods, 1 to 10 (its PDB keeps one through a node drain).',
            default=2, to='tool_server.places_replicas', low=1, high=10, unit=' pods',
            why='two keep place search up through a node drain (its PDB keeps one); ten is far past need'),
    Setting('placesImageDigest', 'text', 'agent workload',
            'Digest (sha256:...) of the Places tool server image (places-mcp, built from tools/places); CI sets it '
            'beside agentImageDigest. Empty = the tag agentImageTag.',
            default='', to='tool_server.places_image_digest', pattern=IMAGE_DIGEST, empty_ok=True,
            allowed='empty or sha256: followed by 64 lower-case hex digits'),
    Setting('spareCapacityPods', 'integer', 'agent workload',
            'Low-priority placeholder pods, each the size of one agent pod, kept so a scale-up starts at once instead '
            'of waiting 80-120 s for a new Autopilot node.',
            default=0, to='workload.spare_capacity_pods', low=0, high=50, unit=' pods'),
    Setting('hpaMinReplicas', 'integer', 'agent workload',
            'HPA minimum replicas.',
            default=2, to='workload.hpa.min_replicas', low=1, high=100),
    Setting('hpaMaxReplicas', 'integer', 'agent workload',
            'HPA maximum replicas.',
            default=10, to='workload.hpa.max_replicas', low=1, high=1000),
    Setting('hpaTargetCpuUtilization', 'integer', 'agent workload',
            'HPA CPU target, percent of the CPU request; must keep pods below loadThreshold.',
            default=50, to='workload.hpa.target_cpu_utilization', low=10, high=95, unit=' %'),
    Setting('hpaTargetCallsPercent', 'integer', 'agent workload',
            "HPA target of active calls per pod, percent of the pod's call cap (AGENT_MAX_CALLS, from the size and "
            "the measured cost of a call), 10 to 100; with the HPA's 10 % tolerance it must fire below the cap, so at "
            'most 90.',
            default=60, to='workload.hpa.target_calls_percent', low=10, high=100, unit=' %'),
    Setting('podDeletionCost', 'boolean', 'agent workload',
            'The worker keeps controller.kubernetes.io/pod-deletion-cost on its own pod in bands (idle, busy, full) '
            'so scale-down removes idle pods first; gives the agent a one-hour API-server token and a Role that may '
            'only patch pods in its namespace, narrowed by an admission policy to that annotation on its own pod (the '
            'policy agent-mounts-no-tool-credential admits that token and nothing broader). On in both committed '
            'stacks.',
            default=False, to='workload.pod_deletion_cost'),
    Setting('spareCapacityMode', 'text', 'agent workload',
            'How spareCapacityPods is kept, one of placeholders (low-priority pause pods, any GKE version) or '
            "capacityBuffer (GKE's CapacityBuffer, GKE 1.35.2-gke.1842000 or later).",
            default='placeholders', to='workload.spare_capacity_mode', choices=SPARE_CAPACITY_MODES),
    Setting('hpaScaleUpWindowSeconds', 'integer', 'agent workload',
            'HPA scale-up stabilization window.',
            default=30, to='workload.hpa.scale_up_window_seconds', low=0, high=3600, unit=' s'),
    Setting('hpaScaleDownWindowSeconds', 'integer', 'agent workload',
            'HPA scale-down stabilization window.',
            default=900, to='workload.hpa.scale_down_window_seconds', low=0, high=3600, unit=' s'),
    Setting('hpaScaleDownPodsPerPeriod', 'integer', 'agent workload',
            'Pods the HPA may remove per scale-down period.',
            default=1, to='workload.hpa.scale_down_pods_per_period', low=1, high=100, unit=' pods'),
    Setting('hpaScaleDownPeriodSeconds', 'integer', 'agent workload',
            'Length of the scale-down period.',
            default=300, to='workload.hpa.scale_down_period_seconds', low=1, high=1800, unit=' s',
            why="autoscaling/v2 caps a scaling policy's periodSeconds at 1800"),
    Setting('livekitUrl', 'text', 'agent workload',
            'LiveKit server URL the workers register with (wss://...).',
            to='workload.livekit_url', pattern=LIVEKIT_URL, allowed='a ws:// or wss:// URL such as wss://my-project.livekit.cloud'),
    Setting('livekitSharedWithStages', 'text', 'agent workload',
            'Comma-separated other stacks (Pulumi.<stack>.yaml in this directory) allowed to use the same livekitUrl. '
            'Every key of a LiveKit project controls all of its rooms, so a stack whose livekitUrl another stage also '
            'uses is refused unless each names the other here. Empty = no sharing.',
            default='', to='workload.livekit_shared_with', pattern=STAGE_LIST, empty_ok=True,
            allowed='empty or comma-separated stack names (DNS labels)'),
    Setting('livekitCredentials', 'text', 'agent workload',
            "Where the agent's LiveKit API key and secret live, one of secretManager (the stack keeps them in two "
            "Secret Manager secrets that only the agent's Workload Identity principal may read; GKE's Secret Manager "
            'add-on mounts them into the pod as files, so they are in no environment variable, no Kubernetes Secret '
            'and no etcd) or kubernetesSecret (a Kubernetes Secret read into environment variables; for clusters '
            'without the add-on). Protected stacks must use secretManager (policy livekit-credentials-as-files).',
            default='secretManager', to='workload.livekit_credentials', choices=LIVEKIT_CREDENTIAL_SOURCES),
    Setting('livekitApiKey', 'secret', 'agent workload',
            'LiveKit API key (Pulumi secret).',
            ),
    Setting('livekitApiSecret', 'secret', 'agent workload',
            'LiveKit API secret (Pulumi secret).',
            ),
    Setting('vertexLocation', 'text', 'agent workload',
            'Vertex AI location of the Gemini Live sessions, where callers\' audio is processed. Empty = the stack\'s own '
            'region when Live is served there, else the served location of its geography (an EU stack stays in the '
            'EU); checked against domain/data/gemini_live_locations.json (global serves no Live model).',
            default='', to='workload.vertex_location', choices=VERTEX_LOCATIONS, empty_ok=True,
            what='Vertex AI location, domain/data/regions.json plus global'),
    Setting('geminiModel', 'text', 'agent workload',
            'Gemini Live model id on Vertex AI.',
            default='gemini-live-2.5-flash-native-audio', to='workload.gemini_model', pattern=GEMINI_MODEL, allowed='a Gemini model id such as gemini-live-2.5-flash-native-audio'),
    Setting('agentLogLevel', 'text', 'agent workload',
            'Agent log level (DEBUG, INFO, WARNING, ERROR).',
            default='INFO', to='workload.log_level', choices=LOG_LEVELS),
    # --- dispatch
    Setting('agentName', 'text', 'dispatch',
            "LiveKit agent name (AGENT_NAME); rooms get the agent only when a token's RoomAgentDispatch or the "
            'CreateDispatch API names it. Empty dispatches it to every new room of the LiveKit project. Letters, '
            'digits, . _ -; at most 128.',
            default='voice-agent', to='workload.dispatch.agent_name', pattern=AGENT_NAME, empty_ok=True, allowed="empty or letters, digits, '.', '_', '-' (at most 128, starting with a letter or digit)"),
    Setting('livekitTargetLoad', 'number', 'dispatch',
            'agents.target_load of a self-hosted LiveKit server (livekit-server default 0.7); the server routes no '
            'job to a worker at or above it, so loadThreshold must not exceed it. A number in (0, 1].',
            default='0.7', to='workload.dispatch.livekit_target_load', low=0.0, high=1.0, low_open=True),
    Setting('agentPersona', 'text', 'dispatch',
            'The persona the calls get (AGENT_PERSONA), module:attribute of a Persona in the agent image (docs/your-'
            'agent.md).',
            default='voice_agent.persona:SAMPLE', to='workload.dispatch.persona', pattern=PERSONA, allowed='module:attribute of a Persona, such as voice_agent.persona:SAMPLE'),
    # --- call life
    Setting('callWarningSeconds', 'integer', 'call life',
            'The caller hears a warning this long before maxSessionMinutes ends the call; 1 to 600, below '
            'maxSessionMinutes x 60.',
            default=60, to='workload.call.warning_seconds', low=1, high=600, unit=' s'),
    Setting('silenceTimeoutSeconds', 'integer', 'call life',
            'A call where nobody spoke for this long gets a goodbye and its room is deleted (abandoned calls); 5 to '
            '3600.',
            default=120, to='workload.call.silence_timeout_seconds', low=5, high=3600, unit=' s'),
    Setting('geminiConnectRetries', 'integer', 'call life',
            'Fresh Gemini sessions tried per model after a fatal model error before the fallback or the apology; 0 to '
            '5.',
            default=2, to='workload.call.gemini_connect_retries', low=0, high=5, unit=' retries'),
    Setting('geminiFallbackLocation', 'text', 'call life',
            'Vertex AI location tried once the primary is exhausted; empty for none, else a region other than '
            'vertexLocation.',
            default='', to='workload.call.gemini_fallback_location', check=fallback_location_rule),
    Setting('geminiFallbackModel', 'text', 'call life',
            'Gemini Live model tried once the primary is exhausted; empty for the primary model.',
            default='', to='workload.call.gemini_fallback_model', pattern=GEMINI_MODEL, empty_ok=True, allowed='empty or a Gemini model id such as gemini-live-2.5-flash-native-audio'),
    Setting('logConversationText', 'boolean', 'call life',
            "Put the caller's and the agent's words in DEBUG log lines (never INFO and above). Needs agentLogLevel "
            "DEBUG; the policy pack refuses it unless the stack's policy config allows it (dev only).",
            default=False, to='workload.call.log_conversation_text'),
    Setting('logCallIds', 'text', 'call life',
            "Room names, participant identities and phone numbers in the agent's log lines (a SIP room name and a "
            "SIP caller's identity carry the caller's number): off removes them, hashed writes a keyed hash that "
            'correlates one pod\'s lines and cannot be reversed from the logs, plain writes them as they are. Job, '
            'session and room SIDs are always there.',
            default='off', to='workload.call.log_call_ids', choices=LOG_CALL_IDS_MODES),
    # --- latency and cost
    Setting('latencyAlertP95Seconds', 'number', 'latency and cost',
            "The slow-answers alert fires when a release's p95 time to first audio stays above this many seconds for "
            "5 minutes, a number in [0.5, 8] (the latency histogram's bucket range).",
            default='2.0', to='latency_alert_p95_seconds', low=LATENCY_ALERT_P95_RANGE[0], high=LATENCY_ALERT_P95_RANGE[1]),
    Setting('priceOverrides', 'text', 'latency and cost',
            "JSON map replacing list prices of domain/data/prices.json in the plan's cost lines, e.g. "
            '{"autopilot.vcpu_hour":0.05,"gemini.output_audio":10}; keys in docs/cost.md.',
            default='{}', to='price_overrides'),
    # --- crash recovery
    Setting('recoveryEnabled', 'boolean', 'crash recovery',
            "Checkpoint every call to the stack's Cloud SQL for PostgreSQL database (through a Cloud SQL Auth Proxy "
            'sidecar) so a replacement agent resumes a call whose pod died. Off = no database, no sidecar, calls die '
            "with their pod. Off unless chosen, as the database is the stack's largest fixed cost (both committed "
            'stacks turn it on).',
            default=False, to='workload.recovery_enabled'),
    Setting('recoveryRetentionSeconds', 'integer', 'crash recovery',
            'How long the checkpoint of a call whose agent died (and that nobody resumed) is kept after its last '
            'write, 60 to 2592000 seconds (AGENT_CHECKPOINT_RETENTION_SECONDS); every worker sweeps, watcher on or '
            'off. Backups and point-in-time recovery keep their own copies (databaseRetainedBackups, '
            'databaseTransactionLogRetentionDays; docs/recovery.md).',
            default=900, to='workload.recovery_retention_seconds', low=60, high=2592000, unit=' seconds',
            why="the agent's own range, AGENT_CHECKPOINT_RETENTION_SECONDS (agent/voice_agent/recovery/config.py)"),
    Setting('recoveryWatcher', 'boolean', 'crash recovery',
            'Every worker watches for calls whose agent died and re-dispatches them (AGENT_RECOVERY_WATCHER). Self-'
            "hosted LiveKit needs it; set false with LiveKit Cloud, which restarts a dead worker's jobs itself (the "
            'restarted job still resumes from the checkpoint).',
            default=True, to='workload.recovery_watcher'),
    Setting('databaseTier', 'text', 'crash recovery',
            'Cloud SQL Enterprise edition tier of the checkpoint database, db-custom-<vCPU>-<MiB> (1 or an even vCPU '
            'count, 0.9 to 6.5 GiB per vCPU), or a shared-core db-f1-micro / db-g1-small when databaseProduction is '
            'false.',
            default='db-custom-1-3840', to='database.tier'),
    Setting('databaseProduction', 'boolean', 'crash recovery',
            'Point-in-time recovery, REGIONAL high availability and deletion protection for the checkpoint database; '
            "shared-core tiers are refused. Off unless chosen, as HA doubles the database's cost (prod turns it on; "
            'policy rule database-backups-in-prod requires it on protected stacks).',
            default=False, to='database.production'),
    Setting('databaseDiskSizeGb', 'integer', 'crash recovery',
            'SSD size of the checkpoint database, 10 to 65536 GB (grows by itself when full).',
            default=20, to='database.disk_size_gb', **database_range('disk_size_gb')),
    Setting('databaseVersion', 'text', 'crash recovery',
            'PostgreSQL major version, POSTGRES_15, POSTGRES_16 or POSTGRES_17.',
            default='POSTGRES_16', to='database.version', choices=POSTGRES_VERSIONS),
    Setting('databaseRetainedBackups', 'integer', 'crash recovery',
            'Daily automated backups kept, 1 to 365.',
            default=14, to='database.retained_backups', **database_range('retained_backups')),
    Setting('databaseTransactionLogRetentionDays', 'integer', 'crash recovery',
            'Days of point-in-time recovery logs (databaseProduction), 1 to 7 (Enterprise edition).',
            default=7, to='database.transaction_log_retention_days', **database_range('transaction_log_retention_days')),
    Setting('databasePsaPrefixLength', 'integer', 'crash recovery',
            'Prefix length of the private services access range peered into the VPC for Cloud SQL, 16 to 24.',
            default=20, to='database.psa_prefix_length', **database_range('psa_prefix_length')),
    Setting('databasePsaRangeAddress', 'text', 'crash recovery',
            'First address of that range, aligned to its prefix, private, outside nodeCidr, podCidr and serviceCidr; '
            "the agent's egress rule names it (TCP 3307 to the database only).",
            default='10.60.0.0', to='database.psa_range_address'),
)


BY_KEY = {s.key: s for s in SETTINGS}


# ---------------------------------------------------------------------------------------------
# What the declarations produce: Pulumi.yaml's config block and docs/settings.md.

PROJECT_FILE = ROOT / "Pulumi.yaml"
SETTINGS_DOC = ROOT / "docs" / "settings.md"
GENERATED = "# Generated from domain/declarations.py by `python -m domain.declarations`: edit there, not here."


def _scalar(value) -> str:
    """A YAML scalar as short as it can be and still read back as the same value."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _rule(width: int, title: str) -> str:
    return f"  # --- {title} ".ljust(width, "-")


def config_block() -> str:
    """Everything from the generated marker to the end of Pulumi.yaml."""
    lines = [GENERATED,
             "# domain/config.py validates every setting at once before any resource is declared; the offline",
             "# plan (python -m tooling.plan) merges these defaults with Pulumi.<stack>.yaml the way the CLI does.",
             "# Not declared here: the gcp provider's keys and the map-valued settings, which project config",
             "# types (string, integer, boolean, array) cannot hold; docs/settings.md lists them all:"]
    lines += [f"#   {s.key}" for s in SETTINGS if not s.ours and not s.secret]
    lines.append("config:")
    group = None
    for s in (s for s in SETTINGS if s.ours):
        if s.group != group:
            group = s.group
            lines.append(_rule(90, GROUPS[group]))
        if s.kind == "number":
            lines.append(f"  # A number, declared as a string: Pulumi's project schema has no number type.")
        lines += [f"  {s.name}:", f"    type: {PULUMI_TYPES[s.kind]}"]
        if s.default is not REQUIRED:
            lines.append(f"    default: {_scalar(s.default)}")
        if s.secret:
            lines.append("    secret: true")
        lines.append(f"    description: {_scalar(s.description)}")
    return "\n".join(lines) + "\n"


def project_file() -> str:
    """Pulumi.yaml with its config block regenerated (the part above the marker is kept)."""
    head = PROJECT_FILE.read_text().split(GENERATED)[0]
    return head + config_block()


def allowed(s: Setting) -> str:
    """What a setting may hold, in words."""
    if s.kind == "integer":
        return f"{s.low:g} to {s.high:g}{s.unit}"
    if s.kind == "number":
        return f"{'(' if s.low_open else '['}{s.low:g}, {s.high:g}]{s.unit}"
    if s.kind == "boolean":
        return "true or false"
    if s.kind == "cidr":
        return f"private IPv4 CIDR, /{s.low} to /{s.high}"
    if s.kind == "map":
        return "a map (stack file only)"
    if s.kind == "secret":
        return "a Pulumi secret (`pulumi config set --secret`)"
    empty = "empty or " if s.empty_ok else ""
    if s.choices and len(s.choices) <= 8:
        return empty + ", ".join(s.choices)
    if s.choices:
        kind, _, home = s.what.partition(", ")
        return f"{empty}a {kind} ({len(s.choices)}, listed in {home})"
    if s.pattern is not None:
        return s.allowed
    if s.check is not None:
        return (s.check.__doc__ or "").strip().split("\n")[0] or "see the description"
    return "any text"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_doc() -> str:
    lines = ["# Stack settings", "",
             "<!-- Generated from domain/declarations.py by `python -m domain.declarations`; edit there, not here. -->",
             "",
             "Every setting a stack file (`Pulumi.<stack>.yaml`) may hold, with its default and what it accepts.",
             "Keys are `gke-voice-agents:<name>` unless they name another namespace. A value outside what a",
             "setting accepts stops the plan and `pulumi up` before any resource is declared, with one line",
             "naming the key, the value and the rule; rules that span several settings (drain versus the",
             "longest call, HPA target versus the load threshold, the maintenance window versus GKE's 48 hours",
             "in 32 days, the database's tier and ranges) are checked once every single value is valid",
             "(docs/workload.md, docs/recovery.md).", "",
             f"{len(SETTINGS)} settings; **required** ones have no default and every stack must set them.", ""]
    group = None
    for s in SETTINGS:
        if s.group != group:
            group = s.group
            lines += ["", f"## {GROUPS[group]}", "",
                      "| setting | type | default | accepts | why | description |", "| --- | --- | --- | --- | --- | --- |"]
        default = "**required**" if s.default is REQUIRED and s.kind != "map" else (
            "(none)" if s.default is REQUIRED else f"`{_scalar(s.default)}`")
        kind = "secret" if s.secret else s.kind
        lines.append(f"| `{s.name}` | {kind} | {default} | {_cell(allowed(s))} | {_cell(s.why)} | {_cell(s.description)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Writes Pulumi.yaml's config block and docs/settings.md; with --check, says which differ."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for path, text in ((PROJECT_FILE, project_file()), (SETTINGS_DOC, settings_doc())):
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not check:
            path.write_text(text)
    if check and stale:
        print(f"out of date (run python -m domain.declarations): {', '.join(stale)}", file=sys.stderr)
        return 1
    print(("wrote " if stale else "up to date: ") + ", ".join(stale or ["Pulumi.yaml", "docs/settings.md"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
