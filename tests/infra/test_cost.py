"""The cost model's arithmetic against hand-computed cases, its price data, its overrides."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re

import pytest

from domain import cost
from domain.config import parse_stack_config
from domain.settings import ConfigError
from domain.stackfiles import load_stack_values
from domain.capacity import sessions_per_pod, workload_resources
from tests.agent_env import agent_declarations

# round numbers so the hand computation is exact
PRICES = cost.Prices(vcpu_hour=0.04, gib_hour=0.005, cluster_fee_hour=0.10,
                     per_million_tokens={"input_audio": 3.0, "input_text": 0.5, "output_audio": 12.0},
                     region="us-central1", model="m")


def _workload(stack: str):
    values = load_stack_values(stack)
    return parse_stack_config(stack, values.config, values.secret_keys).workload


def test_pod_cost_is_requests_times_prices() -> None:
    # 2000m x 0.04 = 0.08; 4096 MiB = 4 GiB x 0.005 = 0.02 -> 0.10 per hour
    assert cost.pod_cost_per_hour(2000, 4096, PRICES) == pytest.approx(0.10)
    assert cost.pod_cost_per_hour(2000, 4096, dataclasses.replace(PRICES, vcpu_hour=None)) is None


def test_model_cost_of_a_hand_computed_mix() -> None:
    """2 turns per minute for 2 minutes, agent speaking half: 4 turns 30 s apart; each interval
    adds 30 s x 25 tok/s x 1.5 = 1125 audio tokens of context, so the turns re-read 1125, 2250,
    3375 and (capped at 4000) 4000 = 10,750 input audio tokens -> $0.03225; 4 x 100 text tokens
    -> $0.0002; 2 min x 60 x 0.5 x 25 = 1500 output audio tokens -> $0.018. $0.05045 over 2 min."""
    mix = cost.SpeechMix(call_minutes=2, turns_per_minute=2, agent_share=0.5, instruction_tokens=100,
                         context_cap_tokens=4000)
    assert cost.mix_tokens(mix) == {"input_audio": 10_750, "input_text": 400, "output_audio": 1500}
    assert cost.model_cost_per_call_minute(mix, PRICES) == pytest.approx(0.05045 / 2)


def test_cap_boundary_equal_and_just_above() -> None:
    """At a cap equal to the last turn's context nothing is clipped; one token less clips it."""
    mix = cost.SpeechMix(call_minutes=2, turns_per_minute=2, agent_share=0.5, context_cap_tokens=4500)
    assert cost.mix_tokens(mix)["input_audio"] == 1125 + 2250 + 3375 + 4500
    below = dataclasses.replace(mix, context_cap_tokens=4499)
    assert cost.mix_tokens(below)["input_audio"] == 1125 + 2250 + 3375 + 4499


def test_prod_summary_per_call_hour() -> None:
    w = _workload("prod")
    r = workload_resources(w)
    per_pod = sessions_per_pod(r, w.load_threshold)
    c = cost.cost_summary(w, PRICES)
    pod_hour = r.cpu_request_m / 1000 * 0.04 + r.memory_request_mi / 1024 * 0.005
    assert c["calls_per_pod"] == per_pod
    assert c["infra_usd_per_call_hour_full"] == pytest.approx(pod_hour / per_pod)
    target = per_pod * w.hpa.target_calls_percent / 100
    assert c["infra_usd_per_call_hour_target"] == pytest.approx(pod_hour / target)
    assert c["spare_usd_per_hour"] == pytest.approx(w.spare_capacity_pods * pod_hour)
    assert c["spare_usd_per_call_hour_at_min_fleet"] == pytest.approx(
        w.spare_capacity_pods * pod_hour / (w.hpa.min_replicas * target))
    lines = "\n".join(cost.cost_lines(c))
    assert "per call-hour" in lines and "per call-minute" in lines


def test_a_region_without_a_list_price_says_how_to_set_one() -> None:
    prices = cost.prices_for("antarctica-south1", "gemini-live-2.5-flash-native-audio")
    lines = "\n".join(cost.cost_lines(cost.cost_summary(_workload("dev"), prices)))
    assert "no Autopilot list price for antarctica-south1" in lines and "autopilot.vcpu_hour" in lines


def test_price_data_names_its_source_and_date() -> None:
    data = json.loads(cost.PRICES_FILE.read_text())
    entries = [data["cluster_fee_per_hour"], *(c for r in data["autopilot"].values() for c in r.values()),
               *data["gemini_live"].values()]
    for entry in entries:
        assert entry["source"].startswith("https://") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry["read_on"])
        assert isinstance(entry["confirmed"], bool)
    # the model the agent uses by default has a price
    assert set(cost.TOKEN_KEYS) <= set(data["gemini_live"]["gemini-live-2.5-flash-native-audio"]["per_million_tokens"])


def test_overrides_replace_list_prices() -> None:
    overrides = cost.parse_overrides('{"autopilot.vcpu_hour": 0.05, "gemini.output_audio": 0}')
    prices = cost.prices_for("us-central1", "gemini-live-2.5-flash-native-audio", overrides)
    assert prices.vcpu_hour == 0.05 and prices.per_million_tokens["output_audio"] == 0.0
    assert prices.gib_hour == cost.PRICES["autopilot"]["us-central1"]["general-purpose"]["gib_hour"]
    assert cost.parse_overrides("") == {}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("{nope", r"priceOverrides = '\{nope': is not JSON"),
        ("[1]", "priceOverrides = .*must be a JSON map"),
        ('{"autopilot.cpu_hour": 1}', r"priceOverrides.autopilot.cpu_hour = 1: unknown price; allowed: autopilot.vcpu_hour"),
        ('{"gemini.input_audio": -0.01}', r"priceOverrides.gemini.input_audio = -0.01: must be a number >= 0"),
        ('{"gemini.input_audio": "3"}', r"priceOverrides.gemini.input_audio = .*3.*: must be a number >= 0"),
    ],
)
def test_bad_overrides_name_the_setting_value_and_rule(raw: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cost.parse_overrides(raw)


P = "gke-voice-agents:"


def _parse(stack: str, **settings: str):
    values = load_stack_values(stack)
    return parse_stack_config(stack, {**values.config, **{P + k: v for k, v in settings.items()}}, values.secret_keys)


@pytest.mark.parametrize("value", ["0.5", "2", "8"])
def test_latency_alert_threshold_inside_its_range(value: str) -> None:
    assert _parse("dev", latencyAlertP95Seconds=value).latency_alert_p95_seconds == float(value)


@pytest.mark.parametrize("value", ["0.49", "8.01", "fast"])
def test_latency_alert_threshold_outside_its_range(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"gke-voice-agents:latencyAlertP95Seconds = .*{re.escape(value)}.*: must be .*\[0.5, 8.0\]"):
        _parse("dev", latencyAlertP95Seconds=value)


def test_the_stacks_default_threshold_is_the_runbooks() -> None:
    from domain import runbook

    assert _parse("prod").latency_alert_p95_seconds == runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS


def test_price_overrides_from_the_stack_config() -> None:
    assert _parse("dev").price_overrides == {}
    assert _parse("dev", priceOverrides='{"gemini.input_audio": 2.5}').price_overrides == {"gemini.input_audio": 2.5}
    with pytest.raises(ConfigError, match=r"gke-voice-agents:priceOverrides.gemini.input_video = 1: unknown price"):
        _parse("dev", priceOverrides='{"gemini.input_video": 1}')


def test_the_priced_context_stops_growing_where_the_agent_compresses_it():
    """The cost model's cap is the agent's compression trigger default (80 % of the model's
    128,000 input tokens), read from the agent's own declaration, not a copy of a number."""
    trigger = agent_declarations().default_of("AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS")
    assert cost.SpeechMix().context_cap_tokens == trigger == 102_400


def test_the_default_speech_mix_cannot_be_changed_for_the_next_caller() -> None:
    """cost_summary's default mix is one object shared by every call that omits it (a default
    argument is built once): a caller assigning to it would silently change every later cost
    line. Frozen, the assignment fails instead, and the next summary is unchanged."""
    w = _workload("dev")
    before = cost.cost_summary(w, PRICES)
    shared = inspect.signature(cost.cost_summary).parameters["mix"].default
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.call_minutes = 60.0
    assert shared == cost.SpeechMix() and cost.cost_summary(w, PRICES) == before
