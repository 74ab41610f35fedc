"""Calls to the Places API (New) and answers short enough to speak.

Requests follow the reference (https://developers.google.com/maps/documentation/places/
web-service/text-search and .../nearby-search): POST /v1/places:searchText with textQuery,
pageSize and an optional locationBias circle; POST /v1/places:searchNearby with includedTypes,
maxResultCount and a locationRestriction circle. X-Goog-FieldMask is mandatory (no default
field list); asking only for what is spoken also keeps each call in the cheapest SKU that has
those fields. With an OAuth token, X-Goog-User-Project names the billed project (OAuth page).
Errors come back as {"error": {"code", "message", "status", "details"}} (Google's AIP-193
format); an ErrorInfo detail (`type.googleapis.com/google.rpc.ErrorInfo`) carries the machine
reason, e.g. SERVICE_DISABLED or ACCESS_TOKEN_SCOPE_INSUFFICIENT, which is what an operator needs
and what the caller must never hear.

Nearby Search ranks by popularity unless told (`rankPreference`, default POPULARITY): a caller
asking for the nearest pharmacy gets `DISTANCE`, and each place's distance is read out.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp.server.mcpserver.exceptions import ToolError

from .fields import SEARCH_FIELDS, SELF_CHECK_FIELDS, field_mask
from .google_token import MetadataToken, TokenUnavailable
from .requests import Circle, NearbySearch, TextSearch

logger = logging.getLogger("places_mcp.places_api")

FIELD_MASK = field_mask(SEARCH_FIELDS)
# The start-up self-check asks for place ids only: Text Search's "IDs Only" SKU, which Google
# does not charge for (data/fields.json cites the SKU page), so readiness costs nothing.
SELF_CHECK_MASK = field_mask(SELF_CHECK_FIELDS)
SELF_CHECK_QUERY = "pharmacy"
# Refusals that no retry cures: this server's identity, its permission or the project's API
# switch is wrong. They make the pod unready (readiness.py); a busy or failing upstream does not.
CONFIGURATION_STATUSES = frozenset({401, 403})
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), for the distances read out
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
                "locationRestriction": request.near.wire(), "languageCode": self._language,
                "rankPreference": "DISTANCE"}
        places = await self._post("places:searchNearby", body)
        what = request.place_type.replace("_", " ")
        return spoken_answer(places[: request.max_results],
                             f"of type {what} within {request.near.radius_m} metres, nearest first", request.near)

    async def self_check(self) -> UpstreamVerdict:
        """Can a real search work with this server's identity? One free IDs-only search."""
        body = {"textQuery": SELF_CHECK_QUERY, "pageSize": 1, "languageCode": self._language}
        try:
            await self._post("places:searchText", body, mask=SELF_CHECK_MASK)
        except UpstreamRefused as exc:
            return UpstreamVerdict(ok=False, configuration=exc.status in CONFIGURATION_STATUSES, reason=exc.reason)
        except ToolError as exc:
            return UpstreamVerdict(ok=False, configuration=isinstance(exc.__cause__, TokenUnavailable),
                                   reason=str(exc.__cause__ or exc))
        return UpstreamVerdict(ok=True, configuration=False, reason="")

    async def _post(self, method: str, body: dict[str, Any], mask: str = FIELD_MASK) -> list[dict[str, Any]]:
        """One upstream call (token included) within the per-call budget."""
        try:
            async with asyncio.timeout(self._timeout):
                token = await self._token.get()
                response = await self._http.post(
                    f"{self._base_url}/v1/{method}", json=body,
                    headers={"Authorization": f"Bearer {token}", "X-Goog-User-Project": self._quota_project,
                             "X-Goog-FieldMask": mask})
        except TimeoutError as exc:
            raise ToolError(f"Place search did not answer within {self._timeout:g} s; tell the caller and "
                            "offer to try again") from exc
        except TokenUnavailable as exc:
            raise ToolError("Place search is not available right now (the tool server has no Google "
                            "credential); tell the caller") from exc
        except httpx2.HTTPError as exc:
            raise ToolError("Place search could not be reached; tell the caller and offer to try again") from exc
        if response.status_code != 200:
            refusal = upstream_refusal(response, method)
            logger.warning("places upstream refused: %s", refusal.reason, extra={"fields": refusal.fields()})
            if refusal.status in CONFIGURATION_STATUSES:
                self.on_configuration_refusal(refusal.reason)
            raise refusal
        return list(response.json().get("places", []))

    def on_configuration_refusal(self, reason: str) -> None:
        """Replaced by readiness.py: a 401/403 during a real call makes the pod re-check."""


@dataclass(frozen=True)
class UpstreamVerdict:
    ok: bool
    configuration: bool  # the failure is this server's identity/permission/API switch, not load
    reason: str


class UpstreamRefused(ToolError):
    """Places answered with an error; the sentence is the caller's, the rest the operator's."""

    def __init__(self, *, status: int, google_status: str, reasons: tuple[str, ...], method: str, message: str,
                 sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.google_status = google_status
        self.reasons = reasons
        self.method = method
        self.message = message

    @property
    def reason(self) -> str:
        why = ",".join(self.reasons) or self.google_status or "no reason given"
        return f"HTTP {self.status} {self.google_status} ({why}) from {self.method}: {self.message}"

    def fields(self) -> dict[str, Any]:
        return {"http_status": self.status, "google_status": self.google_status, "reasons": list(self.reasons),
                "method": self.method}


def upstream_refusal(response: httpx2.Response, method: str) -> UpstreamRefused:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    error = error if isinstance(error, dict) else {}
    status = str(error.get("status", ""))
    details = error.get("details") if isinstance(error.get("details"), list) else []
    reasons = tuple(str(d["reason"]) for d in details
                    if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo") and d.get("reason"))
    message = str(error.get("message", ""))[:300]
    return UpstreamRefused(status=response.status_code, google_status=status, reasons=reasons, method=method,
                           message=message, sentence=caller_sentence(response.status_code, status, message))


def caller_sentence(code: int, status: str, message: str) -> str:
    if code == 400:
        return f"Place search refused the request ({message or 'invalid argument'}); rephrase it"
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        return "Place search is busy right now; tell the caller to try again in a minute"
    if code in CONFIGURATION_STATUSES:
        return "Place search is not available right now (access denied upstream); tell the caller"
    return f"Place search failed upstream (HTTP {code}); tell the caller and offer to try again"


def spoken_answer(places: list[dict[str, Any]], what: str, origin: Circle | None = None) -> str:
    if not places:
        return f"No places found {what}."
    lines = [f"{len(places)} place{'s' if len(places) != 1 else ''} found {what}:"]
    for number, place in enumerate(places, 1):
        lines.append(f"{number}. {spoken_place(place, origin)}")
    answer = "\n".join(lines)
    return answer if len(answer) <= MAX_ANSWER_CHARS else answer[: MAX_ANSWER_CHARS - 1].rstrip() + "…"


def spoken_place(place: dict[str, Any], origin: Circle | None = None) -> str:
    name = _cut(str((place.get("displayName") or {}).get("text") or "unnamed place"), MAX_NAME_CHARS)
    address = _cut(str(place.get("shortFormattedAddress") or place.get("formattedAddress") or ""), MAX_ADDRESS_CHARS)
    parts = [name] + ([address] if address else [])
    distance = _distance_from(origin, place.get("location"))
    if distance is not None:
        parts.append(spoken_distance(distance))
    open_now = (place.get("currentOpeningHours") or {}).get("openNow")
    if open_now is not None:
        parts.append("open now" if open_now else "closed now")
    return ", ".join(parts) + "."


def _distance_from(origin: Circle | None, location: Any) -> float | None:
    if origin is None or not isinstance(location, dict):
        return None
    try:
        return great_circle_m(origin.latitude, origin.longitude, float(location["latitude"]),
                              float(location["longitude"]))
    except (KeyError, TypeError, ValueError):
        return None


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres: within 0.5 % of the ellipsoid at the 50 km a search spans."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def spoken_distance(metres: float) -> str:
    """As a person says it: tens of metres below a kilometre, tenths of a kilometre above."""
    if metres < 995:
        return f"{max(10, round(metres / 10) * 10)} metres away"
    return f"{metres / 1000:.1f} km away"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
