"""Call identifiers in logs (voice_agent/privacy.py CallIdScrubber, applied by logs.py's formatter).

Guards against: a caller's phone number or identity, or a room name that embeds them (LiveKit
SIP individual dispatch rules name rooms <prefix>_<caller number>_<random>, and a SIP caller's
identity is sip_<number>), reaching Cloud Logging by default, in a field or in the framework's
free text; a hash a log reader could reverse or that differs between two lines of one call; the
ids that correlate a call without naming anyone (job_id, session_id, room SID) going missing;
``plain`` changing anything; a bad AGENT_LOG_CALL_IDS passing silently.
test_call_ids_integration.py proves the default on a real call through a real worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re

import pytest

from helpers.log_records import make_record
from voice_agent.logs import CloudLoggingFormatter
from voice_agent.privacy import (
    CALL_IDS_HINT,
    HASH_PREFIX,
    REMOVED_TEXT,
    CallIdScrubber,
    is_call_id_field,
)
from voice_agent.settings import SettingsError, load_settings

NUMBER = "+15105550142"
ROOM = f"call-_{NUMBER}_x7Kq"  # what an individual SIP dispatch rule with prefix "call-" makes
SIP_IDENTITY = f"sip_{NUMBER}"
TRUNK_NUMBER = "+15105550100"
KEY = b"test-key-known-to-this-test-only"


def _line(mode: str, record: logging.LogRecord, *, key: bytes = KEY) -> tuple[str, dict]:
    text = CloudLoggingFormatter(call_ids=CallIdScrubber(mode, key=key)).format(record)
    return text, json.loads(text)


def _hmac(value: str, key: bytes = KEY) -> str:
    return HASH_PREFIX + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def _call_record(**extra: object) -> logging.LogRecord:
    """A framework-style line naming the caller in its text (job.py 1.8.9 formats identities
    into messages) and in fields (room_io.py {"room"}, _input.py {"participant"})."""
    return make_record(
        logging.WARNING,
        "a participant has joined before a prior participant task matching the same identity "
        "has finished: '%s' in room %s",
        (SIP_IDENTITY, ROOM),
        name="livekit.agents",
        room=ROOM,
        room_id="RM_abc123",
        job_id="AJ_def456",
        session_id="0123456789abcdef",
        participant=SIP_IDENTITY,
        attributes={"sip.phoneNumber": NUMBER, "sip.trunkPhoneNumber": TRUNK_NUMBER, "sip.callID": "SCL_1"},
        participants=2,
        **extra,
    )


@pytest.mark.parametrize(
    ("key", "call_id"),
    [
        ("room", True),
        ("Room", True),
        ("room_name", True),
        ("human_agent_room_name", True),  # beta/workflows/warm_transfer.py
        ("participant", True),  # voice/room_io/_input.py, _output.py
        ("identity", True),
        ("caller_identity", True),  # voice/avatar/_datastream_io.py
        ("expected_identity", True),
        ("agent_identity", True),
        ("sip.phoneNumber", True),
        ("sip.trunkPhoneNumber", True),
        ("lk.sip.phoneNumber", True),
        ("phone_number", True),
        # ids that name nobody, and counts
        ("room_id", False),
        ("room_sid", False),
        ("lk.room_sid", False),
        ("job_id", False),
        ("session_id", False),
        ("track_id", False),
        ("participants", False),  # session_started's count
        ("lk.room.remote_participant_count", False),
        ("sip.callID", False),
        ("roommate", False),
        ("", False),
    ],
)
def test_which_fields_carry_call_ids(key: str, call_id: bool) -> None:
    assert is_call_id_field(key) is call_id


def test_off_is_the_default_and_removes_every_form() -> None:
    """Default formatter (what the worker uses without AGENT_LOG_CALL_IDS): nothing remains."""
    error = RuntimeError(f"room {ROOM} not found")
    text = CloudLoggingFormatter().format(_call_record(error=error))
    assert "5105550" not in text and "sip_" not in text and "x7Kq" not in text
    entry = json.loads(text)
    assert "room" not in entry and "participant" not in entry
    assert entry["attributes"] == {"sip.callID": "SCL_1"}
    assert entry["message"] == (
        "a participant has joined before a prior participant task matching the same identity "
        f"has finished: '{REMOVED_TEXT}' in room {REMOVED_TEXT}"
    )
    assert entry["error"] == f"RuntimeError: room {REMOVED_TEXT} not found"
    # what correlates a call without naming anyone stays
    assert (entry["room_id"], entry["job_id"], entry["session_id"], entry["participants"]) == (
        "RM_abc123", "AJ_def456", "0123456789abcdef", 2)


def test_hashed_gives_one_keyed_token_per_value_in_fields_and_text() -> None:
    text, entry = _line("hashed", _call_record())
    assert "5105550" not in text and "sip_" not in text and "x7Kq" not in text
    room, identity = _hmac(ROOM), _hmac(SIP_IDENTITY)
    assert (entry["room"], entry["participant"]) == (room, identity)
    assert entry["attributes"] == {
        "sip.phoneNumber": _hmac(NUMBER), "sip.trunkPhoneNumber": _hmac(TRUNK_NUMBER), "sip.callID": "SCL_1"}
    # the same token in the text as in the field: a reader can follow the call
    assert entry["message"].endswith(f"has finished: '{identity}' in room {room}")
    assert entry["room_id"] == "RM_abc123"


def test_hashes_are_stable_within_a_process_and_unrelated_across_keys() -> None:
    """One scrubber (one pod life): two lines of one call agree. Another key (another pod, or a
    reader hashing guessed numbers without the key): no match."""
    scrubber = CallIdScrubber("hashed")
    formatter = CloudLoggingFormatter(call_ids=scrubber)
    first, second = (json.loads(formatter.format(_call_record()))["room"] for _ in range(2))
    assert first == second == scrubber.token(ROOM)
    assert CallIdScrubber("hashed").token(ROOM) != first  # a fresh random key
    assert hashlib.sha256(ROOM.encode()).hexdigest()[:16] not in first  # not a plain hash
    assert len(first) == len(HASH_PREFIX) + 16


def test_plain_changes_nothing() -> None:
    plain, entry = _line("plain", _call_record())
    assert (entry["room"], entry["participant"], entry["attributes"]["sip.phoneNumber"]) == (
        ROOM, SIP_IDENTITY, NUMBER)
    assert f"'{SIP_IDENTITY}' in room {ROOM}" in entry["message"]


@pytest.mark.parametrize("mode", ["off", "hashed"])
def test_identities_named_only_in_the_job_s_hints_leave_the_text(mode: str) -> None:
    """A web caller's identity has no telltale shape; session.py lists it in the job's hints."""
    record = make_record(logging.INFO, "error in participant entrypoint for '%s'", ("alice@example.com",))
    setattr(record, CALL_IDS_HINT, ["alice@example.com"])
    text, entry = _line(mode, record)
    assert "alice" not in text and CALL_IDS_HINT not in entry
    # without the hint nothing can know it is an identity: that is why the hints exist
    unhinted = make_record(logging.INFO, "error in participant entrypoint for '%s'", ("alice@example.com",))
    assert "alice@example.com" in _line(mode, unhinted)[1]["message"]


def test_a_short_room_name_goes_as_a_word_not_inside_other_words() -> None:
    record = make_record(logging.INFO, "error in r1, not r12 or er1", None, room="r1")
    assert _line("off", record)[1]["message"] == f"error in {REMOVED_TEXT}, not r12 or er1"


@pytest.mark.parametrize(
    ("text", "removed"),
    [
        ("+1234567", True),  # 7 digits: the shortest E.164 number we take
        ("+123456", False),  # 6: just below
        ("+123456789012345", True),  # 15: E.164's maximum
        ("+1234567890123456", False),  # 16: just above, not a phone number
        ("+0123456789", False),  # E.164 country codes never start with 0
        ("1234567890", False),  # no "+": ports, sizes, timestamps stay
        ("sip_+15105550142", True),
        ("sip_15105550142", True),
        ("sip_trunk", False),
    ],
)
def test_numbers_in_free_text_at_the_e164_boundaries(text: str, removed: bool) -> None:
    message = _line("off", make_record(logging.INFO, "peer %s left", (text,)))[1]["message"]
    assert message == (f"peer {REMOVED_TEXT} left" if removed else f"peer {text} left")


def test_empty_values_are_not_tokens() -> None:
    entry = _line("hashed", make_record(room="", participant=None))[1]
    assert entry["room"] == "" and entry["participant"] is None


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match=r"AGENT_LOG_CALL_IDS='on': expected one of off, hashed, plain"):
        CallIdScrubber("on")


def test_the_setting_defaults_to_off_and_reads_each_mode(valid_env: dict[str, str]) -> None:
    assert load_settings(valid_env).log_call_ids == "off"
    for mode in ("off", "hashed", "plain"):
        assert load_settings({**valid_env, "AGENT_LOG_CALL_IDS": mode}).log_call_ids == mode


@pytest.mark.parametrize("raw", ["on", "Hashed", "true", "plain,hashed"])
def test_a_bad_setting_names_the_variable_value_and_choices(valid_env: dict[str, str], raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"AGENT_LOG_CALL_IDS={re.escape(repr(raw))} is not a call-id mode: allowed off, hashed, plain"):
        load_settings({**valid_env, "AGENT_LOG_CALL_IDS": raw})


@pytest.mark.parametrize("mode", ["off", "hashed"])
def test_lists_in_other_fields_are_scrubbed_item_by_item(mode: str) -> None:
    """A list under a field that is not itself a call-id field (e.g. the framework's list of
    reasons or targets) keeps its shape, and each string in it loses the call's identifiers."""
    scrubber = CallIdScrubber(mode)
    out = scrubber.scrub({"room": ROOM, "targets": [f"agent in {ROOM}", "no id here", 3]})
    assert out["targets"][1:] == ["no id here", 3]
    assert ROOM not in out["targets"][0] and out["targets"][0].startswith("agent in ")
