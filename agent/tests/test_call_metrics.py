"""What a call used and how fast the agent answered: from the job process to the worker's
Prometheus endpoint, and onto the session_ended line.

The call test is real end to end: livekit-server, the worker (contract command), its job
process, livekit-plugins-google 1.8.9 and google-genai talking to the Live API stand-in
(tests/fakes/gemini_live.py), which reports ``usageMetadata`` per response the way the Live
API documents it. The unit tests drive the worker-side ledger with the lines a job logs.
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.request
from pathlib import Path

import pytest
from call_scenarios import Behaviour, events, run_scenario
from helpers.livekit_server import LiveKitServer, free_port
from helpers.prometheus import find_prometheus, start_prometheus
from livekit.agents.metrics import RealtimeModelMetrics
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from voice_agent import call_usage
from voice_agent.metrics import SessionLedger, create_metrics
from voice_agent.metrics import _initialise_children as initialise_children

REPO_ROOT = Path(__file__).resolve().parents[2]
PRICES = {"input_audio": 3.0, "input_text": 0.5, "output_audio": 12.0, "output_text": 2.0}


# ---- unit: prices, arithmetic, the ledger ---------------------------------------------------


def test_cost_is_tokens_times_price_per_million() -> None:
    """Hand-computed: 40,000 audio in at $3/M = 0.12, 1,000 text in at $0.5/M = 0.0005,
    10,000 audio out at $12/M = 0.12; total 0.2405. A key without a price costs nothing."""
    tokens = {"input_audio": 40_000, "input_text": 1_000, "output_audio": 10_000, "input_image": 7}
    assert call_usage.estimated_cost_usd(tokens, PRICES) == pytest.approx(0.2405)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("{nope", "AGENT_MODEL_PRICES='{nope' is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"input_video": 1}', "unknown key 'input_video'; allowed: input_audio"),
        ('{"input_audio": -0.01}', "input_audio=-0.01 must be a number >= 0"),
        ('{"input_audio": "3"}', "input_audio='3' must be a number >= 0"),
        ('{"input_audio": true}', "input_audio=True must be a number >= 0"),
    ],
)
def test_bad_prices_name_the_variable_value_and_rule(raw: str, match: str) -> None:
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("[", r"\[")):
        call_usage.model_prices_from_env({"AGENT_MODEL_PRICES": raw})


def test_prices_at_their_boundary_and_unset() -> None:
    assert call_usage.model_prices_from_env({}) is None
    assert call_usage.model_prices_from_env({"AGENT_MODEL_PRICES": " "}) is None
    assert call_usage.model_prices_from_env({"AGENT_MODEL_PRICES": '{"output_audio": 0}'}) == {"output_audio": 0.0}


def _record(event: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("voice_agent.lifecycle", logging.INFO, __file__, 1, event, None, None)
    for key, value in {"event": event, "session_id": "s1", **fields}.items():
        setattr(record, key, value)
    return record


def test_ledger_turns_usage_latency_and_interruptions_into_series() -> None:
    """Guards against the job-process lines and the worker's ledger disagreeing on field names."""
    registry = CollectorRegistry()
    agent_metrics = create_metrics(registry, version="v7")
    initialise_children(agent_metrics)  # as default_metrics() does in the worker
    ledger = SessionLedger(agent_metrics)
    metrics = RealtimeModelMetrics(
        request_id="r1", timestamp=0.0,
        input_token_details=RealtimeModelMetrics.InputTokenDetails(audio_tokens=50, text_tokens=9),
        output_token_details=RealtimeModelMetrics.OutputTokenDetails(audio_tokens=12),
    )
    counts = call_usage.response_tokens(metrics)
    ledger.emit(_record("model_usage", **{f"{k}_tokens": v for k, v in counts.items() if v}))
    ledger.emit(_record("model_usage", input_audio_tokens=5))
    ledger.emit(_record("turn_answered", time_to_first_audio_seconds=0.75, trigger="caller"))
    ledger.emit(_record("turn_answered", time_to_first_audio_seconds=0.2, trigger="invented"))
    ledger.emit(_record("response_interrupted"))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"version": "v7", **labels})

    assert value("voice_agent_model_tokens_total", direction="input", modality="audio") == 55
    assert value("voice_agent_model_tokens_total", direction="input", modality="text") == 9
    assert value("voice_agent_model_tokens_total", direction="output", modality="audio") == 12
    # exported at 0 from the start, so increase() sees the first tokens
    assert value("voice_agent_model_tokens_total", direction="output", modality="image") == 0
    # 0.75 is a bucket edge: counted in le=0.75, not in le=0.5
    assert value("voice_agent_time_to_first_audio_seconds_bucket", trigger="caller", le="0.75") == 1
    assert value("voice_agent_time_to_first_audio_seconds_bucket", trigger="caller", le="0.5") == 0
    assert value("voice_agent_time_to_first_audio_seconds_count", trigger="invented") is None
    assert value("voice_agent_responses_interrupted_total") == 1


# ---- a real call ------------------------------------------------------------------------------

ANSWER_DELAY_S = 0.6


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.integration
def test_a_call_reports_tokens_latency_and_its_cost(livekit_server: LiveKitServer, tmp_path: Path) -> None:
    """Guards against a call whose usage never reaches the worker's endpoint or its
    session_ended line: the stand-in thinks ANSWER_DELAY_S before each reply and reports
    usageMetadata per response; the worker's /metrics then holds the tokens by direction and
    modality and the time to first audio (at least the think time), and session_ended carries
    the same totals and their cost at AGENT_MODEL_PRICES."""
    port = free_port()
    scraped: dict = {}

    def scrape(_live: object) -> None:
        scraped.update(_scrape(port))

    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "usage",
        behaviour=Behaviour(answer_delay_s=ANSWER_DELAY_S),
        env={
            "AGENT_METRICS_PORT": str(port),
            "AGENT_VERSION": "v-usage",
            "AGENT_MODEL_PRICES": json.dumps(PRICES),
            "AGENT_SILENCE_TIMEOUT_SECONDS": "600",
        },
        hang_up_after=6.0,
        during=scrape,
    )
    assert outcome.ended is not None, outcome.raw_lines[-20:]
    usage_lines = events(outcome, "model_usage")
    assert usage_lines, "no model_usage line"
    # the greeting at least; every reply the stand-in spoke was reported
    sessions, _ = outcome.live.snapshot()
    replies = sum(len(s.replies) for s in sessions)
    assert len(usage_lines) == replies >= 1, [(l.get("time"), {k: v for k, v in l.items() if k.endswith("_tokens")}) for l in usage_lines] + [s.replies for s in sessions]
    output_audio = sum(line.get("output_audio_tokens", 0) for line in usage_lines)
    input_audio = sum(line.get("input_audio_tokens", 0) for line in usage_lines)
    input_text = sum(line.get("input_text_tokens", 0) for line in usage_lines)
    assert output_audio > 0 and input_text > 0  # the greeting's instructions are text

    ended = outcome.ended
    assert ended["tokens"].get("output_audio", 0) == output_audio
    assert ended["tokens"].get("input_audio", 0) == input_audio
    assert ended["tokens"]["input_text"] == input_text
    assert ended["model_responses"] == replies
    expected_cost = (input_audio * 3.0 + input_text * 0.5 + output_audio * 12.0) / 1e6
    assert ended["estimated_model_cost_usd"] == pytest.approx(expected_cost, abs=1e-6)

    version = {"version": "v-usage"}
    assert _sample(scraped, "voice_agent_model_tokens_total", direction="output", modality="audio",
                   **version) == output_audio
    assert _sample(scraped, "voice_agent_model_tokens_total", direction="input", modality="text",
                   **version) == input_text
    answered = events(outcome, "turn_answered")
    assert answered, "no turn_answered line"
    count = _sample(scraped, "voice_agent_time_to_first_audio_seconds_count", trigger="requested", **version)
    total = _sample(scraped, "voice_agent_time_to_first_audio_seconds_sum", trigger="requested", **version)
    assert count is not None and count >= 1, sorted(k for k in scraped if "first_audio" in k[0])
    # the stand-in waited ANSWER_DELAY_S before the first chunk: no reply can be heard sooner
    assert total >= ANSWER_DELAY_S * count
    assert ended["time_to_first_audio_max_seconds"] >= ANSWER_DELAY_S


# ---- the latency alert against a real Prometheus ----------------------------------------------

# the stand-in thinks this long before every reply: p95 lands in the (1.0, 1.25] bucket or above
SLOW_ANSWER_S = 1.0


@pytest.mark.integration
def test_slow_answers_fire_the_latency_alert(livekit_server: LiveKitServer, tmp_path: Path) -> None:
    """Guards against a latency alert that cannot fire: the stand-in answers slowly, a real
    Prometheus scrapes the worker, and the runbook's expressions (domain/runbook.py) see it: the
    p95 panel has the release's series, the slow-answers expression fires below that p95 and
    stays quiet at it (strictly above) and at the 2 s default."""
    sys.path.insert(0, str(REPO_ROOT))
    from domain import runbook  # stdlib only

    try:
        find_prometheus()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    port = free_port()
    prom = start_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"])
    seen: dict[str, object] = {}

    def evaluate(_live: object) -> None:
        def has_p95(result: list[dict]) -> bool:
            return any(s["metric"].get("version") == "v-slow" and s["value"] == s["value"] for s in result)

        p95 = prom.wait_for(runbook.time_to_first_audio_by_version(0.95), has_p95, timeout=30, what="p95 panel")
        value = next(s["value"] for s in p95 if s["metric"]["version"] == "v-slow")
        seen["p95"] = value
        seen["p50"] = prom.by(runbook.time_to_first_audio_by_version(0.5), "version").get("v-slow")
        seen["at_p95"] = prom.query(runbook.slow_answers(value))
        seen["below_p95"] = prom.query(runbook.slow_answers(value - 0.01))
        seen["default"] = prom.query(runbook.slow_answers())
        seen["tokens"] = prom.by(runbook.model_tokens_by_version(), "modality")

    try:
        run_scenario(
            livekit_server,
            tmp_path,
            "slow",
            behaviour=Behaviour(answer_delay_s=SLOW_ANSWER_S),
            env={"AGENT_METRICS_PORT": str(port), "AGENT_VERSION": "v-slow",
                 "AGENT_SILENCE_TIMEOUT_SECONDS": "600"},
            hang_up_after=4.0,
            during=evaluate,
        )
    finally:
        prom.stop()
    print(json.dumps({"p50_s": seen.get("p50"), "p95_s": seen.get("p95")}))
    assert seen, "the call never reached the Prometheus checks"
    assert seen["p95"] > SLOW_ANSWER_S and seen["p50"] is not None and seen["p50"] > SLOW_ANSWER_S / 2
    assert seen["at_p95"] == [], seen  # strictly above the threshold
    assert [s["metric"]["version"] for s in seen["below_p95"]] == ["v-slow"], seen
    assert seen["default"] == [] or seen["p95"] > runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS, seen
    assert seen["tokens"].get("audio", 0) > 0, seen


def test_bad_prices_cost_the_estimate_not_the_call(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from voice_agent import session

    monkeypatch.setenv("AGENT_MODEL_PRICES", '{"input_audio": -1}')
    with caplog.at_level(logging.ERROR):
        assert session._model_prices() is None
    assert any(getattr(r, "event", None) == "model_prices_invalid" and "input_audio=-1" in r.getMessage()
               for r in caplog.records)
    monkeypatch.setenv("AGENT_MODEL_PRICES", '{"input_audio": 3}')
    assert session._model_prices() == {"input_audio": 3.0}


@pytest.mark.integration
def test_a_caller_talking_over_replies_counts_interrupted_responses(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """Guards against interruptions that never reach the counter: the stand-in's replies play
    for 3 s and the caller keeps talking in turns, so a new reply starts while the last one
    still plays and the framework cuts the playing one short; each is one response_interrupted
    line, one count on /metrics and one on session_ended."""
    port = free_port()
    scraped: dict = {}
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "barge",
        behaviour=Behaviour(reply_seconds=3.0),
        env={"AGENT_METRICS_PORT": str(port), "AGENT_VERSION": "v-barge",
             "AGENT_SILENCE_TIMEOUT_SECONDS": "600"},
        hang_up_after=8.0,
        during=lambda _live: scraped.update(_scrape(port)),
    )
    assert outcome.ended is not None, outcome.raw_lines[-20:]
    interrupted = events(outcome, "response_interrupted")
    assert interrupted, [line.get("event") for line in outcome.worker_lines][-40:]
    assert outcome.ended["responses_interrupted"] == len(interrupted)
    assert _sample(scraped, "voice_agent_responses_interrupted_total", version="v-barge") == len(interrupted)
