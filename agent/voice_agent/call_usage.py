"""What one call used of the model and how fast the agent answered, measured in the job process.

Job processes cannot serve metrics (see metrics.py), so every measurement leaves as a lifecycle
line the worker process's ``SessionLedger`` turns into a series:

- ``model_usage``: one per model response, the tokens livekit-agents 1.8.9 reports in
  ``RealtimeModelMetrics`` (metrics/base.py), by direction and modality. The Google plugin
  (livekit-plugins-google 1.8.9, realtime/realtime_api.py ``_handle_usage_metadata``) fills them
  from the Live API's ``usageMetadata``; it always reports ``ttft=-1`` and ``cancelled=False``,
  so neither is read from there.
- ``turn_answered``: time to first audio of one reply. For a caller's turn it is the framework's
  own ``e2e_latency`` (caller stopped speaking -> first agent audio frame, voice/agent_activity.py
  ``_on_first_frame`` in the realtime path), present when the session's VAD saw the speech end.
  For a reply the agent asked for (greeting, warnings, tool follow-ups: ``generate_reply``) it
  is the time from the request (``speech_created``) to the agent's state becoming ``speaking``
  (the first frame played), which includes the model's whole think time.
- ``response_interrupted``: an assistant message the caller cut off (``ChatMessage.interrupted``).

The call's totals and its estimated model cost go on the ``session_ended`` line.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.metrics import RealtimeModelMetrics

from .logs import log_event

DIRECTIONS = ("input", "output")
MODALITIES = ("audio", "text", "image")
PRICE_KEYS = tuple(f"{d}_{m}" for d in DIRECTIONS for m in MODALITIES)
# Prices per million tokens by "<direction>_<modality>", rendered by the stack from
# domain/data/prices.json (the one home of the numbers); unset: no cost estimate on the line.
PRICES_ENV = "AGENT_MODEL_PRICES"
TRIGGER_CALLER = "caller"
TRIGGER_REQUESTED = "requested"

logger = logging.getLogger("voice_agent.call_usage")


def model_prices_from_env(environ: Mapping[str, str]) -> dict[str, float] | None:
    """USD per million tokens by key; None when the variable is unset or empty."""
    raw = environ.get(PRICES_ENV, "").strip()
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PRICES_ENV}={raw!r} is not JSON ({exc.msg}); expected e.g. "
                         '{"input_audio": 3.0, "output_audio": 12.0}') from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{PRICES_ENV}={raw!r} must be a JSON object of USD per million tokens")
    prices: dict[str, float] = {}
    for key, value in parsed.items():
        if key not in PRICE_KEYS:
            raise ValueError(f"{PRICES_ENV}: unknown key {key!r}; allowed: {', '.join(PRICE_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{PRICES_ENV}: {key}={value!r} must be a number >= 0 (USD per million tokens)")
        prices[key] = float(value)
    return prices


def response_tokens(m: RealtimeModelMetrics) -> dict[str, int]:
    """Tokens of one response by "<direction>_<modality>" (zeros included)."""
    inp, out = m.input_token_details, m.output_token_details
    return {
        "input_audio": inp.audio_tokens,
        "input_text": inp.text_tokens,
        "input_image": inp.image_tokens,
        "output_audio": out.audio_tokens,
        "output_text": out.text_tokens,
        "output_image": out.image_tokens,
    }


def estimated_cost_usd(tokens: Mapping[str, int], prices: Mapping[str, float]) -> float:
    """Sum of tokens x price per million; a key without a price costs nothing."""
    return sum(count * prices.get(key, 0.0) for key, count in tokens.items()) / 1_000_000


@dataclass
class CallUsage:
    prices: dict[str, float] | None = None
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRICE_KEYS, 0))
    cached_input_tokens: int = 0
    responses: int = 0
    interrupted: int = 0
    answers: list[float] = field(default_factory=list)

    def add(self, m: RealtimeModelMetrics) -> dict[str, int]:
        counts = response_tokens(m)
        for key, count in counts.items():
            self.tokens[key] += count
        self.cached_input_tokens += m.input_token_details.cached_tokens
        self.responses += 1
        return counts

    def ended_fields(self) -> dict[str, Any]:
        """What the session_ended line carries about the model."""
        fields: dict[str, Any] = {
            "model_responses": self.responses,
            "responses_interrupted": self.interrupted,
            "tokens": {key: count for key, count in self.tokens.items() if count},
            "cached_input_tokens": self.cached_input_tokens,
        }
        if self.answers:
            fields["time_to_first_audio_max_seconds"] = round(max(self.answers), 3)
        if self.prices is not None:
            fields["estimated_model_cost_usd"] = round(estimated_cost_usd(self.tokens, self.prices), 6)
        return fields


def watch_call(session: AgentSession[Any], usage: CallUsage) -> None:
    """Subscribe to the session events that carry usage, latency and interruptions."""
    requested: dict[str, float] = {}

    def answered(seconds: float, trigger: str) -> None:
        usage.answers.append(seconds)
        log_event("turn_answered", "turn answered", time_to_first_audio_seconds=round(seconds, 4),
                  trigger=trigger)

    def on_metrics(ev: Any) -> None:
        # request_id "": the connection-timing report with zero usage, not a response
        # (llm/realtime.py ``_report_connection_acquired``, livekit-agents 1.8.9)
        if isinstance(ev.metrics, RealtimeModelMetrics) and ev.metrics.request_id:
            counts = usage.add(ev.metrics)
            log_event("model_usage", "model usage", **{f"{k}_tokens": v for k, v in counts.items() if v})

    def on_speech_created(ev: Any) -> None:
        if ev.user_initiated and ev.source == "generate_reply":
            requested[ev.speech_handle.id] = ev.created_at

    def on_agent_state(ev: Any) -> None:
        speech = session.current_speech
        if ev.new_state != "speaking" or speech is None:
            return
        started = requested.pop(speech.id, None)
        if started is not None:
            answered(max(ev.created_at - started, 0.0), TRIGGER_REQUESTED)

    def on_item(ev: Any) -> None:
        item = ev.item
        if getattr(item, "role", None) != "assistant":
            return
        if item.interrupted:
            usage.interrupted += 1
            log_event("response_interrupted", "response interrupted by the caller")
        e2e = (item.metrics or {}).get("e2e_latency")
        if e2e is not None:
            answered(float(e2e), TRIGGER_CALLER)

    session.on("metrics_collected", on_metrics)
    session.on("speech_created", on_speech_created)
    session.on("agent_state_changed", on_agent_state)
    session.on("conversation_item_added", on_item)
