"""Call-life scenarios, shared by tests/test_call_life.py and bench/call_life.py.

Each scenario runs the real worker (contract command), the real livekit-server, a real rtc
caller, and the real Gemini plugin + google-genai + google-auth against the network stand-ins
in tests/fakes (the Live API server and the metadata server). Only Google is imitated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes import google_stand_ins
from fakes.gemini_live import (
    GOODBYE_HZ,
    GREETING_HZ,
    REPLY_HZ,
    WARNING_HZ,
    Behaviour,
    FakeGeminiLive,
)
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.talking_caller import TalkingCaller, join_talking_caller
from helpers.worker_process import PLAIN_CALL_IDS, WorkerProcess, contract_argv, registered_worker, worker_env
from livekit import rtc

from voice_agent.apology import NOTES_HZ

ROOM_DELETED = rtc.DisconnectReason.ROOM_DELETED
# Share of the goodbye the caller must hear: the frames at the tone's two edges mix in silence
# (measured 0.47-0.50 s of 0.5 s on an idle machine); a room deleted mid-goodbye leaves less.
GOODBYE_HEARD = 0.8


@dataclass
class Outcome:
    name: str
    caller: TalkingCaller
    worker_lines: list[dict[str, Any]]
    raw_lines: list[str]
    live: FakeGeminiLive
    ended: dict[str, Any] | None
    rooms_after: list[str]
    room: str
    facts: dict[str, Any] = field(default_factory=dict)

    def heard(self, hz: float) -> int:
        return len(self.caller.heard_near(hz))

    def last_heard(self, hz: float) -> float | None:
        near = self.caller.heard_near(hz)
        return near[-1].at if near else None

    def heard_seconds(self, hz: float) -> float:
        """How much of a tone reached the caller. A frame's pitch is its zero crossings over its
        length, so it is off by up to one crossing, 1/(2 x length) Hz (50 Hz for 10 ms frames:
        660 Hz reads as 650 or 700); tones of ours lie further apart than that."""
        return sum(h.seconds for h in self.caller.heard if h.seconds and abs(h.hz - hz) <= 1 / (2 * h.seconds))

    def goodbye_before_room_closed(self) -> bool:
        """The whole goodbye reached the caller, then the room closed. Audio arrives only while
        the caller is connected, so a goodbye heard in full was played before the close. (Not
        by timestamps: the listener stamps a frame when it gets to it, and under CI load its
        backlog is still being read after the disconnect event has run; CI once saw that.)"""
        spoken = self.live.behaviour.reply_seconds
        return self.caller.disconnected_at is not None and self.heard_seconds(GOODBYE_HZ) >= GOODBYE_HEARD * spoken

    def room_deleted(self) -> bool:
        return self.caller.disconnect_reason == ROOM_DELETED and self.room not in self.rooms_after


def run_scenario(
    server: LiveKitServer,
    workdir: Path,
    name: str,
    *,
    behaviour: Behaviour,
    env: dict[str, str] | None = None,
    talking: bool = True,
    hang_up_after: float | None = None,
    wait_for_end: float = 60.0,
    during: Callable[[FakeGeminiLive], None] | None = None,
) -> Outcome:
    """One call in room ``name``: caller joins, talks, and either hangs up after
    ``hang_up_after`` seconds or waits (up to ``wait_for_end``) for the agent to end the call."""
    workdir.mkdir(parents=True, exist_ok=True)
    with google_stand_ins(workdir, behaviour) as (live, google_env):
        worker_vars = {
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            **google_env,
            **(env or {}),
        }
        process_env = worker_env(server, fake_gemini=False, extra={**PLAIN_CALL_IDS, **worker_vars})
        with registered_worker(contract_argv(), process_env, log_path=workdir / "worker.log") as worker:
            caller, rooms_after = asyncio.run(
                _call(server, worker, name, talking, hang_up_after, wait_for_end)
            )
            ended = _ended(worker, name)
            if during is not None:
                during(live)
            return Outcome(
                name=name,
                caller=caller,
                worker_lines=list(worker.lines),
                raw_lines=list(worker.raw_lines),
                live=live,
                ended=ended,
                rooms_after=rooms_after,
                room=name,
            )


def _ended(worker: WorkerProcess, room: str) -> dict[str, Any] | None:
    started = [line for line in worker.events("session_started") if line.get("room") == room]
    if not started:
        return None
    try:
        return worker.wait_for_event(
            "session_ended", 30.0, session_id=started[0]["session_id"]
        )
    except AssertionError:
        return None


async def _call(
    server: LiveKitServer,
    worker: WorkerProcess,
    room: str,
    talking: bool,
    hang_up_after: float | None,
    wait_for_end: float,
) -> tuple[TalkingCaller, list[str]]:
    await participant.create_room(server, room)
    caller = await join_talking_caller(server, room, f"caller-{room}", talking=talking)
    try:
        await asyncio.wait_for(caller.agent_joined.wait(), 30)
        if hang_up_after is not None:
            await asyncio.sleep(hang_up_after)
        else:
            await asyncio.wait_for(caller.gone.wait(), wait_for_end)
    finally:
        await caller.leave()
    # the server drops a deleted room at once; give it a moment to settle either way
    await asyncio.sleep(0.5)
    return caller, await participant.list_room_names(server)


def events(outcome: Outcome, event: str) -> list[dict[str, Any]]:
    return [line for line in outcome.worker_lines if line.get("event") == event]


def apology_heard(outcome: Outcome) -> int:
    return sum(outcome.heard(hz) for hz in NOTES_HZ)


def rotation_facts(live: FakeGeminiLive) -> dict[str, Any]:
    """Per Gemini session: connections, how each after the first resumed, what it remembered."""
    sessions, connections = live.snapshot()
    opened = [c for c in connections if c.session_id and c.ready_at is not None]
    return {
        "sessions": len(sessions),
        "connections": len(opened),
        "resumed": sum(1 for c in opened if c.resumed_from),
        "history_at_open": [c.history_at_open for c in opened],
        "turns_per_connection": [c.turns for c in opened],
        "compression_sent": all(c.compression is not None for c in opened),
        "terminated": [s.terminated for s in sessions if s.terminated],
        "compressions": sum(s.compressions for s in sessions),
        "gaps_ms": live.rotation_gaps_ms(),
    }


__all__ = [
    "GOODBYE_HZ",
    "GREETING_HZ",
    "REPLY_HZ",
    "WARNING_HZ",
    "Behaviour",
    "Outcome",
    "apology_heard",
    "events",
    "rotation_facts",
    "run_scenario",
]


def now() -> float:
    return time.monotonic()
