"""Readiness and liveness for Kubernetes, served next to /metrics on AGENT_METRICS_PORT.

Why our own endpoints: the framework's health server (livekit-agents 1.8.9 worker.py,
``health_check`` on AGENT_HEALTH_PORT) answers 200 from the moment it listens until the worker
has given up on LiveKit for good (16 retries, about 130 s). As readiness it lets a release with
a wrong secret, URL or model identity replace every healthy pod; its app is built and started
inside ``AgentServer.run`` with no hook to add a route, hence a server of our own.

- ``GET /ready``: 200 only while the worker is registered with LiveKit and not draining.
  Registration is the framework's public ``worker_registered`` event; losing the connection is
  its warning ``failed to connect to livekit, retrying in ...`` (worker.py ``_connection_task``,
  logged at once when the socket drops and before every retry); draining is our ``drain()``
  override, which flips readiness before the framework starts waiting for jobs.
- ``GET /live``: 200 whenever the worker's event loop answers. A LiveKit outage, a drain or a
  full worker never fails it (readiness shows those); a wedged loop does.
- ``GET /metrics``: the process's default Prometheus registry (ours and the framework's
  ``lk_agents_*``), exactly what the framework's own metrics server would serve without
  multiprocess mode.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

READY_PATH = "/ready"
LIVE_PATH = "/live"
METRICS_PATH = "/metrics"
# The framework's warning when its LiveKit connection drops or an attempt fails
# (livekit-agents 1.8.9 worker.py, _connection_task: "failed to connect to livekit, retrying in
# {delay}s"); a successful reconnect emits worker_registered again.
CONNECTION_LOST_PREFIX = "failed to connect to livekit"
FRAMEWORK_LOGGER = "livekit.agents"


class Readiness:
    """Registered with LiveKit and not draining. Thread-safe: log records arrive from any thread."""

    def __init__(self, on_change: object = None) -> None:
        self._lock = threading.Lock()
        self._registered = False
        self._draining = False
        self._blocked: str | None = None
        self._on_change = on_change

    def registered(self) -> None:
        with self._lock:
            self._registered = True
        self._changed()

    def connection_lost(self) -> None:
        with self._lock:
            self._registered = False
        self._changed()

    def draining(self) -> None:
        with self._lock:
            self._draining = True
        self._changed()

    def blocked(self, reason: str) -> None:
        """Never ready again in this process (e.g. the model cannot be reached)."""
        with self._lock:
            self._blocked = reason
        self._changed()

    @property
    def is_registered(self) -> bool:
        with self._lock:
            return self._registered

    def status(self) -> tuple[bool, str]:
        """(ready, why): the reason names what a pod waits for or why it left the rotation."""
        with self._lock:
            if self._blocked is not None:
                return False, self._blocked
            if self._draining:
                return False, "draining: no new jobs, running calls continue"
            if not self._registered:
                return False, "not registered with LiveKit (connecting or reconnecting)"
            return True, "registered with LiveKit"

    def _changed(self) -> None:
        if callable(self._on_change):
            self._on_change(self.is_registered)


class ConnectionWatch(logging.Handler):
    """Marks the worker unregistered on the framework's connection-lost warning."""

    def __init__(self, readiness: Readiness) -> None:
        super().__init__(level=logging.WARNING)
        self._readiness = readiness

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == FRAMEWORK_LOGGER and str(record.msg).startswith(CONNECTION_LOST_PREFIX):
            self._readiness.connection_lost()


class ProbeServer:
    """aiohttp server for /ready, /live and /metrics, run on the worker's event loop."""

    def __init__(
        self, readiness: Readiness, host: str, port: int, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self._readiness = readiness
        self._host, self._port = host, port
        self._registry = registry
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get(READY_PATH, self._ready),
                web.get(LIVE_PATH, self._live),
                web.get(METRICS_PATH, self._metrics),
            ]
        )

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _ready(self, _: web.Request) -> web.Response:
        ready, why = self._readiness.status()
        return web.Response(status=200 if ready else 503, text=why)

    async def _live(self, _: web.Request) -> web.Response:
        return web.Response(text="alive")

    async def _metrics(self, _: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(
            None, generate_latest, self._registry
        )
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
