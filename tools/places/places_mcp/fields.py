"""Which Place fields a search asks for, and which billing tier that puts it in.

Places API (New) has no default field list (X-Goog-FieldMask is mandatory) and bills a request
at the highest SKU among the fields its mask names (data/fields.json cites the pages). The
list lives in data/fields.json so that the offline plan prices exactly what this server asks
for; this module imports nothing outside the standard library for the same reason.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = json.loads((Path(__file__).parent / "data" / "fields.json").read_text())
TIERS: tuple[str, ...] = tuple(DATA["tiers"])
SEARCH_FIELDS: dict[str, str] = dict(DATA["search"])
SELF_CHECK_FIELDS: dict[str, str] = dict(DATA["self_check"])


def field_mask(fields: dict[str, str]) -> str:
    return ",".join(fields)


def billed_tier(fields: dict[str, str]) -> str:
    """The SKU tier a request with these fields is billed at: the highest of its fields'."""
    return max(fields.values(), key=TIERS.index)
