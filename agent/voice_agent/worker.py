"""The worker process: a livekit-agents 1.8.9 AgentServer built from AgentSettings.

Signals stay with the framework. In ``start`` mode livekit-agents handles the first
SIGTERM/SIGINT by draining (worker reported WS_FULL, running jobs awaited up to
drain_timeout, then job processes shut down) and force-exits on a second signal. Nothing
here installs a signal handler or blocks the event loop; the overrides below only add
log lines and metrics around the framework's own run / drain / close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from livekit.agents import AgentServer
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from . import admission, deletion_cost, session
from .logs import configure_logging, log_event
from .privacy import CallIdScrubber, guard_root_handlers
from .metrics import AgentMetrics, SessionLedger, default_metrics
from .model_access import check_model_access
from .readiness import ConnectionWatch, ProbeServer, Readiness
from .recovery.wiring import RecoveryRuntime
from .settings import AgentSettings

# how often the worker reconciles open sessions with the framework's list of running jobs
RECONCILE_INTERVAL_SECONDS = 5.0


def framework_log_level(level: str) -> str:
    """livekit-agents 1.8.9 spells WARNING as WARN (worker.VALID_LOG_LEVELS)."""
    return "WARN" if level == "WARNING" else level


class VoiceAgentServer(AgentServer):
    """AgentServer plus our logging format, lifecycle lines and metrics."""

    def __init__(self, settings: AgentSettings, metrics: AgentMetrics | None = None) -> None:
        super().__init__(
            ws_url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret,
            drain_timeout=settings.drain_timeout_seconds,
            load_threshold=settings.load_threshold,
            # CPU, memory and the per-pod call cap (admission.py); a runaway job is killed by the
            # framework before the container's limit (ipc/supervised_proc.py, 5 s samples)
            load_fnc=admission.load_function(settings.admission, settings.load_threshold),
            job_memory_limit_mb=settings.admission.job_memory_limit_mb,
            job_memory_warn_mb=settings.admission.job_memory_warn_mb,
            host=settings.http_host,
            port=settings.health_port,
            # No prometheus_port: our ProbeServer serves /metrics on that port, next to /ready
            # and /live (readiness.py explains why the framework's servers cannot host them).
            setup_fnc=session.prewarm,
            # our code imported once in the forkserver and shared copy-on-write by job processes
            preload_modules=["voice_agent.session"],
            log_level=framework_log_level(settings.log_level),
        )
        self.rtc_session(
            session.entrypoint,
            agent_name=settings.agent_name,
            on_request=session.on_request,
        )
        self._settings = settings
        self._metrics = metrics or default_metrics(settings.version)
        self._metrics.load_threshold.set(settings.load_threshold)
        self._ledger = SessionLedger(self._metrics)
        self._readiness = Readiness(on_change=self._on_readiness_change)
        self._probes = ProbeServer(self._readiness, settings.http_host, settings.metrics_port)
        self._reconcile_task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self._framework_started = False
        self._drain_ended = False
        self.on("worker_started", self._on_worker_started)
        self.on("worker_registered", self._on_worker_registered)

    @property
    def settings(self) -> AgentSettings:
        return self._settings

    @property
    def ledger(self) -> SessionLedger:
        return self._ledger

    @property
    def readiness(self) -> Readiness:
        return self._readiness

    async def run(self, *, devmode: bool = False, unregistered: bool = False) -> None:
        # The framework's start command has just installed its own JSON handler (another
        # shape); switch to the Cloud Logging shape before its first line.
        configure_logging(
            self._settings.log_level,
            project=self._settings.gcp_project,
            # not "version": framework lines carry their own (livekit-agents' release) under it
            static_fields={"agent_version": self._settings.version},
            # room names, identities, phone numbers: removed unless AGENT_LOG_CALL_IDS asks
            call_ids=CallIdScrubber(self._settings.log_call_ids),
        )
        # no conversation text in any line at INFO+, at DEBUG only if explicitly allowed
        guard_root_handlers(allow_debug_text=self._settings.log_conversation_text)
        logging.getLogger().addHandler(self._ledger)
        self._recovery = RecoveryRuntime(self._settings)  # crash recovery (docs/recovery.md)
        logging.getLogger().addHandler(ConnectionWatch(self._readiness))
        self._metrics.draining.set(0)
        self._metrics.registered.set(0)
        log_event(
            "worker_starting",
            "voice agent worker starting",
            devmode=devmode,
            **self._settings.public_fields(),
        )
        try:
            # up before anything slow, so /live answers while the worker starts
            await self._probes.start()
            await self._require_model_access()
            self._framework_started = True
            await super().run(devmode=devmode, unregistered=unregistered)
        except Exception as exc:
            # the framework logs "worker failed" and still exits cleanly; remember it so
            # __main__ can exit non-zero (e.g. LiveKit unreachable after all retries)
            self.failure = exc
            self._readiness.blocked(f"worker failed: {exc}")
            raise
        finally:
            if self._reconcile_task is not None:
                self._reconcile_task.cancel()
            if getattr(self, "_deletion_cost_task", None) is not None:
                self._deletion_cost_task.cancel()
            self._recovery.stop()

    async def _require_model_access(self) -> None:
        """Never register (so never be ready, never take a call) without a way to the model."""
        started = time.monotonic()
        result = await check_model_access(self._settings)
        log_event(
            "model_access_checked" if result.ok else "model_unreachable",
            "model access checked" if result.ok else "model unreachable: not registering",
            level=logging.INFO if result.ok else logging.ERROR,
            ok=result.ok,
            detail=result.detail,
            attempts=result.attempts,
            waited_seconds=round(time.monotonic() - started, 3),
            gemini_model=self._settings.gemini_model,
            gcp_project=self._settings.gcp_project,
        )
        if not result.ok:
            raise RuntimeError(f"model unreachable: {result.detail}")

    def _count_drain(self, event: str) -> None:
        self._metrics.drain_events.labels(self._metrics.version, event).inc()

    def _on_readiness_change(self, registered: bool) -> None:
        self._metrics.registered.set(1 if registered else 0)

    async def drain(self, timeout: NotGivenOr[int | None] = NOT_GIVEN) -> None:
        if not self._framework_started:
            # the CLI calls drain() after any end of run(); before the framework ran there is
            # nothing to drain (and no process pool to look at)
            return
        if self.draining or self.failure is not None:
            # after a failed run the framework still calls drain(); nothing new was taken
            await super().drain(timeout)
            return
        # out of readiness before anything else: the pod stops counting as available at once
        self._readiness.draining()
        self._metrics.draining.set(1)
        self._count_drain("started")
        started = time.monotonic()
        log_event(
            "drain_started",
            "drain started: no new jobs, waiting for running sessions",
            worker_id=self.id,
            active_jobs=len(self.active_jobs),
            active_sessions=self._ledger.open_sessions,
            drain_timeout_seconds=(
                timeout if timeout is not NOT_GIVEN else self._settings.drain_timeout_seconds
            ),
        )
        try:
            await super().drain(timeout)
        except TimeoutError:
            # not swallowed: the framework logs it and shuts the job processes down
            self._count_drain("timed_out")
            self._drain_ended = True
            log_event(
                "drain_timed_out",
                "drain timed out with sessions still running",
                level=logging.WARNING,
                worker_id=self.id,
                active_jobs=len(self.active_jobs),
                waited_seconds=round(time.monotonic() - started, 3),
            )
            raise
        self._count_drain("finished")
        self._drain_ended = True
        log_event(
            "drain_finished",
            "drain finished: no session left",
            worker_id=self.id,
            waited_seconds=round(time.monotonic() - started, 3),
        )

    async def aclose(self) -> None:
        await super().aclose()
        log_event("worker_closed", "voice agent worker closed", worker_id=self.id)
        if self._drain_ended and self._settings.metrics_linger_seconds:
            # The CLI awaits aclose() before it exits: one more scrape sees the last counters
            # (drain finished or timed out). After a finished drain the grace period's shutdown
            # budget (domain/capacity.py, job shutdown the drain did not need) covers it; after a
            # timed-out one a SIGKILL may end the linger early, which costs nothing: no call
            # is left and no state is in memory.
            await asyncio.sleep(self._settings.metrics_linger_seconds)
        await self._probes.aclose()

    def _on_worker_started(self) -> None:
        self._reconcile_task = asyncio.get_running_loop().create_task(
            self._reconcile_forever(), name="voice_agent_session_reconcile"
        )
        self._deletion_cost_task = start_deletion_cost(self)
        self._recovery.start(self._proc_pool)

    def _on_worker_registered(self, worker_id: str, server_info: Any) -> None:
        self._readiness.registered()
        log_event(
            "worker_registered",
            "worker registered with LiveKit",
            worker_id=worker_id,
            livekit_url=self._settings.livekit_url,
            agent_name=self._settings.agent_name,
            server_version=getattr(server_info, "version", ""),
            seconds_since_process_start=round(seconds_since_process_start(), 3),
        )

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL_SECONDS)
            job_ids = [info.job.id for info in self.active_jobs]
            for session_id in self._ledger.reconcile(job_ids):
                log_event(
                    "session_lost",
                    "session ended without a session_ended line (job process gone)",
                    level=logging.WARNING,
                    session_id=session_id,
                )


def start_deletion_cost(server: VoiceAgentServer) -> asyncio.Task[None] | None:
    """Keep the pod's deletion cost (deletion_cost.py) when the pod spec gave its name."""
    a = server.settings.admission
    if not a.pod_name:
        return None
    keeper = deletion_cost.DeletionCostKeeper(
        deletion_cost.PodRef(a.pod_name, a.pod_namespace), a.max_calls,
        api_url=deletion_cost.api_url_from_env(), credentials_dir=a.kube_credentials_dir)
    return asyncio.get_running_loop().create_task(
        keeper.run(lambda: len(server.active_jobs)), name="voice_agent_deletion_cost")


def seconds_since_process_start() -> float:
    import psutil

    return time.time() - psutil.Process().create_time()


def persona_problem(settings: AgentSettings) -> str | None:
    """AGENT_PERSONA imported once in the worker process, before anything starts: a missing
    module or attribute is a bad setting (one line, no traceback), not a failed first call."""
    from .persona_api import PersonaError, load_persona

    try:
        load_persona(settings.persona)
    except PersonaError as exc:
        return str(exc)
    return None


def build_server(settings: AgentSettings) -> VoiceAgentServer:
    return VoiceAgentServer(settings)


def run(settings: AgentSettings) -> int:
    """Run the production ``start`` mode of livekit-agents 1.8.9 for our server.

    ``cli.run_app`` is the framework's documented runner; its ``start`` command and the newer
    ``python -m livekit.agents start`` both end in the same worker loop (signal handling and
    drain included). Our __main__ has already checked that argv is exactly ``start``.
    """
    from livekit.agents import cli

    if (problem := persona_problem(settings)) is not None:
        import sys

        print(f"voice-agent: invalid agent configuration:\n  - {problem}", file=sys.stderr)
        return 2  # as __main__ does for a bad setting
    server = build_server(settings)
    try:
        cli.run_app(server)
        code = 0
    except SystemExit as exc:  # the framework's CLI always ends with sys.exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if server.failure is not None and code == 0:
        code = 1
    log_event(
        "worker_exit",
        "voice agent exiting",
        level=logging.INFO if code == 0 else logging.ERROR,
        exit_code=code,
        failure=str(server.failure) if server.failure else None,
    )
    return code
