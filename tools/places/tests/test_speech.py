"""Answers trimmed for speech."""

from __future__ import annotations

from places_mcp.places_api import MAX_ANSWER_CHARS, MAX_NAME_CHARS, spoken_answer, spoken_place


def test_long_names_and_addresses_are_cut_to_a_phrase():
    place = {"displayName": {"text": "N" * 200}, "formattedAddress": "A " * 100}
    name, address = spoken_place(place).split(", ")
    assert len(name) == MAX_NAME_CHARS and name.endswith("…")
    assert len(address) <= 81


def test_short_address_is_preferred_and_missing_fields_are_skipped():
    assert spoken_place({"displayName": {"text": "Bakery"}, "shortFormattedAddress": "1 Main St",
                         "formattedAddress": "1 Main Street, Springfield, USA"}) == "Bakery, 1 Main St."
    assert spoken_place({}) == "unnamed place."


def test_whole_answer_is_capped():
    places = [{"displayName": {"text": "P" * 60}, "formattedAddress": "A" * 80}] * 5
    answer = spoken_answer(places, "for x")
    assert len(answer) == MAX_ANSWER_CHARS and answer.endswith("…")
