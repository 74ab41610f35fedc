"""Where the agent's Gemini Live sessions run: the Vertex AI location, checked against a dated
table of where Live models are served (domain/data/gemini_live_locations.json, with its sources).

A caller's audio is processed where the model runs, so the default follows the stack: its own
region when Live is served there, else the served location of the same geography (a Frankfurt
stack gets europe-west4, never us-central1). Where a geography has none, the stack must choose,
and the message says so. Pure functions over plain values; domain/config.py reports the problems.
"""

from __future__ import annotations

import json
from pathlib import Path

from domain.settings import Problem, setting_key

TABLE_FILE = Path(__file__).parent / "data" / "gemini_live_locations.json"
TABLE = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
SERVED: tuple[str, ...] = tuple(TABLE["served"])
_DEFAULTS = tuple(g["default"] for g in TABLE["geographies"].values() if g["default"])
_WHERE = f"domain/data/gemini_live_locations.json, checked {TABLE['checked']}"


def geography(region: str) -> dict:
    """The geography a region belongs to (its name's first part: europe-west3 -> europe)."""
    return TABLE["geographies"].get(region.split("-")[0], {"name": region, "default": None})


def _served_in(region: str) -> list[str]:
    prefix = region.split("-")[0] + "-"
    return [loc for loc in SERVED if loc.startswith(prefix)]


def vertex_default(region: str) -> str | None:
    """The location an empty vertexLocation means for a stack in `region`, or None when its
    geography has no served location."""
    return region if region in SERVED else geography(region)["default"]


def location_problems(location: str, region: str, explicit: bool) -> list[Problem]:
    """vertexLocation's problems: `explicit` when the stack set it, else it is empty and
    `location` is what the default found (None: nothing in the geography)."""
    key = setting_key("vertexLocation")
    if not explicit and location is None:
        geo = geography(region)
        return [Problem(key, "", f"is empty, so Gemini Live should run in the stack's geography, but no location in "
                                 f"{geo['name']} serves it ({_WHERE}): set vertexLocation to a served location, e.g. "
                                 f"{', '.join(_DEFAULTS)}, knowing that callers' audio is then processed there")]
    if location == "global":
        return [Problem(key, location, "Gemini Live models are not served at the global endpoint (Vertex AI Gemini API "
                                       f"locations, {TABLE['sources']['global'].split(' ')[0]}): use a region, e.g. "
                                       f"{vertex_default(region) or SERVED[0]}")]
    if location not in SERVED:
        nearby = _served_in(region) or [vertex_default(region) or SERVED[0]]
        return [Problem(key, location, f"Generative AI on Vertex AI is not offered in {location} ({_WHERE}); "
                                       f"served near the stack's region: {', '.join(nearby)}")]
    return []


def fallback_problems(fallback: str, region: str) -> list[Problem]:
    """geminiFallbackLocation, when set, is held to the same table: a fallback where Live is not
    served turns the rescue of a failing call into a second failure."""
    if not fallback:
        return []
    found = location_problems(fallback, region, explicit=True)
    return [Problem(setting_key("geminiFallbackLocation"), p.value, p.rule) for p in found]
