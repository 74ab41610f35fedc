"""The job side of a call's life under recovery: take the room over, restore, checkpoint, finish.

``CallRecovery`` is the only thing session.py talks to (a handful of hook lines). It decides:
- whether this job resumes a call (a watcher's re-dispatch carries a claim token in the job
  metadata; a job without one adopts a checkpoint whose lease has run out, which is what happens
  when LiveKit Cloud restarts a job by itself) or must leave because another job won the room;
- what the caller hears first: a short "I'm back" instead of a fresh greeting;
- which Gemini resumption handle is still worth offering (else the stored conversation is
  replayed into the new model session);
- when the checkpoint is written (every conversation item and every tool batch) and removed
  (only when the call ended normally).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..logs import log_event
from .checkpoints import CheckpointWriter
from .config import RecoverySettings
from .payload import Checkpoint, UnreadableCheckpoint, read_payload, userdata_as_dict

logger = logging.getLogger("voice_agent.recovery")

METADATA_KEY = "voice_agent_recovery"
METADATA_VERSION = 1
RESUME_INSTRUCTIONS = (
    "The call was briefly interrupted by a technical problem and you are back. In one short "
    "sentence tell the caller you are back, then continue the conversation where it was; do not "
    "greet them again or repeat what was already said."
)
# Close reasons of livekit-agents 1.8.9 (voice/events.py CloseReason) that end a call for good;
# after any other (error, job_shutdown) the caller may still be there and the call recoverable.
NORMAL_END_REASONS = frozenset({"participant_disconnected", "user_initiated", "task_completed"})


def recovery_metadata(token: str) -> str:
    """The dispatch metadata a watcher sends (JSON; additive, versioned)."""
    return json.dumps({METADATA_KEY: {"v": METADATA_VERSION, "claim": token}})


def claim_token_from(metadata: str | None) -> str | None:
    if not metadata:
        return None
    try:
        value = json.loads(metadata)
    except ValueError:
        return None  # a backend's own non-JSON metadata: not a recovery dispatch
    section = value.get(METADATA_KEY) if isinstance(value, dict) else None
    token = section.get("claim") if isinstance(section, dict) else None
    return token if isinstance(token, str) and token else None


class CallRecovery:
    def __init__(self, settings: RecoverySettings, writer: CheckpointWriter, *,
                 room: str, job_id: str) -> None:
        self._settings = settings
        self._writer = writer
        self._room, self._job_id = room, job_id
        self.resumed: Checkpoint | None = None
        self.superseded = False
        self._session: Any = None
        self._turns = 0
        self._close_reason: str | None = None
        self._handle: tuple[str | None, float | None] = (None, None)

    # ----------------------------------------------------------------- before the session
    async def take_over(self, metadata: str | None) -> None:
        token = claim_token_from(metadata)
        stored = await self._writer.take_over(token)
        # renew a taken-over lease from now on: a cold job may need longer than one lease to
        # start its session, and a lapse would let a watcher dispatch a second replacement
        self._writer.start()
        if stored is None and token is None:
            stored = await self._adopt_after_lease()
        if stored is None:
            if token is not None and await self._writer.lease_holder() is not None:
                # another job took the room (a newer claim won): this job must not join
                self.superseded = True
                log_event("recovery_superseded", "a newer recovery owns this room; leaving",
                          level=logging.WARNING, room=self._room, job_id=self._job_id)
                await self._writer.finish(ended_normally=False)
            return
        try:
            self.resumed = read_payload(stored.payload_version, stored.payload)
        except UnreadableCheckpoint as exc:
            log_event("checkpoint_unreadable", "stored checkpoint unusable; starting fresh",
                      level=logging.WARNING, room=self._room, job_id=self._job_id, error=str(exc))

    async def _adopt_after_lease(self) -> Any:
        """A job the platform restarted (LiveKit Cloud) may start before the dead job's lease ran
        out: wait for that lease once (bounded by one lease), then adopt."""
        holder = await self._writer.lease_holder()
        if holder is None or holder[0] == self._job_id or holder[1] > self._settings.lease_seconds:
            return None
        await asyncio.sleep(max(0.0, holder[1]) + 0.05)
        return await self._writer.take_over(None)

    def model_handle(self) -> str | None:
        if self.resumed is None:
            return None
        return self.resumed.handle_if_fresh(self._settings.handle_ttl_seconds)

    async def restore(self, agent: Any) -> None:
        """Put the stored conversation into the agent before the session starts."""
        if self.resumed is None:
            return
        from livekit.agents import llm

        chat_ctx = llm.ChatContext.from_dict(self.resumed.chat_ctx)
        await agent.update_chat_ctx(chat_ctx)
        self._turns = self.resumed.turns
        if self.model_handle() is not None:
            self._handle = (self.resumed.gemini_handle, self.resumed.gemini_handle_at)
        log_event("session_resumed", "call resumed from its checkpoint", room=self._room,
                  job_id=self._job_id, restored_items=len(chat_ctx.items),
                  gemini_handle=self.model_handle() is not None,
                  checkpoint_age_seconds=round(time.time() - self.resumed.saved_at, 3))

    async def started(self, ctx: Any, session: Any) -> None:
        """Right after ``session.start``: restore the conversation into the running agent (the
        realtime session gets it too: replayed to the model unless a handle restores it), start
        checkpointing, and settle the checkpoint when the job ends."""
        await self.restore(session.current_agent)
        session.on("close", lambda event: self.closed(event.reason.value))
        ctx.add_shutdown_callback(self.finish)
        self.attach(session)

    def opening(self, greeting: str) -> str:
        return RESUME_INSTRUCTIONS if self.resumed is not None else greeting

    # ----------------------------------------------------------------- during the session
    def attach(self, session: Any) -> None:
        """Checkpoint after every conversation item and tool batch, and right away (so the call
        is recoverable before its first turn)."""
        self._session = session
        session.on("conversation_item_added", lambda _ev: self._snapshot(turn=True))
        session.on("function_tools_executed", lambda _ev: self._snapshot(turn=False))
        self._writer.start()
        self._snapshot(turn=False)

    def closed(self, reason: str) -> None:
        self._close_reason = reason

    async def finish(self, _shutdown_reason: str = "") -> None:
        await self._writer.finish(ended_normally=self._close_reason in NORMAL_END_REASONS)

    def _snapshot(self, *, turn: bool) -> None:
        try:
            self._turns += int(turn)
            self._writer.submit(self._checkpoint())
        except Exception:  # noqa: BLE001 - a snapshot must never break the call
            logger.exception("checkpoint snapshot failed", extra={"event": "checkpoint_snapshot_failed"})

    def _checkpoint(self) -> Checkpoint:
        session = self._session
        agent = session.current_agent
        # the agent's context holds the restored conversation plus this job's items; the
        # session's history only this job's
        chat_ctx = agent.chat_ctx.copy(exclude_instructions=True, exclude_config_update=True)
        handle, handle_at = self._gemini_handle(agent)
        return Checkpoint(
            chat_ctx=chat_ctx.to_dict(exclude_timestamp=False),
            agent=type(agent).__name__,
            userdata=userdata_as_dict(_userdata(session)),
            gemini_handle=handle,
            gemini_handle_at=handle_at,
            turns=self._turns,
        )

    def _gemini_handle(self, agent: Any) -> tuple[str | None, float | None]:
        """livekit-plugins-google 1.8.9 RealtimeSession.session_resumption_handle (memory only)."""
        try:
            rt_session = agent.realtime_llm_session
        except RuntimeError:
            return None, None
        handle = getattr(rt_session, "session_resumption_handle", None)
        if not isinstance(handle, str) or not handle:
            return None, None
        if handle != self._handle[0]:
            self._handle = (handle, time.time())
        return self._handle

    def offer_handle(self, realtime_model: Any) -> bool:
        """Give a fresh stored Gemini handle to the new model before its session exists.

        livekit-plugins-google 1.8.9 reads ``RealtimeModel._opts.session_resumption`` when a
        session is created (realtime_api.py, RealtimeSession.__init__) and has no public setter;
        tests/test_recovery_unit.py pins this against the installed plugin."""
        handle = self.model_handle()
        # behind livekit-agents 1.8.9's RealtimeModelFallbackAdapter the primary (first) model
        # is the one whose Gemini session the handle belongs to (realtime_fallback_adapter.py)
        primary = (getattr(realtime_model, "_models", None) or [realtime_model])[0]
        opts = getattr(primary, "_opts", None)
        if handle is None or opts is None or not hasattr(opts, "session_resumption"):
            return False
        from google.genai import types

        opts.session_resumption = types.SessionResumptionConfig(handle=handle)
        return True


def _userdata(session: Any) -> object:
    try:
        return session.userdata
    except ValueError:  # livekit-agents 1.8.9: raised when no userdata was set
        return None


class NoRecovery:
    """Crash recovery turned off (no AGENT_CHECKPOINT_DSN): every hook does nothing."""

    superseded = False
    resumed = None

    def offer_handle(self, realtime_model: Any) -> bool:
        return False

    async def started(self, ctx: Any, session: Any) -> None:
        return None

    def opening(self, greeting: str) -> str:
        return greeting


async def begin(ctx: Any, settings: RecoverySettings) -> CallRecovery | NoRecovery:
    """Before the session: the job's recovery, having taken the room over if it resumes a call."""
    if not settings.enabled:
        return NoRecovery()
    room, job_id = ctx.job.room.name, ctx.job.id
    writer = CheckpointWriter(settings, room=room, job_id=job_id,
                              agent_identity=_identity(ctx), agent_name=ctx.job.agent_name)
    recovery = CallRecovery(settings, writer, room=room, job_id=job_id)
    await recovery.take_over(ctx.job.metadata)
    return recovery


def _identity(ctx: Any) -> str:
    """The agent's participant identity in the room (from the job's token; livekit-agents 1.8.9
    JobContext.local_participant_identity), so a watcher can remove it if it lingers."""
    try:
        return str(ctx.local_participant_identity)
    except Exception:  # noqa: BLE001 - the framework's default identity scheme
        return f"agent-{ctx.job.id}"
