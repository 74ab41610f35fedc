"""What a checkpoint holds, versioned: what a resume needs and nothing more.

Stored (``STORED_FIELDS``): the conversation items (messages, tool calls with their arguments
and results; no audio, images or metrics), Gemini's resumption handle with when it was read and
which items it covers, the turn count and when the snapshot was taken. Not stored: userdata
and the agent's class name (no resume restores either, so a row would only hold them for a
reader of the database). The whole payload is sealed per call before it reaches the database
(envelope.py).

Rules for changing it (old and new releases read each other's rows during a rollout):
- never rename or retype a key; a key may stop being written only when every release still
  running gives it a default when reading (as userdata and agent have);
- bump PAYLOAD_VERSION when adding, and keep ``read_payload`` accepting every older version;
- a reader ignores keys it does not know, so an older release reads a newer row too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

PAYLOAD_VERSION = 2
OLDEST_READABLE_VERSION = 1


class UnreadableCheckpoint(ValueError):
    """The stored payload cannot be used (corrupt, or older than any release still reads)."""


@dataclass(frozen=True)
class Checkpoint:
    chat_ctx: Any
    """ChatContext.to_dict() of the session's history (livekit-agents 1.8.9 llm/chat_context.py);
    a snapshot taken on the call's event loop holds the ChatContext copy itself, turned into
    a dict by ``encode`` off that loop."""
    agent: str = ""
    """Class name of the session's current agent. Not stored (no resume uses it); read from
    rows of earlier releases."""
    userdata: Any = None
    """The session's userdata. Not stored: no resume restores it, and an application's userdata
    may hold anything about the caller (minimal data, issue 25)."""
    gemini_handle: str | None = None
    """Gemini Live session resumption handle (livekit-plugins-google 1.8.9 realtime_api.py)."""
    gemini_handle_at: float | None = None
    """Unix time the handle was read (a handle is valid for a limited time after it was issued)."""
    gemini_handle_items: list[str] | None = None
    """Ids of the conversation items the handle covers (version 2). A handle is offered only if
    it covers every stored item; rows without this list (version 1) replay the conversation."""
    turns: int = 0
    saved_at: float = field(default_factory=time.time)

    def to_payload(self) -> dict[str, Any]:
        chat_ctx = self.chat_ctx
        if not isinstance(chat_ctx, dict):
            chat_ctx = chat_ctx.to_dict(exclude_timestamp=False, exclude_metrics=True)
        payload = {name: getattr(self, name) for name in STORED_FIELDS}
        payload["chat_ctx"] = chat_ctx
        payload["v"] = PAYLOAD_VERSION
        return payload

    def handle_if_fresh(self, ttl_seconds: float, now: float | None = None) -> str | None:
        """The Gemini handle when it is younger than ``ttl_seconds`` (else the conversation is
        replayed from ``chat_ctx``)."""
        if not self.gemini_handle or self.gemini_handle_at is None or ttl_seconds <= 0:
            return None
        age = (time.time() if now is None else now) - self.gemini_handle_at
        return self.gemini_handle if 0 <= age < ttl_seconds else None


# What a resume reads (resume.py: restore, model_handle; the age in session_resumed).
STORED_FIELDS = ("chat_ctx", "gemini_handle", "gemini_handle_at", "gemini_handle_items", "turns",
                 "saved_at")


class UnstorableCheckpoint(ValueError):
    """This snapshot cannot become a row (not JSON): it is dropped, the next one may be stored."""


# PostgreSQL text and jsonb cannot hold U+0000 (jsonb refuses the escape \u0000 with
# SQLSTATE 22P05, untranslatable_character; PostgreSQL 16 docs, 8.14.1 "JSON Input and Output
# Syntax"). A transcript can carry one (a model's output, a tool's answer): it is replaced by
# U+FFFD, the Unicode replacement character, so the rest of the conversation is kept.
NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"


def encode(checkpoint: Checkpoint, cache: ItemCache | None = None) -> str:
    """The row's JSON text. CPU-bound (to_dict + JSON of an 800-item context took 34 ms on the
    loop, measured): the writer runs it in a thread, never on the call's event loop, and with a
    per-call ``ItemCache`` encodes only the items added since the last snapshot.
    Raises UnstorableCheckpoint."""
    try:
        chat_ctx = checkpoint.chat_ctx
        if not isinstance(chat_ctx, dict):
            items = (cache or ItemCache()).items_json(chat_ctx)
        else:
            items = [json.dumps(_scrub(item), allow_nan=False, separators=(",", ":"))
                     for item in chat_ctx.get("items", [])]
        payload = _scrub(Checkpoint.to_payload(dataclasses.replace(checkpoint, chat_ctx={})))
        payload["chat_ctx"] = {"items": "@"}  # placeholder, replaced by the encoded items
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
        return text.replace('{"items":"@"}', '{"items":[' + ",".join(items) + "]}", 1)
    except (TypeError, ValueError, RecursionError) as exc:
        raise UnstorableCheckpoint(f"{type(exc).__name__}: {exc}"[:200]) from exc


class ItemCache:
    """One call's encoded conversation items. livekit-agents 1.8.9 adds items to a context and
    does not change them afterwards (a changed message is a new item object), so an item's JSON
    is kept by (id, object identity) and only new items are encoded."""

    def __init__(self) -> None:
        self._encoded: dict[tuple[str, int], tuple[object, str]] = {}

    def items_json(self, chat_ctx: Any) -> list[str]:
        from livekit.agents import llm

        out: list[str] = []
        seen: dict[tuple[str, int], tuple[object, str]] = {}
        for item in chat_ctx.items:
            key = (str(getattr(item, "id", "")), id(item))
            cached = self._encoded.get(key)
            if cached is None:
                dumped = llm.ChatContext([item]).to_dict(exclude_timestamp=False, exclude_metrics=True)["items"]
                text = ",".join(json.dumps(_scrub(d), allow_nan=False, separators=(",", ":")) for d in dumped)
                cached = (item, text)  # the item is held so its id() cannot be reused meanwhile
            seen[key] = cached
            if cached[1]:
                out.append(cached[1])
        self._encoded = seen
        return out


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, NUL_REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {_scrub(k) if isinstance(k, str) else k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


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

