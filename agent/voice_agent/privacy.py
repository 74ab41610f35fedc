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

import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from .env_declarations import LOG_CALL_IDS_MODES, default_of

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


# --- Call identifiers: room names, participant identities, phone numbers ----------------------
#
# With SIP dispatch rules a room name embeds the caller's number (an individual rule names the
# room <prefix>_<caller number>_<random>) and the caller's participant identity is
# ``sip_<number>`` (LiveKit SIP docs, "dispatch rules"); a web caller's identity is whatever the
# app put in its token, often a user id. None of that is needed to run or debug the platform:
# job_id, session_id and the room SID (RM_..., a random id the server assigns) correlate a
# call's lines and join them with LiveKit's own records, so they always stay.

# AGENT_LOG_CALL_IDS: its modes and default are declared in env_declarations.py.
DEFAULT_LOG_CALL_IDS = default_of("AGENT_LOG_CALL_IDS")

CALL_IDS_HINT = "_call_ids"
"""Private record attribute (never printed: logs.py skips ``_`` keys) listing this call's
identifiers, so they can be found in free text as well (session.py sets it through the job's
log_context_fields, which the framework stamps on every record of the job process)."""

REMOVED_TEXT = "[call-id]"
HASH_PREFIX = "hmac:"
# 16 hex chars = 64 bits: no collision among the few thousand calls one pod sees in its life
# (birthday bound ~4e9), and short enough to search for.
HASH_HEX_CHARS = 16

# Field names carrying a call identifier, by their last dot-separated segment (lower case):
# ours and livekit-agents 1.8.9's (worker.py and voice/room_io/room_io.py extra={"room": ...},
# room_io/_input.py and _output.py {"participant": ...}, voice/avatar/*.py {"identity",
# "caller_identity", "expected_identity"}, beta/workflows/warm_transfer.py
# {"human_agent_room_name"}) and participant attributes (sip.phoneNumber,
# sip.trunkPhoneNumber). The room SID (room_id, room_sid) and track SIDs are not among them.
_CALL_ID_SUFFIXES = ("room", "room_name", "identity", "participant", "phonenumber", "phone_number")

# In free text, beside this call's own identifiers: an E.164 number (ITU-T E.164: a "+", then
# at most 15 digits; 7 is the shortest national number in use), and LiveKit's SIP identity
# ``sip_<number>``, with or without the "+".
_PHONE_TEXT = re.compile(r"(?<![\w+])\+[1-9]\d{6,14}(?!\d)")
_SIP_IDENTITY_TEXT = re.compile(r"\bsip_\+?\d{3,15}(?!\d)")


# distinct values hashed before the cache starts over (a pod's calls, a few ids each)
_TOKEN_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=1024)  # pragma: no mutate: a cache's size changes speed only; a few dozen field names recur
def is_call_id_field(key: str) -> bool:
    # the last dotted part (rpartition: no split count, which any count >= 1 would leave unchanged)
    return key.rpartition(".")[2].lower().endswith(_CALL_ID_SUFFIXES)


class CallIdScrubber:
    """Removes or hashes call identifiers in one log entry's fields and text.

    The HMAC key is random per process and lives only in this process's memory: the worker
    process formats every line of the pod (job processes forward their records to it), so one
    key per pod life makes a call's lines correlate while the pod runs, and a reader of the logs
    cannot recompute a hash from a guessed phone number (a plain SHA-256 of a number could be
    reversed by trying all numbers of a country in minutes). A call recovered on another pod gets
    another hash; job_id, session_id and the room SID still join its lines.
    """

    def __init__(self, mode: str, *, key: bytes | None = None) -> None:
        if mode not in LOG_CALL_IDS_MODES:
            raise ValueError(f"AGENT_LOG_CALL_IDS={mode!r}: expected one of {', '.join(LOG_CALL_IDS_MODES)}")
        self.mode = mode
        self._key = key if key is not None else secrets.token_bytes(32)
        self._tokens: dict[str, str] = {}  # a call's few ids recur on every line

    def token(self, value: str) -> str:
        if self.mode == "plain":
            return value
        if self.mode == "off":
            return REMOVED_TEXT
        token = self._tokens.get(value)
        if token is None:
            if len(self._tokens) >= _TOKEN_CACHE_SIZE:
                self._tokens.clear()
            digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
            token = self._tokens[value] = HASH_PREFIX + digest.hexdigest()[:HASH_HEX_CHARS]
        return token

    def scrub(self, fields: dict[str, Any], hints: Iterable[object] = ()) -> dict[str, Any]:
        """``fields``: a log entry's message and extras; returns them without call identifiers."""
        if self.mode == "plain":
            return fields
        known = {str(v) for v in hints if v} | set(_values_of_id_fields(fields))
        # longest first: a room name contains the caller's number, and must go whole
        ordered = sorted((v for v in known if v), key=len, reverse=True)
        return self._scrub_mapping(fields, ordered)

    def _scrub_mapping(self, fields: dict[str, Any], known: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            if is_call_id_field(str(key)) and value is not None and value != "":
                if self.mode == "off":
                    continue
                out[key] = self._token_of(value)
            else:
                out[key] = self._scrub_value(value, known)
        return out

    def _token_of(self, value: object) -> object:
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.token(str(v)) for v in value]
        return self.token(str(value))

    def _scrub_value(self, value: object, known: list[str]) -> object:
        if isinstance(value, str):
            return self.scrub_text(value, known)
        if isinstance(value, dict):
            return self._scrub_mapping(value, known)
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._scrub_value(v, known) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        # anything else is printed through str() (logs._fallback): an exception's text may
        # name the room
        if isinstance(value, BaseException):
            return self.scrub_text(f"{type(value).__name__}: {value}", known)
        return self.scrub_text(str(value), known)

    def scrub_text(self, text: str, known: Iterable[str] = ()) -> str:
        for value in known:
            if value in text:
                # whole words only: a short room name ("r1") must not eat parts of other words
                text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", lambda _m, v=value: self.token(v), text)
        if "sip_" in text:
            text = _SIP_IDENTITY_TEXT.sub(lambda m: self.token(m.group(0)), text)
        if "+" in text:
            text = _PHONE_TEXT.sub(lambda m: self.token(m.group(0)), text)
        return text


def _values_of_id_fields(fields: dict[str, Any]) -> Iterator[str]:
    for key, value in fields.items():
        if isinstance(value, dict):
            yield from _values_of_id_fields(value)
        elif is_call_id_field(str(key)) and value:
            if isinstance(value, (list, tuple, set, frozenset)):
                yield from (str(v) for v in value if v)
            else:
                yield str(value)
