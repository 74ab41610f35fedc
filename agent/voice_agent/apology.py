"""What the caller hears when Gemini cannot be reached at all: a short clip played straight
into the room, without any model.

The clip is ``assets/apology.wav`` (PCM16 mono) when the image ships one; otherwise a short
two-note "sorry" cue is synthesised here (nothing downloaded, nothing generated at run time
on disk). It is published as its own track by the agent participant, so it plays even after
the AgentSession closed on the model error.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

from livekit import rtc

CLIP_PATH = Path(__file__).with_name("assets") / "apology.wav"
SAMPLE_RATE = 24000
FRAME_MS = 20
# Two descending notes (C5 then G4), 0.35 s each: short enough to end the call promptly.
NOTES_HZ = (523.25, 392.0)
NOTE_SECONDS = 0.35
FADE_SECONDS = 0.03
AMPLITUDE = 9000
TRACK_NAME = "apology"


def apology_pcm() -> tuple[bytes, int]:
    """(PCM16 mono bytes, sample rate) of the apology."""
    if CLIP_PATH.is_file():
        with wave.open(str(CLIP_PATH), "rb") as clip:
            if clip.getsampwidth() == 2 and clip.getnchannels() == 1:
                return clip.readframes(clip.getnframes()), clip.getframerate()
    return _cue(), SAMPLE_RATE


def _cue() -> bytes:
    import array

    samples = array.array("h")
    per_note = int(NOTE_SECONDS * SAMPLE_RATE)
    fade = int(FADE_SECONDS * SAMPLE_RATE)
    for hz in NOTES_HZ:
        for i in range(per_note):
            envelope = min(1.0, i / fade, (per_note - i) / fade)
            samples.append(int(AMPLITUDE * envelope * math.sin(2 * math.pi * hz * i / SAMPLE_RATE)))
    return samples.tobytes()


def frames(pcm: bytes, rate: int) -> list[rtc.AudioFrame]:
    per_frame = rate * FRAME_MS // 1000
    step = per_frame * 2
    out = []
    for start in range(0, len(pcm), step):
        chunk = pcm[start : start + step].ljust(step, b"\0")
        out.append(rtc.AudioFrame(chunk, rate, 1, per_frame))
    return out


async def play_apology(room: rtc.Room) -> float:
    """Publish the apology as a track, play it to its end, unpublish; returns its seconds."""
    pcm, rate = apology_pcm()
    source = rtc.AudioSource(rate, 1)
    track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, source)
    publication = await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    try:
        for frame in frames(pcm, rate):
            await source.capture_frame(frame)
        await source.wait_for_playout()
    finally:
        await room.local_participant.unpublish_track(publication.sid)
        await source.aclose()
    return len(pcm) / 2 / rate
