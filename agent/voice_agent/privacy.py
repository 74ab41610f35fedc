"""Conversation text never reaches Cloud Logging at INFO or above; at DEBUG only when
AGENT_LOG_CONVERSATION_TEXT=true.

livekit-agents 1.8.9 marks every log field that carries a caller's words, the model's words,
tool arguments or outputs with a ``pii`` segment (``lk.pii.text``, ``lk.pii.user_input``,
``lk.pii.output``, ...; ``telemetry/pii.py`` defines the rule, ``is_pii_attribute``), and
livekit-plugins-google 1.8.9 does the same (``lk.pii.content``, ``lk.pii.response``). Our JSON
formatter forwards every extra field, so this filter, on the handler of the worker process
(which formats every job process's lines too), removes those fields before formatting.
"""

from __future__ import annotations

import logging

REDACTED_MARK = "conversation_text_removed"


def is_conversation_field(key: str) -> bool:
    """The framework's own rule (telemetry/pii.py 1.8.9): a dot-separated ``pii`` segment."""
    return "pii" in key.split(".")


class ConversationTextFilter(logging.Filter):
    def __init__(self, *, allow_debug_text: bool) -> None:
        super().__init__("voice_agent.privacy")
        self._allow_debug_text = allow_debug_text

    def filter(self, record: logging.LogRecord) -> bool:
        keys = [key for key in vars(record) if is_conversation_field(key)]
        if not keys:
            return True
        if self._allow_debug_text and record.levelno < logging.INFO:
            return True
        for key in keys:
            delattr(record, key)
        setattr(record, REDACTED_MARK, len(keys))
        return True


def guard_root_handlers(*, allow_debug_text: bool) -> None:
    """Add the filter to every handler of the root logger (call after configure_logging)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ConversationTextFilter) for f in handler.filters):
            handler.addFilter(ConversationTextFilter(allow_debug_text=allow_debug_text))
