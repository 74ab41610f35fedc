"""What runs for each job: prewarm (once per job process), the job request, the session.

``prewarm`` and ``entrypoint`` run in job processes (one process per job; livekit-agents
forks them from a forkserver), ``on_request`` runs in the worker process. Job processes
ignore SIGTERM by design; the worker process owns the drain.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import replace
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, JobContext, JobProcess, JobRequest, llm

# google is imported for its side effect: a plugin registered in the worker process is
# preloaded in the forkserver, so job processes do not import it at every session start.
from livekit.plugins import google, silero  # noqa: F401

from . import call_usage, model, persona_api, tools_mcp
from .call_life import CallLife
from .logs import log_event
from .privacy import CALL_IDS_HINT
from .recovery import resume
from .settings import AgentSettings, load_job_process_settings

SETTINGS_KEY = "settings"
VAD_KEY = "vad"
PERSONA_KEY = "persona"
PRICES_KEY = "model_prices"


def prewarm(proc: JobProcess) -> None:
    """Load Silero VAD once per job process, before a job is assigned to it.

    The ONNX model ships inside the livekit-plugins-silero wheel: nothing is downloaded here.
    Settings were validated by the worker process at start; job processes inherit its
    environment (with the credentials the framework exported), so parsing again cannot fail
    differently.
    """
    proc.userdata[SETTINGS_KEY] = load_job_process_settings(os.environ)
    proc.userdata[VAD_KEY] = silero.VAD.load()
    # AGENT_PERSONA was imported and checked by the worker process at start (worker.run)
    proc.userdata[PERSONA_KEY] = persona_api.load_persona(proc.userdata[SETTINGS_KEY].persona)
    proc.userdata[PRICES_KEY] = _model_prices()


def _model_prices() -> dict[str, float] | None:
    """AGENT_MODEL_PRICES only feeds the cost estimate on session_ended: a bad value costs the
    estimate (one error line per job process), never the call."""
    try:
        return call_usage.model_prices_from_env(os.environ)
    except ValueError as exc:
        log_event("model_prices_invalid", str(exc), level=logging.ERROR)
        return None


async def on_request(request: JobRequest) -> None:
    """Accept every job the server offers; the framework already refuses while full/draining."""
    await request.accept()
    log_event(
        "job_accepted",
        "job accepted",
        job_id=request.id,
        room=request.room.name,
        room_id=request.room.sid,
    )


async def entrypoint(ctx: JobContext) -> None:
    """Run one voice session in the job's room until the caller leaves or the room ends."""
    settings: AgentSettings = ctx.proc.userdata[SETTINGS_KEY]
    session_id = uuid.uuid4().hex[:16]
    # the framework stamps these on every record this job process logs, its own included
    ctx.log_context_fields = session_log_fields(ctx, session_id)
    hint_participant_ids(ctx)
    tracker = SessionTracker(session_id=session_id, job_id=ctx.job.id)
    tracker.usage = call_usage.CallUsage(prices=ctx.proc.userdata.get(PRICES_KEY))

    # crash recovery (recovery/resume.py): take the room's checkpoint over, or leave if a newer
    # replacement owns the room
    recovery = await resume.begin(ctx, settings.recovery)
    if recovery.superseded:
        ctx.shutdown(reason="recovery superseded")
        return
    persona: persona_api.Persona = ctx.proc.userdata[PERSONA_KEY]
    voice = persona_api.voice_for(persona, settings.voice)
    handle = recovery.model_handle()
    # the Gemini handle of a crashed job, when still good, through the public constructor
    # (the in-process test seam takes settings only: no handle, no argument)
    realtime_model = (model.build_realtime_model(replace(settings, voice=voice)) if handle is None
                      else model.build_realtime_model(replace(settings, voice=voice), resume_handle=handle))
    watch_model_switches(realtime_model, tracker)
    session: AgentSession[Any] = AgentSession(
        llm=realtime_model,
        vad=ctx.proc.userdata[VAD_KEY],
        # the framework's "away" clock is the silence timeout (call_life.py)
        user_away_timeout=float(settings.silence_timeout_seconds),
    )
    call_usage.watch_call(session, tracker.usage)
    call = CallLife(
        ctx,
        session,
        max_call_seconds=settings.max_call_seconds,
        warning_seconds=settings.call_warning_seconds,
        on_end=tracker.end,
    )

    async def _on_job_shutdown(reason: str) -> None:
        tracker.end(f"job shutdown: {reason}")

    ctx.add_shutdown_callback(_on_job_shutdown)

    agent = persona_api.VoiceAssistant(
        persona,
        on_end_call=call.end_call_requested,
        remote_tools=tools_mcp.tool_server_toolsets(settings),
    )
    # a resumed call's conversation goes into the agent before its session starts, so the
    # realtime session receives it before it connects (with a handle: nothing is replayed)
    await recovery.restore(agent)
    # record=False: self-hosted, no LiveKit Cloud upload, and nothing written to disk
    await session.start(agent=agent, room=ctx.room, record=False)
    tracker.begin(participants=len(ctx.room.remote_participants))
    call.start()
    await recovery.started(ctx, session)
    session.generate_reply(instructions=persona_api.opening(persona, recovery))


def watch_model_switches(realtime_model: llm.RealtimeModel, tracker: SessionTracker) -> None:
    """Log each Gemini instance taken out of (or back into) rotation by the fallback adapter."""
    if not isinstance(realtime_model, llm.RealtimeModelFallbackAdapter):
        return

    def _on_change(event: Any) -> None:
        options = getattr(event.realtime_model, "_opts", None)
        if not event.available:
            tracker.model_switches += 1
        log_event(
            "model_availability_changed",
            "Gemini instance available" if event.available else "Gemini instance failed",
            level=logging.INFO if event.available else logging.WARNING,
            available=event.available,
            location=getattr(options, "location", None),
            model=getattr(event.realtime_model, "model", None),
        )

    realtime_model.on("realtime_availability_changed", _on_change)


def session_log_fields(ctx: JobContext, session_id: str) -> dict[str, Any]:
    """Fields every log line of this job carries; trace_id only when a real span is active."""
    fields: dict[str, Any] = {
        "room": ctx.job.room.name,
        "room_id": ctx.job.room.sid,
        "job_id": ctx.job.id,
        "session_id": session_id,
        # never printed: the formatter finds these in free text too (privacy.py)
        CALL_IDS_HINT: [ctx.job.room.name],
    }
    fields.update(_current_trace_ids())
    return fields


# participant attributes LiveKit SIP sets that carry a phone number (LiveKit docs, "SIP
# participant attributes"); the identity of a SIP caller is sip_<number> by default
_PHONE_ATTRIBUTES = ("sip.phoneNumber", "sip.trunkPhoneNumber")


def hint_participant_ids(ctx: JobContext) -> None:
    """Add each participant's identity and phone numbers to the job's call-id hints, so the
    worker's formatter removes them from the framework's free text (job.py 1.8.9 names a
    participant's identity in its messages) as well as from fields."""
    hints: list[str] = ctx.log_context_fields[CALL_IDS_HINT]

    def add(participant: rtc.Participant) -> None:
        for value in (participant.identity, *(participant.attributes.get(a) for a in _PHONE_ATTRIBUTES)):
            if value and value not in hints:
                hints.append(value)

    ctx.room.on("participant_connected", add)
    ctx.room.on("participant_attributes_changed", lambda _changed, participant: add(participant))
    for participant in ctx.room.remote_participants.values():
        add(participant)


def _current_trace_ids() -> dict[str, str]:
    """OpenTelemetry ids of the job's span, if a tracer provider is configured (else none)."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class SessionTracker:
    """Emits the session_started / session_ended lifecycle lines exactly once each.

    The worker process turns these lines into the session metrics (see metrics.py).
    """

    def __init__(self, *, session_id: str, job_id: str) -> None:
        self._session_id = session_id
        self._job_id = job_id
        self._started_at: float | None = None
        self._ended = False
        # Gemini instances that failed during this call (model.py's retries and fallback)
        self.model_switches = 0
        # tokens, interruptions and answer times of this call (call_usage.py)
        self.usage = call_usage.CallUsage()

    def begin(self, **fields: Any) -> None:
        self._started_at = time.monotonic()
        log_event(
            "session_started",
            "session started",
            session_id=self._session_id,
            job_id=self._job_id,
            **fields,
        )

    def end(self, reason: str, *, error: object | None = None) -> None:
        if self._started_at is None or self._ended:
            return
        self._ended = True
        duration = time.monotonic() - self._started_at
        fields: dict[str, Any] = {
            "session_id": self._session_id,
            "job_id": self._job_id,
            "reason": reason,
            "duration_seconds": round(duration, 3),
            "model_switches": self.model_switches,
            **self.usage.ended_fields(),
        }
        if error is not None:
            fields["error"] = str(error)
        log_event("session_ended", "session ended", **fields)
