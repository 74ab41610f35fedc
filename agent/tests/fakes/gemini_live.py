"""TEST ONLY: a Gemini Live API server on loopback, speaking Vertex AI's WebSocket protocol.

The worker under test reaches it exactly as production reaches Vertex AI: the real
livekit-plugins-google 1.8.9 plugin, the real google-genai 3.4.0 client and google-auth. Only
the address changes (``env()``):

- ``GOOGLE_VERTEX_BASE_URL`` - google-genai (``_base_url.get_base_url``) takes the Vertex base
  URL from it; with a project and location set, ``_api_client._websocket_base_url`` keeps it and
  switches the scheme to ``wss``, then ``live.AsyncLive.connect`` dials
  ``/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent`` with
  ``Authorization: Bearer <ADC token>``. So this server speaks TLS with a throw-away certificate
  for 127.0.0.1, trusted through ``SSL_CERT_FILE`` (read by ``_ensure_websocket_ssl_ctx``).
- the token comes from the fake metadata server (``metadata_server.py``); a connection without
  that exact bearer token is refused with HTTP 401, like Google's front end.

What it imitates, and from where (Vertex AI Live API, "Session management with Live API",
https://ai.google.dev/gemini-api/docs/live-session and the Vertex AI Live API reference,
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/multimodal-live):

- setup: the first client message is ``{"setup": {...}}`` naming
  ``projects/P/locations/L/publishers/google/models/M``; the server answers ``setupComplete``.
- realtimeInput audio (PCM16, 16 kHz): server-side voice activity detection. A caller turn is
  sound for at least ``vad_min_speech_ms`` followed by ``vad_silence_ms`` of silence (the API's
  automatic activity detection ends a turn on silence); the model then answers.
- clientContent with ``turnComplete``: the model answers (this is how the plugin's
  ``generate_reply(instructions=...)`` reaches the model).
- serverContent: ``modelTurn`` with ``inlineData`` audio (PCM16, 24 kHz), ``outputTranscription``,
  ``generationComplete``, ``turnComplete``; then ``usageMetadata`` (audio counts 25 tokens per
  second, https://ai.google.dev/gemini-api/docs/tokens#multimodal-tokens) in the Live API's
  shape (``BidiGenerateContentServerMessage.usageMetadata``, Live API reference
  https://ai.google.dev/api/live#usagemetadata): ``promptTokenCount`` (the whole context the
  turn processed), the response count, ``totalTokenCount`` and per-modality breakdowns
  (``[{modality: AUDIO|TEXT, tokenCount}]``). Vertex AI names the response fields
  ``candidatesTokenCount`` / ``candidatesTokensDetails`` (the Gemini API says ``response*``):
  google-genai 3.4.0 ``_live_converters._UsageMetadata_from_vertex`` maps those to
  ``response_token_count`` / ``response_tokens_details``, which the plugin reads.
- ``answer_delay_s``: the model's think time before the first audio chunk of every reply, for
  the latency tests (real seconds, not scaled: it is what a caller waits).
- toolCall: after ``end_call_after_turns`` caller turns the model calls ``end_call`` (only if
  the setup declared it, as the real model can only call declared functions); after the
  ``toolResponse`` it speaks its goodbye on its own (auto tool reply).
- sessionResumption: with ``sessionResumption`` in setup, ``sessionResumptionUpdate
  {newHandle, resumable: true}`` after setup and after each completed turn, and
  ``{resumable: false}`` without a handle while the model generates or waits for a tool
  response (google-genai ``LiveServerSessionResumptionUpdate``: "It might be not possible to
  resume session at some points ... model executing function calls or just generating",
  https://googleapis.github.io/js-genai/release_docs/interfaces/types.LiveServerSessionResumptionUpdate.html;
  Vertex AI "Start and manage live sessions", resume a previous session,
  https://docs.cloud.google.com/vertex-ai/generative-ai/docs/live-api/start-manage-session).
  A setup carrying a known handle continues the same session on the new connection, in the
  state that handle represents (``newHandle``: "New handle that represents state that can be
  resumed", same js-genai page): turns the session took after the handle was issued are lost
  when an older handle is used ("Resuming session (using previous session token) in such state
  will result in some data loss", ibid.). A handle stays good while its session has a
  connection open and for ``handle_lifetime_s`` after the session's last connection ended
  ("valid for 2 hr after the last session termination", Gemini API "Session management with
  Live API", Session resumption, https://ai.google.dev/gemini-api/docs/live-session; the Vertex
  AI page names no other figure); an expired or unknown handle is refused like an unknown
  entity. The clock of that check is ``clock`` (a test may advance it).
- connection lifetime: "around 10 minutes"; ``goAway {timeLeft}`` is sent ``goaway_notice``
  before the server closes the connection.
- uncompressed session limit: an audio session without ``contextWindowCompression`` ends at
  15 minutes: the server closes with 1007 (the close livekit-plugins-google 1.8.9
  ``realtime_api.py`` recognises as "context exhausted") and the session cannot be resumed.
  With compression (sliding window) the session is unlimited; when the context passes
  ``triggerTokens`` the oldest turns are dropped down to ``targetTokens``.
- connect-time errors, closed right after setup as Vertex does (google-genai turns the close
  into an ``APIError`` inside ``connect``): permission denied (HTTP 403 /
  PERMISSION_DENIED: 1008 "Permission denied on resource project ...", seen in
  GoogleCloudPlatform/generative-ai#3061), model not in the region (404 / NOT_FOUND: 1008
  "Requested entity was not found.", google-gemini/deprecated-generative-ai-js#487), quota
  (429 / RESOURCE_EXHAUSTED: 1011, livekit/agents#2274 discussion); mid-call internal error:
  1011 "Internal error occurred." (livekit/agents#2274).

Clocks are time-scaled: ``scale`` emulated seconds pass per real second, so a 10-minute
connection at scale 200 lasts 3 s. Everything runs in a background thread with its own event
loop; tests read what happened through ``sessions`` / ``connections`` (under ``lock``).
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import datetime
import ipaddress
import json
import math
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

LIVE_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
INPUT_RATE = 16000
OUTPUT_RATE = 24000
# audio tokens per second of audio (Gemini token counting docs)
AUDIO_TOKENS_PER_SECOND = 25
# documented clocks, in emulated seconds
CONNECTION_LIFETIME_S = 600.0
UNCOMPRESSED_AUDIO_LIMIT_S = 900.0
# the firebase/flutterfire#17836 report shows a GoAway with timeLeft 50s
GOAWAY_NOTICE_S = 50.0

# tone of each kind of reply, so a caller can tell what it heard (Hz)
GREETING_HZ = 440
REPLY_HZ = 500
WARNING_HZ = 560
GOODBYE_HZ = 660

# (close code, reason) Vertex AI closes with, by failure kind (sources in the module docstring)
ERRORS: dict[str, tuple[int, str]] = {
    "permission_denied": (1008, "Permission denied on resource project {project}."),
    "not_found": (1008, "Requested entity was not found."),
    "resource_exhausted": (
        1011,
        "RESOURCE_EXHAUSTED: Quota exceeded for aiplatform.googleapis.com/"
        "bidi_generate_content_concurrent_sessions.",
    ),
    "internal": (1011, "Internal error occurred."),
    "context_exhausted": (1007, "Request contains an invalid argument."),
}


@dataclass
class Behaviour:
    """What the fake does; every clock in emulated seconds (see ``scale``)."""

    scale: float = 1.0
    connection_lifetime_s: float = CONNECTION_LIFETIME_S
    goaway_notice_s: float = GOAWAY_NOTICE_S
    uncompressed_limit_s: float = UNCOMPRESSED_AUDIO_LIMIT_S
    # location -> error kind for every connection to that location (model not there, ...)
    fail_locations: dict[str, str] = field(default_factory=dict)
    # error kinds served to the next connection attempts, one per attempt, in order
    connect_failures: list[str] = field(default_factory=list)
    # close the Nth connection (1-based, over the whole server) with "internal" this long after
    # it opened, and refuse every later connection with ``then_fail_with`` (None: accept them)
    midcall_error_on_connection: int | None = None
    midcall_error_after_s: float = 0.0
    then_fail_with: str | None = None
    end_call_after_turns: int | None = None
    reply_seconds: float = 0.5
    vad_min_speech_ms: int = 200
    vad_silence_ms: int = 500
    # real seconds between the end of a turn and the first audio chunk of the reply
    answer_delay_s: float = 0.0
    # how long a resumption handle is accepted after its session's last connection ended
    # (emulated seconds; the Gemini API documents 2 h, see the module docstring)
    handle_lifetime_s: float = 2 * 3600.0
    # appended to the outputTranscription of every reply after the first
    # ``transcript_suffix_after`` (a test plants characters a model may emit, e.g. U+0000)
    transcript_suffix: str = ""
    transcript_suffix_after: int = 0


@dataclass
class Turn:
    role: str
    text: str
    tokens: int
    # Live API MediaModality of what this turn was made of (caller speech and model replies
    # are audio; clientContent turns are text)
    modality: str = "AUDIO"


@dataclass
class SessionRecord:
    id: str
    started_at: float
    history: list[Turn] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    dropped_turns: int = 0
    compressions: int = 0
    terminated: str | None = None
    tool_calls: list[str] = field(default_factory=list)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    not_resumable_updates: int = 0
    # connections of this session now open, and when the last one ended (``clock`` time)
    open_connections: int = 0
    ended_at: float | None = None

    @property
    def tokens(self) -> int:
        return sum(turn.tokens for turn in self.history)


@dataclass
class ConnectionRecord:
    index: int
    location: str
    model: str
    resumed_from: str | None
    compression: dict[str, Any] | None
    resumption: bool
    tools: list[str]
    opened_at: float
    session_id: str | None = None
    history_at_open: int = 0
    ready_at: float | None = None
    goaway_at: float | None = None
    closed_at: float | None = None
    close: tuple[int, str] | None = None
    turns: int = 0
    # text of every clientContent turn this connection received, in order
    client_texts: list[str] = field(default_factory=list)


class FakeGeminiLive:
    # What answers on each connection once setup is done (None: _Connection); tests that need a
    # model which does something else (asks for a tool, say) subclass _Connection and name it.
    connection_class: type | None = None

    def __init__(self, workdir: Path, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.workdir = workdir
        self.lock = threading.Lock()
        self.sessions: dict[str, SessionRecord] = {}
        self.connections: list[ConnectionRecord] = []
        self.rejected_auth = 0
        # handle -> (session id, the session's history when the handle was issued)
        self._handles: dict[str, tuple[str, list[Turn]]] = {}
        # the clock of handle lifetimes (monotonic seconds; a test may replace it to age handles)
        self.clock = time.monotonic
        self._token: str | None = None
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.cert_path = workdir / "fake-vertex-ca.pem"

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, *, token: str) -> FakeGeminiLive:
        self._token = token
        ctx = self._tls_context()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(ctx)), name="fake-gemini-live", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Gemini Live server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def env(self) -> dict[str, str]:
        return {
            "GOOGLE_VERTEX_BASE_URL": f"https://127.0.0.1:{self._port}/",
            "SSL_CERT_FILE": str(self.cert_path),
        }

    def emulated(self, real_seconds: float) -> float:
        return real_seconds * self.behaviour.scale

    def real(self, emulated_seconds: float) -> float:
        return emulated_seconds / self.behaviour.scale

    async def _serve(self, ctx: ssl.SSLContext) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=ctx,
            process_request=self._check_request,
            max_size=None,
        ) as server:
            self._port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _tls_context(self) -> ssl.SSLContext:
        """A self-signed certificate for 127.0.0.1, the only name the worker dials."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-vertex-ai")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_path = self.workdir / "fake-vertex-key.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, key_path)
        return ctx

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        # google-genai joins a base URL ending in "/" with "/ws/...": the path starts "//ws/"
        # against Google too, whose front end treats repeated slashes as one
        if "/" + request.path.split("?", 1)[0].lstrip("/") != LIVE_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if request.headers.get("Authorization") != f"Bearer {self._token}":
            with self.lock:
                self.rejected_auth += 1
            return connection.respond(
                HTTPStatus.UNAUTHORIZED, "Request had invalid authentication credentials.\n"
            )
        return None

    # ---- one connection -------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        try:
            setup = json.loads(await ws.recv())["setup"]
        except (ConnectionClosed, KeyError, ValueError):
            await ws.close(1007, "Request contains an invalid argument.")
            return
        self._on_setup(setup)
        record = self._open(setup)
        failure = self._connect_failure(record, setup)
        if failure is not None:
            await self._close(ws, record, failure)
            return
        session = self._attach_session(record, setup)
        if session is None:
            await self._close(ws, record, "not_found")
            return
        try:
            await ws.send(json.dumps({"setupComplete": {"sessionId": session.id}}))
            with self.lock:
                record.ready_at = time.monotonic()
            if record.resumption:
                await self._send_handle(ws, session)
            conn = (self.connection_class or _Connection)(self, ws, record, session)
            await conn.run()
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                session.open_connections -= 1
                if session.open_connections == 0:
                    session.ended_at = self.clock()

    def _on_setup(self, setup: dict[str, Any]) -> None:
        """Every setup message as the client sent it; a hook for tests that read them."""

    def _open(self, setup: dict[str, Any]) -> ConnectionRecord:
        model_path = setup.get("model", "")
        parts = model_path.split("/")
        location = parts[3] if len(parts) > 3 and parts[2] == "locations" else ""
        tools = [
            decl.get("name", "")
            for tool in setup.get("tools", []) or []
            for decl in tool.get("functionDeclarations", []) or []
        ]
        resumption = setup.get("sessionResumption")
        with self.lock:
            record = ConnectionRecord(
                index=len(self.connections) + 1,
                location=location,
                model=parts[-1] if parts else "",
                resumed_from=(resumption or {}).get("handle"),
                compression=setup.get("contextWindowCompression"),
                resumption=resumption is not None,
                tools=tools,
                opened_at=time.monotonic(),
            )
            self.connections.append(record)
        return record

    def _connect_failure(self, record: ConnectionRecord, setup: dict[str, Any]) -> str | None:
        b = self.behaviour
        with self.lock:
            if record.location in b.fail_locations:
                return b.fail_locations[record.location]
            if b.connect_failures:
                return b.connect_failures.pop(0)
            if (
                b.then_fail_with is not None
                and b.midcall_error_on_connection is not None
                and record.index > b.midcall_error_on_connection
            ):
                return b.then_fail_with
        return None

    def _attach_session(self, record: ConnectionRecord, setup: dict[str, Any]) -> SessionRecord | None:
        with self.lock:
            if record.resumed_from:
                session_id, state = self._handles.get(record.resumed_from, ("", []))
                session = self.sessions.get(session_id)
                if session is None or session.terminated:
                    return None
                if (session.open_connections == 0 and session.ended_at is not None
                        and self.emulated(self.clock() - session.ended_at) > self.behaviour.handle_lifetime_s):
                    return None  # expired: the session ended longer ago than a handle lives
                # the state the handle represents (later turns are lost)
                session.history = list(state)
            else:
                session = SessionRecord(id=secrets.token_hex(8), started_at=time.monotonic())
                self.sessions[session.id] = session
            record.session_id = session.id
            record.history_at_open = len(session.history)
            session.open_connections += 1
            return session

    async def _send_handle(self, ws: ServerConnection, session: SessionRecord) -> None:
        handle = "h-" + secrets.token_urlsafe(12)
        with self.lock:
            self._handles[handle] = (session.id, list(session.history))
            session.handles.append(handle)
        await ws.send(
            json.dumps({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
        )

    async def _close(self, ws: ServerConnection, record: ConnectionRecord, kind: str) -> None:
        code, reason = ERRORS[kind]
        reason = reason.format(project="voice-agent-test")
        with self.lock:
            record.close = (code, kind)
            record.closed_at = time.monotonic()
        await ws.close(code, reason)

    # ---- what tests read ------------------------------------------------------------------
    def snapshot(self) -> tuple[list[SessionRecord], list[ConnectionRecord]]:
        with self.lock:
            return list(self.sessions.values()), list(self.connections)

    def rotation_gaps_ms(self) -> list[float]:
        """GoAway sent -> the resumed connection ready, per rotation."""
        with self.lock:
            by_session: dict[str, list[ConnectionRecord]] = {}
            for record in self.connections:
                if record.session_id and record.ready_at is not None:
                    by_session.setdefault(record.session_id, []).append(record)
        gaps = []
        for records in by_session.values():
            for before, after in zip(records, records[1:]):
                if before.goaway_at is not None and after.resumed_from:
                    gaps.append((after.ready_at - before.goaway_at) * 1000)  # type: ignore[operator]
        return gaps


class _Connection:
    """Reads client messages, runs the server VAD and the clocks of one connection."""

    def __init__(
        self, server: FakeGeminiLive, ws: ServerConnection, record: ConnectionRecord, session: SessionRecord
    ) -> None:
        self.server = server
        self.ws = ws
        self.record = record
        self.session = session
        self.b = server.behaviour
        self.loud_ms = 0.0
        self.quiet_ms = 0.0
        self.user_turns = 0
        self.pending_tool: str | None = None
        self.send_lock = asyncio.Lock()

    async def run(self) -> None:
        clocks = asyncio.create_task(self._clocks())
        try:
            async for raw in self.ws:
                await self._on_message(json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            clocks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clocks
            with self.server.lock:
                if self.record.closed_at is None:
                    self.record.closed_at = time.monotonic()
                    self.record.close = (self.ws.close_code or 1000, "client")

    async def _clocks(self) -> None:
        """GoAway and the connection's end; the uncompressed limit; a scripted mid-call error."""
        b = self.b
        opened = self.record.opened_at
        deadlines: list[tuple[float, str]] = [
            (opened + self.server.real(b.connection_lifetime_s - b.goaway_notice_s), "goaway"),
            (opened + self.server.real(b.connection_lifetime_s), "lifetime"),
        ]
        if self.record.compression is None:
            deadlines.append(
                (self.session.started_at + self.server.real(b.uncompressed_limit_s), "limit")
            )
        if b.midcall_error_on_connection == self.record.index:
            deadlines.append((opened + self.server.real(b.midcall_error_after_s), "internal"))
        for deadline, what in sorted(deadlines):
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            if what == "goaway":
                with self.server.lock:
                    self.record.goaway_at = time.monotonic()
                left = int(b.goaway_notice_s)
                await self._send({"goAway": {"timeLeft": f"{left}s"}})
            elif what == "lifetime":
                await self.ws.close(1000, "connection lifetime reached")
                return
            elif what == "limit":
                with self.server.lock:
                    self.session.terminated = "uncompressed_limit"
                await self.server._close(self.ws, self.record, "context_exhausted")
                return
            else:
                await self.server._close(self.ws, self.record, "internal")
                return

    async def _send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send(json.dumps(message))

    async def _on_message(self, message: dict[str, Any]) -> None:
        # google-genai 3.4.0 sends the top-level keys in proto field names (client_content,
        # realtime_input, tool_response) and the rest camelCase; the proto3 JSON mapping lets a
        # parser accept either spelling (https://protobuf.dev/programming-guides/json/), as
        # Google's does, so this one does too
        if (body := _field(message, "realtime_input")) is not None:
            await self._on_audio(body)
        elif (body := _field(message, "client_content")) is not None:
            await self._on_client_content(body)
        elif (body := _field(message, "tool_response")) is not None:
            await self._on_tool_response(body)

    async def _on_audio(self, realtime_input: dict[str, Any]) -> None:
        audio = _field(realtime_input, "audio")
        blobs = [audio] if audio else []
        blobs += _field(realtime_input, "media_chunks") or []
        for blob in blobs:
            pcm = _bytes(blob.get("data", ""))
            samples = memoryview(pcm).cast("h") if len(pcm) % 2 == 0 and pcm else memoryview(b"")
            if not len(samples):
                continue
            ms = len(samples) * 1000 / INPUT_RATE
            peak = max(abs(s) for s in samples)
            if peak > 1000:
                self.loud_ms += ms
                self.quiet_ms = 0.0
            else:
                self.quiet_ms += ms
            if self.loud_ms >= self.b.vad_min_speech_ms and self.quiet_ms >= self.b.vad_silence_ms:
                spoken = self.loud_ms
                self.loud_ms = 0.0
                await self._on_user_turn(spoken)

    async def _on_user_turn(self, spoken_ms: float) -> None:
        self.user_turns += 1
        with self.server.lock:
            self.session.history.append(
                Turn("user", f"caller turn {len(self.session.history) + 1}", _tokens(spoken_ms / 1000))
            )
            total_user_turns = sum(1 for t in self.session.history if t.role == "user")
        if (
            self.b.end_call_after_turns is not None
            and total_user_turns >= self.b.end_call_after_turns
            and "end_call" in self.record.tools
        ):
            call_id = "call-" + secrets.token_hex(4)
            self.pending_tool = call_id
            await self._not_resumable()
            with self.server.lock:
                self.session.tool_calls.append("end_call")
            await self._send(
                {"toolCall": {"functionCalls": [{"id": call_id, "name": "end_call", "args": {}}]}}
            )
            return
        await self._reply(REPLY_HZ, "reply")

    async def _on_client_content(self, content: dict[str, Any]) -> None:
        texts = [
            part.get("text", "")
            for turn in content.get("turns", []) or []
            for part in turn.get("parts", []) or []
        ]
        text = " ".join(texts)
        with self.server.lock:
            for turn in content.get("turns", []) or []:
                words = " ".join(p.get("text", "") for p in turn.get("parts", []) or [])
                self.record.client_texts.append(words)
                self.session.history.append(
                    Turn(turn.get("role", "user"), words, _tokens_text(words), modality="TEXT")
                )
        if not _field(content, "turn_complete"):
            return
        lowered = text.lower()
        if "goodbye" in lowered:
            await self._reply(GOODBYE_HZ, "goodbye")
        elif "minute" in lowered:
            await self._reply(WARNING_HZ, "warning")
        elif "greet" in lowered:
            await self._reply(GREETING_HZ, "greeting")
        else:
            await self._reply(REPLY_HZ, "reply")

    async def _on_tool_response(self, response: dict[str, Any]) -> None:
        with self.server.lock:
            self.session.tool_responses.extend(_field(response, "function_responses") or [])
        if self.pending_tool is not None:
            self.pending_tool = None
            # auto tool reply: the model speaks after the function response
            await self._reply(GOODBYE_HZ, "goodbye")

    async def _reply(self, hz: int, kind: str) -> None:
        with self.server.lock:
            remembered = len(self.session.history)
            text = f"{kind} {len(self.session.replies) + 1}; I remember {remembered} turns."
            if len(self.session.replies) + 1 > self.b.transcript_suffix_after:
                text += self.b.transcript_suffix
            self.session.replies.append(kind)
            self.record.turns += 1
        await self._not_resumable()
        if self.b.answer_delay_s > 0:
            await asyncio.sleep(self.b.answer_delay_s)
        chunk = OUTPUT_RATE // 10
        total = int(self.b.reply_seconds * OUTPUT_RATE)
        for start in range(0, total, chunk):
            pcm = _tone(hz, start, min(chunk, total - start))
            await self._send(
                {
                    "serverContent": {
                        "modelTurn": {
                            "role": "model",
                            "parts": [
                                {
                                    "inlineData": {
                                        "mimeType": f"audio/pcm;rate={OUTPUT_RATE}",
                                        "data": base64.b64encode(pcm).decode(),
                                    }
                                }
                            ],
                        }
                    }
                }
            )
        await self._send({"serverContent": {"outputTranscription": {"text": text}}})
        await self._send({"serverContent": {"generationComplete": True}})
        await self._send({"serverContent": {"turnComplete": True}})
        with self.server.lock:
            prompt = _by_modality(self.session.history)
            self.session.history.append(Turn("model", text, _tokens(self.b.reply_seconds)))
            self._compress()
        await self._send({"usageMetadata": _usage_metadata(prompt, _tokens(self.b.reply_seconds))})
        if self.record.resumption:
            await self.server._send_handle(self.ws, self.session)

    async def _not_resumable(self) -> None:
        """Generating or executing a tool: no handle now (the last one stays the latest)."""
        if self.record.resumption:
            with self.server.lock:
                self.session.not_resumable_updates += 1
            await self._send({"sessionResumptionUpdate": {"resumable": False}})

    def _compress(self) -> None:
        """Sliding window: past triggerTokens, drop the oldest turns down to targetTokens."""
        window = (self.record.compression or {}).get("slidingWindow")
        if window is None:
            return
        trigger = int(self.record.compression.get("triggerTokens", 0) or 0)  # type: ignore[union-attr]
        target = int(window.get("targetTokens", 0) or 0)
        if not trigger or self.session.tokens <= trigger:
            return
        self.session.compressions += 1
        while self.session.history and self.session.tokens > target:
            self.session.history.pop(0)
            self.session.dropped_turns += 1


def _by_modality(history: list[Turn]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for turn in history:
        counts[turn.modality] = counts.get(turn.modality, 0) + turn.tokens
    return counts


def _usage_metadata(prompt: dict[str, int], response_audio: int) -> dict[str, Any]:
    """One response's usageMetadata, Vertex AI field names: the context it read (prompt, by modality) and the audio
    it spoke (the fake's replies carry audio only; the transcription is not billed as output)."""
    prompt_total = sum(prompt.values())
    return {
        "promptTokenCount": prompt_total,
        "candidatesTokenCount": response_audio,
        "totalTokenCount": prompt_total + response_audio,
        "promptTokensDetails": [
            {"modality": modality, "tokenCount": count} for modality, count in sorted(prompt.items())
        ],
        "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": response_audio}],
    }


def _field(message: dict[str, Any], name: str) -> Any:
    """A field by its proto name or its lowerCamelCase JSON name."""
    if name in message:
        return message[name]
    head, *rest = name.split("_")
    return message.get(head + "".join(part.title() for part in rest))


def _bytes(data: str) -> bytes:
    """Proto3 JSON bytes: standard or URL-safe base64, padded or not (google-genai sends the
    URL-safe unpadded form); Google's parser accepts all four."""
    data = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(data + "=" * (-len(data) % 4))


def _tokens(seconds: float) -> int:
    return max(1, round(seconds * AUDIO_TOKENS_PER_SECOND))


def _tokens_text(text: str) -> int:
    # about four characters per token (Gemini token counting docs)
    return max(1, len(text) // 4)


def _tone(hz: int, start: int, count: int) -> bytes:
    samples = [
        int(8000 * math.sin(2 * math.pi * hz * (start + i) / OUTPUT_RATE)) for i in range(count)
    ]
    return array.array("h", samples).tobytes()
