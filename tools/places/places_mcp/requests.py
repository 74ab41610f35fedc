"""What a tool call may ask for. Anything malformed or out of scope is refused here, before any
upstream call, with one sentence the model can relay to the caller (mcp ToolError).

Bounds from the Places API (New) reference (https://developers.google.com/maps/documentation/
places/web-service/text-search and .../nearby-search): a search circle's radius is 0.0-50000.0
metres; latitude -90..90, longitude -180..180. The result count is ours: more than five places
cannot be listened to.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError

MAX_RADIUS_M = 50000
MIN_RADIUS_M = 1
MAX_RESULTS = 5
MIN_QUERY_CHARS = 2
MAX_QUERY_CHARS = 120
PLACE_TYPES = frozenset(json.loads((Path(__file__).parent / "data" / "place_types.json").read_text())["types"])


@dataclass(frozen=True)
class Circle:
    latitude: float
    longitude: float
    radius_m: int

    def wire(self) -> dict:
        center = {"latitude": self.latitude, "longitude": self.longitude}
        return {"circle": {"center": center, "radius": float(self.radius_m)}}


@dataclass(frozen=True)
class TextSearch:
    query: str
    near: Circle | None
    max_results: int


@dataclass(frozen=True)
class NearbySearch:
    place_type: str
    near: Circle
    max_results: int


def text_search(query: str, latitude: float | None, longitude: float | None, radius_m: int,
                max_results: int) -> TextSearch:
    near = None
    if latitude is not None or longitude is not None:
        near = circle(latitude, longitude, radius_m)
    return TextSearch(query=clean_query(query), near=near, max_results=result_count(max_results))


def nearby_search(latitude: float | None, longitude: float | None, place_type: str, radius_m: int,
                  max_results: int) -> NearbySearch:
    kind = (place_type or "").strip().lower().replace(" ", "_")
    if kind not in PLACE_TYPES:
        raise ToolError(f"place_type {place_type!r} is not supported; use one of {', '.join(sorted(PLACE_TYPES))}, "
                        "or use find_places with a text query")
    return NearbySearch(place_type=kind, near=circle(latitude, longitude, radius_m),
                        max_results=result_count(max_results))


def clean_query(query: str) -> str:
    text = " ".join((query or "").split())
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ToolError("query holds control characters; ask the caller what place they are looking for")
    if not MIN_QUERY_CHARS <= len(text) <= MAX_QUERY_CHARS:
        raise ToolError(f"query must be {MIN_QUERY_CHARS} to {MAX_QUERY_CHARS} characters (got {len(text)}); "
                        "say what kind of place and where, e.g. 'pharmacy in Lyon'")
    return text


def circle(latitude: float | None, longitude: float | None, radius_m: int) -> Circle:
    if latitude is None or longitude is None:
        raise ToolError("latitude and longitude are both needed to search near a point; without the caller's "
                        "position, ask for a town or address and use find_places with it in the query")
    for name, value, bound in (("latitude", latitude, 90.0), ("longitude", longitude, 180.0)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > bound:
            raise ToolError(f"{name} {value!r} is out of range: allowed -{bound:g} to {bound:g}")
    if not MIN_RADIUS_M <= radius_m <= MAX_RADIUS_M:
        raise ToolError(f"radius_m {radius_m} is out of range: allowed {MIN_RADIUS_M} to {MAX_RADIUS_M} metres")
    return Circle(latitude=float(latitude), longitude=float(longitude), radius_m=int(radius_m))


def result_count(max_results: int) -> int:
    if not 1 <= max_results <= MAX_RESULTS:
        raise ToolError(f"max_results {max_results} is out of range: allowed 1 to {MAX_RESULTS} "
                        "(more places than that cannot be listened to)")
    return max_results
