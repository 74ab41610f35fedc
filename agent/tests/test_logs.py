"""Log lines are the JSON shape Cloud Logging parses; lifecycle lines survive a quiet level."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from helpers.log_records import make_record
from voice_agent.logs import (
    SOURCE_KEY,
    SPAN_KEY,
    TRACE_KEY,
    CloudLoggingFormatter,
    configure_logging,
    log_event,
)


_record = make_record


def _format(record: logging.LogRecord, project: str | None = "demo-project") -> dict:
    return json.loads(CloudLoggingFormatter(project=project).format(record))


def test_cloud_logging_special_fields() -> None:
    entry = _format(_record(room="room-1", room_id="RM_1", job_id="AJ_1", session_id="s1"))
    assert entry["severity"] == "INFO"
    assert entry["message"] == "hello world"
    assert entry["time"].endswith("Z")
    datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert entry[SOURCE_KEY] == {"file": "/app/x.py", "line": "42", "function": "fn"}
    assert entry["logger"] == "voice_agent.test"
    assert (entry["room_id"], entry["job_id"], entry["session_id"]) == ("RM_1", "AJ_1", "s1")
    assert "room" not in entry  # the default AGENT_LOG_CALL_IDS=off (test_privacy.py)
    assert "level" not in entry and "levelname" not in entry and "msg" not in entry


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (5, "DEBUG"),  # livekit-agents TRACE
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (23, "INFO"),  # livekit-agents DEV
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
    ],
)
def test_severity_mapping(level: int, severity: str) -> None:
    assert _format(_record(level))["severity"] == severity


def test_trace_is_linked_only_when_known() -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    entry = _format(_record(trace_id=trace_id, span_id=span_id))
    assert entry[TRACE_KEY] == f"projects/demo-project/traces/{trace_id}"
    assert entry[SPAN_KEY] == span_id
    assert "trace_id" not in entry
    assert TRACE_KEY not in _format(_record())
    assert TRACE_KEY not in _format(_record(trace_id=trace_id), project=None)


def test_exception_traceback_is_part_of_the_message() -> None:
    """Error Reporting only groups errors whose stack trace is inside `message`."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(logging.ERROR, "it failed", ())
        record.exc_info = sys.exc_info()
    entry = _format(record)
    assert entry["message"].startswith("it failed\nTraceback (most recent call last):")
    assert "ValueError: boom" in entry["message"]


def test_unserialisable_extras_do_not_break_the_line() -> None:
    entry = _format(_record(error=RuntimeError("bad"), ids={"a"}, obj=object()))
    assert entry["error"] == "RuntimeError: bad"
    assert entry["ids"] == ["a"]
    assert entry["obj"].startswith("<object object")


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield root
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_configure_logging_leaves_exactly_one_json_handler(clean_root: logging.Logger) -> None:
    """The framework installs its own JSON handler first; ours must replace it, not add one."""
    clean_root.addHandler(logging.StreamHandler(io.StringIO()))
    clean_root.addHandler(logging.StreamHandler(io.StringIO()))
    handler = configure_logging("WARNING", project="demo-project")
    assert clean_root.handlers == [handler]
    assert isinstance(handler.formatter, CloudLoggingFormatter)
    assert clean_root.level == logging.WARNING


def test_lifecycle_lines_pass_even_at_error_level(clean_root: logging.Logger) -> None:
    """Rollout signals (registered, draining, sessions) must survive AGENT_LOG_LEVEL=ERROR."""
    stream = io.StringIO()
    handler = configure_logging("ERROR")
    handler.setStream(stream)
    logging.getLogger("voice_agent.other").info("chatty line")
    log_event("drain_started", "drain started", active_jobs=2)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["message"], line["active_jobs"]) for line in lines] == [
        ("drain_started", "drain started", 2)
    ]


def test_job_log_fields_carry_the_active_span() -> None:
    """With an OpenTelemetry tracer provider configured, job lines link to the trace."""
    from opentelemetry.sdk.trace import TracerProvider

    from voice_agent.session import _current_trace_ids

    assert _current_trace_ids() == {}  # no span: nothing invented
    tracer = TracerProvider().get_tracer("voice_agent.tests")
    with tracer.start_as_current_span("job") as span:
        ids = _current_trace_ids()
    context = span.get_span_context()
    assert ids == {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
