"""Readiness means "registered with LiveKit and not draining"; liveness only "the loop answers".

Real livekit-server, the worker started with the contract command. A bad release (wrong secret,
wrong URL, an identity the model refuses) must never turn ready, so a rollout stalls with the
old pods serving; a good one turns ready as soon as it registers; a draining one leaves at
once while /live stays 200 for as long as its calls run.

Gemini: the tests that place a call use the in-process fake at the model seam
(fake_gemini/sitecustomize.py). The "model refuses" test runs the real Gemini plugin model and
fakes only Google's metadata server at its network boundary (helpers/metadata_server.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from helpers import participant
from helpers.livekit_server import LiveKitServer, free_port, start_livekit_server
from helpers.metadata_server import MetadataServer
from helpers.worker_process import (
    WorkerProcess,
    contract_argv,
    http_get,
    start_worker,
    wait_until_serving,
    worker_env,
)

pytestmark = pytest.mark.integration

# How long a bad worker is watched for a (wrong) ready answer: the framework's first three
# reconnect attempts happen at 0, 2 and 4 s (worker.py: retry delay min(2 * n, 10) s).
BAD_RELEASE_WINDOW_S = 8.0
TIMEOUT = 60.0


def probe(worker: WorkerProcess, path: str) -> tuple[int, str]:
    try:
        return http_get(f"http://127.0.0.1:{worker.env['AGENT_METRICS_PORT']}{path}", timeout=2)
    except OSError as exc:  # not listening yet
        return 0, str(exc)


def wait_probe(worker: WorkerProcess, path: str, status: int, timeout: float = TIMEOUT) -> float:
    """Monotonic time of the first answer with ``status`` (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(worker, path)[0] == status:
            return time.monotonic()
        if worker.process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"{path} never answered {status}\n{worker.tail()}")


def watch_never_ready(worker: WorkerProcess, seconds: float) -> list[int]:
    """Every /ready status seen over ``seconds`` (or until the process exits)."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker.process.poll() is None:
        seen.append(probe(worker, "/ready")[0])
        time.sleep(0.1)
    return seen


def _start(server: LiveKitServer, tmp: Path, name: str, **kwargs) -> WorkerProcess:
    extra = {"HOME": str(tmp), "TMPDIR": str(tmp), **kwargs.pop("extra", {})}
    env = worker_env(server, extra=extra, **kwargs)
    return start_worker(contract_argv(), env, log_path=tmp / f"{name}.log")


def test_good_worker_is_live_at_once_and_ready_when_registered(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    worker = _start(livekit_server, tmp_path, "good")
    try:
        live_at = wait_probe(worker, "/live", 200)
        # before registration: alive, not ready
        status, why = probe(worker, "/ready")
        registered = worker.events("worker_registered")
        assert registered or (status == 503 and "not registered" in why)
        ready_at = wait_probe(worker, "/ready", 200)
        line = worker.wait_for_event("worker_registered", TIMEOUT)
        assert probe(worker, "/ready") == (200, "registered with LiveKit")
        status, metrics = probe(worker, "/metrics")
        assert status == 200
        assert 'voice_agent_registered{version="unversioned"} 1.0' in metrics
        assert "lk_agents_worker_load" in metrics
        print(
            f"process start -> /live {live_at - started:.2f} s, -> ready {ready_at - started:.2f} s"
            f" (worker_registered at {line['seconds_since_process_start']} s since process start)"
        )
    finally:
        worker.stop()


def test_wrong_secret_is_never_ready(livekit_server: LiveKitServer, tmp_path: Path) -> None:
    worker = _start(
        livekit_server, tmp_path, "wrong-secret", extra={"LIVEKIT_API_SECRET": "not-the-secret-" * 3}
    )
    try:
        wait_probe(worker, "/live", 200)
        worker.wait_for_message("failed to connect to livekit, retrying in 0s", TIMEOUT)
        seen = watch_never_ready(worker, BAD_RELEASE_WINDOW_S)
        assert seen and set(seen) == {503}, seen
        assert probe(worker, "/live")[0] == 200
        assert not worker.events("worker_registered")
        assert "not registered with LiveKit" in probe(worker, "/ready")[1]
    finally:
        worker.stop()


def test_wrong_url_is_never_ready(livekit_server: LiveKitServer, tmp_path: Path) -> None:
    nothing_there = f"ws://127.0.0.1:{free_port()}"
    worker = _start(livekit_server, tmp_path, "wrong-url", extra={"LIVEKIT_URL": nothing_there})
    try:
        wait_probe(worker, "/live", 200)
        worker.wait_for_message("failed to connect to livekit, retrying in 0s", TIMEOUT)
        seen = watch_never_ready(worker, BAD_RELEASE_WINDOW_S)
        assert seen and set(seen) == {503}, seen
        assert probe(worker, "/live")[0] == 200
    finally:
        worker.stop()


def test_model_that_refuses_is_never_ready_and_never_registers(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    with MetadataServer(refuse=True) as metadata:
        worker = _start(
            livekit_server, tmp_path, "model-refuses", fake_gemini=False, extra=metadata.env()
        )
        try:
            wait_probe(worker, "/live", 200)
            seen = watch_never_ready(worker, TIMEOUT)
            line = worker.wait_for_event("model_unreachable", 5)
            assert worker.wait_exit(30) == 1
        finally:
            worker.stop()
    assert seen and set(seen) <= {503, 0}, seen
    assert metadata.token_requests >= 2, "the check retries before giving up"
    assert "403" in line["detail"] or "no Google identity" in line["detail"]
    assert not worker.events("worker_registered")


def test_model_with_a_token_is_ready(livekit_server: LiveKitServer, tmp_path: Path) -> None:
    """The same real model path with a metadata server that issues a token: the check passes
    (the test above fails for the refusal, not for the harness)."""
    with MetadataServer(refuse=False) as metadata:
        worker = _start(
            livekit_server, tmp_path, "model-ok", fake_gemini=False, extra=metadata.env()
        )
        try:
            wait_probe(worker, "/ready", 200)
            line = worker.wait_for_event("model_access_checked", 5)
        finally:
            worker.stop()
    assert line["ok"] is True and line["attempts"] == 1
    assert metadata.token_requests == 1


async def _call_then_sigterm(server: LiveKitServer, worker: WorkerProcess) -> dict[str, float]:
    caller = await participant.join_as_caller(server, "ready-drain", "caller-ready")
    try:
        await asyncio.wait_for(caller.agent_joined.wait(), TIMEOUT)
        await asyncio.to_thread(worker.wait_for_event, "session_started", TIMEOUT)
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        unready = await asyncio.to_thread(wait_probe, worker, "/ready", 503, 10)
        drain = await asyncio.to_thread(worker.wait_for_event, "drain_started", 10)
        # the call goes on; liveness must never kill this pod while it drains
        live = [probe(worker, "/live")[0] for _ in range(10)]
        await asyncio.sleep(1.0)
        assert not caller.room.remote_participants == {}
        return {"flip_s": unready - sent, "live_ok": float(set(live) == {200}),
                "active": float(drain["active_sessions"])}
    finally:
        await caller.leave()


def test_draining_worker_leaves_readiness_at_once_and_stays_live(
    tmp_path: Path,
) -> None:
    server = start_livekit_server(tmp_path / "livekit")
    worker = _start(server, tmp_path, "drain")
    try:
        wait_probe(worker, "/ready", 200)
        wait_until_serving(worker)  # ready is registered; a call also needs a job process and room
        result = asyncio.run(_call_then_sigterm(server, worker))
        print(f"SIGTERM -> /ready 503 in {result['flip_s'] * 1000:.0f} ms")
        assert result["live_ok"] == 1.0 and result["active"] == 1
        assert "draining" in probe(worker, "/ready")[1] or worker.process.poll() is not None
        assert worker.wait_exit(60) == 0
    finally:
        worker.stop()
        server.stop()


def test_livekit_outage_unreadies_but_never_fails_liveness(tmp_path: Path) -> None:
    server = start_livekit_server(tmp_path / "livekit")
    worker = _start(server, tmp_path, "outage")
    try:
        wait_probe(worker, "/ready", 200)
        server.stop()
        wait_probe(worker, "/ready", 503, 20)
        assert "not registered" in probe(worker, "/ready")[1]
        assert [probe(worker, "/live")[0] for _ in range(5)] == [200] * 5
        assert probe(worker, "/metrics")[1].count('voice_agent_registered{version="unversioned"} 0.0') == 1
    finally:
        worker.stop()
        server.stop()
