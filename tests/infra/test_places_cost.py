"""The Places tool server's searches priced in the plan: the tier comes from the server's own
field list (tools/places/places_mcp/data/fields.json), the price from domain/data/prices.json."""

from __future__ import annotations

import copy

from domain.cost import PRICES, places_search_lines
from tooling.plan import places_tiers


def test_the_open_now_field_puts_every_search_in_the_enterprise_tier():
    assert places_tiers() == ("enterprise", "pro")


def test_the_line_names_the_tier_its_price_and_the_free_allowance():
    prices = copy.deepcopy(PRICES)
    prices["places"]["per_thousand"]["nearby_search"].update(enterprise=35.0, pro=32.0)
    prices["places"]["free_per_month"]["enterprise"] = 1000
    assert places_search_lines("enterprise", "pro", prices) == [
        "  places tool: every search billed as Enterprise (its field mask, tools/places/places_mcp/data/fields.json): "
        "$35.00 per 1000 searches, the first 1000 a month free",
        "    ($32.00 per 1000 as Pro without the open-now field; readiness self-checks are the free IDs Only SKU)"]


def test_a_mask_of_one_tier_prints_no_alternative():
    assert len(places_search_lines("pro", "pro")) == 1


def test_the_readiness_self_check_tier_costs_nothing():
    assert PRICES["places"]["per_thousand"]["text_search"]["essentials_ids_only"] == 0.0
