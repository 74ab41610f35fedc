"""A Live API stand-in whose model calls one function, and a caller that waits for its answer.

Shared by the tool tests (test_tools_places.py: find_places over MCP) and the custom-persona
test (test_custom_persona.py: the persona's own opening_hours). The protocol handling is
FakeGeminiLive's; only the model's side of a turn differs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.talking_caller import join_talking_caller

from .gemini_live import REPLY_HZ, FakeGeminiLive, _Connection, _field


class _AskingConnection(_Connection):
    """On the caller's first turn the model calls the server's `ask` function (only when the
    setup declared it: the real model can only call declared functions); after the
    toolResponse it speaks (auto tool reply)."""

    async def _on_user_turn(self, spoken_ms: float) -> None:
        ask = self.server.ask
        if self.user_turns == 0 and ask["name"] in self.record.tools and self.pending_tool is None:
            self.user_turns += 1
            self.pending_tool = "call-" + secrets.token_hex(4)
            with self.server.lock:
                self.session.tool_calls.append(ask["name"])
            # Before the agent can see the call: a test that freezes the tool server does it
            # here, not after polling for the call (a fast tool server would answer first).
            if self.server.before_tool_call is not None:
                self.server.before_tool_call()
            await self._send({"toolCall": {"functionCalls": [{"id": self.pending_tool, **ask}]}})
            return
        await super()._on_user_turn(spoken_ms)

    async def _on_tool_response(self, response: dict[str, Any]) -> None:
        with self.server.lock:
            self.session.tool_responses.extend(_field(response, "function_responses") or [])
        if self.pending_tool is not None:
            self.pending_tool = None
            await self._reply(REPLY_HZ, "reply")


class AskingGemini(FakeGeminiLive):
    """The stand-in with a model that asks for `ask` ({"name": ..., "args": {...}}); keeps every
    setup message (voice and system instruction are read from it)."""

    connection_class = _AskingConnection

    def __init__(self, workdir: Path, ask: dict[str, Any]) -> None:
        super().__init__(workdir)
        self.ask = ask
        # called in the stand-in right before it sends the toolCall
        self.before_tool_call: Callable[[], None] | None = None
        self.setups: list[dict[str, Any]] = []

    def _on_setup(self, setup: dict[str, Any]) -> None:
        with self.lock:
            self.setups.append(setup)


async def talk_until_tool_answered(server: LiveKitServer, room: str, live: AskingGemini, wait_s: float = 45.0) -> bool:
    """A caller talks until the model calls the function, stays silent until the agent has
    answered it (or `wait_s`), then listens 3 s: True when it heard the model's reply after the
    tool and is still in the call."""
    await participant.create_room(server, room)
    caller = await join_talking_caller(server, room, f"caller-{room}")
    test_hook = live.before_tool_call

    def hold_the_line() -> None:
        # The caller waits while the agent looks it up. Speech now would interrupt the turn
        # that runs the tool, and livekit-agents 1.8.9 then records the tool's output without
        # sending it to the model (voice/generation.py _interrupted_tool_output): whether the
        # caller's next 0.6 s tone lands inside the tool's wait is a race with the machine's
        # load (a loaded VAD reports speech late), not what these tests check.
        caller.talking = False
        if test_hook is not None:
            test_hook()

    live.before_tool_call = hold_the_line
    try:
        await asyncio.wait_for(caller.agent_joined.wait(), 30)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            sessions, _ = live.snapshot()
            if any(s.tool_responses for s in sessions):
                break
            await asyncio.sleep(0.1)
        answered_at = time.monotonic()
        await asyncio.sleep(3.0)  # the reply after the tool plays out; the call goes on
        return any(h.at >= answered_at for h in caller.heard_near(REPLY_HZ)) and caller.disconnected_at is None
    finally:
        await caller.leave()
