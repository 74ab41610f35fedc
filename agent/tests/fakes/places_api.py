"""TEST ONLY: the Places API (New) on loopback, at the HTTP level (no internet here).

Imitates what the tool server relies on, from the Places API (New) reference:
- Text Search (New), https://developers.google.com/maps/documentation/places/web-service/text-search:
  POST /v1/places:searchText, JSON body with textQuery (required), pageSize (1-20),
  locationBias.circle {center {latitude, longitude}, radius 0.0-50000.0}, languageCode.
- Nearby Search (New), https://developers.google.com/maps/documentation/places/web-service/nearby-search:
  POST /v1/places:searchNearby with includedTypes, maxResultCount (1-20) and a required
  locationRestriction.circle.
- Field masks, https://developers.google.com/maps/documentation/places/web-service/choose-fields:
  X-Goog-FieldMask is required ("There is no default list of returned fields"); only the
  named fields come back.
- OAuth, https://developers.google.com/maps/documentation/places/web-service/oauth-token:
  Authorization: Bearer <token> with X-Goog-User-Project naming the billed project.
- Errors in Google's JSON error format ({"error": {"code", "message", "status"}}, AIP-193):
  401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 400 INVALID_ARGUMENT, 429 RESOURCE_EXHAUSTED.
  A search with no match answers 200 with an empty object.

- Ranking, https://developers.google.com/maps/documentation/places/web-service/nearby-search
  (rankPreference): Nearby Search orders by POPULARITY unless DISTANCE is asked for; Text Search
  takes RELEVANCE (default) or DISTANCE. Here popularity is each place's ``popularity``.
- Error details, https://cloud.google.com/apis/design/errors (ErrorInfo): a refusal may carry
  ``{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason", "domain"}`` in ``details``.

Knobs for tests: ``delay_seconds`` (a slow upstream), ``fail_with`` (an HTTP status served to
every call) and ``fail_reason`` (its ErrorInfo reason). Everything is recorded in ``calls``. Stdlib only, so both the agent's venv and the
tool server's venv can load it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_RADIUS_M = 50000.0
ERRORS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# A small catalogue around Lyon's Place Bellecour (45.7578, 4.8320): enough to tell searches apart.
CATALOGUE: tuple[dict[str, Any], ...] = (
    {"id": "p1", "types": ["pharmacy", "health"], "displayName": {"text": "Pharmacie Bellecour", "languageCode": "fr"},
     "formattedAddress": "12 Place Bellecour, 69002 Lyon, France", "shortFormattedAddress": "12 Place Bellecour, Lyon",
     "location": {"latitude": 45.7579, "longitude": 4.8322}, "currentOpeningHours": {"openNow": True}, "popularity": 1},
    {"id": "p2", "types": ["pharmacy", "health"], "displayName": {"text": "Grande Pharmacie Lyonnaise", "languageCode": "fr"},
     "formattedAddress": "22 Rue de la République, 69002 Lyon, France", "shortFormattedAddress": "22 Rue de la République, Lyon",
     "location": {"latitude": 45.7620, "longitude": 4.8357}, "currentOpeningHours": {"openNow": False}, "popularity": 9},
    {"id": "c1", "types": ["cafe", "food"], "displayName": {"text": "Café des Négociants", "languageCode": "fr"},
     "formattedAddress": "2 Place Francisque Régaud, 69002 Lyon, France", "shortFormattedAddress": "2 Place Francisque Régaud, Lyon",
     "location": {"latitude": 45.7631, "longitude": 4.8340}, "popularity": 5},
)


@dataclass
class PlacesApi:
    token: str
    quota_project: str
    delay_seconds: float = 0.0
    fail_with: int | None = None
    fail_reason: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> PlacesApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body = api.answer(self.path, dict(self.headers.items()), raw)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a slow-upstream test): nothing to answer

            def log_message(self, *args: object) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="fake-places", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # ---- the API ---------------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        with self.lock:
            self.calls.append({"path": path, "headers": headers, "body": body})
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if self.fail_with is not None:
            return _error(self.fail_with, "The service is currently unavailable.", self.fail_reason)
        if headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                               "login cookie or other valid authentication credential.")
        if headers.get("x-goog-user-project") != self.quota_project:
            return _error(403, "The caller does not have permission: a quota project is required with OAuth "
                               "(X-Goog-User-Project).")
        mask = [f.strip() for f in headers.get("x-goog-fieldmask", "").split(",") if f.strip()]
        if not mask:
            return _error(400, "FieldMask is a required parameter. Set the header 'X-Goog-FieldMask', e.g. to "
                               "'places.displayName,places.formattedAddress'.")
        if body is None:
            return _error(400, "Invalid JSON payload received.")
        route = path.split("?", 1)[0]
        if route == "/v1/places:searchText":
            return self._search_text(body, mask)
        if route == "/v1/places:searchNearby":
            return self._search_nearby(body, mask)
        return _error(404, f"Method not found: {route}")

    def _search_text(self, body: dict[str, Any], mask: list[str]) -> tuple[int, dict[str, Any]]:
        query = str(body.get("textQuery", "")).strip().lower()
        if not query:
            return _error(400, "Empty text_query.")
        problem = _circle_problem(body.get("locationBias"), "location_bias", required=False)
        count = int(body.get("pageSize") or body.get("maxResultCount") or 20)
        if problem or not 1 <= count <= 20:
            return _error(400, problem or "page_size must be between 1 and 20.")
        rank = body.get("rankPreference", "RELEVANCE")
        if rank not in ("RELEVANCE", "DISTANCE"):
            return _error(400, f"Invalid value at 'rank_preference' ({rank}).")
        words = set(query.replace(",", " ").split())
        found = [p for p in CATALOGUE if words & set(p["types"]) or any(w in p["displayName"]["text"].lower() for w in words)]
        if rank == "DISTANCE":
            found = _by_distance(found, body.get("locationBias"))
        return _places(found[:count], mask)

    def _search_nearby(self, body: dict[str, Any], mask: list[str]) -> tuple[int, dict[str, Any]]:
        problem = _circle_problem(body.get("locationRestriction"), "location_restriction", required=True)
        count = int(body.get("maxResultCount") or 20)
        if problem or not 1 <= count <= 20:
            return _error(400, problem or "max_result_count must be between 1 and 20.")
        rank = body.get("rankPreference", "POPULARITY")
        if rank not in ("POPULARITY", "DISTANCE"):
            return _error(400, f"Invalid value at 'rank_preference' ({rank}).")
        types = set(body.get("includedTypes") or [])
        found = [p for p in CATALOGUE if not types or types & set(p["types"])]
        if rank == "DISTANCE":
            found = _by_distance(found, body.get("locationRestriction"))
        else:
            found = sorted(found, key=lambda p: -p["popularity"])
        return _places(found[:count], mask)


def _circle_problem(area: Any, name: str, *, required: bool) -> str:
    if area is None:
        return f"{name} is required." if required else ""
    circle = (area or {}).get("circle") or {}
    center = circle.get("center") or {}
    radius = float(circle.get("radius", 0.0))
    lat, lng = center.get("latitude"), center.get("longitude")
    if lat is None or lng is None or not -90 <= lat <= 90 or not -180 <= lng <= 180:
        return f"{name}.circle.center is invalid."
    if not 0.0 <= radius <= MAX_RADIUS_M:
        return f"{name}.circle.radius must be between 0.0 and 50000.0."
    return ""


def _by_distance(found: list[dict[str, Any]], area: Any) -> list[dict[str, Any]]:
    center = ((area or {}).get("circle") or {}).get("center") or {}
    lat, lng = float(center.get("latitude", 0.0)), float(center.get("longitude", 0.0))
    # an equirectangular approximation orders places a few kilometres apart exactly as well
    scale = math.cos(math.radians(lat))
    return sorted(found, key=lambda p: (p["location"]["latitude"] - lat) ** 2
                  + ((p["location"]["longitude"] - lng) * scale) ** 2)


def _places(found: list[dict[str, Any]], mask: list[str]) -> tuple[int, dict[str, Any]]:
    if not found:
        return 200, {}
    return 200, {"places": [_masked(p, mask) for p in found]}


def _masked(place: dict[str, Any], mask: list[str]) -> dict[str, Any]:
    """Only the fields the mask names (paths below `places.`), as the API does."""
    if "*" in mask or "places.*" in mask:
        return {k: v for k, v in place.items() if k not in ("types", "popularity")}
    out: dict[str, Any] = {}
    for path in mask:
        parts = path.removeprefix("places.").split(".")
        source: Any = place
        for part in parts:
            source = source.get(part) if isinstance(source, dict) else None
        if source is None:
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
    return out


def _error(code: int, message: str, reason: str = "") -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"code": code, "message": message, "status": ERRORS.get(code, "UNKNOWN")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com", "metadata": {"service": "places.googleapis.com"}}]
    return code, {"error": error}
