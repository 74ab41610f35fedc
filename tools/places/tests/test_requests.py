"""Request validation at its boundaries: equal, just inside, just outside."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from places_mcp import requests


@pytest.mark.parametrize("radius", [1, 50000])
def test_radius_bounds_are_inclusive(radius):
    assert requests.circle(45.0, 4.0, radius).radius_m == radius


@pytest.mark.parametrize("radius", [0, 50001])
def test_radius_outside_the_api_range_is_refused(radius):
    with pytest.raises(ToolError, match=rf"radius_m {radius} is out of range: allowed 1 to 50000 metres"):
        requests.circle(45.0, 4.0, radius)


@pytest.mark.parametrize(("lat", "lng", "ok"), [
    (90.0, 180.0, True), (-90.0, -180.0, True), (90.0001, 0.0, False), (0.0, -180.0001, False),
    (float("nan"), 0.0, False),
])
def test_coordinates(lat, lng, ok):
    if ok:
        assert requests.circle(lat, lng, 10).latitude == lat
    else:
        with pytest.raises(ToolError, match="out of range"):
            requests.circle(lat, lng, 10)


@pytest.mark.parametrize(("count", "ok"), [(0, False), (1, True), (5, True), (6, False)])
def test_result_count(count, ok):
    if ok:
        assert requests.result_count(count) == count
    else:
        with pytest.raises(ToolError, match=f"max_results {count} is out of range: allowed 1 to 5"):
            requests.result_count(count)


@pytest.mark.parametrize(("length", "ok"), [(1, False), (2, True), (120, True), (121, False)])
def test_query_length(length, ok):
    query = "a" * length
    if ok:
        assert requests.clean_query(query) == query
    else:
        with pytest.raises(ToolError, match=f"query must be 2 to 120 characters \\(got {length}\\)"):
            requests.clean_query(query)


def test_query_whitespace_is_collapsed_and_control_characters_refused():
    assert requests.clean_query("  pharmacy \n in   Lyon ") == "pharmacy in Lyon"
    with pytest.raises(ToolError, match="control characters"):
        requests.clean_query("pharmacy\x00")


def test_text_search_without_a_point_is_allowed_but_half_a_point_is_not():
    assert requests.text_search("pharmacy in Lyon", None, None, 5000, 3).near is None
    with pytest.raises(ToolError, match="both needed"):
        requests.text_search("pharmacy", None, 4.0, 5000, 3)


def test_place_type_is_normalised_and_checked_against_the_data_file():
    assert requests.nearby_search(45.0, 4.0, "Gas Station", 100, 1).place_type == "gas_station"
    with pytest.raises(ToolError, match="place_type 'nightclub' is not supported"):
        requests.nearby_search(45.0, 4.0, "nightclub", 100, 1)
