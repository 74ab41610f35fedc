"""How a call ends: each path says goodbye (or sorry) before the room is deleted.

| reason (``session_ended``) | when | what the caller hears |
|---|---|---|
| ``end_call`` | the model called ``end_call`` (persona.py, EndCallTool) | the model's goodbye |
| ``max_duration`` | AGENT_MAX_CALL_SECONDS reached | a warning AGENT_CALL_WARNING_SECONDS before, then a goodbye |
| ``silence_timeout`` | nobody spoke for AGENT_SILENCE_TIMEOUT_SECONDS | a goodbye |
| ``model_unavailable`` | every Gemini instance failed (model.py) | the apology clip (apology.py), no model needed |
| framework reasons | the caller left, the room was deleted, the job shut down | - |

In every path of ours the room is deleted afterwards (it disconnects every participant, a SIP
caller included), then the job ends. ``room_deleted`` is logged only when the server said so
(or said the room was already gone); otherwise ``room_delete_failed`` names the error: a SIP
caller may still be on the line, and the room lives on until the server's empty-room timeout. Silence uses the framework's own clock: livekit-agents
1.8.9 ``AgentSession(user_away_timeout=...)`` flips the user state to "away" after that long
with both sides quiet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit import api
from livekit.agents import AgentSession, CloseEvent, CloseReason, JobContext, UserStateChangedEvent

from .apology import play_apology
from .logs import log_event

END_CALL = "end_call"
MAX_DURATION = "max_duration"
SILENCE_TIMEOUT = "silence_timeout"
MODEL_UNAVAILABLE = "model_unavailable"
REASONS = (END_CALL, MAX_DURATION, SILENCE_TIMEOUT, MODEL_UNAVAILABLE)

WARNING_INSTRUCTIONS = (
    "Tell the caller in one short sentence that this call will end in about a minute because "
    "of the call time limit."
)
LIMIT_GOODBYE_INSTRUCTIONS = (
    "The call has reached its time limit. Say a short goodbye to the caller now."
)
SILENCE_GOODBYE_INSTRUCTIONS = (
    "The caller has been silent for a long time. Say a short goodbye to the caller now."
)
# A goodbye is one short sentence; past this the room is deleted anyway.
GOODBYE_TIMEOUT_SECONDS = 15.0
APOLOGY_TIMEOUT_SECONDS = 10.0
# DeleteRoom is one request to the server; a hung server must not hold the job open. (Against a
# self-hosted server livekit-api 1.8.9 makes one attempt, no failover: _failover.py.)
DELETE_ROOM_TIMEOUT_SECONDS = 10.0

logger = logging.getLogger("voice_agent.call_life")


class CallLife:
    """Owns the end of one call: the limit, the silence timeout and the model-failure path."""

    def __init__(
        self,
        ctx: JobContext,
        session: AgentSession[Any],
        *,
        max_call_seconds: float,
        warning_seconds: float,
        on_end: Any,
    ) -> None:
        self._ctx = ctx
        self._session = session
        self._max = max_call_seconds
        self._warning = warning_seconds
        self._on_end = on_end  # SessionTracker.end(reason, error=...)
        self._reason: str | None = None
        self._finished = False
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Task[None]] = set()
        session.on("user_state_changed", self._on_user_state)
        session.on("close", self._on_close)

    @property
    def reason(self) -> str | None:
        return self._reason

    def start(self) -> None:
        """Start the call clock (at session start, so the limit counts the whole call)."""
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.call_later(self._max - self._warning, self._warn),
            loop.call_later(
                self._max, self.end_with_goodbye, MAX_DURATION, LIMIT_GOODBYE_INSTRUCTIONS
            ),
        ]

    def end_call_requested(self) -> None:
        """The model called end_call; EndCallTool plays the goodbye and deletes the room."""
        if self._reason is None:
            self._reason = END_CALL
            self._cancel_timers()
            log_event("call_ending", "call ending", reason=END_CALL)

    def end_with_goodbye(self, reason: str, instructions: str) -> None:
        if self._reason is not None:
            return
        self._reason = reason
        self._cancel_timers()
        log_event("call_ending", "call ending", reason=reason)
        self._spawn(self._goodbye_then_close(reason, instructions))

    def _warn(self) -> None:
        if self._reason is not None:
            return
        log_event(
            "call_limit_warning",
            "call limit warning spoken",
            seconds_left=self._warning,
        )
        self._session.generate_reply(instructions=WARNING_INSTRUCTIONS)

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "away":
            self.end_with_goodbye(SILENCE_TIMEOUT, SILENCE_GOODBYE_INSTRUCTIONS)

    def _on_close(self, event: CloseEvent) -> None:
        self._cancel_timers()
        if self._reason is None and event.reason == CloseReason.ERROR:
            self._reason = MODEL_UNAVAILABLE
            log_event(
                "call_ending",
                "call ending: the model is unavailable",
                level=logging.WARNING,
                reason=MODEL_UNAVAILABLE,
            )
            self._spawn(self._apologise_then_close(event.error))
        elif self._reason == END_CALL:
            # EndCallTool's own close handler deletes the room and shuts the job down
            self._finished = True
            self._on_end(END_CALL)
        elif self._reason is None:
            # the caller left or the room went away: end the job now instead of idling in the
            # room until the server's empty-room timeout closes it
            self._finished = True
            self._on_end(event.reason.value, error=event.error)
            self._ctx.shutdown(reason=f"session closed: {event.reason.value}")
        # else: our goodbye is in flight and finishes the call itself

    async def _goodbye_then_close(self, reason: str, instructions: str) -> None:
        try:
            handle = self._session.generate_reply(
                instructions=instructions, allow_interruptions=False
            )
            await asyncio.wait_for(handle.wait_for_playout(), GOODBYE_TIMEOUT_SECONDS)
        except Exception as exc:  # the model may be gone: the room is deleted all the same
            logger.warning(
                "goodbye not played",
                extra={"event": "goodbye_failed", "reason": reason, "error": type(exc).__name__},
            )
        await self._finish(reason)

    async def _apologise_then_close(self, error: object) -> None:
        try:
            seconds = await asyncio.wait_for(
                play_apology(self._ctx.room), APOLOGY_TIMEOUT_SECONDS
            )
            log_event("apology_played", "apology played", seconds=round(seconds, 3))
        except Exception as exc:
            logger.warning(
                "apology not played",
                extra={"event": "apology_failed", "error": type(exc).__name__},
            )
        await self._finish(MODEL_UNAVAILABLE, error=getattr(error, "error", error))

    async def _finish(self, reason: str, *, error: object | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        self._on_end(reason, error=error)
        await delete_room(self._ctx, reason)
        self._ctx.shutdown(reason=reason)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []


async def delete_room(ctx: JobContext, reason: str) -> bool:
    """Delete the call's room; True when it is gone (deleted now, or already: NOT_FOUND).

    Not ``JobContext.delete_room``: livekit-agents 1.8.9 (job.py) swallows every error there and
    its future always succeeds, so a caller could hear nothing while our log said the room was
    deleted.
    """
    if ctx.is_fake_job():  # console mode: no server, no room to delete (as job.py does)
        return True
    try:
        await asyncio.wait_for(
            ctx.api.room.delete_room(api.DeleteRoomRequest(room=ctx.job.room.name)),
            DELETE_ROOM_TIMEOUT_SECONDS,
        )
    except api.TwirpError as exc:
        if exc.code != api.TwirpErrorCode.NOT_FOUND:
            _delete_failed(reason, exc)
            return False
        log_event("room_deleted", "room already gone", reason=reason, already_gone=True)
        return True
    except Exception as exc:  # transport errors, the timeout
        _delete_failed(reason, exc)
        return False
    log_event("room_deleted", "room deleted", reason=reason, already_gone=False)
    return True


def _delete_failed(reason: str, exc: BaseException) -> None:
    log_event(
        "room_delete_failed",
        "room not deleted",
        level=logging.WARNING,
        reason=reason,
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
