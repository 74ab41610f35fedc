"""What the worker process runs for recovery: the watcher task and the recovery metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .telemetry import RecoveryLogCounter, default_recovery_metrics

if TYPE_CHECKING:
    from ..settings import AgentSettings


class RecoveryRuntime:
    """Counts the job processes' checkpoint lines; runs the watcher (or, with it off, the sweep)."""

    def __init__(self, settings: AgentSettings) -> None:
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self._exits: set[asyncio.Task[bool]] = set()
        if settings.recovery.enabled:
            logging.getLogger().addHandler(RecoveryLogCounter(default_recovery_metrics()))

    def start(self, proc_pool: Any = None) -> None:
        """``proc_pool``: the framework's ipc.proc_pool.ProcPool, whose ``process_closed`` tells
        this worker that one of its job processes exited (see on_process_closed)."""
        recovery = self._settings.recovery
        if not recovery.enabled or self._task is not None:
            return
        # the retention sweep runs whatever the watcher setting; with the watcher off (LiveKit
        # Cloud) nothing is re-dispatched
        from .watcher import RecoveryWatcher

        watcher = RecoveryWatcher(
            recovery,
            livekit_url=self._settings.livekit_url,
            api_key=self._settings.livekit_api_key,
            api_secret=self._settings.livekit_api_secret,
            redispatch=recovery.watcher,
        )
        self._watcher = watcher
        self._task = asyncio.get_running_loop().create_task(watcher.run(), name="voice_agent_recovery_watcher")
        if proc_pool is not None:
            proc_pool.on("process_closed", self.on_process_closed)

    def on_process_closed(self, proc: Any) -> None:
        """A job process of this worker exited: end its call's lease at once (watcher.job_exited).

        livekit-agents 1.8.9 emits ``process_closed`` (ipc/proc_pool.py, _monitor_process_task)
        after ``await proc.join()``, which returns only once the supervisor's thread saw
        multiprocessing's ``Process.join()`` return and recorded the exit code
        (ipc/supervised_proc.py, _sync_run and _supervise_task): the OS process, with the job's
        lease thread in it, is gone. An executor without an exit code (none recorded yet, or a
        thread executor, which has none) is never taken for dead: its lease runs out by itself.
        A process that never ran a job (an idle prewarmed one) has no call to end."""
        job = getattr(proc, "running_job", None)
        if self._watcher is None or job is None or getattr(proc, "exitcode", None) is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._watcher.job_exited(job.job.room.name, job.job.id), name="voice_agent_job_exited")
        self._exits.add(task)
        task.add_done_callback(self._exits.discard)

    def stop(self) -> None:
        for task in list(self._exits):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            self._task = None
