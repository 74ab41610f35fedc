"""The MCP server: two place-search tools on streamable HTTP at /mcp, behind caller auth.

Stateless streamable HTTP with JSON answers (MCP SDK 2.3.0 `stateless_http=True,
json_response=True`): no session lives in a pod, so the Service may send each call to any
replica and a rollout cuts nothing. /healthz (liveness) and /readyz (a real search can work:
readiness.py) answer without a token; /mcp needs one (caller_auth.py).
"""

from __future__ import annotations

from typing import Annotated

import httpx2
from mcp.server import MCPServer
from mcp.server.auth.settings import AuthSettings
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from . import requests
from .caller_auth import ProjectedTokenVerifier
from .google_token import MetadataToken
from .places_api import PlacesClient
from .readiness import Readiness
from .settings import ToolServerSettings
from .token_review import TokenReviewer

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
INSTRUCTIONS = (
    "Place search for a caller on a voice line. Results are short and meant to be read aloud. "
    "Errors are sentences to relay to the caller."
)


def build_app(settings: ToolServerSettings, http: httpx2.AsyncClient | None = None) -> Starlette:
    http = http or httpx2.AsyncClient(timeout=httpx2.Timeout(settings.upstream_timeout_seconds))
    reviewer = TokenReviewer(kube_api_client(settings), api_url=settings.kube_api_url,
                             token_file=settings.kube_token_file, audience=settings.audience,
                             cache_seconds=settings.review_cache_seconds)
    verifier = ProjectedTokenVerifier(http, issuer=settings.issuer, audience=settings.audience,
                                      allowed_subjects=settings.allowed_subjects, jwks_url=settings.jwks_url,
                                      refresh_seconds=settings.jwks_refresh_seconds, reviewer=reviewer)
    places = PlacesClient(http, MetadataToken(http, settings.metadata_host), base_url=settings.places_base_url,
                          quota_project=settings.quota_project, language=settings.language,
                          timeout_seconds=settings.upstream_timeout_seconds)
    server = MCPServer(
        "places", instructions=INSTRUCTIONS, token_verifier=verifier,
        # Resource-server only: the issuer is the cluster's, tokens are never minted here.
        # validate_token_resource=False: the verifier checks the audience itself.
        auth=AuthSettings(issuer_url=settings.issuer, resource_server_url=None, validate_token_resource=False),
    )
    register_tools(server, places)
    readiness = Readiness(verifier, reviewer, places)

    @server.custom_route(HEALTH_PATH, methods=["GET"])
    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @server.custom_route(READY_PATH, methods=["GET"])
    async def readyz(_: Request) -> PlainTextResponse:
        verdict = readiness.verdict()
        if verdict.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"{verdict.reason}\n", status_code=503)

    return server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True, json_response=True,
                                      host=settings.host)


def kube_api_client(settings: ToolServerSettings) -> httpx2.AsyncClient:
    """Its own client: the API server's certificate is signed by the cluster CA, not a public one."""
    verify: str | bool = settings.kube_ca_file if settings.kube_api_url.startswith("https://") else True
    return httpx2.AsyncClient(verify=verify, timeout=httpx2.Timeout(settings.upstream_timeout_seconds))


def register_tools(server: MCPServer, places: PlacesClient) -> None:
    @server.tool()
    async def find_places(
        query: Annotated[str, Field(description="What and where, e.g. 'pharmacy in Lyon' or 'Italian restaurant'")],
        latitude: Annotated[float | None, Field(description="Latitude to search around, if known")] = None,
        longitude: Annotated[float | None, Field(description="Longitude to search around, if known")] = None,
        radius_m: Annotated[int, Field(description="Search radius around the point, metres (1-50000)")] = 5000,
        max_results: Annotated[int, Field(description="How many places to return (1-5)")] = 3,
    ) -> str:
        """Find places by a text query, optionally near a point. Returns a short list to read aloud."""
        request = requests.text_search(query, latitude, longitude, radius_m, max_results)
        return await places.text_search(request)

    @server.tool()
    async def places_nearby(
        latitude: Annotated[float, Field(description="Latitude of the caller or of the place they name")],
        longitude: Annotated[float, Field(description="Longitude of the caller or of the place they name")],
        place_type: Annotated[str, Field(description="A kind of place such as pharmacy, cafe, hospital, atm")],
        radius_m: Annotated[int, Field(description="Search radius, metres (1-50000)")] = 1500,
        max_results: Annotated[int, Field(description="How many places to return (1-5)")] = 3,
    ) -> str:
        """Places of one kind around a point, nearest first, each with its distance. Use this for
        "the nearest ..." questions. Returns a short list to read aloud."""
        request = requests.nearby_search(latitude, longitude, place_type, radius_m, max_results)
        return await places.nearby_search(request)
