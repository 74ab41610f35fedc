"""The job side of a call's life under recovery: take the room over, restore, checkpoint, finish.

``CallRecovery`` is the only thing session.py talks to (a handful of hook lines). It decides:
- whether this job resumes a call (a watcher's re-dispatch carries a claim token in the job
  metadata; a job without one adopts a checkpoint whose lease has run out, which is what happens
  when LiveKit Cloud restarts a job by itself) or must leave because another job won the room;
- what the caller hears first: a short "I'm back" instead of a fresh greeting;
- which Gemini resumption handle is still worth offering (else the stored conversation is
  replayed into the new model session);
- when the checkpoint is written (every conversation item and every tool batch) and removed
  (whenever the job ends, unless it leaves a caller behind: see ``keep_after``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..logs import log_event
from . import store
from .checkpoints import CheckpointWriter
from .config import RecoverySettings
from .payload import Checkpoint, UnreadableCheckpoint, read_payload

logger = logging.getLogger("voice_agent.recovery")

METADATA_KEY = "voice_agent_recovery"
METADATA_VERSION = 1
RESUME_INSTRUCTIONS = (
    "The call was briefly interrupted by a technical problem and you are back. In one short "
    "sentence tell the caller you are back, then continue the conversation where it was; do not "
    "greet them again or repeat what was already said."
)
# Close reasons of livekit-agents 1.8.9 (voice/events.py CloseReason) that end a call on purpose:
# the caller left (participant_disconnected), the call was ended (user_initiated,
# task_completed), or the model failed and call_life.py apologised and ended it (error).
# Whatever the reason, a row is kept only while a caller is still in the room: only then is
# there a call to resume. A caller who drops off the network leaves with CONNECTION_TIMEOUT
# (livekit-server v1.13.5 ToDisconnectReason), which the framework does not treat as a close
# (voice/room_io/types.py DEFAULT_CLOSE_ON_DISCONNECT_REASONS): the room empties and the job
# ends with job_shutdown, caller gone, so the row goes.
ENDED_REASONS = frozenset({"participant_disconnected", "user_initiated", "task_completed", "error"})
# Participant kinds that are a call's callers, as livekit-agents 1.8.9 counts them
# (job.py DEFAULT_PARTICIPANT_KINDS: standard, SIP, connector; ingress, egress and agents are
# not callers). Values of livekit.protocol ParticipantInfo.Kind and rtc.ParticipantKind alike.
CALLER_KINDS = frozenset({0, 3, 7})


# The job's liveness as the room sees it, apart from the database: a participant attribute
# holding the Unix time until which the job vouches for itself (now + one lease), refreshed
# every heartbeat whatever the database does. A watcher that finds a lease run out reads it
# from ListParticipants and leaves alone an agent whose own database path failed but who is
# alive. A SIGKILLed job's value stops where its database lease stopped, so a dead agent is
# not recovered later than before. Pod clocks are NTP-synchronised (GKE nodes use the metadata
# server's NTP); the comparison allows no slack beyond that.
LIVENESS_ATTRIBUTE = "voice_agent.alive_until"


def alive_until(attributes: Any) -> float:
    try:
        return float(attributes.get(LIVENESS_ATTRIBUTE, "0") or 0)
    except (TypeError, ValueError):
        return 0.0


# The items Gemini holds in its own session state (what a handle covers); instructions and
# config updates are not stored in a checkpoint at all.
GEMINI_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output"})


def keep_after(close_reason: str | None, caller_present: bool) -> bool:
    """Whether a job that ends keeps its call's row for a replacement (else deletes it)."""
    return caller_present and close_reason not in ENDED_REASONS


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
                 room: str, job_id: str, room_sid: str = "") -> None:
        self._settings = settings
        self._writer = writer
        self._room, self._job_id, self._room_sid = room, job_id, room_sid
        self._room_obj: Any = None
        self._vouching: asyncio.Task[None] | None = None
        self._vouch_failed = False
        self.resumed: Checkpoint | None = None
        self.superseded = False
        self._session: Any = None
        self._turns = 0
        self._close_reason: str | None = None
        self._handle: tuple[str | None, float | None, list[str] | None] = (None, None, None)

    # ----------------------------------------------------------------- before the session
    async def take_over(self, metadata: str | None) -> None:
        token = claim_token_from(metadata)
        if token is None:
            # a reused room name is a new call: the previous instance's row goes
            await self._writer.forget_stale()
        stored = await self._writer.take_over(token)
        # renew a taken-over lease from now on: a cold job may need longer than one lease to
        # start its session, and a lapse would let a watcher dispatch a second replacement
        self._writer.start()
        if stored is None and token is None:
            stored = await self._adopt_after_lease()
        if stored is None:
            holder = await self._writer.lease_holder() if token is not None else None
            if holder is not None and holder[0] != self._job_id:
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
        if not self._writer.may_adopt():
            return None  # nothing to prove this is the same call with: start fresh
        await asyncio.sleep(max(0.0, holder[1]) + 0.05)
        return await self._writer.take_over(None)

    def model_handle(self) -> str | None:
        """The stored Gemini handle, when it is young enough and covers every stored item (then
        Gemini holds the whole conversation and nothing is replayed; an item the handle does not
        cover would be lost, so then the conversation is replayed into a new session instead)."""
        if self.resumed is None:
            return None
        handle = self.resumed.handle_if_fresh(self._settings.handle_ttl_seconds)
        covered = self.resumed.gemini_handle_items
        if handle is None or covered is None:
            return None
        stored = {item.get("id") for item in self.resumed.chat_ctx.get("items", [])
                  if item.get("type") in GEMINI_ITEM_TYPES}
        return handle if stored <= set(covered) else None

    async def restore(self, agent: Any) -> None:
        """Put the stored conversation into the agent before the session starts."""
        if self.resumed is None:
            return
        from livekit.agents import llm

        chat_ctx = llm.ChatContext.from_dict(self.resumed.chat_ctx)
        await agent.update_chat_ctx(chat_ctx)
        self._turns = self.resumed.turns
        if self.model_handle() is not None:
            self._handle = (self.resumed.gemini_handle, self.resumed.gemini_handle_at,
                            self.resumed.gemini_handle_items)
        log_event("session_resumed", "call resumed from its checkpoint", room=self._room,
                  job_id=self._job_id, restored_items=len(chat_ctx.items),
                  gemini_handle=self.model_handle() is not None,
                  checkpoint_age_seconds=round(time.time() - self.resumed.saved_at, 3))

    async def started(self, ctx: Any, session: Any) -> None:
        """Right after ``session.start`` (the conversation was restored into the agent before
        it, ``restore``): start checkpointing, and settle the checkpoint when the job ends."""
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

    def vouch(self) -> None:
        """Refresh LIVENESS_ATTRIBUTE every heartbeat until the job ends (never raises)."""
        if self._room_obj is not None and self._vouching is None:
            self._vouching = asyncio.get_running_loop().create_task(self._vouch_loop(),
                                                                    name="voice_agent_liveness")

    async def _vouch_loop(self) -> None:
        lease, beat = self._settings.lease_seconds, self._settings.heartbeat_seconds
        while True:
            try:
                await asyncio.wait_for(self._room_obj.local_participant.set_attributes(
                    {LIVENESS_ATTRIBUTE: f"{time.time() + lease:.3f}"}), lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database lease still counts
                if not self._vouch_failed:  # once per job: the first failure says why
                    self._vouch_failed = True
                    log_event("liveness_attribute_failed",
                              "could not vouch for this job in the room; only the database lease counts",
                              level=logging.WARNING, job_id=self._job_id,
                              error=f"{type(exc).__name__}: {exc}"[:200])
            self._snapshot_if_new_handle()
            await asyncio.sleep(beat)

    def _snapshot_if_new_handle(self) -> None:
        """Gemini issues a handle after a turn, later than the turn's items reach the context:
        without this the stored handle would always lag the stored conversation by one turn."""
        if self._session is None:
            return
        try:
            rt_session = gemini_session(self._session.current_agent.realtime_llm_session)
        except Exception:  # noqa: BLE001 - no realtime session (yet)
            return
        handle = getattr(rt_session, "session_resumption_handle", None)
        if isinstance(handle, str) and handle and handle != self._handle[0]:
            self._snapshot(turn=False)

    async def finish(self, _shutdown_reason: str = "") -> None:
        if self._vouching is not None:
            self._vouching.cancel()
        keep = keep_after(self._close_reason, bool(callers_in(self._room_obj)))
        await self._writer.finish(ended_normally=not keep)

    def _snapshot(self, *, turn: bool) -> None:
        try:
            self._turns += int(turn)
            self._writer.set_callers(tuple(store.caller_hash(self._room_sid, identity)
                                           for identity in callers_in(self._room_obj)))
            self._writer.submit(self._checkpoint())
        except Exception:  # noqa: BLE001 - a snapshot must never break the call
            logger.exception("checkpoint snapshot failed", extra={"event": "checkpoint_snapshot_failed"})

    def _checkpoint(self) -> Checkpoint:
        session = self._session
        agent = session.current_agent
        # the agent's context holds the restored conversation plus this job's items; the
        # session's history only this job's. Only the copy is made here (a list of references);
        # to_dict and JSON run in the writer's thread (payload.encode)
        chat_ctx = agent.chat_ctx.copy(exclude_instructions=True, exclude_config_update=True)
        handle, handle_at, handle_items = self._gemini_handle(agent)
        return Checkpoint(
            chat_ctx=chat_ctx,
            agent=type(agent).__name__,
            userdata=_userdata(session),
            gemini_handle=handle,
            gemini_handle_at=handle_at,
            gemini_handle_items=handle_items,
            turns=self._turns,
        )

    def _gemini_handle(self, agent: Any) -> tuple[str | None, float | None, list[str] | None]:
        """livekit-plugins-google 1.8.9 RealtimeSession.session_resumption_handle (public, memory
        only), when it was read, and the ids of the items it covers: the plugin keeps the
        context as it stood when Gemini issued the handle (``_resumption_chat_ctx``, set in
        realtime_api.py on a resumable sessionResumptionUpdate; no public accessor, pinned by
        tests/test_recovery_unit.py). Without that list the handle is never offered."""
        try:
            rt_session = gemini_session(agent.realtime_llm_session)
        except RuntimeError:
            return None, None, None
        handle = getattr(rt_session, "session_resumption_handle", None)
        if not isinstance(handle, str) or not handle:
            return None, None, None
        if handle != self._handle[0]:
            covered = getattr(rt_session, "_resumption_chat_ctx", None)
            ids = [item.id for item in covered.items] if covered is not None else None
            self._handle = (handle, time.time(), ids)
        return self._handle


def gemini_session(rt_session: Any) -> Any:
    """The plugin's own RealtimeSession behind the session the agent holds.

    model.py wraps the Gemini instances in livekit-agents 1.8.9 ``RealtimeModelFallbackAdapter``
    whenever there is more than one (the default: AGENT_GEMINI_CONNECT_RETRIES=2), and the
    adapter's ``_FallbackRealtimeSession`` forwards events and calls but exposes neither
    ``session_resumption_handle`` nor ``_resumption_chat_ctx``: read through it, every
    checkpoint stored no handle at all (issue 25). Its live child is ``_active``
    (llm/realtime_fallback_adapter.py, no public accessor; pinned by
    tests/test_recovery_unit.py). A bare plugin session is returned as it is."""
    from livekit.agents.llm.realtime_fallback_adapter import _FallbackRealtimeSession

    if isinstance(rt_session, _FallbackRealtimeSession):
        return rt_session._active
    return rt_session


def callers_in(room: Any) -> list[str]:
    """Identities of the callers (CALLER_KINDS) in the job's room, as this job sees it."""
    if room is None:
        return []
    try:
        return sorted(p.identity for p in room.remote_participants.values()
                      if int(p.kind) in CALLER_KINDS)
    except Exception:  # noqa: BLE001 - a room already torn down
        return []


def _userdata(session: Any) -> object:
    try:
        return session.userdata
    except ValueError:  # livekit-agents 1.8.9: raised when no userdata was set
        return None


class NoRecovery:
    """Crash recovery turned off (no AGENT_CHECKPOINT_DSN): every hook does nothing."""

    superseded = False
    resumed = None

    def model_handle(self) -> str | None:
        return None

    async def restore(self, agent: Any) -> None:
        return None

    async def started(self, ctx: Any, session: Any) -> None:
        return None

    def opening(self, greeting: str) -> str:
        return greeting


async def begin(ctx: Any, settings: RecoverySettings) -> CallRecovery | NoRecovery:
    """Before the session: the job's recovery, having taken the room over if it resumes a call."""
    if not settings.enabled:
        return NoRecovery()
    room, job_id = ctx.job.room.name, ctx.job.id
    # the call is the room instance and its callers: connect first (the framework would on
    # session.start; connect is idempotent in livekit-agents 1.8.9 JobContext.connect) so the
    # callers already in the room (a restarted job's) are known before anything is adopted
    await ctx.connect()
    room_sid = ctx.job.room.sid or await _room_sid(ctx)
    callers = tuple(store.caller_hash(room_sid, i) for i in callers_in(ctx.room))
    writer = CheckpointWriter(settings, room=room, job_id=job_id, agent_identity=_identity(ctx),
                              agent_name=ctx.job.agent_name, room_sid=room_sid, callers=callers)
    recovery = CallRecovery(settings, writer, room=room, job_id=job_id, room_sid=room_sid)
    recovery._room_obj = ctx.room
    recovery.vouch()
    await recovery.take_over(ctx.job.metadata)
    return recovery


async def _room_sid(ctx: Any) -> str:
    try:
        return str(await ctx.room.sid)
    except Exception:  # noqa: BLE001 - unknown: nothing will be adopted without a claim token
        return ""


def _identity(ctx: Any) -> str:
    """The agent's participant identity in the room (from the job's token; livekit-agents 1.8.9
    JobContext.local_participant_identity), so a watcher can remove it if it lingers."""
    try:
        return str(ctx.local_participant_identity)
    except Exception:  # noqa: BLE001 - the framework's default identity scheme
        return f"agent-{ctx.job.id}"
