"""The conversation-text filter (voice_agent/privacy.py) on records, without a call.

test_call_life.py proves, on a real call, that no caller words reach the worker's output; these
reach every branch of the filter in milliseconds. Guards against: a caller's words, the model's
words or a tool's output in Cloud Logging at INFO or above (DESIGN 7.7); DEBUG text shown
without AGENT_LOG_CONVERSATION_TEXT; a record dropped whole (its non-text fields are the
runbook's signals); the filter missing from a handler, or added twice.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from helpers.log_records import make_record
from voice_agent.logs import CloudLoggingFormatter, configure_logging
from voice_agent.privacy import (
    REDACTED_MARK,
    ConversationTextFilter,
    guard_root_handlers,
    is_conversation_field,
)

WORDS = "my card number is 4111 1111 1111 1111"


def _record(level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    return make_record(level, "user transcript", None, name="livekit.agents", **extra)


@pytest.mark.parametrize(
    ("key", "conversation"),
    [
        # the keys livekit-agents 1.8.9 and livekit-plugins-google 1.8.9 attach (voice/*.py,
        # realtime/realtime_api.py): lk.pii.<name>
        ("lk.pii.text", True),
        ("lk.pii.user_input", True),
        ("lk.pii.output", True),
        ("lk.pii.content", True),
        ("pii", True),
        ("a.pii", True),
        ("pii.a", True),
        # a segment, exactly: not a substring, not another case, not another separator
        ("lk.piii.text", False),
        ("lk.pi.text", False),
        ("lk.PII.text", False),
        ("lk_pii_text", False),
        ("pii_count", False),
        ("role", False),
        ("", False),
    ],
)
def test_conversation_fields_are_the_framework_s_pii_segment(key: str, conversation: bool) -> None:
    assert is_conversation_field(key) is conversation


@pytest.mark.parametrize("allow_debug_text", [False, True])
@pytest.mark.parametrize("level", [logging.INFO, logging.INFO + 1, logging.WARNING, logging.ERROR, logging.CRITICAL])
def test_text_is_removed_at_info_and_above_whatever_the_setting(allow_debug_text: bool, level: int) -> None:
    record = _record(level, **{"lk.pii.text": WORDS, "lk.pii.output": WORDS, "role": "user"})
    assert ConversationTextFilter(allow_debug_text=allow_debug_text).filter(record) is True
    assert not hasattr(record, "lk.pii.text") and not hasattr(record, "lk.pii.output")
    assert getattr(record, REDACTED_MARK) == 2
    assert record.role == "user"  # everything else stays


@pytest.mark.parametrize("level", [logging.INFO - 1, logging.DEBUG, 5])  # 5: the framework's TRACE
def test_debug_text_only_when_allowed(level: int) -> None:
    kept = _record(level, **{"lk.pii.text": WORDS})
    assert ConversationTextFilter(allow_debug_text=True).filter(kept) is True
    assert getattr(kept, "lk.pii.text") == WORDS and not hasattr(kept, REDACTED_MARK)

    removed = _record(level, **{"lk.pii.text": WORDS})
    assert ConversationTextFilter(allow_debug_text=False).filter(removed) is True
    assert not hasattr(removed, "lk.pii.text") and getattr(removed, REDACTED_MARK) == 1


@pytest.mark.parametrize("allow_debug_text", [False, True])
def test_a_record_without_text_passes_untouched(allow_debug_text: bool) -> None:
    record = _record(logging.WARNING, room="room-1", job_id="AJ_1")
    before = dict(vars(record))
    assert ConversationTextFilter(allow_debug_text=allow_debug_text).filter(record) is True
    assert vars(record) == before


def test_the_formatted_line_carries_no_words_and_says_how_many_fields_went() -> None:
    """End to end through our Cloud Logging formatter: what the pod writes."""
    record = _record(logging.INFO, **{"lk.pii.user_input": WORDS, "lk.pii.content": {"text": WORDS}, "role": "user"})
    ConversationTextFilter(allow_debug_text=False).filter(record)
    line = CloudLoggingFormatter(project="p").format(record)
    assert "4111" not in line
    entry = json.loads(line)
    assert entry[REDACTED_MARK] == 2 and entry["role"] == "user" and entry["message"] == "user transcript"


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield root
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.mark.parametrize("allow_debug_text", [False, True])
def test_every_root_handler_gets_the_filter_once(clean_root: logging.Logger, allow_debug_text: bool) -> None:
    """Job processes' lines reach the worker's root handlers; each must filter, once."""
    stream = io.StringIO()
    ours = configure_logging("DEBUG")
    ours.setStream(stream)
    other = logging.StreamHandler(io.StringIO())
    clean_root.addHandler(other)
    guard_root_handlers(allow_debug_text=allow_debug_text)
    guard_root_handlers(allow_debug_text=not allow_debug_text)  # a second call adds nothing
    for handler in (ours, other):
        filters = [f for f in handler.filters if isinstance(f, ConversationTextFilter)]
        assert len(filters) == 1
        assert filters[0]._allow_debug_text is allow_debug_text

    logger = logging.getLogger("livekit.agents.test_privacy")
    logger.info("user transcript", extra={"lk.pii.user_transcript": WORDS})
    logger.debug("received response", extra={"lk.pii.response": WORDS})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["message"], line.get(REDACTED_MARK)) for line in lines] == [
        ("user transcript", 1),
        ("received response", None if allow_debug_text else 1),
    ]
    assert ("lk.pii.response" in lines[1]) is allow_debug_text
    assert "lk.pii.user_transcript" not in lines[0]
