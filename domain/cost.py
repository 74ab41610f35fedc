"""What a call costs: Autopilot pods per call-hour and Gemini Live per call-minute.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.settings import ConfigError, Problem, WorkloadSettings
from domain.capacity import calls_target, sessions_per_pod, workload_resources

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
    # (agent/voice_agent/settings.py DEFAULT_COMPRESSION_TRIGGER_TOKENS)
    context_cap_tokens: int = 104_857


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
