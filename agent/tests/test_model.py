"""Production wiring of Gemini Live: built for real (no fake), never connected."""

from __future__ import annotations

import pytest

from voice_agent import model
from voice_agent.settings import load_settings


@pytest.fixture
def no_adc_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if building the model consults ADC or the network (it must not: project is given)."""
    import google.auth

    def _forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("building the model must not look up credentials")

    monkeypatch.setattr(google.auth, "default", _forbidden)


def test_builds_the_real_vertex_ai_gemini_live_model(
    valid_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, no_adc_lookup: None
) -> None:
    """Guards the production path that tests otherwise replace with a fake: Vertex AI via ADC,
    the configured project/location/model, and no API key even if one is in the environment."""
    from livekit.plugins import google

    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-must-be-ignored")
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "false")  # our explicit vertexai=True wins
    settings = load_settings(
        {
            **valid_env,
            "GOOGLE_CLOUD_LOCATION": "europe-west4",
            "GOOGLE_CLOUD_PROJECT": "acme-voice",
            "AGENT_GEMINI_CONNECT_RETRIES": "0",
        }
    )

    built = model.build_realtime_model(settings)

    assert type(built) is google.realtime.RealtimeModel
    assert built.provider == "Vertex AI"
    assert built.model == "gemini-live-2.5-flash-native-audio"
    options = built._opts  # the plugin keeps its resolved options here (1.8.9)
    assert options.vertexai is True
    assert (options.project, options.location) == ("acme-voice", "europe-west4")
    assert options.api_key is None
    assert options.voice == model.VOICE
    assert built.capabilities.audio_output is True
    # calls outlive one connection and 15 minutes: compression and resumption always sent
    assert options.context_window_compression.sliding_window.target_tokens == 64000
    assert options.context_window_compression.trigger_tokens == 102400
    assert options.session_resumption is not None


def test_retries_and_fallback_wrap_the_model_in_the_frameworks_adapter(
    valid_env: dict[str, str], no_adc_lookup: None
) -> None:
    from livekit.agents import llm

    settings = load_settings(
        {**valid_env, "AGENT_GEMINI_CONNECT_RETRIES": "1", "AGENT_GEMINI_FALLBACK_LOCATION": "europe-west4"}
    )
    assert model.model_plan(settings) == [
        ("us-central1", "gemini-live-2.5-flash-native-audio"),
        ("us-central1", "gemini-live-2.5-flash-native-audio"),
        ("europe-west4", "gemini-live-2.5-flash-native-audio"),
        ("europe-west4", "gemini-live-2.5-flash-native-audio"),
    ]
    assert isinstance(model.build_realtime_model(settings), llm.RealtimeModelFallbackAdapter)


def test_model_module_imports_without_livekit() -> None:
    """The seam must be importable before livekit (a sitecustomize patches it at start-up)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, voice_agent.model, voice_agent.settings;"
        "print([m for m in sys.modules if m.startswith('livekit')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
