"""The one place the Gemini Live model is built: the test seam.

Production: Gemini Live through Vertex AI, authenticated with Application Default Credentials
(Workload Identity on GKE, bound to roles/aiplatform.user). No API key is read or passed.

Tests that run the real worker process replace ``build_realtime_model`` (and only it) from a
``sitecustomize.py`` on PYTHONPATH, so the process is started exactly as the Deployment says.
Callers must therefore look it up on this module at call time (``model.build_realtime_model``),
never bind it with ``from voice_agent.model import build_realtime_model``.

Imports of livekit stay inside the function: a sitecustomize imports this module at
interpreter start, before ``python -m voice_agent`` has prepared the metrics directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livekit.agents import llm

    from .settings import AgentSettings

# Gemini voice; the plugin's default, named here so a change is a reviewed diff.
VOICE = "Puck"


def build_realtime_model(settings: AgentSettings) -> llm.RealtimeModel:
    """Gemini Live on Vertex AI for one session. Building it does not connect."""
    from livekit.plugins import google

    return google.realtime.RealtimeModel(
        vertexai=True,
        project=settings.gcp_project,
        location=settings.gcp_location,
        model=settings.gemini_model,
        voice=VOICE,
    )
