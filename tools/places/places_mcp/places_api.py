"""Calls to the Places API (New) and answers short enough to speak.

Requests follow the reference (https://developers.google.com/maps/documentation/places/
web-service/text-search and .../nearby-search): POST /v1/places:searchText with textQuery,
pageSize and an optional locationBias circle; POST /v1/places:searchNearby with includedTypes,
maxResultCount and a locationRestriction circle. X-Goog-FieldMask is mandatory (no default
field list); asking only for what is spoken also keeps each call in the cheapest SKU that has
those fields. With an OAuth token, X-Goog-User-Project names the billed project (OAuth page).
Errors come back as {"error": {"code", "message", "status"}} (Google's AIP-193 format).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
from mcp.server.mcpserver.exceptions import ToolError

from .google_token import MetadataToken, TokenUnavailable
from .requests import NearbySearch, TextSearch

FIELD_MASK = ",".join((
    "places.displayName",
    "places.shortFormattedAddress",
    "places.formattedAddress",
    "places.currentOpeningHours.openNow",
))
# What one spoken answer may hold: a name and an address each cut to a phrase, the whole
# answer to about twenty seconds of speech.
MAX_NAME_CHARS = 60
MAX_ADDRESS_CHARS = 80
MAX_ANSWER_CHARS = 600


class PlacesClient:
    def __init__(self, http: httpx2.AsyncClient, token: MetadataToken, *, base_url: str, quota_project: str,
                 language: str, timeout_seconds: float) -> None:
        self._http = http
        self._token = token
        self._base_url = base_url
        self._quota_project = quota_project
        self._language = language
        self._timeout = timeout_seconds

    async def text_search(self, request: TextSearch) -> str:
        body: dict[str, Any] = {"textQuery": request.query, "pageSize": request.max_results,
                                "languageCode": self._language}
        if request.near is not None:
            body["locationBias"] = request.near.wire()
        places = await self._post("places:searchText", body)
        return spoken_answer(places[: request.max_results], f"for {request.query}")

    async def nearby_search(self, request: NearbySearch) -> str:
        body = {"includedTypes": [request.place_type], "maxResultCount": request.max_results,
                "locationRestriction": request.near.wire(), "languageCode": self._language}
        places = await self._post("places:searchNearby", body)
        what = request.place_type.replace("_", " ")
        return spoken_answer(places[: request.max_results], f"of type {what} within {request.near.radius_m} metres")

    async def _post(self, method: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """One upstream call (token included) within the per-call budget."""
        try:
            async with asyncio.timeout(self._timeout):
                token = await self._token.get()
                response = await self._http.post(
                    f"{self._base_url}/v1/{method}", json=body,
                    headers={"Authorization": f"Bearer {token}", "X-Goog-User-Project": self._quota_project,
                             "X-Goog-FieldMask": FIELD_MASK})
        except TimeoutError as exc:
            raise ToolError(f"Place search did not answer within {self._timeout:g} s; tell the caller and "
                            "offer to try again") from exc
        except TokenUnavailable as exc:
            raise ToolError("Place search is not available right now (the tool server has no Google "
                            "credential); tell the caller") from exc
        except httpx2.HTTPError as exc:
            raise ToolError("Place search could not be reached; tell the caller and offer to try again") from exc
        if response.status_code != 200:
            raise ToolError(upstream_error(response))
        return list(response.json().get("places", []))


def upstream_error(response: httpx2.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    status = error.get("status", "")
    if response.status_code == 400:
        return f"Place search refused the request ({error.get('message', 'invalid argument')}); rephrase it"
    if response.status_code == 429 or status == "RESOURCE_EXHAUSTED":
        return "Place search is busy right now; tell the caller to try again in a minute"
    if response.status_code in (401, 403):
        return "Place search is not available right now (access denied upstream); tell the caller"
    return f"Place search failed upstream (HTTP {response.status_code}); tell the caller and offer to try again"


def spoken_answer(places: list[dict[str, Any]], what: str) -> str:
    if not places:
        return f"No places found {what}."
    lines = [f"{len(places)} place{'s' if len(places) != 1 else ''} found {what}:"]
    for number, place in enumerate(places, 1):
        lines.append(f"{number}. {spoken_place(place)}")
    answer = "\n".join(lines)
    return answer if len(answer) <= MAX_ANSWER_CHARS else answer[: MAX_ANSWER_CHARS - 1].rstrip() + "…"


def spoken_place(place: dict[str, Any]) -> str:
    name = _cut(str((place.get("displayName") or {}).get("text") or "unnamed place"), MAX_NAME_CHARS)
    address = _cut(str(place.get("shortFormattedAddress") or place.get("formattedAddress") or ""), MAX_ADDRESS_CHARS)
    parts = [name] + ([address] if address else [])
    open_now = (place.get("currentOpeningHours") or {}).get("openNow")
    if open_now is not None:
        parts.append("open now" if open_now else "closed now")
    return ", ".join(parts) + "."


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
