"""LiveKit voice agent (Gemini Live on Vertex AI) for private GKE Autopilot.

Kept import-light on purpose: ``voice_agent.settings`` and ``voice_agent.model`` must be
importable without importing livekit (see their module docstrings).
"""

__version__ = "0.1.0"
