"""Before registering: can this pod reach Gemini at all? A release whose identity has no Vertex
AI access must never become ready, or a rollout would replace working pods with pods that take
calls and fail each one at connect time (the plugin does not retry a connect-time failure).

The check obtains an access token through Application Default Credentials, the same path
livekit-plugins-google 1.8.9 takes for vertexai=True (google-genai asks google.auth.default()
for cloud-platform credentials). On GKE that is the metadata server answering for the pod's
Workload Identity; a Kubernetes service account that is not bound gets an error there, not a
token. GKE documents that the metadata server may need a few seconds after pod start before it
answers (https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity, "Limitations"),
so failures are retried within a short budget before the pod gives up.

Only the Gemini plugin's model needs Google credentials: when something else has been installed
at the ``voice_agent.model.build_realtime_model`` seam (a test stand-in, a team's own model),
nothing is checked here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from . import model
from .settings import AgentSettings

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# total time the check may take at start, and the pause between attempts
CHECK_BUDGET_S = 20.0
RETRY_PAUSE_S = 2.0


@dataclass(frozen=True)
class AccessResult:
    ok: bool
    detail: str
    attempts: int = 0


def needs_google_credentials() -> bool:
    """True while the model seam is our own Gemini builder (looked up at call time)."""
    return getattr(model.build_realtime_model, "__module__", "") == model.__name__


def fetch_vertex_token() -> str:
    """One token for the cloud-platform scope through ADC; raises with Google's own message."""
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    if not credentials.token:
        raise RuntimeError("the credential source answered without an access token")
    return str(credentials.token)


async def check_model_access(
    settings: AgentSettings, *, budget_s: float = CHECK_BUDGET_S
) -> AccessResult:
    if not needs_google_credentials():
        builder = getattr(model.build_realtime_model, "__module__", "?")
        return AccessResult(True, f"not checked: the model seam is replaced ({builder})")
    deadline = time.monotonic() + budget_s
    attempts = 0
    while True:
        attempts += 1
        try:
            await asyncio.to_thread(fetch_vertex_token)
            return AccessResult(True, "Vertex AI access token obtained", attempts)
        except Exception as exc:  # google-auth raises several unrelated types
            detail = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + RETRY_PAUSE_S >= deadline:
            return AccessResult(False, detail, attempts)
        await asyncio.sleep(RETRY_PAUSE_S)
