"""A caller that talks in turns and listens for what it hears, for the call-life tests.

It speaks a tone for ``talk_seconds`` then stays silent for ``pause_seconds`` (the Live API
stand-in's voice activity detection ends a turn on silence), and records every loud frame it
receives from the agent with its pitch (zero crossings), so a test can tell the greeting from
the goodbye or the apology (tests/fakes/gemini_live.py gives each kind of reply its own tone).
It also records when the server disconnected it and why (room deleted or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from livekit import rtc

from .livekit_server import LiveKitServer
from .participant import FRAME_MS, LOUD, SAMPLE_RATE, _tone_frames, caller_token


@dataclass
class Heard:
    at: float  # when the listener got to the frame: under load, later than it arrived
    hz: float
    track: str
    seconds: float = 0.0  # the frame's length


@dataclass
class TalkingCaller:
    room: rtc.Room
    heard: list[Heard] = field(default_factory=list)
    disconnected_at: float | None = None
    disconnect_reason: int | None = None
    agent_joined: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    talking: bool = True
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def heard_near(self, hz: float, tolerance: float = 0.06) -> list[Heard]:
        return [h for h in self.heard if abs(h.hz - hz) <= hz * tolerance]

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.room.disconnect()


async def join_talking_caller(
    server: LiveKitServer,
    room_name: str,
    identity: str,
    *,
    talk_seconds: float = 0.6,
    pause_seconds: float = 1.4,
    talking: bool = True,
    attributes: dict[str, str] | None = None,
) -> TalkingCaller:
    room = rtc.Room()
    caller = TalkingCaller(room=room, talking=talking)

    def _on_participant(participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            caller.agent_joined.set()

    def _on_track(
        track: rtc.Track, pub: rtc.RemoteTrackPublication, _participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            caller._tasks.append(asyncio.create_task(_listen(caller, track, pub.name)))

    def _on_disconnected(reason: int) -> None:
        caller.disconnected_at = time.monotonic()
        caller.disconnect_reason = reason
        caller.gone.set()

    room.on("participant_connected", _on_participant)
    room.on("track_subscribed", _on_track)
    room.on("disconnected", _on_disconnected)
    await room.connect(server.ws_url, caller_token(server, room_name, identity, attributes))
    for participant in room.remote_participants.values():
        _on_participant(participant)
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("caller-microphone", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    caller._tasks.append(asyncio.create_task(_talk(caller, source, talk_seconds, pause_seconds)))
    return caller


async def _talk(caller: TalkingCaller, source: rtc.AudioSource, talk: float, pause: float) -> None:
    samples = SAMPLE_RATE * FRAME_MS // 1000
    tone = _tone_frames()
    silence = bytes(samples * 2)
    per_cycle = int((talk + pause) * 1000 / FRAME_MS)
    loud = int(talk * 1000 / FRAME_MS)
    index = 0
    while True:
        speaking = caller.talking and index % per_cycle < loud
        data = tone[index % len(tone)] if speaking else silence
        await source.capture_frame(rtc.AudioFrame(data, SAMPLE_RATE, 1, samples))
        index += 1


async def _listen(caller: TalkingCaller, track: rtc.Track, name: str) -> None:
    stream = rtc.AudioStream(track)
    try:
        async for event in stream:
            data = event.frame.data
            if max(abs(s) for s in data) <= LOUD:
                continue
            crossings = sum(1 for a, b in zip(data, data[1:]) if (a < 0) != (b < 0))
            seconds = len(data) / event.frame.sample_rate / event.frame.num_channels
            caller.heard.append(Heard(time.monotonic(), crossings / 2 / seconds, name, seconds))
    finally:
        await stream.aclose()
