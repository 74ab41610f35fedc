"""Caller authentication against the real server process and an imitated cluster issuer
(tests/stand_ins.py -> agent/tests/fakes/cluster_issuer.py: a local RSA key and a local JWKS
served the way Kubernetes' OIDC discovery serves them)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.mcp_client import list_tools, raw_initialize
from tests.stand_ins import cluster_issuer

pytestmark = pytest.mark.integration
AUDIENCE = "places-mcp"


def test_valid_token_is_admitted_and_sees_both_tools(tool_server):
    token = tool_server.issuer.token(audience=AUDIENCE)
    assert sorted(asyncio.run(list_tools(tool_server.url, token))) == ["find_places", "places_nearby"]


def test_missing_token_is_refused_before_any_mcp_message(tool_server):
    response = raw_initialize(tool_server.url, None)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_expired_token_is_refused(tool_server):
    # issued two hours ago for one hour: expired an hour ago, far beyond the 30 s leeway
    token = tool_server.issuer.token(audience=AUDIENCE, lifetime_s=3600, issued_ago_s=7200)
    assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 401


def test_expiry_boundary(tool_server):
    """Expired 5 s ago: refused (no leeway on expiry, see caller_auth.LEEWAY_SECONDS); expiring in
    5 s: admitted. 5 s of margin either side of the instant for the time the request takes."""
    expired = tool_server.issuer.token(audience=AUDIENCE, lifetime_s=60, issued_ago_s=65)
    expiring = tool_server.issuer.token(audience=AUDIENCE, lifetime_s=60, issued_ago_s=55)
    assert raw_initialize(tool_server.url, f"Bearer {expired}").status_code == 401
    assert raw_initialize(tool_server.url, f"Bearer {expiring}").status_code == 200


def test_token_issued_slightly_in_the_future_is_admitted_within_the_skew(tool_server):
    """A control plane clock 20 s ahead (inside the 30 s leeway) does not lock callers out; 60 s is refused."""
    ahead = tool_server.issuer.token(audience=AUDIENCE, issued_ago_s=-20)
    far_ahead = tool_server.issuer.token(audience=AUDIENCE, issued_ago_s=-60)
    assert raw_initialize(tool_server.url, f"Bearer {ahead}").status_code == 200
    assert raw_initialize(tool_server.url, f"Bearer {far_ahead}").status_code == 401


def test_wrong_audience_is_refused(tool_server):
    """The pod's ordinary API-server token (audience = the issuer) or one for another tool."""
    for audience in (tool_server.issuer.url, "calendar-mcp", ["calendar-mcp", "other"]):
        token = tool_server.issuer.token(audience=audience)
        assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 401, audience


def test_token_with_this_audience_among_others_is_admitted(tool_server):
    token = tool_server.issuer.token(audience=["other", AUDIENCE])
    assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 200


def test_other_service_account_is_refused(tool_server):
    token = tool_server.issuer.token(audience=AUDIENCE, namespace="voice-agents", service_account="default")
    assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 401


def test_forged_signature_and_foreign_issuer_are_refused(tool_server):
    forged = tool_server.issuer.token(audience=AUDIENCE, signing_key=cluster_issuer.stranger_key())
    foreign = tool_server.issuer.token(audience=AUDIENCE, issuer="https://container.googleapis.com/v1/projects/x/locations/y/clusters/z")
    for token in (forged, foreign, "not-a-jwt"):
        assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 401


def test_rotated_signing_key_is_fetched_once(tool_server):
    """A token signed with a new key (the control plane rotated) is admitted once the server has
    fetched the key set again; the refresh is rate-limited (2 s here, PLACES_MCP_JWKS_REFRESH_SECONDS)."""
    issuer = tool_server.issuer
    issuer.rotate()
    token = issuer.token(audience=AUDIENCE)
    before = issuer.requests.count("/jwks")
    time.sleep(2.1)
    assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 200
    assert issuer.requests.count("/jwks") == before + 1
