"""The Live API stand-in (tests/fakes/gemini_live.py) keeps Google's documented resumption rules,
which the recovery tests rely on: spoken to here over its WebSocket protocol, as google-genai
does. Sources (also in the stand-in's docstring):
- a handle is valid for 2 hours after the session's last termination (Gemini API, "Session
  management with Live API", https://ai.google.dev/gemini-api/docs/live-session);
- ``resumable: false`` with no ``newHandle`` while the model generates, and a handle stands for
  the state at the time it was issued (google-genai LiveServerSessionResumptionUpdate,
  https://googleapis.github.io/js-genai/release_docs/interfaces/types.LiveServerSessionResumptionUpdate.html).

The lifetime is checked on the stand-in's own clock, advanced by the test: no sleeps, no timing.
The last tests run the real plugin against it: a not-resumable update never changes the handle a
checkpoint reads."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import types
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fakes.gemini_live import LIVE_PATH, OUTPUT_RATE, Behaviour, FakeGeminiLive, _Connection, _tone

TOKEN = "stand-in-token"
MODEL = "projects/voice-agent-test/locations/us-central1/publishers/google/models/gemini-live"
LIFETIME = 2 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def live(tmp_path) -> Iterator[tuple[FakeGeminiLive, Clock]]:
    server = FakeGeminiLive(tmp_path, Behaviour(reply_seconds=0.1))
    clock = Clock()
    server.clock = clock
    server.start(token=TOKEN)
    try:
        yield server, clock
    finally:
        server.stop()


async def _open(server: FakeGeminiLive, handle: str | None = None):
    ctx = ssl.create_default_context(cafile=str(server.cert_path))
    ws = await connect(f"wss://127.0.0.1:{server._port}{LIVE_PATH}", ssl=ctx,
                       additional_headers={"Authorization": f"Bearer {TOKEN}"})
    resumption = {"handle": handle} if handle else {}
    await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": resumption}}))
    return ws


async def _updates_until_handle(ws) -> list[dict]:
    """Every sessionResumptionUpdate up to and including the next one carrying a handle."""
    seen = []
    async for raw in ws:
        update = json.loads(raw).get("sessionResumptionUpdate")
        if update is not None:
            seen.append(update)
            if update.get("newHandle"):
                return seen
    raise AssertionError(f"connection closed before a handle: {seen}")


async def _turn(ws, text: str) -> list[dict]:
    await ws.send(json.dumps({"client_content": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                                 "turnComplete": True}}))
    return await _updates_until_handle(ws)


def _wait_ended(server: FakeGeminiLive, session_id: str) -> None:
    """The server saw the client close (its handler runs on its own thread)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with server.lock:
            if server.sessions[session_id].ended_at is not None:
                return
        time.sleep(0.01)
    raise AssertionError("the stand-in never saw the connection end")


async def _resumes(server: FakeGeminiLive, handle: str) -> bool:
    ws = await _open(server, handle)
    try:
        first = json.loads(await ws.recv())
        return "setupComplete" in first
    except ConnectionClosed:
        return False
    finally:
        await ws.close()


def _session(server: FakeGeminiLive):
    with server.lock:
        [session] = server.sessions.values()
    return session


def test_no_handle_while_the_model_generates(live):
    server, _ = live

    async def scenario():
        ws = await _open(server)
        await _updates_until_handle(ws)
        updates = await _turn(ws, "hello")
        await ws.close()
        return updates

    updates = asyncio.run(scenario())
    assert updates[0] == {"resumable": False}
    assert updates[-1]["resumable"] is True and updates[-1]["newHandle"]


@pytest.mark.parametrize(("after_end", "accepted"), [
    (LIFETIME - 1, True), (LIFETIME, True), (LIFETIME + 1, False),
])
def test_a_handle_lives_two_hours_after_the_session_ended(live, after_end, accepted):
    """Counted from the session's end, not from when the handle was issued: a handle issued
    long before a call ended is as good as the last one."""
    server, clock = live

    async def scenario():
        ws = await _open(server)
        [update] = await _updates_until_handle(ws)
        clock.now += 3 * LIFETIME  # the session lives on, longer than a handle's lifetime
        await ws.close()
        await asyncio.to_thread(_wait_ended, server, _session(server).id)
        clock.now += after_end
        return await _resumes(server, update["newHandle"])

    assert asyncio.run(scenario()) is accepted


def test_an_open_session_keeps_its_handles_good(live):
    server, clock = live

    async def scenario():
        ws = await _open(server)
        [update] = await _updates_until_handle(ws)
        clock.now += 3 * LIFETIME
        try:
            return await _resumes(server, update["newHandle"])
        finally:
            await ws.close()

    assert asyncio.run(scenario()) is True


def test_an_older_handle_restores_the_older_state(live):
    """Turns taken after a handle was issued are lost when that handle is used."""
    server, _ = live

    async def scenario():
        ws = await _open(server)
        [first] = await _updates_until_handle(ws)
        await _turn(ws, "one")
        await _turn(ws, "two")
        await ws.close()
        await asyncio.to_thread(_wait_ended, server, _session(server).id)
        before = len(_session(server).history)
        assert await _resumes(server, first["newHandle"])
        return before, len(_session(server).history)

    before, after = asyncio.run(scenario())
    assert before == 4 and after == 0


# ---------------------------------------------------------------- the plugin against it
class _StillGenerating(_Connection):
    """A model that has started its answer and is still generating: it says the session is not
    resumable now and sends one chunk of audio, nothing more (no turn end, so no new handle).
    ``handle_in_update``: the not-resumable update also carries a handle (the API leaves
    ``newHandle`` empty then; a client must not take one from such an update either)."""

    handle_in_update = False

    async def _reply(self, hz: int, kind: str) -> None:
        update: dict = {"resumable": False}
        if self.handle_in_update:
            update["newHandle"] = "h-not-resumable"
        await self._send({"sessionResumptionUpdate": update})
        pcm = _tone(hz, 0, OUTPUT_RATE // 10)
        await self._send({"serverContent": {"modelTurn": {"role": "model", "parts": [
            {"inlineData": {"mimeType": f"audio/pcm;rate={OUTPUT_RATE}",
                            "data": base64.b64encode(pcm).decode()}}]}}})


class _StillGeneratingWithHandle(_StillGenerating):
    handle_in_update = True


@pytest.fixture(scope="module")
def google(tmp_path_factory):
    """One metadata server and Live API server for the module: google-auth keeps what it learnt
    from the metadata server for the life of the process."""
    from google.auth.compute_engine import _metadata

    from fakes import google_stand_ins

    with google_stand_ins(tmp_path_factory.mktemp("google")) as stand_ins:
        # google-auth 2.62.2 reads GCE_METADATA_HOST once, when compute_engine/_metadata.py is
        # first imported (_GCE_METADATA_HOST, a module constant); earlier tests of the same
        # process import it before this module's env exists, so point it here for the module.
        before = _metadata._GCE_METADATA_HOST
        _metadata._GCE_METADATA_HOST = stand_ins[1]["GCE_METADATA_HOST"]
        try:
            yield stand_ins
        finally:
            _metadata._GCE_METADATA_HOST = before


@pytest.mark.parametrize("connection", [_StillGenerating, _StillGeneratingWithHandle])
def test_a_not_resumable_update_never_replaces_the_handle_a_checkpoint_reads(google, monkeypatch, connection):
    """The real livekit-plugins-google 1.8.9 plugin (through model.py, fallback adapter
    included) against the stand-in: while the model generates, what a checkpoint reads is still
    the last resumable handle with the items it covers, never the not-resumable state."""
    from conftest import VALID_ENV

    from voice_agent import model
    from voice_agent.recovery.config import RecoverySettings
    from voice_agent.recovery.resume import CallRecovery, gemini_session
    from voice_agent.settings import load_settings

    live, google_env = google
    live.connection_class = connection
    for name, value in google_env.items():
        monkeypatch.setenv(name, value)
    with live.lock:
        known = set(live.sessions)

    async def scenario():
        realtime = model.build_realtime_model(load_settings({**VALID_ENV, **google_env}))
        session = realtime.session()
        plugin = gemini_session(session)
        try:
            deadline = time.monotonic() + 30
            while plugin.session_resumption_handle is None:
                assert time.monotonic() < deadline, "the plugin never got the setup handle"
                await asyncio.sleep(0.05)
            issued = plugin.session_resumption_handle
            await asyncio.wait_for(session.generate_reply(), 30)  # the answer has begun
            recovery = CallRecovery(RecoverySettings(dsn="postgresql://x@127.0.0.1/x"),
                                    writer=None, room="r", job_id="j")  # type: ignore[arg-type]
            read = recovery._gemini_handle(types.SimpleNamespace(realtime_llm_session=session))
            return issued, read
        finally:
            await session.aclose()

    issued, (handle, _, covered) = asyncio.run(scenario())
    sessions, _ = live.snapshot()
    [gemini] = [s for s in sessions if s.id not in known]
    assert gemini.handles == [issued]  # only the setup handle was ever issued
    assert handle == issued and covered is not None


@pytest.mark.parametrize("with_handle", [True, False])
def test_a_restored_conversation_is_replayed_only_without_a_handle(google, monkeypatch, with_handle):
    """What a resumed job does (recovery/resume.py restore, then the session connects): the
    stored conversation reaches the plugin before it connects. With the handle Gemini already
    holds it and the plugin sends none of it (no history twice); without, it is replayed, and
    the stand-in sees that (the premise of the end-to-end replay check in
    test_recovery_faults.py)."""
    from conftest import VALID_ENV
    from livekit.agents import llm

    from voice_agent import model
    from voice_agent.recovery.resume import gemini_session
    from voice_agent.settings import load_settings

    live, google_env = google
    live.connection_class = None
    for name, value in google_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({**VALID_ENV, **google_env})

    async def first_call() -> tuple[str, str]:
        session = model.build_realtime_model(settings).session()
        try:
            plugin = gemini_session(session)
            deadline = time.monotonic() + 30
            # The setup handle first: read after the reply began, it could already be the turn's
            # (the stand-in issues that one as the turn completes), and the wait below would
            # then never end.
            while plugin.session_resumption_handle is None:
                assert time.monotonic() < deadline, "the plugin never got the setup handle"
                await asyncio.sleep(0.05)
            setup_handle = plugin.session_resumption_handle
            await asyncio.wait_for(session.generate_reply(), 30)
            while plugin.session_resumption_handle == setup_handle:  # the turn's handle
                assert time.monotonic() < deadline, "no handle after the reply"
                await asyncio.sleep(0.05)
            with live.lock:
                [reply] = [t.text for s in live.sessions.values() if plugin.session_resumption_handle in s.handles
                           for t in s.history if t.role == "model"]
            return plugin.session_resumption_handle, reply
        finally:
            await session.aclose()

    async def resumed_call(handle: str | None, reply: str) -> list[str]:
        restored = llm.ChatContext.empty()
        restored.add_message(role="assistant", content=reply)
        session = model.build_realtime_model(settings, resume_handle=handle).session()
        try:
            await session.update_chat_ctx(restored)  # before it connects, as in a resumed job
            await asyncio.wait_for(session.generate_reply(), 30)  # everything before it arrived
        finally:
            await session.aclose()
        with live.lock:
            last = live.connections[-1]
            assert last.resumed_from == handle and last.ready_at is not None
            return list(last.client_texts)

    handle, reply = asyncio.run(first_call())
    texts = asyncio.run(resumed_call(handle if with_handle else None, reply))
    replayed = [text for text in texts if reply in text]
    assert bool(replayed) is not with_handle, texts
