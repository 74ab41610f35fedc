"""The one place the Gemini Live model is built.

Production: Gemini Live through Vertex AI, authenticated with Application Default Credentials
(Workload Identity on GKE, bound to roles/aiplatform.user). No API key is read or passed.

Calls outlive any single Gemini connection (Vertex AI, "Session management with Live API",
https://ai.google.dev/gemini-api/docs/live-session):
- a connection lasts about 10 minutes and ends with GoAway; livekit-plugins-google 1.8.9
  (``realtime/realtime_api.py``, ``_build_connect_config``) always asks for session
  resumption and reconnects with the last handle, so the same session continues;
- an audio session without context window compression ends at 15 minutes (the plugin treats
  that close, 1007, as fatal), so compression is always configured here (sliding window,
  ``AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS`` / ``_TARGET_TOKENS``).

A fatal model error (connect refused: permission, quota, model not in the region; a failed
reconnect) is not retried by the plugin for a connection that never opened. The model is
therefore wrapped in livekit-agents 1.8.9 ``RealtimeModelFallbackAdapter`` over
``1 + AGENT_GEMINI_CONNECT_RETRIES`` instances of the primary and as many of the optional
fallback (another region and/or model): each fatal error moves the session, with its chat
context, to the next instance; when all are exhausted the error reaches the AgentSession and
call_life.py apologises and ends the call.

Tests run the real plugin against a local Live API server (tests/fakes/gemini_live.py), so
nothing here is replaced in tests. The older in-process seam (tests/fake_gemini, replacing
``build_realtime_model`` from a sitecustomize) still works: callers look the function up on
this module at call time (``model.build_realtime_model``).

Imports of livekit stay inside the functions: a sitecustomize may import this module at
interpreter start, before ``python -m voice_agent`` has prepared the metrics directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livekit.agents import llm

    from .settings import AgentSettings

# Gemini voice when neither AGENT_VOICE nor the persona names one (persona_api.voice_for); the
# plugin's default, named here so a change is a reviewed diff.
VOICE = "Puck"
# A failed model instance stays out of rotation this long (livekit-agents 1.8.9
# RealtimeModelFallbackAdapter default cooldown is 10 s); longer than any call's retry cascade,
# so retries move forward through the list instead of returning to a model that just failed.
FALLBACK_COOLDOWN_SECONDS = 300.0


def build_realtime_model(settings: AgentSettings, resume_handle: str | None = None) -> llm.RealtimeModel:
    """Gemini Live on Vertex AI for one session, with retries and fallback. Does not connect.

    ``resume_handle``: a Gemini session resumption handle from a crashed job's checkpoint
    (recovery/resume.py decides whether it is still good). Only the first instance gets it: a
    handle names one session of one model in one location, and if resuming fails the fallback
    adapter moves on to an instance that replays the conversation instead."""
    instances = model_plan(settings)
    models = [gemini(settings, location, model_id, resume_handle if index == 0 else None)
              for index, (location, model_id) in enumerate(instances)]
    if len(models) == 1:
        return models[0]
    from livekit.agents import llm

    return llm.RealtimeModelFallbackAdapter(models, cooldown=FALLBACK_COOLDOWN_SECONDS)


def model_plan(settings: AgentSettings) -> list[tuple[str, str]]:
    """(location, model) of every instance tried, in order: primary retries, then fallback."""
    attempts = 1 + settings.gemini_connect_retries
    plan = [(settings.gcp_location, settings.gemini_model)] * attempts
    if settings.gemini_fallback_location or settings.gemini_fallback_model:
        fallback = (
            settings.gemini_fallback_location or settings.gcp_location,
            settings.gemini_fallback_model or settings.gemini_model,
        )
        plan += [fallback] * attempts
    return plan


def gemini(settings: AgentSettings, location: str, model_id: str,
           resume_handle: str | None = None) -> llm.RealtimeModel:
    from google.genai import types
    from livekit.plugins import google

    return google.realtime.RealtimeModel(
        vertexai=True,
        project=settings.gcp_project,
        location=location,
        model=model_id,
        voice=settings.voice or VOICE,
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=settings.compression_trigger_tokens,
            sliding_window=types.SlidingWindow(target_tokens=settings.compression_target_tokens),
        ),
        # the public way to resume a Gemini session (livekit-plugins-google 1.8.9
        # RealtimeModel(session_resumption=...)); without a handle, a new resumable session
        session_resumption=types.SessionResumptionConfig(handle=resume_handle),
    )
