"""The readiness state machine (voice_agent/readiness.py) without a worker or a server.

test_readiness.py proves the endpoints against a real livekit-server and a real worker; these
reach every transition and every branch in milliseconds, so a change to the rules fails here
first. Guards against: a reconnect or a late registration putting a draining or failed worker
back in rotation; a framework line other than the connection-lost warning taking a pod out;
a broken /live while the worker is not ready.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import aiohttp
import pytest
from helpers.livekit_server import free_port
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge

from voice_agent.readiness import (
    CONNECTION_LOST_PREFIX,
    FRAMEWORK_LOGGER,
    ConnectionWatch,
    ProbeServer,
    Readiness,
)

NOT_REGISTERED = (False, "not registered with LiveKit (connecting or reconnecting)")
READY = (True, "registered with LiveKit")
DRAINING = (False, "draining: no new jobs, running calls continue")


def test_a_new_worker_is_not_ready() -> None:
    readiness = Readiness()
    assert readiness.status() == NOT_REGISTERED
    assert readiness.is_registered is False


def test_registration_makes_it_ready_and_a_lost_connection_takes_it_out_until_it_registers_again() -> None:
    readiness = Readiness()
    readiness.registered()
    assert readiness.status() == READY and readiness.is_registered
    readiness.connection_lost()
    assert readiness.status() == NOT_REGISTERED and not readiness.is_registered
    readiness.registered()
    assert readiness.status() == READY


def test_a_lost_connection_before_registration_stays_not_ready() -> None:
    readiness = Readiness()
    readiness.connection_lost()
    assert readiness.status() == NOT_REGISTERED


@pytest.mark.parametrize("registered_first", [True, False])
def test_draining_is_final_whatever_the_connection_does(registered_first: bool) -> None:
    """A drain that starts before or after registration; a reconnect during the drain (the
    framework re-registers a draining worker) must not put it back in rotation."""
    readiness = Readiness()
    if registered_first:
        readiness.registered()
    readiness.draining()
    assert readiness.status() == DRAINING
    readiness.registered()
    assert readiness.status() == DRAINING
    readiness.connection_lost()
    assert readiness.status() == DRAINING
    readiness.registered()
    readiness.draining()  # the CLI's drain after a drain: still draining, nothing else
    assert readiness.status() == DRAINING


def test_blocked_is_final_and_names_its_reason_above_everything() -> None:
    readiness = Readiness()
    readiness.registered()
    readiness.blocked("worker failed: model unreachable: 403")
    assert readiness.status() == (False, "worker failed: model unreachable: 403")
    for step in (readiness.registered, readiness.draining, readiness.connection_lost, readiness.registered):
        step()
        assert readiness.status() == (False, "worker failed: model unreachable: 403")


def test_blocked_wins_over_draining_whichever_came_first() -> None:
    readiness = Readiness()
    readiness.draining()
    readiness.blocked("worker failed: boom")
    assert readiness.status() == (False, "worker failed: boom")


def test_blocked_with_an_empty_reason_is_still_blocked() -> None:
    """`is not None`, not truthiness: an exception with an empty message still blocks."""
    readiness = Readiness()
    readiness.registered()
    readiness.blocked("")
    assert readiness.status() == (False, "")


def test_every_change_reports_whether_the_worker_is_registered() -> None:
    """The worker's voice_agent_registered gauge follows this callback (worker.py)."""
    seen: list[bool] = []
    readiness = Readiness(on_change=seen.append)
    readiness.registered()
    readiness.connection_lost()
    readiness.registered()
    readiness.draining()
    readiness.blocked("worker failed: x")
    readiness.connection_lost()
    assert seen == [True, False, True, True, True, False]


def test_without_a_callable_callback_changes_are_silent() -> None:
    for on_change in (None, "not callable"):
        readiness = Readiness(on_change=on_change)
        readiness.registered()
        readiness.draining()
        assert readiness.status() == DRAINING


def test_the_callback_runs_outside_the_lock() -> None:
    """A callback that reads the state (as any metrics hook may) must not deadlock: the lock
    is not re-entrant, so it has to be released before the callback runs."""
    statuses: list[tuple[bool, str]] = []
    readiness = Readiness(on_change=lambda _: statuses.append(readiness.status()))
    thread = threading.Thread(target=readiness.registered, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "registered() deadlocked in its callback"
    assert statuses == [READY]


# ---- the framework's connection-lost warning ----------------------------------------------------


@pytest.fixture
def framework_logger() -> Iterator[tuple[logging.Logger, Readiness]]:
    """The framework's logger with only our watch on it (restored after)."""
    logger = logging.getLogger(FRAMEWORK_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    readiness = Readiness()
    readiness.registered()
    logger.handlers[:] = [ConnectionWatch(readiness)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, readiness
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_the_watch_reads_the_framework_s_own_words() -> None:
    """livekit-agents 1.8.9 worker.py _connection_task logs exactly this before every retry."""
    from livekit.agents import worker

    with open(worker.__file__, encoding="utf-8") as source:
        assert f'f"{CONNECTION_LOST_PREFIX}, retrying in {{retry_delay}}s"' in source.read()
    assert FRAMEWORK_LOGGER == worker.logger.name


@pytest.mark.parametrize(("level", "lost"), [(logging.INFO, False), (logging.WARNING - 1, False),
                                             (logging.WARNING, True), (logging.ERROR, True)])
def test_the_warning_takes_the_worker_out_at_warning_and_above(framework_logger, level: int, lost: bool) -> None:
    logger, readiness = framework_logger
    logger.log(level, "failed to connect to livekit, retrying in %ss", 2)
    assert readiness.is_registered is not lost


@pytest.mark.parametrize(
    ("name", "message", "lost"),
    [
        (FRAMEWORK_LOGGER, "failed to connect to livekit, retrying in 4s", True),
        (FRAMEWORK_LOGGER, "failed to connect to livekit after 16 attempts", True),
        (FRAMEWORK_LOGGER, "worker failed to connect to livekit", False),   # prefix, not substring
        (FRAMEWORK_LOGGER, "Failed to connect to LiveKit", False),          # the exact words
        (FRAMEWORK_LOGGER + ".worker", "failed to connect to livekit, retrying in 2s", False),
        ("livekit.plugins.google", "failed to connect to livekit, retrying in 2s", False),
    ],
)
def test_only_the_framework_s_connection_warning_counts(name: str, message: str, lost: bool) -> None:
    readiness = Readiness()
    readiness.registered()
    watch = ConnectionWatch(readiness)
    assert watch.level == logging.WARNING
    watch.handle(logging.LogRecord(name, logging.WARNING, "worker.py", 1, message, None, None))
    assert readiness.is_registered is not lost


# ---- the endpoints ---------------------------------------------------------------------------------


async def _get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.text(), response.headers.get("Content-Type", "")


def test_the_probes_answer_what_the_state_says() -> None:
    registry = CollectorRegistry()
    Gauge("probe_test_gauge", "a series only this registry has", registry=registry).set(7)

    async def scenario() -> list[tuple[int, str]]:
        readiness = Readiness()
        port = free_port()
        server = ProbeServer(readiness, "127.0.0.1", port, registry=registry)
        await server.start()
        seen = []
        try:
            for step in (None, readiness.registered, readiness.connection_lost, readiness.registered,
                         readiness.draining, lambda: readiness.blocked("worker failed: gone")):
                if step is not None:
                    step()
                ready, ready_text, _ = await _get(port, "/ready")
                live, live_text, _ = await _get(port, "/live")
                seen.append((ready, ready_text, live, live_text))
            status, body, content_type = await _get(port, "/metrics")
            seen.append((status, body, content_type))
        finally:
            await server.aclose()
            await server.aclose()  # idempotent: the worker closes it once more on the way out
        return seen

    *probes, metrics = asyncio.run(scenario())
    alive = (200, "alive")
    assert probes == [
        (503, NOT_REGISTERED[1], *alive),
        (200, READY[1], *alive),
        (503, NOT_REGISTERED[1], *alive),
        (200, READY[1], *alive),
        (503, DRAINING[1], *alive),
        (503, "worker failed: gone", *alive),
    ]
    status, body, content_type = metrics
    assert status == 200 and "probe_test_gauge 7.0" in body
    assert content_type.split(";")[0] == CONTENT_TYPE_LATEST.split(";")[0]
