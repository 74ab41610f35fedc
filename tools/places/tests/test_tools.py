"""Tool calls through the real server process: MCP client -> tool server -> the Places API
stand-in (agent/tests/fakes/places_api.py, HTTP level; no internet here)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from tests.mcp_client import call

pytestmark = pytest.mark.integration
AUDIENCE = "places-mcp"
BELLECOUR = {"latitude": 45.7578, "longitude": 4.8320}


def _call(server, tool: str, **arguments) -> tuple[bool, str]:
    token = server.issuer.token(audience=AUDIENCE)
    return asyncio.run(call(server.url, token, tool, arguments))


@contextlib.contextmanager
def upstream(server, **knobs):
    places = server.places
    saved = {k: getattr(places, k) for k in knobs}
    for k, v in knobs.items():
        setattr(places, k, v)
    try:
        yield places
    finally:
        for k, v in saved.items():
            setattr(places, k, v)


def test_find_places_answers_for_speech_with_the_servers_own_identity(tool_server):
    before = len(tool_server.places.calls)
    is_error, text = _call(tool_server, "find_places", query="pharmacy", radius_m=2000, max_results=2, **BELLECOUR)
    assert not is_error, text
    assert text.splitlines() == [
        "2 places found for pharmacy:",
        "1. Pharmacie Bellecour, 12 Place Bellecour, Lyon, open now.",
        "2. Grande Pharmacie Lyonnaise, 22 Rue de la République, Lyon, closed now.",
    ]
    request = tool_server.places.calls[before]
    # the Workload Identity token from the metadata server, never anything of the caller's
    assert request["headers"]["authorization"] == f"Bearer {tool_server.metadata.token}"
    assert request["headers"]["x-goog-user-project"] == "voice-agent-test"
    assert "places.displayName" in request["headers"]["x-goog-fieldmask"]
    assert request["body"]["locationBias"] == {"circle": {"center": BELLECOUR, "radius": 2000.0}}
    assert request["body"]["pageSize"] == 2


def test_places_nearby_uses_a_location_restriction(tool_server):
    is_error, text = _call(tool_server, "places_nearby", place_type="cafe", **BELLECOUR)
    assert not is_error, text
    assert text.startswith("1 place found of type cafe within 1500 metres, nearest first:\n1. Café des Négociants")
    body = tool_server.places.calls[-1]["body"]
    assert body["includedTypes"] == ["cafe"] and body["locationRestriction"]["circle"]["radius"] == 1500.0


def test_nearest_means_by_distance_not_by_popularity(tool_server):
    """Nearby Search ranks by popularity unless told: the stand-in's more popular pharmacy is the
    farther one, so without rankPreference DISTANCE the caller would be sent 550 m instead of 20."""
    is_error, text = _call(tool_server, "places_nearby", place_type="pharmacy", **BELLECOUR)
    assert not is_error, text
    assert text.splitlines() == [
        "2 places found of type pharmacy within 1500 metres, nearest first:",
        "1. Pharmacie Bellecour, 12 Place Bellecour, Lyon, 20 metres away, open now.",
        "2. Grande Pharmacie Lyonnaise, 22 Rue de la République, Lyon, 550 metres away, closed now.",
    ]
    assert tool_server.places.calls[-1]["body"]["rankPreference"] == "DISTANCE"


def test_the_field_mask_is_the_priced_one(tool_server):
    """The plan prices the fields in data/fields.json: the server must ask for exactly those."""
    from places_mcp.fields import SEARCH_FIELDS, billed_tier

    _call(tool_server, "find_places", query="pharmacy")
    assert tool_server.places.calls[-1]["headers"]["x-goog-fieldmask"].split(",") == list(SEARCH_FIELDS)
    assert billed_tier(SEARCH_FIELDS) == "enterprise"  # currentOpeningHours: see data/fields.json "why"


def test_no_match_is_a_sentence_not_an_error(tool_server):
    assert _call(tool_server, "find_places", query="zoo") == (False, "No places found for zoo.")


@pytest.mark.parametrize(("arguments", "says"), [
    ({"query": "x"}, "query must be 2 to 120 characters (got 1)"),
    ({"query": "pharmacy", "latitude": 45.0}, "latitude and longitude are both needed"),
    ({"query": "pharmacy", "latitude": 91.0, "longitude": 4.0}, "latitude 91.0 is out of range"),
    ({"query": "pharmacy", "radius_m": 50001, **BELLECOUR}, "radius_m 50001 is out of range: allowed 1 to 50000"),
    ({"query": "pharmacy", "max_results": 6}, "max_results 6 is out of range: allowed 1 to 5"),
])
def test_malformed_requests_are_refused_before_any_upstream_call(tool_server, arguments, says):
    before = len(tool_server.places.calls)
    is_error, text = _call(tool_server, "find_places", **arguments)
    assert is_error and says in text
    assert len(tool_server.places.calls) == before


def test_out_of_scope_place_type_names_what_is_supported(tool_server):
    is_error, text = _call(tool_server, "places_nearby", place_type="casino", **BELLECOUR)
    assert is_error and "place_type 'casino' is not supported; use one of atm, bakery" in text


def test_wrong_argument_type_is_refused_by_the_schema(tool_server):
    is_error, _ = _call(tool_server, "find_places", query="pharmacy", max_results="many")
    assert is_error


def test_slow_upstream_is_cut_at_the_per_call_budget(tool_server):
    with upstream(tool_server, delay_seconds=3.0):
        is_error, text = _call(tool_server, "find_places", query="pharmacy")
    assert is_error
    assert text.endswith("Place search did not answer within 1 s; tell the caller and offer to try again")


@pytest.mark.parametrize(("status", "says"), [
    (429, "Place search is busy right now"),
    (403, "access denied upstream"),
    (503, "failed upstream (HTTP 503)"),
])
def test_upstream_errors_become_sentences(tool_server, status, says):
    with upstream(tool_server, fail_with=status):
        is_error, text = _call(tool_server, "find_places", query="pharmacy")
    assert is_error and says in text


def test_an_upstream_refusal_is_logged_with_its_status_and_googles_reason(tool_server):
    """The caller hears one sentence; the operator reads why (Google's ErrorInfo reason) in the log."""
    with upstream(tool_server, fail_with=403, fail_reason="SERVICE_DISABLED"):
        is_error, text = _call(tool_server, "find_places", query="pharmacy")
    assert is_error and "SERVICE_DISABLED" not in text
    refusals = [line for line in _log_lines(tool_server) if line.get("message", "").startswith("places upstream refused")]
    assert refusals, "no refusal logged"
    last = refusals[-1]
    assert (last["http_status"], last["google_status"], last["reasons"], last["method"]) == (
        403, "PERMISSION_DENIED", ["SERVICE_DISABLED"], "places:searchText")


def _log_lines(server) -> list[dict]:
    lines = []
    for raw in server.log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(raw))
    return lines
