"""What the worker process runs for recovery: the watcher task and the recovery metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .telemetry import RecoveryLogCounter, default_recovery_metrics

if TYPE_CHECKING:
    from ..settings import AgentSettings


class RecoveryRuntime:
    """Counts the job processes' checkpoint lines; runs the watcher (or, with it off, the sweep)."""

    def __init__(self, settings: AgentSettings) -> None:
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        if settings.recovery.enabled:
            logging.getLogger().addHandler(RecoveryLogCounter(default_recovery_metrics()))

    def start(self) -> None:
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
        self._task = asyncio.get_running_loop().create_task(watcher.run(), name="voice_agent_recovery_watcher")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
