"""A synthetic caller: joins a LiveKit room with the real rtc SDK and publishes a microphone.

The caller streams a 220 Hz tone as its microphone track (so the agent's room input has real
audio frames to forward to the model) and counts the audio frames it receives from the agent.
Rooms are created and deleted through the real server API (livekit-api).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field

from livekit import api, rtc

from .livekit_server import LiveKitServer

SAMPLE_RATE = 48000
FRAME_MS = 20
TONE_HZ = 220
# a received frame "carries sound" above this peak (int16); decoded silence stays near 0
LOUD = 1000


def caller_token(
    server: LiveKitServer, room: str, identity: str, attributes: dict[str, str] | None = None
) -> str:
    """``attributes``: e.g. the sip.* ones LiveKit SIP sets on a phone caller."""
    token = (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if attributes:
        token = token.with_attributes(attributes)
    return token.to_jwt()


def server_api(server: LiveKitServer) -> api.LiveKitAPI:
    return api.LiveKitAPI(url=server.http_url, api_key=server.api_key, api_secret=server.api_secret)


async def create_room(server: LiveKitServer, name: str) -> None:
    async with server_api(server) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=name, empty_timeout=60))


async def delete_room(server: LiveKitServer, name: str) -> None:
    async with server_api(server) as lkapi:
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))


async def dispatch_agent(server: LiveKitServer, room: str, agent_name: str) -> str:
    """Explicit dispatch (what a backend does for a named agent); returns the dispatch id."""
    async with server_api(server) as lkapi:
        dispatch = await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
        )
    return dispatch.id


async def list_participant_kinds(server: LiveKitServer, room: str) -> dict[str, int]:
    """identity -> ParticipantInfo.Kind, as the server sees the room."""
    async with server_api(server) as lkapi:
        response = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity: p.kind for p in response.participants}


async def list_room_names(server: LiveKitServer) -> list[str]:
    async with server_api(server) as lkapi:
        response = await lkapi.room.list_rooms(api.ListRoomsRequest())
    return [room.name for room in response.rooms]


@dataclass
class Caller:
    room: rtc.Room
    source: rtc.AudioSource
    frames_from_agent: int = 0
    agent_joined: asyncio.Event = field(default_factory=asyncio.Event)
    agent_audio: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.room.disconnect()


async def join_as_caller(server: LiveKitServer, room_name: str, identity: str) -> Caller:
    room = rtc.Room()
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    caller = Caller(room=room, source=source)

    def _on_participant(participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            caller.agent_joined.set()

    def _on_track(
        track: rtc.Track, _pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            caller._tasks.append(asyncio.create_task(_count_frames(caller, track)))

    room.on("participant_connected", _on_participant)
    room.on("track_subscribed", _on_track)
    await room.connect(server.ws_url, caller_token(server, room_name, identity))
    for participant in room.remote_participants.values():
        _on_participant(participant)

    track = rtc.LocalAudioTrack.create_audio_track("caller-microphone", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    caller._tasks.append(asyncio.create_task(_speak(source)))
    return caller


def _tone_frames() -> list[bytes]:
    """One second of a quiet tone as 20 ms frames (computed once, replayed in a loop)."""
    samples = SAMPLE_RATE * FRAME_MS // 1000
    frames = []
    for index in range(1000 // FRAME_MS):
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, samples)
        data = frame.data
        for i in range(samples):
            t = (index * samples + i) / SAMPLE_RATE
            data[i] = int(3000 * math.sin(2 * math.pi * TONE_HZ * t))
        frames.append(bytes(frame.data.cast("B")))
    return frames


async def _speak(source: rtc.AudioSource) -> None:
    """Stream the tone in real time (capture_frame paces it) until cancelled."""
    samples = SAMPLE_RATE * FRAME_MS // 1000
    frames = _tone_frames()
    index = 0
    while True:
        frame = rtc.AudioFrame(frames[index % len(frames)], SAMPLE_RATE, 1, samples)
        await source.capture_frame(frame)
        index += 1


async def _count_frames(caller: Caller, track: rtc.Track) -> None:
    """Count received frames that carry sound (the subscriber also decodes silence)."""
    stream = rtc.AudioStream(track)
    try:
        async for event in stream:
            if max(abs(sample) for sample in event.frame.data) > LOUD:
                caller.frames_from_agent += 1
                caller.agent_audio.set()
    finally:
        await stream.aclose()
