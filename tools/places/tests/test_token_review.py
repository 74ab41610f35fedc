"""A caller's token is worth something only while its pod exists, and readiness means a real
search can work. The real server process against stand-ins at the network boundary:
- the cluster's TokenReview (agent/tests/fakes/kubernetes_api.py, over TLS with its own CA,
  following the TokenReview v1 reference and pkg/serviceaccount/claims.go for bound tokens);
- the cluster issuer, the metadata server and the Places API as in the other tests."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import AGENT_POD_UID, free_port, server_env, start_server, wait_ready
from tests.mcp_client import raw_initialize

pytestmark = pytest.mark.integration
AUDIENCE = "places-mcp"


@contextlib.contextmanager
def server(stand_ins, tmp_path, **env: str) -> Iterator[str]:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    process = start_server({**server_env(stand_ins, port), **env}, log)
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        process.terminate()
        process.wait(10)


def readyz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for_readyz(url: str, status: int, timeout: float = 90.0) -> str:
    """Polls until /readyz answers `status` with a verdict (checks run in the background; until
    the first one ends the answer is 503 "first check running")."""
    deadline = time.monotonic() + timeout
    last = (0, "")
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last = readyz(url)
            if last[0] == status and "first check running" not in last[1]:
                return last[1]
        time.sleep(0.2)
    raise AssertionError(f"/readyz never answered {status}; last {last}")


@pytest.fixture
def live_pods(stand_ins):
    """Each test may delete or replace pods; the module's set is restored after it."""
    saved = set(stand_ins.cluster.live_pods)
    yield stand_ins.cluster.live_pods
    stand_ins.cluster.live_pods.clear()
    stand_ins.cluster.live_pods.update(saved)


def test_a_token_is_reviewed_by_the_cluster_with_this_servers_own_credential(tool_server):
    before = len(tool_server.cluster.reviews())
    token = tool_server.issuer.token(audience=AUDIENCE, pod_uid=AGENT_POD_UID)
    assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 200
    reviews = [r for r in tool_server.cluster.reviews()[before:] if r.body["spec"]["token"] == token]
    assert len(reviews) == 1
    assert reviews[0].token == "places-mcp-own-api-token"  # its own projected token, never the caller's
    assert reviews[0].body["spec"]["audiences"] == [AUDIENCE]
    # the verdict is reused within PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS (10 s default; this
    # second call follows at once, and a review takes milliseconds)
    assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 200


def test_a_token_from_a_deleted_or_replaced_pod_is_refused(stand_ins, tmp_path, live_pods):
    """With no cache the replay window after a pod's deletion is zero: its token, still unexpired
    and correctly signed, is refused on its next use; so is a token of an earlier pod of the
    same name (a new UID)."""
    with server(stand_ins, tmp_path, PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS="0") as (url, process, log):
        wait_ready(url, process, log)
        live_pods.add("p-live")
        token = stand_ins.issuer.token(audience=AUDIENCE, pod_name="voice-agent-7", pod_uid="p-live")
        assert raw_initialize(url, f"Bearer {token}").status_code == 200
        live_pods.discard("p-live")
        assert raw_initialize(url, f"Bearer {token}").status_code == 401
        live_pods.add("p-new")  # the same pod name comes back with a new UID
        assert raw_initialize(url, f"Bearer {token}").status_code == 401
        refused = [json.loads(line) for line in log.read_text().splitlines()
                   if "refused by the cluster" in line]
        assert refused and "service account token has been invalidated" in refused[-1]["message"]


def test_an_api_server_that_cannot_answer_never_costs_a_call(stand_ins, tmp_path):
    """A control-plane upgrade must not make tool calls fail: a correctly signed token is admitted
    on its signature, and the event is logged."""
    with server(stand_ins, tmp_path, PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS="0") as (url, process, log):
        wait_ready(url, process, log)
        token = stand_ins.issuer.token(audience=AUDIENCE, pod_uid=AGENT_POD_UID)
        stand_ins.cluster.fail_next.append(503)
        assert raw_initialize(url, f"Bearer {token}").status_code == 200
        assert "admitted on its signature alone: TokenReview answered HTTP 503" in log.read_text()
        # a forged token is still refused by its signature, the API server up or not
        forged = stand_ins.issuer.token(audience=AUDIENCE, issuer="https://elsewhere.example")
        assert raw_initialize(url, f"Bearer {forged}").status_code == 401


def test_not_ready_while_this_server_may_not_review_tokens(stand_ins, tmp_path):
    stand_ins.cluster.review_forbidden = True
    try:
        with server(stand_ins, tmp_path) as (url, _, _):
            reason = wait_for_readyz(url, 503)
            assert 'cannot review caller tokens: TokenReview answered HTTP 403: tokenreviews.authentication.k8s.io is forbidden' in reason
    finally:
        stand_ins.cluster.review_forbidden = False


def test_not_ready_while_places_refuses_this_identity_then_ready_once_fixed(stand_ins, tmp_path):
    """A release whose identity Places refuses never becomes ready (its rollout stops while the old
    pods serve); the reason names the HTTP status and Google's reason. Fixed, it becomes ready at
    the next re-check (every 10 s while not ready)."""
    places = stand_ins.places
    places.fail_with, places.fail_reason = 403, "SERVICE_DISABLED"
    try:
        with server(stand_ins, tmp_path) as (url, _, _):
            reason = wait_for_readyz(url, 503)
            assert reason.startswith("places self-check failed: HTTP 403 PERMISSION_DENIED (SERVICE_DISABLED) "
                                     "from places:searchText"), reason
            self_checks = [c for c in places.calls if c["headers"].get("x-goog-fieldmask") == "places.id"]
            assert self_checks and self_checks[-1]["body"]["pageSize"] == 1  # the IDs-only SKU: no charge
            places.fail_with, places.fail_reason = None, ""
            assert wait_for_readyz(url, 200, timeout=120) == "ready\n"
    finally:
        places.fail_with, places.fail_reason = None, ""


def test_a_busy_places_api_does_not_take_a_ready_pod_out(tool_server):
    """429/5xx are not this pod's fault: a pod that passed stays ready (the caller hears a sentence
    instead of a connection error)."""
    places = tool_server.places
    assert readyz(tool_server.url)[0] == 200
    places.fail_with = 503
    try:
        token = tool_server.issuer.token(audience=AUDIENCE)
        # a refusal of this kind forces no re-check; the pod stays ready
        assert raw_initialize(tool_server.url, f"Bearer {token}").status_code == 200
        assert readyz(tool_server.url)[0] == 200
    finally:
        places.fail_with = None


def test_fields_data_is_dataclass_free():
    """The plan reads places_mcp/fields.py from the infra venv: it must import nothing but the stdlib."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / "places_mcp" / "fields.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "json", "pathlib"}, imported




def _review_answered(tmp_path, code: int, status: dict):
    """One review by TokenReviewer against an imitated API server (httpx2's MockTransport) that
    answers every TokenReview with ``code`` and ``status``."""
    import asyncio

    import httpx2

    from places_mcp.token_review import TokenReviewer

    own = tmp_path / "token"
    own.write_text("own-token")

    def api_server(request):
        return httpx2.Response(code, json={"kind": "TokenReview", "status": status})

    async def review():
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(api_server)) as http:
            reviewer = TokenReviewer(http, api_url="https://kubernetes.default.svc", token_file=str(own),
                                     audience=AUDIENCE, cache_seconds=0)
            return await reviewer.review("a-token")

    return asyncio.run(review())


# The verdict rule alone, against an imitated API server at the HTTP boundary (httpx2's
# MockTransport): TokenReviewStatus as the Kubernetes API reference documents it
# (authentication.k8s.io/v1: authenticated, user.username, audiences, error). A client that sets
# spec.audiences must find its own audience in status.audiences; an empty list means the token
# is valid for the API server only.
@pytest.mark.parametrize(("status", "accepted"), [
    ({"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}, "audiences": [AUDIENCE]}, True),
    ({"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}, "audiences": []}, False),
    ({"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}, "audiences": ["other"]}, False),
    ({"authenticated": False, "audiences": [AUDIENCE], "error": "pod deleted"}, False),
])
def test_a_token_counts_only_if_authenticated_for_this_audience(tmp_path, status, accepted):
    verdict = _review_answered(tmp_path, 201, status)
    assert verdict.authenticated is accepted
    assert verdict.username == ("system:serviceaccount:a:b" if accepted else "")


def test_without_its_own_token_the_server_cannot_review_and_says_why(tmp_path):
    """The projected token file missing (a pod spec without the volume): no verdict either way,
    so the caller's admission falls back as for an unreachable API server, and the reason names
    the file. The API server is never asked without a credential."""
    import asyncio

    import httpx2

    from places_mcp.token_review import TokenReviewer

    asked = []

    def api_server(request):
        asked.append(request)
        return httpx2.Response(201, json={"kind": "TokenReview", "status": {"authenticated": True}})

    missing = tmp_path / "no-such-token"

    async def run():
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(api_server)) as http:
            reviewer = TokenReviewer(http, api_url="https://kubernetes.default.svc", token_file=str(missing),
                                     audience=AUDIENCE, cache_seconds=0)
            return await reviewer.review("a-token"), await reviewer.permitted()

    verdict, (permitted, reason) = asyncio.run(run())
    assert verdict.authenticated is None and f"own API token unreadable at {missing}" in verdict.reason
    assert permitted is False and str(missing) in reason
    assert asked == []


# The Kubernetes OpenAPI spec lists 200, 201 and 202 for every "create", TokenReview's included; a
# TokenReview is answered at once (201 in practice), so 200 and 201 carry a verdict and 202
# ("accepted, not done") and any other code, 2xx or not, carry none.
@pytest.mark.parametrize(("code", "verdict"), [(199, None), (200, True), (201, True), (202, None), (204, None)])
def test_only_200_and_201_from_the_api_server_carry_a_verdict(tmp_path, code, verdict):
    status = {"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}, "audiences": [AUDIENCE]}
    answer = _review_answered(tmp_path, code, status)
    assert answer.authenticated is verdict
    assert (f"HTTP {code}" in answer.reason) is (verdict is None)
