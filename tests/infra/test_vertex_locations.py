"""Where Gemini Live runs (issue 24): an empty vertexLocation follows the stack's geography, a
location where no Live model is served is a config error naming the table it was checked
against, and a stack may still choose any served location explicitly.

Guards against the old default: us-central1 for every stack, so a Frankfurt stack's callers were
processed in Iowa without a word (data residency).
"""

from __future__ import annotations

import pytest

from domain.config import parse_stack_config
from domain.settings import KNOWN_REGIONS, ConfigError
from domain.stackfiles import load_stack_values
from domain.vertex_locations import SERVED, TABLE, geography, vertex_default

P = "gke-voice-agents:"
SECRETS = {P + "livekitApiKey": "k", P + "livekitApiSecret": "s"}
RAW = {**load_stack_values("dev").config, **SECRETS}


def location(region: str, vertex: str | None = None) -> str:
    raw = {**RAW, "gcp:region": region}
    if vertex is not None:
        raw[P + "vertexLocation"] = vertex
    return parse_stack_config("dev", raw, tuple(SECRETS)).workload.vertex_location


def test_the_table_is_sourced_dated_and_consistent():
    assert TABLE["checked"] and all(url.startswith("https://") for url in TABLE["sources"].values())
    assert set(SERVED) <= KNOWN_REGIONS and "global" not in SERVED
    assert {r.split("-")[0] for r in KNOWN_REGIONS} == set(TABLE["geographies"])
    for prefix, geo in TABLE["geographies"].items():
        assert geo["default"] is None or (geo["default"] in SERVED and geo["default"].startswith(prefix + "-"))


def test_the_committed_default_is_empty_and_means_the_stacks_region():
    assert RAW[P + "vertexLocation"] == ""
    assert location(RAW["gcp:region"]) == RAW["gcp:region"]


@pytest.mark.parametrize("region, expected", [
    ("europe-west3", "europe-west3"),   # served: the stack's own region
    ("europe-west12", "europe-west4"),  # not served: its geography's location, still in Europe
    ("europe-west4", "europe-west4"),
    ("asia-south2", "asia-northeast1"),
    ("us-west2", "us-central1"),
])
def test_an_empty_location_stays_in_the_stacks_geography(region, expected):
    assert location(region) == vertex_default(region) == expected
    assert expected.split("-")[0] == region.split("-")[0]


def test_a_geography_without_gemini_live_says_so_and_asks_for_a_choice():
    assert geography("africa-south1")["default"] is None
    with pytest.raises(ConfigError, match=r"vertexLocation = '': is empty, so Gemini Live should run in the stack's "
                                          r"geography, but no location in Africa serves it \(domain/data/gemini_live_"
                                          r"locations.json, checked .*\): set vertexLocation to a served location"):
        location("africa-south1")


def test_an_explicit_location_is_the_stacks_choice():
    """Told otherwise, an EU stack may run its calls in the US (and in Africa it must choose)."""
    assert location("europe-west3", "us-central1") == "us-central1"
    assert location("africa-south1", "europe-west4") == "europe-west4"


def test_global_serves_no_live_model():
    with pytest.raises(ConfigError, match=r"vertexLocation = 'global': Gemini Live models are not served at the global "
                                          r"endpoint .*use a region, e.g. europe-west4"):
        location("europe-west12", "global")


def test_a_known_region_without_vertex_generative_ai_is_refused():
    with pytest.raises(ConfigError, match=r"vertexLocation = 'europe-west12': Generative AI on Vertex AI is not offered "
                                          r"in europe-west12 \(domain/data/gemini_live_locations.json.*served near the "
                                          r"stack's region: europe-central2, .*europe-west9"):
        location("europe-west3", "europe-west12")


@pytest.mark.parametrize("fallback, rule", [
    ("global", r"Gemini Live models are not served at the global endpoint"),
    ("europe-west12", r"Generative AI on Vertex AI is not offered in europe-west12"),
])
def test_the_fallback_location_is_held_to_the_same_table(fallback, rule):
    raw = {**RAW, "gcp:region": "europe-west3", P + "geminiFallbackLocation": fallback}
    with pytest.raises(ConfigError, match=rf"geminiFallbackLocation = '{fallback}': {rule}"):
        parse_stack_config("dev", raw, tuple(SECRETS))
    raw[P + "geminiFallbackLocation"] = "europe-west4"  # served, and not the primary
    assert parse_stack_config("dev", raw, tuple(SECRETS)).workload.call.gemini_fallback_location == "europe-west4"


def test_an_unknown_region_stops_before_the_geography_rule():
    """A bad gcp:region is reported once, not again as a location problem."""
    with pytest.raises(ConfigError) as caught:
        location("mars-north1")
    assert [p.key for p in caught.value.problems] == ["gcp:region"]


# --- any stack name: its policy config is found or the plan says which file to create ---------

def test_a_stack_with_a_policy_file_gets_it_in_the_next_command():
    from tooling.plan import policy_config_lines

    assert policy_config_lines("dev") == [
        "next: pulumi preview --stack dev --policy-pack policy --policy-pack-config policy/dev.json   "
        "(README: Going to `pulumi up`)"]


def test_a_stack_without_one_is_told_what_the_pack_assumes_and_which_file_to_create():
    from tooling.plan import policy_config_lines
    from policy.rules import RULES

    lines = policy_config_lines("staging")
    assert lines[0].startswith("policy: no policy/staging.json, so every rule runs at its strict default: the stack "
                               "counts as protected (")
    protected = [rule.id for rule in RULES if "protected" in rule.config]
    assert protected and all(rule in lines[0] for rule in protected)
    assert "cp policy/dev.json policy/staging.json" in lines[0]
    assert lines[1] == "next: pulumi preview --stack staging --policy-pack policy   (README: Going to `pulumi up`)"
    assert "policy/staging.json" not in lines[1], "the next command must not name a file that does not exist"
