"""What a call costs: Autopilot pods per call-hour and Gemini Live per call-minute; and what the
stack costs before any call: the fixed monthly cost of every billed resource the plan creates.

Pure arithmetic over the list prices in domain/data/prices.json (each with its source and the
date it was read), the stack's sizes (domain/sizes.py, domain/capacity.py) and a stated speech mix.
A user replaces any price with the ``priceOverrides`` stack setting, a JSON map such as
``{"autopilot.vcpu_hour": 0.05, "gemini.output_audio": 10}`` (keys: ``OVERRIDE_KEYS``).

The model cost follows how the Live API bills (https://ai.google.dev/gemini-api/docs/live-api/
best-practices#pricing-billing): every turn re-reads the whole context, earlier audio included,
at the input audio rate, so cost grows with turns, not only with minutes, until context window
compression caps the context.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.settings import ConfigError, Problem, WorkloadSettings
from domain.capacity import calls_target, sessions_per_pod, workload_resources
from domain.pod_requests import effective_pod_requests
from domain.sizes import Resources, autopilot_normalise

PRICES_FILE = Path(__file__).parent / "data" / "prices.json"
PRICES: dict[str, Any] = json.loads(PRICES_FILE.read_text(encoding="utf-8"))
OVERRIDES_KEY = "priceOverrides"
COMPUTE_CLASS = "general-purpose"  # the only class the stack's pods ask for
TOKEN_KEYS = ("input_text", "input_audio", "output_text", "output_audio")
OVERRIDE_KEYS = ("autopilot.vcpu_hour", "autopilot.gib_hour", "cluster_fee_per_hour",
                 *(f"gemini.{k}" for k in TOKEN_KEYS))
# https://ai.google.dev/gemini-api/docs/tokens#multimodal-tokens: audio is 25 tokens per second
# (the Live API stand-in, agent/tests/fakes/gemini_live.py, counts the same)
AUDIO_TOKENS_PER_SECOND = 25


@dataclass(frozen=True)
class Prices:
    vcpu_hour: float | None  # None: no list price for the region in prices.json
    gib_hour: float | None
    cluster_fee_hour: float
    per_million_tokens: Mapping[str, float]
    region: str
    model: str


@dataclass(frozen=True)
class SpeechMix:
    """The call the model cost is stated for. The caller's audio streams the whole call (the
    Live API bills silence too); the agent speaks ``agent_share`` of it."""

    call_minutes: float = 5.0
    turns_per_minute: float = 6.0
    agent_share: float = 0.4
    # persona instructions and tool declarations, re-read as text on every turn
    instruction_tokens: int = 1500
    # the context stops growing here: AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS' default
    # (agent/voice_agent/env_declarations.py)
    context_cap_tokens: int = 102_400


def parse_overrides(raw: str, key: str = OVERRIDES_KEY) -> dict[str, float]:
    """``priceOverrides`` as a map of known keys to non-negative numbers, or one ConfigError."""
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem(key, raw, f"is not JSON ({exc.msg}); write a map such as "
                                   '{"autopilot.vcpu_hour": 0.05}')]) from None
    if not isinstance(parsed, dict):
        raise ConfigError([Problem(key, raw, "must be a JSON map of price name to USD")])
    problems = []
    for name, value in parsed.items():
        if name not in OVERRIDE_KEYS:
            problems.append(Problem(f"{key}.{name}", value, f"unknown price; allowed: {', '.join(OVERRIDE_KEYS)}"))
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            problems.append(Problem(f"{key}.{name}", value, "must be a number >= 0 (USD)"))
    if problems:
        raise ConfigError(problems)
    return {name: float(value) for name, value in parsed.items()}


def prices_for(region: str, model: str, overrides: Mapping[str, float] | None = None,
               table: Mapping[str, Any] = PRICES) -> Prices:
    """The list prices for a region and model, with the user's overrides on top."""
    o = dict(overrides or {})
    pods = table["autopilot"].get(region, {}).get(COMPUTE_CLASS, {})
    tokens = dict(table["gemini_live"].get(model, {}).get("per_million_tokens", {}))
    tokens.update({k.removeprefix("gemini."): v for k, v in o.items() if k.startswith("gemini.")})
    return Prices(
        vcpu_hour=o.get("autopilot.vcpu_hour", pods.get("vcpu_hour")),
        gib_hour=o.get("autopilot.gib_hour", pods.get("gib_hour")),
        cluster_fee_hour=o.get("cluster_fee_per_hour", table["cluster_fee_per_hour"]["usd"]),
        per_million_tokens=tokens,
        region=region,
        model=model,
    )


def pod_cost_per_hour(cpu_m: int, memory_mi: int, prices: Prices) -> float | None:
    """Autopilot bills a Pod's requests (not its limits or use) per second."""
    if prices.vcpu_hour is None or prices.gib_hour is None:
        return None
    return cpu_m / 1000 * prices.vcpu_hour + memory_mi / 1024 * prices.gib_hour


def mix_tokens(mix: SpeechMix) -> dict[str, float]:
    """Tokens one call of the stated mix is billed for."""
    turns = max(1, round(mix.call_minutes * mix.turns_per_minute))
    interval_s = 60 / mix.turns_per_minute
    # audio added to the context between two turns: the caller's stream plus the agent's speech
    growth = interval_s * AUDIO_TOKENS_PER_SECOND * (1 + mix.agent_share)
    context_audio = sum(min(k * growth, mix.context_cap_tokens) for k in range(1, turns + 1))
    return {
        "input_audio": context_audio,
        "input_text": turns * mix.instruction_tokens,
        "output_audio": mix.call_minutes * 60 * mix.agent_share * AUDIO_TOKENS_PER_SECOND,
    }


def model_cost_per_call_minute(mix: SpeechMix, prices: Prices) -> float | None:
    if not prices.per_million_tokens:
        return None
    tokens = mix_tokens(mix)
    usd = sum(count * prices.per_million_tokens.get(key, 0.0) for key, count in tokens.items()) / 1e6
    return usd / mix.call_minutes


def cost_summary(w: WorkloadSettings, prices: Prices, mix: SpeechMix = SpeechMix()) -> dict[str, Any]:
    """The plan's cost lines as numbers (None where a price is missing)."""
    r = workload_resources(w)
    per_pod = sessions_per_pod(r, w.load_threshold)
    target = calls_target(w)
    pod_hour = pod_cost_per_hour(r.cpu_request_m, r.memory_request_mi, prices)
    spare_hour = None if pod_hour is None else w.spare_capacity_pods * pod_hour
    min_fleet_calls = w.hpa.min_replicas * target

    def per(value: float | None, calls: float) -> float | None:
        return None if value is None or calls <= 0 else value / calls

    return {
        "calls_per_pod": per_pod,
        "target_calls_per_pod": target,
        "pod_usd_per_hour": pod_hour,
        "infra_usd_per_call_hour_full": per(pod_hour, per_pod),
        "infra_usd_per_call_hour_target": per(pod_hour, target),
        "spare_pods": w.spare_capacity_pods,
        "spare_usd_per_hour": spare_hour,
        # the spare pods' cost spread over the smallest fleet's calls at target
        "spare_usd_per_call_hour_at_min_fleet": per(spare_hour, min_fleet_calls),
        "spare_share_at_min_fleet": w.spare_capacity_pods / w.hpa.min_replicas if w.hpa.min_replicas else None,
        "cluster_fee_usd_per_hour": prices.cluster_fee_hour,
        "model_usd_per_call_minute": model_cost_per_call_minute(mix, prices),
        "mix": mix,
        "region": prices.region,
        "model": prices.model,
    }


def _usd(value: float | None, places: int = 4) -> str:
    return "n/a" if value is None else f"${value:.{places}f}"


def cost_lines(c: Mapping[str, Any]) -> list[str]:
    """What the offline plan prints."""
    mix: SpeechMix = c["mix"]
    lines = [f"cost (list prices, domain/data/prices.json; override with {OVERRIDES_KEY}; docs/cost.md):"]
    if c["pod_usd_per_hour"] is None:
        lines.append(f"  no Autopilot list price for {c['region']}: set {OVERRIDES_KEY} "
                     "autopilot.vcpu_hour and autopilot.gib_hour")
    else:
        lines += [
            f"  pod: {_usd(c['pod_usd_per_hour'])}/h in {c['region']}; {c['calls_per_pod']} calls per pod, "
            f"HPA target {c['target_calls_per_pod']:g}",
            f"  infrastructure per call-hour: {_usd(c['infra_usd_per_call_hour_full'])} at full pods, "
            f"{_usd(c['infra_usd_per_call_hour_target'])} at the target utilisation",
            f"  spare capacity: {c['spare_pods']} pod(s), {_usd(c['spare_usd_per_hour'])}/h "
            f"(+{_usd(c['spare_usd_per_call_hour_at_min_fleet'])} per call-hour on the smallest fleet at target)",
        ]
    lines.append(f"  cluster fee: {_usd(c['cluster_fee_usd_per_hour'], 2)}/h per cluster, whatever the calls")
    lines.append(
        f"  model ({c['model']}): {_usd(c['model_usd_per_call_minute'])} per call-minute for a "
        f"{mix.call_minutes:g}-min call, {mix.turns_per_minute:g} turns/min, agent speaking {mix.agent_share:.0%} "
        f"(every turn re-reads the context)"
    )
    return lines


def places_search_lines(tier: str, cheapest_tier: str, prices: Mapping[str, Any] = PRICES) -> list[str]:
    """What one Places search costs at the tier the tool server's field mask puts it in (its
    fields live with the server: tools/places/places_mcp/data/fields.json), and at the tier it
    would be without its most expensive field."""
    table = prices["places"]
    per = table["per_thousand"]["nearby_search"]
    free = table["free_per_month"].get(tier)
    lines = [f"  places tool: every search billed as {tier.replace('_', ' ').title()} (its field mask, "
             f"tools/places/places_mcp/data/fields.json): {_usd(per[tier], 2)} per 1000 searches"
             f"{f', the first {free} a month free' if free else ''}"]
    if cheapest_tier != tier:
        lines.append(f"    ({_usd(per[cheapest_tier], 2)} per 1000 as {cheapest_tier.replace('_', ' ').title()} "
                     "without the open-now field; readiness self-checks are the free IDs Only SKU)")
    return lines


# ------------------------------------------------------------------------------------------------
# Fixed monthly cost: what the stack's billed resources cost before the first call


HOURS_PER_MONTH = 730  # Google's pricing pages convert hourly to monthly with 730 hours
_CUSTOM_TIER = re.compile(r"^db-custom-(\d+)-(\d+)$")


@dataclass(frozen=True)
class FixedCost:
    item: str
    usd_month: float | None  # None: no list price for the region or the kind
    detail: str


def _regional(section: str, region: str, table: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return table.get(section, {}).get(region)


def _pod_usd_hour(spec: Mapping[str, Any], prices: Prices, bursting: bool) -> float | None:
    """A pod bills its effective request (KEP-753: sidecars included) as Autopilot runs it."""
    total = effective_pod_requests(spec.get("containers") or [], spec.get("initContainers") or [])
    cpu, mem = math.ceil(total["cpu"]), math.ceil(total["memory"])
    run = autopilot_normalise(Resources(cpu, mem, cpu, mem), bursting)
    return pod_cost_per_hour(run.cpu_request_m, run.memory_request_mi, prices)


def _pods(resources: list[Mapping[str, Any]], prices: Prices, bursting: bool) -> list[FixedCost]:
    """Autopilot bills pods, not nodes: every Deployment at the replicas it never goes below (an
    HPA's minimum), and each CapacityBuffer unit like a pod of its template."""
    hpa_min = {((r["inputs"].get("spec") or {}).get("scaleTargetRef") or {}).get("name"):
               (r["inputs"].get("spec") or {}).get("minReplicas")
               for r in resources if r["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"}
    templates = {(r["inputs"].get("metadata") or {}).get("name"): (r["inputs"].get("template") or {}).get("spec") or {}
                 for r in resources if r["type"] == "kubernetes:core/v1:PodTemplate"}
    items = []
    for r in resources:
        inputs = r["inputs"]
        if r["type"] == "kubernetes:apps/v1:Deployment":
            name = (inputs.get("metadata") or {}).get("name")
            replicas = hpa_min.get(name) or (inputs.get("spec") or {}).get("replicas") or 1
            spec = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
            why = "the HPA's minimum" if name in hpa_min else "replicas"
        elif r["type"] == "kubernetes:autoscaling.x-k8s.io/v1beta1:CapacityBuffer":
            spec = templates.get(((inputs.get("spec") or {}).get("podTemplateRef") or {}).get("name"), {})
            replicas, why = (inputs.get("spec") or {}).get("replicas") or 0, "buffer units, billed as pods"
        else:
            continue
        hour = _pod_usd_hour(spec, prices, bursting)
        usd = None if hour is None else replicas * hour * HOURS_PER_MONTH
        price = f"{_usd(hour)}/h" if hour is not None else f"no Autopilot list price for {prices.region}"
        items.append(FixedCost(f"pods {r['name']}", usd, f"{replicas} ({why}) x {price}"))
    return items


def _database(r: Mapping[str, Any], region: str, table: Mapping[str, Any]) -> FixedCost:
    settings = r["inputs"].get("settings") or {}
    tier, ha = settings.get("tier", ""), settings.get("availabilityType") == "REGIONAL"
    disk = settings.get("diskSize") or 10
    p = _regional("cloud_sql", region, table)
    label = f"Cloud SQL {tier}, {'REGIONAL (HA)' if ha else 'ZONAL'}, {disk} GB SSD"
    if p is None:
        return FixedCost(r["name"], None, f"{label}: no list price for {region}")
    factor = p["ha_factor"] if ha else 1
    custom = _CUSTOM_TIER.match(tier)
    if custom:
        hour = int(custom.group(1)) * p["vcpu_hour"] + int(custom.group(2)) / 1024 * p["gib_hour"]
    elif tier in p["shared_core_hour"]:
        hour = p["shared_core_hour"][tier]
    else:
        return FixedCost(r["name"], None, f"{label}: tier not priced in domain/data/prices.json")
    usd = factor * (hour * HOURS_PER_MONTH + disk * p["ssd_gb_month"])
    return FixedCost(r["name"], usd, f"{label} (instance x{factor:g}, storage x{factor:g}; backups extra)")


def fixed_monthly_costs(resources: list[Mapping[str, Any]], region: str, prices: Prices, bursting: bool = False,
                        table: Mapping[str, Any] = PRICES, registry_images: int = 0) -> list[FixedCost]:
    """One line per billed resource of the plan, at list price, per month of 730 hours.
    `bursting`: the cluster's CPU bursting (cpuBursting), which decides Autopilot's rounding."""
    items: list[FixedCost] = []
    types = [r["type"] for r in resources]
    for _ in range(types.count("gcp:container/cluster:Cluster")):
        items.append(FixedCost("cluster fee", prices.cluster_fee_hour * HOURS_PER_MONTH,
                               f"{_usd(prices.cluster_fee_hour, 2)}/h (the free tier credits one Autopilot cluster)"))
    items += _pods(resources, prices, bursting)
    items += [_database(r, region, table) for r in resources if r["type"] == "gcp:sql/databaseInstance:DatabaseInstance"]
    nat = _regional("cloud_nat", region, table)
    for r in resources:
        if r["type"] != "gcp:compute/routerNat:RouterNat":
            continue
        if nat is None:
            items.append(FixedCost(r["name"], None, f"Cloud NAT: no list price for {region}"))
            continue
        usd = (nat["gateway_vm_hour"] + nat["ip_hour"]) * HOURS_PER_MONTH
        items.append(FixedCost(r["name"], usd, f"Cloud NAT at one node and one external IP; +{_usd(nat['gateway_vm_hour'])}/h "
                               f"per further node (at most {_usd(nat['gateway_max_hour'])}/h), +{_usd(nat['ip_hour'])}/h "
                               "per further IP; data processed extra"))
    per_version = table["kms"]["key_version_month"]
    for r in resources:
        if r["type"] == "gcp:kms/cryptoKey:CryptoKey":
            items.append(FixedCost(r["name"], per_version, f"one key version at {_usd(per_version, 2)}/month; every "
                                   "rotation adds one, billed until destroyed; the key ring itself is free"))
    versions = types.count("gcp:secretmanager/secretVersion:SecretVersion")
    if versions:
        usd = versions * table["secret_manager"]["version_month"]
        items.append(FixedCost("secret versions", usd, f"{versions} active version(s), one location each; access calls extra"))
    conditions = sum(len(r["inputs"].get("conditions") or []) for r in resources
                     if r["type"] == "gcp:monitoring/alertPolicy:AlertPolicy")
    if conditions:
        usd = conditions * table["monitoring"]["alert_condition_month"]
        items.append(FixedCost("alert conditions", usd, f"{conditions} condition(s); Prometheus samples ingested extra"))
    if "gcp:artifactregistry/repository:Repository" in types and registry_images:
        ar = table["artifact_registry"]
        gb = max(0.0, registry_images * ar["image_gb_estimate"] - ar["free_gb"])
        items.append(FixedCost("registry storage", gb * ar["gb_month"],
                               f"estimate: {registry_images} kept images x {ar['image_gb_estimate']:g} GB, "
                               f"{ar['free_gb']:g} GB free"))
    return items


def fixed_cost_lines(items: list[FixedCost]) -> list[str]:
    lines = ["fixed monthly cost before any call (list prices, 730 h; docs/cost.md):"]
    width = max((len(i.item) for i in items), default=0)
    for i in items:
        lines.append(f"  {i.item:<{width}}  {_usd(i.usd_month, 2):>9}  {i.detail}")
    known = [i.usd_month for i in items if i.usd_month is not None]
    unpriced = [i.item for i in items if i.usd_month is None]
    total = f"  total {_usd(sum(known), 2)}/month"
    lines.append(total + (f" without {', '.join(unpriced)} (no list price)" if unpriced else ""))
    return lines
