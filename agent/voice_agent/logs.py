"""JSON log lines on stdout in the shape Cloud Logging parses into structured entries.

The GKE logging agent turns each JSON line into a LogEntry: ``severity``, ``message`` and
``time`` become the entry's own fields, ``logging.googleapis.com/trace`` / ``spanId`` /
``sourceLocation`` link it to Cloud Trace and the code, and every other key lands in
``jsonPayload`` (room, job_id, session_id, event, ...), where log-based metrics and alerts can
match on it. Reference: https://cloud.google.com/logging/docs/structured-logging

Job processes forward their records to the worker process (livekit-agents IPC), so this
formatter runs in one place, the worker process, for every line the pod writes.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from .privacy import CALL_IDS_HINT, DEFAULT_LOG_CALL_IDS, CallIdScrubber

# LogRecord attributes that are not user fields (plus Python 3.12's taskName).
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# Cloud Logging severities (LogSeverity enum); framework levels DEV (23) and TRACE (5) fold in.
_SEVERITIES = (
    (logging.CRITICAL, "CRITICAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARNING"),
    (logging.INFO, "INFO"),
    (logging.NOTSET, "DEBUG"),
)
TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SOURCE_KEY = "logging.googleapis.com/sourceLocation"


def severity_of(levelno: int) -> str:
    for threshold, name in _SEVERITIES:
        if levelno >= threshold:
            return name
    return "DEFAULT"


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per record: Cloud Logging special fields first, then record extras.

    A record carrying ``trace_id`` (32 hex chars, from an active OpenTelemetry span) gets
    ``logging.googleapis.com/trace`` as ``projects/<project>/traces/<trace_id>`` when the
    project is known; without a trace id the key is omitted rather than invented.

    Call identifiers (room names, participant identities, phone numbers: privacy.py) are
    removed or hashed here, from the fields and from the message, per AGENT_LOG_CALL_IDS: the
    one place every line of the pod passes through.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        static_fields: dict[str, Any] | None = None,
        call_ids: CallIdScrubber | None = None,
    ) -> None:
        super().__init__()
        self._project = project
        self._call_ids = call_ids or CallIdScrubber(DEFAULT_LOG_CALL_IDS)
        # e.g. the release (AGENT_VERSION) on every line, job processes' lines included: they
        # are formatted here, in the worker process
        self._static_fields = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        # message and extras are what a log call chose to say: there the call identifiers go
        said = self._call_ids.scrub(
            {"message": self._message(record), **self._extras(record)},
            getattr(record, CALL_IDS_HINT, None) or (),
        )
        entry: dict[str, Any] = {
            "severity": severity_of(record.levelno),
            "message": said.pop("message"),
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "logger": record.name,
            "pid": record.process,
            SOURCE_KEY: {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        entry.update(said)
        for key, value in self._static_fields.items():
            entry.setdefault(key, value)
        self._link_trace(entry)
        return json.dumps(entry, default=_fallback, ensure_ascii=False)

    def _message(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        # Error Reporting picks up stack traces only when they are part of the message.
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        return message

    @staticmethod
    def _extras(record: logging.LogRecord) -> dict[str, Any]:
        return {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRS and not key.startswith("_")
        }

    def _link_trace(self, entry: dict[str, Any]) -> None:
        trace_id = entry.pop("trace_id", None)
        span_id = entry.pop("span_id", None)
        if not trace_id or not self._project:
            return
        entry[TRACE_KEY] = f"projects/{self._project}/traces/{trace_id}"
        if span_id:
            entry[SPAN_KEY] = span_id


def _fallback(value: Any) -> Any:
    if isinstance(value, BaseException):
        return "".join(traceback.format_exception_only(type(value), value)).strip()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def configure_logging(
    level: str,
    *,
    project: str | None = None,
    static_fields: dict[str, Any] | None = None,
    call_ids: CallIdScrubber | None = None,
) -> logging.Handler:
    """Make root log exactly one JSON line per record to stdout, at ``level``.

    Called again after the framework's own setup (which installs its JSON handler with a
    different shape); replacing the handlers keeps one format and no duplicate lines.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        CloudLoggingFormatter(project=project, static_fields=static_fields, call_ids=call_ids)
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    # the framework knows WARN but not WARNING; logging accepts both
    root.setLevel(level)
    return handler


# Rollout signals (seed 001's runbook: registered, draining, sessions trending to zero) go
# through one logger pinned at INFO, so AGENT_LOG_LEVEL=ERROR cannot silence them, and the
# worker process can derive the session metrics from them (see metrics.SessionLedger).
LIFECYCLE_LOGGER = "voice_agent.lifecycle"
lifecycle_logger = logging.getLogger(LIFECYCLE_LOGGER)
lifecycle_logger.setLevel(logging.INFO)


def log_event(event: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """One lifecycle line: ``event`` is the stable key alerts and log-based metrics match on."""
    lifecycle_logger.log(level, message, extra={"event": event, **fields})
