"""Place one test call: the post-deploy smoke test (docs/agent.md, "Test call").

    LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \\
      python -m voice_agent.test_call --url wss://livekit.example.com --agent-name support-agent

(or LIVEKIT_API_KEY_FILE / LIVEKIT_API_SECRET_FILE naming files that hold them, as the agent).

Mints a caller token whose room configuration dispatches the named agent (LiveKit's explicit
dispatch through the token, RoomAgentDispatch), joins a fresh room with the rtc SDK, plays a
short utterance (a WAV file, or a built-in voiced sound), listens, hangs up, and waits for the
agent to leave the room. Reports the time to the agent joining, to its first audio, the seconds
of agent audio received, and how long the session took to end after the hang-up; the last line
is one JSON object. Exit 0 when the agent answered with audio and ended its session, 1 when not,
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

from .settings import read_secret

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SAMPLE_RATE = 48000
FRAME_MS = 20
# a received frame "carries sound" above this int16 peak; decoded silence stays near 0
LOUD = 1000
# livekit protocol ParticipantInfo.Kind.AGENT
AGENT_KIND = 4


@dataclass
class Report:
    ok: bool
    room: str
    agent_name: str
    agent_joined_s: float | None = None
    first_audio_s: float | None = None
    audio_received_s: float = 0.0
    session_end_s: float | None = None
    error: str = ""


def built_in_utterance(seconds: float = 1.2) -> list[bytes]:
    """A voiced sound (150 Hz and harmonics, syllable-like envelope) as 20 ms int16 frames."""
    import array

    samples = SAMPLE_RATE * FRAME_MS // 1000
    total = int(seconds * 1000 / FRAME_MS)
    frames = []
    for index in range(total):
        data = array.array("h")
        for i in range(samples):
            t = (index * samples + i) / SAMPLE_RATE
            envelope = abs(math.sin(math.pi * t / 0.4))  # three "syllables"
            value = sum(math.sin(2 * math.pi * 150 * h * t) / h for h in (1, 2, 3, 4))
            data.append(int(6000 * envelope * value))
        frames.append(data.tobytes())
    return frames


def wav_utterance(path: Path) -> list[bytes]:
    """16-bit mono 48 kHz PCM WAV as 20 ms frames (other formats: convert first, e.g. sox)."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getsampwidth(), wav.getnchannels(), wav.getframerate()) != (2, 1, SAMPLE_RATE):
            raise ValueError(f"{path}: need 16-bit mono {SAMPLE_RATE} Hz PCM, got "
                             f"{8 * wav.getsampwidth()}-bit, {wav.getnchannels()} channel(s), {wav.getframerate()} Hz")
        data = wav.readframes(wav.getnframes())
    step = SAMPLE_RATE * FRAME_MS // 1000 * 2
    return [data[i:i + step].ljust(step, b"\0") for i in range(0, len(data), step)]


def caller_token(api_key: str, api_secret: str, room: str, identity: str, agent_name: str) -> str:
    """A join token that also asks LiveKit to dispatch ``agent_name`` into the room when the
    caller creates it (RoomConfiguration.agents; the agent must run with AGENT_NAME set)."""
    from livekit import api

    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_room_config(api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=agent_name)]))
        .to_jwt()
    )


def http_url(ws_url: str) -> str:
    return ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


async def place_call(url: str, api_key: str, api_secret: str, agent_name: str, *, room_name: str,
                     utterance: list[bytes], listen_s: float, timeout_s: float) -> Report:
    from livekit import api, rtc

    report = Report(ok=False, room=room_name, agent_name=agent_name)
    room = rtc.Room()
    joined, heard = asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []

    def on_participant(participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT and not joined.is_set():
            report.agent_joined_s = round(time.monotonic() - started, 3)
            joined.set()

    async def count_audio(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track)
        async for event in stream:
            frame = event.frame
            if max((abs(s) for s in frame.data), default=0) > LOUD:
                report.audio_received_s += frame.samples_per_channel / frame.sample_rate
                if report.first_audio_s is None:
                    report.first_audio_s = round(time.monotonic() - started, 3)
                    heard.set()

    def on_track(track: rtc.Track, _pub: object, participant: rtc.RemoteParticipant) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            tasks.append(asyncio.create_task(count_audio(track)))

    room.on("participant_connected", on_participant)
    room.on("track_subscribed", on_track)
    try:
        await asyncio.wait_for(room.connect(url, caller_token(api_key, api_secret, room_name, "test-caller", agent_name)), timeout_s)
        for participant in room.remote_participants.values():
            on_participant(participant)
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("test-caller-microphone", source)
        await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        await asyncio.wait_for(joined.wait(), timeout_s)
        samples = SAMPLE_RATE * FRAME_MS // 1000
        for chunk in utterance:
            await source.capture_frame(rtc.AudioFrame(chunk, SAMPLE_RATE, 1, samples))
        await asyncio.wait_for(heard.wait(), timeout_s)
        await asyncio.sleep(listen_s)
    except asyncio.TimeoutError:
        report.error = ("no agent joined" if not joined.is_set() else "the agent sent no audio") + f" within {timeout_s:g} s"
    except Exception as exc:  # connection refused, bad credentials: one line, no traceback
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        for task in tasks:
            task.cancel()
        hung_up = time.monotonic()
        await room.disconnect()
    if joined.is_set():
        report.session_end_s = await _agent_left(http_url(url), api_key, api_secret, room_name, hung_up, timeout_s)
        if report.session_end_s is None and not report.error:
            report.error = f"the agent was still in the room {timeout_s:g} s after the hang-up"
    report.audio_received_s = round(report.audio_received_s, 3)
    report.ok = not report.error and report.first_audio_s is not None and report.session_end_s is not None
    return report


async def _agent_left(url: str, key: str, secret: str, room: str, since: float, timeout_s: float) -> float | None:
    """Seconds from the hang-up until no agent is left in the room (the session ended)."""
    from livekit import api

    async with api.LiveKitAPI(url=url, api_key=key, api_secret=secret) as lkapi:
        while time.monotonic() - since < timeout_s:
            try:
                answer = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
                agents = [p for p in answer.participants if p.kind == AGENT_KIND]
            except api.TwirpError:  # the room itself is gone: so is the agent
                agents = []
            if not agents:
                return round(time.monotonic() - since, 3)
            await asyncio.sleep(0.2)
    return None


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m voice_agent.test_call", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="LiveKit server URL (ws://, wss://)")
    parser.add_argument("--agent-name", required=True, help="the agent's AGENT_NAME (explicit dispatch)")
    parser.add_argument("--room", default="", help="room name (default: a fresh test-call-<random>)")
    parser.add_argument("--wav", default="", help="utterance to play: 16-bit mono 48 kHz WAV (default: built-in)")
    parser.add_argument("--listen", type=float, default=3.0, help="seconds to listen after the first answer (default 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each step (default 30)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    # the key pair that signs the caller's token, from the values or files as the agent takes it
    problems: list[str] = []
    key = read_secret(os.environ, "LIVEKIT_API_KEY", problems) or ""
    secret = read_secret(os.environ, "LIVEKIT_API_SECRET", problems) or ""
    if not args.url.startswith(("ws://", "wss://")):
        problems.append(f"--url={args.url!r} is not a LiveKit URL: use ws://host:port or wss://host")
    if not 0 < args.timeout <= 600 or not 0 <= args.listen <= 600:
        problems.append(f"--timeout={args.timeout:g} / --listen={args.listen:g}: allowed (0, 600] and [0, 600] seconds")
    utterance: list[bytes] = []
    try:
        utterance = wav_utterance(Path(args.wav)) if args.wav else built_in_utterance()
    except (OSError, ValueError, wave.Error) as exc:
        problems.append(f"--wav={args.wav!r}: {exc}")
    if problems:
        for problem in problems:
            print(f"test-call: {problem}", file=sys.stderr)
        return EXIT_USAGE
    room = args.room or f"test-call-{uuid.uuid4().hex[:8]}"
    report = asyncio.run(place_call(args.url, key, secret, args.agent_name, room_name=room,
                                    utterance=utterance, listen_s=args.listen, timeout_s=args.timeout))
    print(f"room {report.room}: agent {args.agent_name!r} joined after {report.agent_joined_s} s, "
          f"first audio after {report.first_audio_s} s, {report.audio_received_s} s of audio received, "
          f"session ended {report.session_end_s} s after the hang-up" + (f"; {report.error}" if report.error else ""))
    print(json.dumps(asdict(report)))
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
