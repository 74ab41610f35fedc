"""TEST ONLY: a Gemini Live stand-in that never opens a network connection.

Gemini (Vertex AI) cannot be reached from test machines, so the worker under test gets this
model through the one seam, ``voice_agent.model.build_realtime_model``. It implements the
livekit-agents 1.8.9 ``RealtimeModel`` / ``RealtimeSession`` interface just far enough for a
real ``AgentSession`` to run in a real room:

- ``generate_reply`` answers with one spoken message (a short 440 Hz tone plus its text), so
  the agent publishes audio into the room like it would with Gemini;
- ``push_audio`` counts the caller's audio frames and logs once when the first one arrives,
  proving the caller's track reaches the model through the framework's room I/O.

Everything else (instructions, chat context, tools) is stored and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from typing import Any, Literal

from livekit import rtc
from livekit.agents import llm, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

logger = logging.getLogger("voice_agent.tests.fake_realtime")

SAMPLE_RATE = 24000
FRAME_MS = 20
REPLY_SECONDS = 0.4
REPLY_TEXT = "Hello, this is the test stand-in for Gemini."


def build_fake_realtime_model(settings: Any) -> llm.RealtimeModel:
    logger.info(
        "fake realtime model built instead of Gemini (test seam)",
        extra={"event": "fake_model_built", "would_be_model": settings.gemini_model},
    )
    return FakeRealtimeModel()


class FakeRealtimeModel(llm.RealtimeModel):
    def __init__(self) -> None:
        super().__init__(
            capabilities=llm.RealtimeCapabilities(
                message_truncation=False,
                turn_detection=True,
                user_transcription=False,
                auto_tool_reply_generation=True,
                audio_output=True,
                manual_function_calls=False,
                mutable_chat_context=True,
                mutable_instructions=True,
            )
        )

    @property
    def model(self) -> str:
        return "fake-gemini-live"

    @property
    def provider(self) -> str:
        return "test"

    def session(self, *, turn_detection_disabled: bool = False) -> FakeRealtimeSession:
        return FakeRealtimeSession(self)

    async def aclose(self) -> None:
        return None


class FakeRealtimeSession(llm.RealtimeSession):
    def __init__(self, model: FakeRealtimeModel) -> None:
        super().__init__(model)
        self._chat_ctx = llm.ChatContext.empty()
        self._tools = llm.ToolContext.empty()
        self._instructions = ""
        self._frames_in = 0

    @property
    def chat_ctx(self) -> llm.ChatContext:
        return self._chat_ctx.copy()

    @property
    def tools(self) -> llm.ToolContext:
        return self._tools.copy()

    async def update_instructions(self, instructions: str) -> None:
        self._instructions = instructions

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        self._chat_ctx = chat_ctx.copy()

    async def update_tools(self, tools: list[llm.Tool]) -> None:
        self._tools = llm.ToolContext(tools)

    def update_options(self, *, tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN) -> None:
        return None

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        self._frames_in += 1
        if self._frames_in == 1:
            logger.info(
                "fake realtime model received caller audio",
                extra={"event": "fake_model_audio_in", "sample_rate": frame.sample_rate},
            )

    def push_video(self, frame: rtc.VideoFrame) -> None:
        return None

    def generate_reply(
        self,
        *,
        instructions: NotGivenOr[str] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        tools: NotGivenOr[list[llm.Tool]] = NOT_GIVEN,
    ) -> asyncio.Future[llm.GenerationCreatedEvent]:
        loop = asyncio.get_running_loop()
        modalities: asyncio.Future[list[Literal["text", "audio"]]] = loop.create_future()
        modalities.set_result(["audio", "text"])
        message = llm.MessageGeneration(
            message_id=utils.shortuuid("fake-msg-"),
            text_stream=_text(),
            audio_stream=_tone(),
            modalities=modalities,
        )
        event = llm.GenerationCreatedEvent(
            message_stream=_once(message),
            function_stream=_nothing(),
            user_initiated=True,
            response_id=utils.shortuuid("fake-resp-"),
        )
        future: asyncio.Future[llm.GenerationCreatedEvent] = loop.create_future()
        future.set_result(event)
        logger.info("fake realtime model generated a reply", extra={"event": "fake_model_reply"})
        return future

    def commit_audio(self) -> None:
        return None

    def clear_audio(self) -> None:
        return None

    def interrupt(self) -> None:
        return None

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Literal["text", "audio"]],
        audio_end_ms: int,
        audio_transcript: NotGivenOr[str] = NOT_GIVEN,
    ) -> None:
        return None

    async def aclose(self) -> None:
        logger.info(
            "fake realtime session closed",
            extra={"event": "fake_model_closed", "frames_in": self._frames_in},
        )


async def _once(item: Any) -> AsyncIterator[Any]:
    yield item


async def _nothing() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _text() -> AsyncIterator[str]:
    yield REPLY_TEXT


async def _tone() -> AsyncIterator[rtc.AudioFrame]:
    samples = SAMPLE_RATE * FRAME_MS // 1000
    for index in range(int(REPLY_SECONDS * 1000 / FRAME_MS)):
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, samples)
        data = frame.data
        for i in range(samples):
            t = (index * samples + i) / SAMPLE_RATE
            data[i] = int(8000 * math.sin(2 * math.pi * 440 * t))
        yield frame
