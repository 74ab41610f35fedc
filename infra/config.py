"""Typed, validated stack configuration: the one place where raw Pulumi config becomes settings.

Defaults live in Pulumi.yaml (one home for each number); the Pulumi CLI merges them into the
config the program sees, and `infra.stackfiles` does the same offline. This module therefore
treats every declared key as present and reports a missing one as a problem, instead of
hiding a second default here.

Every problem of a stack is collected and raised together as one `ConfigError`, before any
resource is declared. Each message names the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
import ipaddress
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pulumi

from infra.settings import (
    EXCLUSION_SCOPES, KNOWN_REGIONS, LIVEKIT_CREDENTIAL_SOURCES, LOG_LEVELS, MAINTENANCE_AVAILABILITY_PERIOD, MAX_NO_UPGRADES_EXCLUSION,
    MIN_MAINTENANCE_AVAILABILITY, MIN_MAINTENANCE_WINDOW, PROJECT,
    RELEASE_CHANNELS, ClusterSettings, ConfigError, HpaSettings, MaintenanceExclusion, NetworkSettings, Problem,
    RegistrySettings, StackConfig, WorkloadSettings, setting_key, CallSettings, DispatchSettings,
)
from infra.settings import ToolServerSettings
from infra.settings import DatabaseSettings
from infra.database_rules import KEYS as DATABASE_KEYS, POSTGRES_VERSIONS, RANGES as DATABASE_RANGES
from infra.database_rules import database_problems, overlap_problems
from infra.maintenance import RECURRENCE, RECURRENCE_HELP, hours, least_availability
from infra.cost import parse_overrides, prices_for  # the price keys live with the cost model
from infra.stackfiles import gcp_provider_keys, project_declarations
from k8s.capacity import (
    MAX_DRAIN_TIMEOUT_S, MAX_SESSION_MINUTES, NODE_UPGRADE_GRACE_CAP_S, SHUTDOWN_BUDGET_S, workload_problems,
)
from k8s.capacity import SPARE_CAPACITY_MODES
from k8s.sizes import SIZES
from infra.runbook import LATENCY_ALERT_P95_RANGE

_GCP_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_STABLE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# The agent's own checks (agent/voice_agent/settings.py) allow the same forms.
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PERSONA = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_GEMINI_MODEL = re.compile(r"^[a-z0-9][a-z0-9.\-]{2,80}$")
# A full image repository: a registry host with a dot (else Docker reads it as a Docker Hub
# path) and an optional port, then lower-case path components (the distribution reference
# grammar), no tag and no digest.
_IMAGE_REPOSITORY = re.compile(
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?"
    r"(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$")
# The agent's voice list is the agent's own (one home, the plugin's list with its source).
VOICES_FILE = Path(__file__).resolve().parents[1] / "agent" / "voice_agent" / "data" / "gemini_voices.json"

# ---------------------------------------------------------------------------------------------
# Reading raw values. Raw values are strings, as the Pulumi engine hands them to the program
# (objects arrive as JSON text).


class _Reader:
    """Reads typed values out of raw config, collecting every problem instead of stopping."""

    def __init__(self, raw: Mapping[str, str]):
        self._raw = raw
        self.problems: list[Problem] = []

    def fail(self, key: str, value: Any, rule: str) -> None:
        self.problems.append(Problem(key, value, rule))

    def _get(self, key: str) -> str | None:
        value = self._raw.get(key)
        if value is None:
            self.fail(key, None, "is not set; set it in Pulumi.<stack>.yaml or declare a default in Pulumi.yaml")
        return value

    def text(self, key: str, *, pattern: re.Pattern[str] | None = None, allowed: str = "", choices: Sequence[str] = (),
             what: str = "") -> str:
        value = self._get(key)
        if value is None:
            return ""
        if choices and value not in choices:
            self.fail(key, value, one_of(value, choices, what))
        elif pattern is not None and not pattern.match(value):
            self.fail(key, value, f"must be {allowed}")
        return value

    def integer(self, key: str, lo: int, hi: int, unit: str = "", why: str = "") -> int:
        """`why` says where a bound comes from when it is not obvious (a GKE clock, say)."""
        value = self._get(key)
        if value is None:
            return lo
        because = f" ({why})" if why else ""
        try:
            number = int(str(value), 10)
        except ValueError:
            self.fail(key, value, f"must be a whole number from {lo} to {hi}{unit}{because}")
            return lo
        if not lo <= number <= hi:
            self.fail(key, number, f"must be from {lo} to {hi}{unit}{because}")
        return number

    def number(self, key: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
        value = self._get(key)
        if value is None:
            return hi
        try:
            number = float(value)
        except ValueError:
            self.fail(key, value, f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]")
            return hi
        too_low = number <= lo if lo_open else number < lo
        # NaN compares false with everything, so it would slip through both bounds.
        if too_low or number > hi or number != number:
            self.fail(key, number, f"must be in {'(' if lo_open else '['}{lo}, {hi}]")
        return number

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if value is None:
            return False
        lowered = str(value).strip().lower()
        if lowered not in ("true", "false"):
            self.fail(key, value, "must be true or false")
            return False
        return lowered == "true"

    def cidr(self, key: str, min_prefix: int, max_prefix: int) -> ipaddress.IPv4Network | None:
        value = self._get(key)
        if value is None:
            return None
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as err:
            self.fail(key, value, f"must be an IPv4 CIDR block such as 10.10.0.0/20 ({err})")
            return None
        if not min_prefix <= network.prefixlen <= max_prefix:
            self.fail(key, value, f"prefix length must be from /{min_prefix} to /{max_prefix}")
        if not network.is_private:
            self.fail(key, value, "must be a private (RFC 1918) range")
        return network

    def mapping(self, key: str) -> dict[str, Any]:
        """Map-valued settings are optional: Pulumi.yaml cannot declare a default for them."""
        value = self._raw.get(key)
        if value is None:
            return {}
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            self.fail(key, value, "must be a map of name: value")
            return {}
        if not isinstance(parsed, dict):
            self.fail(key, value, "must be a map of name: value")
            return {}
        return parsed


_key = setting_key
# Long lists are not printed whole: a suggestion and where to find them all says more.
_LONGEST_LISTED = 8


def one_of(value: str, choices: Sequence[str], what: str = "") -> str:
    """The rule for a value outside a fixed set, with the nearest allowed value when one is close.

    `what` names a long set and where it is listed ("GKE Autopilot region, infra/data/regions.json")."""
    near = difflib.get_close_matches(value, choices, n=1, cutoff=0.8)
    hint = f"; did you mean {near[0]}?" if near else ""
    if len(choices) <= _LONGEST_LISTED:
        return f"must be one of {', '.join(choices)}{hint}"
    kind, _, listed_in = what.partition(", ")
    return f"is not a known {kind or 'value'}{hint} ({len(choices)} allowed, listed in {listed_in or 'the code'})"


# ---------------------------------------------------------------------------------------------
# Sections. Each reads its keys and checks the rules that involve only its own settings.


def _network(r: _Reader) -> NetworkSettings:
    ranges = {
        _key("nodeCidr"): r.cidr(_key("nodeCidr"), 8, 28),
        # Autopilot wants room for many pods: at most /21 for the pod range (GKE IP planning).
        _key("podCidr"): r.cidr(_key("podCidr"), 9, 21),
        _key("serviceCidr"): r.cidr(_key("serviceCidr"), 16, 27),
    }
    _check_no_overlap(r, ranges)
    return NetworkSettings(
        node_cidr=str(ranges[_key("nodeCidr")] or ""),
        pod_cidr=str(ranges[_key("podCidr")] or ""),
        service_cidr=str(ranges[_key("serviceCidr")] or ""),
        nat_min_ports_per_vm=r.integer(_key("natMinPortsPerVm"), 64, 65536, " ports"),
        nat_tcp_established_idle_timeout_sec=r.integer(_key("natTcpEstablishedIdleTimeoutSec"), 30, 86400, " s"),
        nat_tcp_transitory_idle_timeout_sec=r.integer(_key("natTcpTransitoryIdleTimeoutSec"), 30, 3600, " s"),
        nat_udp_idle_timeout_sec=r.integer(_key("natUdpIdleTimeoutSec"), 30, 3600, " s"),
    )


def _check_no_overlap(r: _Reader, ranges: Mapping[str, ipaddress.IPv4Network | None]) -> None:
    named = [(k, n) for k, n in ranges.items() if n is not None]
    for i, (key_a, net_a) in enumerate(named):
        for key_b, net_b in named[i + 1:]:
            if net_a.overlaps(net_b):
                r.fail(key_b, str(net_b), f"overlaps {key_a} = {net_a}; the node, pod and service ranges must be disjoint")


def _cluster(r: _Reader) -> ClusterSettings:
    start = r.text(_key("maintenanceStartTime"))
    end = r.text(_key("maintenanceEndTime"))
    _check_window(r, _key("maintenanceStartTime"), start, _key("maintenanceEndTime"), end, MIN_MAINTENANCE_WINDOW)
    recurrence = r.text(_key("maintenanceRecurrence"), pattern=RECURRENCE, allowed=RECURRENCE_HELP)
    exclusions = _exclusions(r)
    if not any(p.key.startswith(_key("maintenance")) for p in r.problems):
        _check_availability(r, start, end, recurrence, exclusions)
    return ClusterSettings(
        release_channel=r.text(_key("releaseChannel"), choices=RELEASE_CHANNELS),
        deletion_protection=r.boolean(_key("deletionProtection")),
        maintenance_start=start,
        maintenance_end=end,
        maintenance_recurrence=recurrence,
        maintenance_exclusions=exclusions,
        authorized_networks=_authorized_networks(r),
        workload_state_metrics=r.boolean(_key("workloadStateMetrics")),
        upgrade_notifications=r.boolean(_key("upgradeNotifications")),
        secrets_encryption=r.boolean(_key("secretsEncryption")),
        binary_authorization=r.boolean(_key("binaryAuthorization")),
        cost_allocation=r.boolean(_key("costAllocation")),
    )


def _check_availability(r: _Reader, start: str, end: str, recurrence: str,
                        exclusions: Mapping[str, MaintenanceExclusion]) -> None:
    """GKE's 48 hours in every 32 days (infra/maintenance.py), checked once every single
    maintenance value is valid. The window alone falling short is the window's fault; otherwise
    the NO_UPGRADES exclusion that overlaps the worst period is named."""
    begin, finish = _parse_time(r, _key("maintenanceStartTime"), start), _parse_time(r, _key("maintenanceEndTime"), end)
    blocked = {name: (_parse_time(r, name, ex.start), _parse_time(r, name, ex.end))
               for name, ex in exclusions.items() if ex.scope == "NO_UPGRADES"}
    alone = least_availability(begin, finish, recurrence)
    need = f"GKE requires at least {hours(MIN_MAINTENANCE_AVAILABILITY)} of maintenance availability in every 32 days"
    if not alone.enough:
        r.fail(_key("maintenanceRecurrence"), recurrence,
               f"the window {start} to {end} repeated {recurrence} leaves only {hours(alone.least)} in the 32 days from "
               f"{alone.period_start:%Y-%m-%d}; {need}: lengthen the window or add days")
        return
    worst = least_availability(begin, finish, recurrence, sorted(blocked.values()))
    if worst.enough:
        return
    period_end = worst.period_start + MAINTENANCE_AVAILABILITY_PERIOD
    culprits = [n for n, (s, e) in sorted(blocked.items()) if s < period_end and e > worst.period_start]
    for name in culprits:
        r.fail(f"{_key('maintenanceExclusions')}.{name}", exclusions[name].end,
               f"with this NO_UPGRADES exclusion the 32 days from {worst.period_start:%Y-%m-%d} keep only "
               f"{hours(worst.least)} of maintenance; {need}: shorten it, or use scope NO_MINOR_OR_NODE_UPGRADES "
               "(no node upgrades, so no drained calls; control-plane patches still allowed)")


def _parse_time(r: _Reader, key: str, value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        r.fail(key, value, "must be an RFC 3339 time such as 2026-01-03T03:00:00Z")
        return None


def _check_window(r: _Reader, start_key: str, start: str, end_key: str, end: str, minimum: timedelta | None) -> None:
    begin, finish = _parse_time(r, start_key, start), _parse_time(r, end_key, end)
    if begin is None or finish is None:
        return
    if finish <= begin:
        r.fail(end_key, end, f"must be after {start_key} = {start}")
    elif minimum is not None and finish - begin < minimum:
        r.fail(end_key, end, f"the window from {start} must last at least {minimum} (GKE minimum)")


def _exclusions(r: _Reader) -> dict[str, MaintenanceExclusion]:
    key = _key("maintenanceExclusions")
    result = {}
    for name, item in sorted(r.mapping(key).items()):
        item_key = f"{key}.{name}"
        if not _STABLE_NAME.match(name):
            r.fail(item_key, name, "exclusion names must be lower-case letters, digits and dashes, starting with a letter")
        if not isinstance(item, dict) or set(item) - {"start", "end", "scope"} or not {"start", "end"} <= set(item):
            r.fail(item_key, item, "must be a map with start, end (RFC 3339) and optional scope")
            continue
        scope = item.get("scope", "NO_UPGRADES")
        if scope not in EXCLUSION_SCOPES:
            r.fail(f"{item_key}.scope", scope, f"must be one of {', '.join(EXCLUSION_SCOPES)}")
        _check_window(r, f"{item_key}.start", item["start"], f"{item_key}.end", item["end"], None)
        _check_no_upgrades_length(r, item_key, item, scope)
        result[name] = MaintenanceExclusion(start=item["start"], end=item["end"], scope=scope)
    return result


def _check_no_upgrades_length(r: _Reader, item_key: str, item: Mapping[str, str], scope: str) -> None:
    if scope != "NO_UPGRADES":
        return
    begin = _parse_time(r, f"{item_key}.start", item["start"])
    finish = _parse_time(r, f"{item_key}.end", item["end"])
    if begin and finish and finish - begin > MAX_NO_UPGRADES_EXCLUSION:
        r.fail(f"{item_key}.end", item["end"], "a NO_UPGRADES exclusion may last at most 30 days")


def _authorized_networks(r: _Reader) -> dict[str, str]:
    key = _key("controlPlaneAuthorizedNetworks")
    result = {}
    for name, cidr in sorted(r.mapping(key).items()):
        item_key = f"{key}.{name}"
        try:
            network = ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            r.fail(item_key, cidr, "must be a CIDR block such as 203.0.113.0/24")
            continue
        if network.prefixlen == 0:
            r.fail(item_key, cidr, "opens the control plane to the whole internet; use the DNS endpoint or a narrow range")
            continue
        result[name] = str(network)
    return result


def _registry(r: _Reader) -> RegistrySettings:
    return RegistrySettings(
        keep_recent=r.integer(_key("registryKeepRecent"), 1, 1000, " versions"),
        untagged_retention_days=r.integer(_key("registryUntaggedRetentionDays"), 1, 365, " days"),
        # Artifact Registry's olderThan takes any duration; a week is the least that leaves a
        # rollback target, ten years the most anybody means.
        retention_days=r.integer(_key("registryRetentionDays"), 7, 3650, " days"),
    )


def _hpa(r: _Reader) -> HpaSettings:
    hpa = HpaSettings(
        min_replicas=r.integer(_key("hpaMinReplicas"), 1, 100),
        max_replicas=r.integer(_key("hpaMaxReplicas"), 1, 1000),
        target_cpu_utilization=r.integer(_key("hpaTargetCpuUtilization"), 10, 95, " %"),
        scale_up_window_seconds=r.integer(_key("hpaScaleUpWindowSeconds"), 0, 3600, " s"),
        scale_down_window_seconds=r.integer(_key("hpaScaleDownWindowSeconds"), 0, 3600, " s"),
        scale_down_pods_per_period=r.integer(_key("hpaScaleDownPodsPerPeriod"), 1, 100, " pods"),
        # autoscaling/v2 caps a scaling policy's periodSeconds at 1800.
        scale_down_period_seconds=r.integer(_key("hpaScaleDownPeriodSeconds"), 1, 1800, " s"),
        target_calls_percent=r.integer(_key("hpaTargetCallsPercent"), 10, 100, " %"),
    )
    if hpa.min_replicas > hpa.max_replicas:
        r.fail(_key("hpaMinReplicas"), hpa.min_replicas, f"must not exceed {_key('hpaMaxReplicas')} = {hpa.max_replicas}")
    return hpa


def _workload(r: _Reader, size_names: Sequence[str]) -> WorkloadSettings:
    workload = WorkloadSettings(
        namespace=r.text(_key("agentNamespace"), pattern=_DNS_LABEL, allowed="a DNS label (lower-case letters, digits, dashes; at most 63)"),
        image_name=r.text(_key("agentImageName"), pattern=_DNS_LABEL, allowed="a lower-case image name such as voice-agent"),
        image_tag=r.text(_key("agentImageTag"), pattern=_IMAGE_TAG, allowed="a Docker tag (letters, digits, _ . -; at most 128)"),
        image_digest=_image_digest(r),
        size=r.text(_key("agentSize"), choices=size_names),
        cpu_bursting=r.boolean(_key("cpuBursting")),
        drain_timeout_seconds=r.integer(
            _key("drainTimeoutSeconds"), 30, MAX_DRAIN_TIMEOUT_S, " s",
            why=f"GKE node upgrades honour at most {NODE_UPGRADE_GRACE_CAP_S} s of grace, {SHUTDOWN_BUDGET_S} s of which "
                "the worker needs to shut down after its drain"),
        load_threshold=r.number(_key("loadThreshold"), 0.0, 1.0, lo_open=True),
        max_session_minutes=r.integer(
            _key("maxSessionMinutes"), 1, MAX_SESSION_MINUTES, " min",
            why=f"a drain can carry a call to its end for at most drainTimeoutSeconds {MAX_DRAIN_TIMEOUT_S}"),
        spare_capacity_pods=r.integer(_key("spareCapacityPods"), 0, 50, " pods"),
        hpa=_hpa(r),
        livekit_url=r.text(_key("livekitUrl"), pattern=re.compile(r"^wss?://[^\s/]+(/\S*)?$"),
                           allowed="a ws:// or wss:// URL such as wss://my-project.livekit.cloud"),
        vertex_location=r.text(_key("vertexLocation"), choices=sorted(KNOWN_REGIONS | {"global"}),
                               what="Vertex AI location, infra/data/regions.json plus global"),
        gemini_model=r.text(_key("geminiModel"), pattern=_GEMINI_MODEL,
                            allowed="a Gemini model id such as gemini-live-2.5-flash-native-audio"),
        log_level=r.text(_key("agentLogLevel"), choices=LOG_LEVELS),
        call=_call(r),
        pod_deletion_cost=r.boolean(_key("podDeletionCost")),
        spare_capacity_mode=r.text(_key("spareCapacityMode"), choices=SPARE_CAPACITY_MODES),
        recovery_enabled=r.boolean(_key("recoveryEnabled")),
        recovery_watcher=r.boolean(_key("recoveryWatcher")),
        # the agent's own range (agent/voice_agent/recovery/config.py RETENTION_RANGE)
        recovery_retention_seconds=r.integer(_key("recoveryRetentionSeconds"), 60, 2592000, " seconds",
                                             why="AGENT_CHECKPOINT_RETENTION_SECONDS"),
        image_repository=_image_repository(r),
        agent_voice=_agent_voice(r),
        livekit_credentials=r.text(_key("livekitCredentials"), choices=LIVEKIT_CREDENTIAL_SOURCES),
        dispatch=_dispatch(r),
    )
    _check_image_source(r, workload)
    _check_release_label(r, workload)
    return workload


def _dispatch(r: _Reader) -> DispatchSettings:
    name = r.text(_key("agentName"))
    if name and not _AGENT_NAME.match(name):
        r.fail(_key("agentName"), name, "must be empty or letters, digits, '.', '_', '-' (at most 128, starting with a "
                                        "letter or digit)")
    persona = r.text(_key("agentPersona"), pattern=_PERSONA,
                     allowed="module:attribute of a Persona, such as voice_agent.persona:SAMPLE")
    return DispatchSettings(agent_name=name, persona=persona,
                            livekit_target_load=r.number(_key("livekitTargetLoad"), 0.0, 1.0, lo_open=True))


def _check_release_label(r: _Reader, w: WorkloadSettings) -> None:
    """Deployed by tag, the tag labels every pod (app.kubernetes.io/version) and every metric:
    a label value has at most 63 characters and starts and ends with a letter or digit."""
    tag = w.image_tag
    if w.image_digest or not tag:
        return
    if len(tag) > 63 or not (tag[0].isalnum() and tag[-1].isalnum()):
        r.fail(_key("agentImageTag"), tag, "labels every pod and metric as the release, so it must be at most 63 "
                                           "characters and start and end with a letter or digit; use a shorter tag or "
                                           "deploy by agentImageDigest")


def _call(r: _Reader) -> CallSettings:
    call = CallSettings(
        warning_seconds=r.integer(_key("callWarningSeconds"), 1, 600, " s"),
        silence_timeout_seconds=r.integer(_key("silenceTimeoutSeconds"), 5, 3600, " s"),
        gemini_connect_retries=r.integer(_key("geminiConnectRetries"), 0, 5, " retries"),
        gemini_fallback_location=r.text(_key("geminiFallbackLocation")),
        gemini_fallback_model=r.text(_key("geminiFallbackModel")),
        log_conversation_text=r.boolean(_key("logConversationText")),
    )
    _check_fallback(r, call)
    return call


def _check_fallback(r: _Reader, call: CallSettings) -> None:
    location, model = call.gemini_fallback_location, call.gemini_fallback_model
    locations = sorted(KNOWN_REGIONS | {"global"})
    if location and location not in locations:
        near = difflib.get_close_matches(location, locations, n=1, cutoff=0.8)
        hint = f"; did you mean {near[0]}?" if near else ""
        r.fail(_key("geminiFallbackLocation"), location,
               f"must be empty or a Vertex AI location (a region in infra/data/regions.json, or global){hint}")
    if model and not _GEMINI_MODEL.match(model):
        r.fail(_key("geminiFallbackModel"), model, "must be empty or a Gemini model id such as gemini-live-2.5-flash-native-audio")


def _database(r: _Reader, network: NetworkSettings) -> DatabaseSettings:
    """The checkpoint database (infra/database_rules.py holds its rules). Checked on every stack,
    so turning recoveryEnabled on never reveals an old mistake."""
    before = len(r.problems)

    def bounded(field: str) -> int:
        (low, high), unit, what = DATABASE_RANGES[field]
        return r.integer(DATABASE_KEYS[field], low, high, unit, what)

    db = DatabaseSettings(
        tier=r.text(DATABASE_KEYS["tier"]),
        disk_size_gb=bounded("disk_size_gb"),
        version=r.text(DATABASE_KEYS["version"], choices=POSTGRES_VERSIONS),
        retained_backups=bounded("retained_backups"),
        transaction_log_retention_days=bounded("transaction_log_retention_days"),
        psa_prefix_length=bounded("psa_prefix_length"),
        psa_range_address=r.text(DATABASE_KEYS["psa_range_address"]),
        production=r.boolean(DATABASE_KEYS["production"]),
    )
    if len(r.problems) == before:  # the rules below would repeat a bad single value
        r.problems.extend(database_problems(db))
        r.problems.extend(overlap_problems(db, {_key("nodeCidr"): network.node_cidr, _key("podCidr"): network.pod_cidr,
                                                _key("serviceCidr"): network.service_cidr}))
    return db


def _tool_server(r: _Reader) -> ToolServerSettings:
    return ToolServerSettings(
        places_enabled=r.boolean(_key("placesToolEnabled")),
        # two keep place search up through a node drain (its PDB keeps one); ten is far past need
        places_replicas=r.integer(_key("placesToolReplicas"), 1, 10, " pods"),
    )


def _image_repository(r: _Reader) -> str:
    """Another registry only by digest: a tag there can be moved to another build."""
    value = r.text(_key("agentImageRepository"))
    if not value:
        return ""
    if not _IMAGE_REPOSITORY.match(value):
        r.fail(_key("agentImageRepository"), value,
               "must be empty (the stack's Artifact Registry) or a full image repository without tag or digest, "
               "such as europe-docker.pkg.dev/my-project/my-repo/agent or ghcr.io/my-org/agent")
    return value


def _check_image_source(r: _Reader, w: WorkloadSettings) -> None:
    if w.image_repository and not w.image_digest:
        r.fail(_key("agentImageRepository"), w.image_repository,
               "deploys by tag (agentImageTag) from a registry outside the stack, where tags are mutable: set "
               "agentImageDigest to the build's sha256:... digest, or leave agentImageRepository empty")


def _agent_voice(r: _Reader) -> str:
    value = r.text(_key("agentVoice"))
    if not value:  # the persona's voice; the list is read only when there is a voice to check
        return value
    voices = json.loads(VOICES_FILE.read_text())["voices"]
    if value not in voices:
        near = difflib.get_close_matches(value.capitalize(), voices, n=1, cutoff=0.75)
        hint = f"; did you mean {near[0]}?" if near else ""
        r.fail(_key("agentVoice"), value,
               f"must be empty (the persona's voice) or a Gemini Live voice{hint} ({len(voices)} allowed, listed in "
               "agent/voice_agent/data/gemini_voices.json)")
    return value


def _image_digest(r: _Reader) -> str:
    value = r.text(_key("agentImageDigest"))
    if value and not _IMAGE_DIGEST.match(value):
        r.fail(_key("agentImageDigest"), value, "must be empty or sha256: followed by 64 lower-case hex digits")
    return value


# ---------------------------------------------------------------------------------------------
# Keys: every key in our namespace and in the gcp provider's must be one somebody reads.

SECRET_KEYS = ("livekitApiKey", "livekitApiSecret")
# Map-valued settings Pulumi.yaml cannot declare (project config types are scalar or array).
MAP_KEYS = ("maintenanceExclusions", "controlPlaneAuthorizedNetworks")
GCP_KEYS_READ = ("gcp:project", "gcp:region")
# Settings that existed once and were removed on purpose: the reason beats a bare "unknown".
RETIRED_KEYS = {
    "spotPods": "Spot Pods get 25 s to stop whatever the grace period says, which cuts live calls; "
                "agents never run on Spot, so the setting is gone: delete the line",
    "preStopSeconds": "the worker drains on SIGTERM, and a preStop sleep only keeps it taking new calls while "
                      "the grace period runs down (DESIGN 3.2); the setting is gone: delete the line",
}


def _known_keys(declared: Sequence[str]) -> tuple[set[str], set[str]]:
    """(our settings, gcp provider settings) that a stack may set."""
    ours = {*declared, *(_key(k) for k in MAP_KEYS)}
    return ours, {*GCP_KEYS_READ, *gcp_provider_keys()}


def _unknown_key_problems(raw: Mapping[str, str], secret_keys: set[str], declared: Sequence[str]) -> list[Problem]:
    ours, gcp = _known_keys(declared)
    problems = []
    for key in sorted(raw):
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and key not in ours:
            rule = (f"is no longer a setting: {RETIRED_KEYS[name]}" if name in RETIRED_KEYS
                    else "is not a setting of this project (Pulumi.yaml lists them all)" + _did_you_mean(key, ours))
        elif namespace == "gcp" and key not in gcp:
            rule = ("is not a setting of the gcp provider (pulumi-gcp) and nothing here reads it"
                    + _did_you_mean(key, gcp, prefer=GCP_KEYS_READ))
        else:
            continue
        problems.append(Problem(key, raw[key], rule, secret=key in secret_keys))
    return problems


def _did_you_mean(key: str, known: set[str], prefer: Sequence[str] = ()) -> str:
    # A typo of a key we read beats a near miss among the provider's two hundred settings.
    near = difflib.get_close_matches(key, list(prefer), n=1, cutoff=0.75) or difflib.get_close_matches(key, sorted(known), n=1)
    return f"; did you mean {near[0]}?" if near else ""


def _secret_problems(raw: Mapping[str, str], secret_keys: set[str]) -> list[Problem]:
    """A secret must be one (encrypted in the stack file) and must hold something."""
    problems = []
    for name in SECRET_KEYS:
        key, value = _key(name), raw.get(_key(name))
        fix = f"run `pulumi config set --secret {name} <value>`"
        if value is None:
            problems.append(Problem(key, None, f"is not set; {fix}", secret=True))
        elif key not in secret_keys:
            problems.append(Problem(key, value, f"is stored in plain text, so the stack file (and git) hold it unencrypted; "
                                                f"{fix}, which replaces the plain entry", secret=True))
        elif not value.strip():
            problems.append(Problem(key, value, f"is empty: workers could never register with LiveKit; {fix}", secret=True))
    return problems


# ---------------------------------------------------------------------------------------------
# Entry points.


def _price_overrides(r: _Reader) -> dict[str, float]:
    raw = r.text(_key("priceOverrides"))
    try:
        return parse_overrides(raw, _key("priceOverrides"))
    except ConfigError as exc:
        r.problems.extend(exc.problems)
        return {}


def parse_stack_config(
    stack: str,
    raw: Mapping[str, str],
    secret_keys: Sequence[str] = (),
    *,
    declared: Sequence[str] | None = None,
    size_names: Sequence[str] | None = None,
    workload_rules: Callable[[WorkloadSettings], list[Problem]] | None = None,
) -> StackConfig:
    """Builds the typed config from every config value the engine holds for the stack (ours, the
    gcp provider's, secrets included as text) or raises one ConfigError with every problem.

    `secret_keys` are the keys the engine marks secret; `declared` the keys Pulumi.yaml declares
    (read from it when not given)."""
    size_names = size_names or tuple(SIZES)
    workload_rules = workload_rules or workload_problems
    declared = tuple(project_declarations()) if declared is None else tuple(declared)
    secret = set(secret_keys)
    r = _Reader(raw)
    r.problems += _unknown_key_problems(raw, secret, declared)
    r.problems += _secret_problems(raw, secret)
    project = r.text("gcp:project", pattern=_GCP_PROJECT_ID, allowed="a GCP project id (6-30 lower-case letters, digits, dashes)")
    region = r.text("gcp:region", choices=sorted(KNOWN_REGIONS), what="GKE Autopilot region, infra/data/regions.json")
    network, cluster, registry = _network(r), _cluster(r), _registry(r)
    workload = _workload(r, size_names)
    tool_server = _tool_server(r)
    database = _database(r, network)
    latency_low, latency_high = LATENCY_ALERT_P95_RANGE
    latency_alert = r.number(_key("latencyAlertP95Seconds"), latency_low, latency_high)
    price_overrides = _price_overrides(r)
    if not r.problems:
        # Cross-setting rules (drain vs calls, HPA vs load threshold, Autopilot sizing) need
        # every single value valid first, or they would report noise.
        r.problems.extend(workload_rules(workload))
    if r.problems:
        raise ConfigError(r.problems)
    return StackConfig(
        stack=stack, project=project, region=region, network=network, cluster=cluster,
        registry=registry, workload=_with_model_prices(workload, region, price_overrides),
        tool_server=tool_server, database=database,
        latency_alert_p95_seconds=latency_alert, price_overrides=price_overrides,
        livekit_api_key=pulumi.Output.secret(raw[_key("livekitApiKey")]),
        livekit_api_secret=pulumi.Output.secret(raw[_key("livekitApiSecret")]),
    )


def _with_model_prices(w: WorkloadSettings, region: str, overrides: Mapping[str, float]) -> WorkloadSettings:
    """The Gemini prices the agent estimates each call's cost with: the plan's own (one home,
    infra/data/prices.json, with the stack's priceOverrides on top)."""
    return replace(w, model_prices=dict(prices_for(region, w.gemini_model, overrides).per_million_tokens))


def engine_config() -> tuple[dict[str, str], set[str]]:
    """Every config value the engine gave this program run, and which keys are secret.

    The SDK keeps them in two places: what `set_all_config` stored (mocks, the automation API,
    recent language hosts) and the PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS environment the
    CLI's language host sets. `pulumi.Config` reads both; so does this."""
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env()) | {k for k in values if runtime_config.is_config_secret(k)}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}, secret


def load_stack_config() -> StackConfig:
    """Reads and validates the running stack's config (under the CLI or the mocks)."""
    raw, secret = engine_config()
    return parse_stack_config(pulumi.get_stack(), raw, sorted(secret))
