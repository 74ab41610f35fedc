"""What a checkpoint holds, versioned: the conversation, the agent, userdata, Gemini's handle.

Rules for changing it (old and new releases read each other's rows during a rollout):
- only add keys; never rename, retype or remove one;
- bump PAYLOAD_VERSION when adding, and keep ``read_payload`` accepting every older version;
- a reader ignores keys it does not know, so an older release reads a newer row too.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

PAYLOAD_VERSION = 1
OLDEST_READABLE_VERSION = 1


class UnreadableCheckpoint(ValueError):
    """The stored payload cannot be used (corrupt, or older than any release still reads)."""


@dataclass(frozen=True)
class Checkpoint:
    chat_ctx: dict[str, Any]
    """ChatContext.to_dict() of the session's history (livekit-agents 1.8.9 llm/chat_context.py)."""
    agent: str = ""
    """Class name of the session's current agent, e.g. VoiceAssistant."""
    userdata: dict[str, Any] | None = None
    """The session's userdata when it is a JSON-able dict or dataclass."""
    gemini_handle: str | None = None
    """Gemini Live session resumption handle (livekit-plugins-google 1.8.9 realtime_api.py)."""
    gemini_handle_at: float | None = None
    """Unix time the handle was read (a handle is valid for a limited time after it was issued)."""
    turns: int = 0
    saved_at: float = field(default_factory=time.time)

    def to_payload(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload["v"] = PAYLOAD_VERSION
        return payload

    def handle_if_fresh(self, ttl_seconds: float, now: float | None = None) -> str | None:
        """The Gemini handle when it is younger than ``ttl_seconds`` (else the conversation is
        replayed from ``chat_ctx``)."""
        if not self.gemini_handle or self.gemini_handle_at is None or ttl_seconds <= 0:
            return None
        age = (time.time() if now is None else now) - self.gemini_handle_at
        return self.gemini_handle if 0 <= age < ttl_seconds else None


def read_payload(version: int, payload: dict[str, Any]) -> Checkpoint:
    if version < OLDEST_READABLE_VERSION:
        raise UnreadableCheckpoint(
            f"checkpoint payload version {version} is older than {OLDEST_READABLE_VERSION}, the "
            "oldest this release reads"
        )
    chat_ctx = payload.get("chat_ctx")
    if not isinstance(chat_ctx, dict) or not isinstance(chat_ctx.get("items", []), list):
        raise UnreadableCheckpoint("checkpoint payload has no chat_ctx.items list")
    known = {f.name for f in dataclasses.fields(Checkpoint)}
    # newer releases may have added keys: read what this release knows, ignore the rest
    return Checkpoint(**{k: v for k, v in payload.items() if k in known})


def userdata_as_dict(userdata: object) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(userdata) and not isinstance(userdata, type):
        return dataclasses.asdict(userdata)
    if isinstance(userdata, dict):
        return dict(userdata)
    return None
