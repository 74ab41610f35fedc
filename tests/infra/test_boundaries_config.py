"""The config loader's cross-setting checks at their boundaries: equal, just inside, just outside,
on every branch (infra/config.py, infra/maintenance.py, infra/database_rules.py, k8s/capacity.py,
infra/cost.py priceOverrides).

Each case starts from a committed stack's own values (parsed, never a hand-written config) and
changes the settings the check reads; the cross-setting rules are also called on the parsed,
typed settings with one field replaced, which is how components built in code reach them.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from domain import cost, maintenance
from domain.config import parse_stack_config
from domain.database_rules import database_problems, overlap_problems
from domain.settings import ConfigError
from domain.stackfiles import load_stack_values
from domain.capacity import MAX_SAFE_CALLS_PERCENT, workload_problems

P = "gke-voice-agents:"
SECRETS = {P + "livekitApiKey": "k", P + "livekitApiSecret": "s"}


def parse(stack: str = "dev", extra_secret_keys: tuple[str, ...] = (), **overrides: str | None):
    raw = {**load_stack_values(stack).config, **SECRETS}
    for key, value in overrides.items():
        full = key if ":" in key else P + key
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return parse_stack_config(stack, raw, (*SECRETS, *extra_secret_keys))


def problems_of(stack: str = "dev", **overrides: str | None) -> list[str]:
    try:
        parse(stack, **overrides)
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return []


# --------------------------------------------------------------------------------------------
# Maintenance: a NO_UPGRADES exclusion lasts at most 30 days (GKE "Maintenance exclusions":
# "a No upgrades exclusion ... can't exceed 30 days"); the window at least 4 h; what is left
# must give GKE 48 h in every 32 days. A daily 24 h window makes the 30-day exclusion the only
# limit: 32 days minus 30 leave exactly 48 h.

ALL_DAY = {"maintenanceStartTime": "2026-01-03T00:00:00Z", "maintenanceEndTime": "2026-01-04T00:00:00Z",
           "maintenanceRecurrence": "FREQ=DAILY"}


def _exclusion(end: str, scope: str | None = None) -> str:
    item = {"start": "2026-03-01T00:00:00Z", "end": end}
    return json.dumps({"spring": item if scope is None else {**item, "scope": scope}})


@pytest.mark.parametrize(("end", "refused"), [
    ("2026-03-30T23:59:59Z", False),   # just inside
    ("2026-03-31T00:00:00Z", False),   # exactly 30 days, and exactly 48 h left in 32 days
    ("2026-03-31T00:00:01Z", True),    # just outside
])
def test_a_no_upgrades_exclusion_of_exactly_30_days_is_accepted(end, refused):
    found = problems_of(**ALL_DAY, maintenanceExclusions=_exclusion(end))
    assert found == ([f"{P}maintenanceExclusions.spring.end = '{end}': a NO_UPGRADES exclusion may last at most 30 days"]
                     if refused else [])


def test_an_exclusion_without_scope_is_no_upgrades():
    """GKE's default scope, and the one the 30-day limit applies to."""
    assert problems_of(**ALL_DAY, maintenanceExclusions=_exclusion("2026-04-01T00:00:00Z")) != []
    assert problems_of(**ALL_DAY, maintenanceExclusions=_exclusion("2026-04-01T00:00:00Z", "NO_UPGRADES")) != []


@pytest.mark.parametrize("scope", ["NO_MINOR_UPGRADES", "NO_MINOR_OR_NODE_UPGRADES"])
def test_narrower_scopes_may_last_longer_and_leave_availability_alone(scope):
    assert problems_of(**ALL_DAY, maintenanceExclusions=_exclusion("2026-06-01T00:00:00Z", scope)) == []


@pytest.mark.parametrize(("end", "refused"), [
    ("2026-01-03T06:00:00Z", False),   # exactly 4 h from 02:00
    ("2026-01-03T05:59:59Z", True),
    ("2026-01-03T06:00:01Z", False),
])
def test_the_window_lasts_at_least_4_hours(end, refused):
    found = problems_of(maintenanceStartTime="2026-01-03T02:00:00Z", maintenanceEndTime=end,
                        maintenanceRecurrence="FREQ=DAILY")
    assert any("must last at least 4:00:00 (GKE minimum)" in p for p in found) is refused


@pytest.mark.parametrize(("end", "says"), [
    ("2026-03-01T00:00:00Z", "must be after"),     # equal to the start
    ("2026-02-28T23:59:59Z", "must be after"),
    ("yesterday", "must be an RFC 3339 time"),
])
def test_an_exclusion_ends_after_it_starts(end, says):
    # set(): an unreadable end is reported by the window check and again by the length check
    found = set(problems_of(**ALL_DAY, maintenanceExclusions=_exclusion(end)))
    assert len(found) == 1 and says in found.pop(), found


@pytest.mark.parametrize(("item", "says"), [
    ({"start": "2026-03-01T00:00:00Z"}, "must be a map with start, end (RFC 3339) and optional scope"),
    ({"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "note": "x"}, "must be a map with start, end"),
    ("2026-03-01", "must be a map with start, end"),
])
def test_an_exclusion_is_a_map_of_start_end_scope(item, says):
    found = problems_of(**ALL_DAY, maintenanceExclusions=json.dumps({"spring": item}))
    assert len(found) == 1 and says in found[0], found


@pytest.mark.parametrize(("name", "refused"), [("spring-1", False), ("Spring", True), ("1spring", True), ("spring_1", True)])
def test_exclusion_names_are_stable_keys(name, refused):
    item = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}
    found = problems_of(**ALL_DAY, maintenanceExclusions=json.dumps({name: item}))
    assert bool(found) is refused


@pytest.mark.parametrize(("byday", "weekdays"), [
    ("MO", {0}), ("TU", {1}), ("WE", {2}), ("TH", {3}), ("FR", {4}), ("SA", {5}), ("SU", {6}),
    ("MO,TU,WE,TH,FR,SA,SU", set(range(7))), ("TU,SU", {1, 6}),
])
def test_each_rrule_day_is_its_own_weekday(byday, weekdays):
    """RFC 5545 BYDAY codes to Python weekdays (Monday 0): a shifted table would open the
    window on the wrong days and miscount GKE's 48 hours."""
    assert maintenance.window_days(f"FREQ=WEEKLY;BYDAY={byday}") == frozenset(weekdays)


# A 4 h daily window and a 25-day exclusion "long" leave 28 h in the worst 32 days, the period
# from 2026-02-21T04:00Z to 2026-03-25T04:00Z (half-open). The exclusions that overlap that
# period are named; one that starts exactly where it ends does not overlap it.
FOUR_HOURS_DAILY = {"maintenanceStartTime": "2026-01-03T00:00:00Z", "maintenanceEndTime": "2026-01-03T04:00:00Z",
                    "maintenanceRecurrence": "FREQ=DAILY"}


@pytest.mark.parametrize(("short_start", "named"), [
    ("2026-03-25T03:59:59Z", {"long", "short"}),  # just inside the worst period
    ("2026-03-25T04:00:00Z", {"long"}),           # starts exactly at its end
    ("2026-03-25T04:00:01Z", {"long"}),
])
def test_the_exclusions_named_are_those_overlapping_the_worst_period(short_start, named):
    exclusions = {"long": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-26T00:00:00Z"},
                  "short": {"start": short_start, "end": "2026-03-25T06:00:00Z"}}
    found = problems_of(**FOUR_HOURS_DAILY, maintenanceExclusions=json.dumps(exclusions))
    assert all("the 32 days from 2026-02-21 keep only 28 h of maintenance" in p for p in found), found
    assert {p.removeprefix(f"{P}maintenanceExclusions.").split(" ")[0] for p in found} == named


# --------------------------------------------------------------------------------------------
# Keys: an unknown key that is also a secret keeps its value out of every message.

SECRET_VALUE = "s3cr3t-do-not-print-9f2c"


@pytest.mark.parametrize(("key", "says"), [
    (P + "livekitApiSecrett", "is not a setting of this project (Pulumi.yaml lists them all); did you mean "
                              f"{P}livekitApiSecret?"),
    ("gcp:credentialz", "is not a setting of the gcp provider (pulumi-gcp) and nothing here reads it"),
    (P + "spotPods", "is no longer a setting: Spot Pods get 25 s"),
])
def test_an_unknown_secret_key_never_prints_its_value(key, says):
    with pytest.raises(ConfigError) as caught:
        parse("dev", (key,), **{key: SECRET_VALUE})
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{key} = (secret, not shown): {says}")
    assert SECRET_VALUE not in str(caught.value) and SECRET_VALUE not in repr(caught.value.args)


def test_the_same_unknown_key_in_plain_text_is_shown():
    """The control: only a secret is hidden, so the case above is not hiding every value."""
    with pytest.raises(ConfigError, match=rf"{P}livekitApiSecrett = 'visible': is not a setting"):
        parse("dev", **{P + "livekitApiSecrett": "visible"})


@pytest.mark.parametrize("value", ["", "   "])
def test_a_known_secret_that_is_empty_never_prints_it(value):
    raw = {**load_stack_values("dev").config, **SECRETS, P + "livekitApiSecret": value}
    with pytest.raises(ConfigError, match=r"livekitApiSecret = \(secret, not shown\): is empty"):
        parse_stack_config("dev", raw, tuple(SECRETS))


# --------------------------------------------------------------------------------------------
# The reader's ranges: both ends inclusive unless said otherwise.


@pytest.mark.parametrize(("key", "value", "refused"), [
    ("natMinPortsPerVm", "64", False), ("natMinPortsPerVm", "63", True),
    ("natMinPortsPerVm", "65536", False), ("natMinPortsPerVm", "65537", True),
    ("hpaScaleDownPeriodSeconds", "1800", False), ("hpaScaleDownPeriodSeconds", "1801", True),
    ("hpaScaleDownPeriodSeconds", "1", False), ("hpaScaleDownPeriodSeconds", "0", True),
    ("registryRetentionDays", "7", False), ("registryRetentionDays", "6", True),
    ("placesToolReplicas", "10", False), ("placesToolReplicas", "11", True),
    ("spareCapacityPods", "0", False), ("spareCapacityPods", "-1", True),
    ("natUdpIdleTimeoutSec", "1.5", True), ("natUdpIdleTimeoutSec", "", True),
])
def test_integer_settings_at_both_ends(key, value, refused):
    found = problems_of(**{key: value})
    assert any(p.startswith(f"{P}{key} = ") for p in found) is refused, found


@pytest.mark.parametrize(("value", "refused"), [("0", True), ("0.0001", False), ("1", False), ("1.0001", True),
                                                ("nan", True), ("-0.1", True), ("abc", True)])
def test_livekit_target_load_is_in_the_open_closed_interval(value, refused):
    found = problems_of(livekitTargetLoad=value, loadThreshold="0.0001")
    assert any(p.startswith(f"{P}livekitTargetLoad = ") for p in found) is refused, found


@pytest.mark.parametrize(("minimum", "maximum", "refused"), [("3", "3", False), ("4", "3", True), ("1", "1000", False)])
def test_min_replicas_may_equal_max(minimum, maximum, refused):
    found = problems_of(hpaMinReplicas=minimum, hpaMaxReplicas=maximum)
    assert any(p.startswith(f"{P}hpaMinReplicas = {minimum}: must not exceed") for p in found) is refused


@pytest.mark.parametrize(("key", "prefix", "refused"), [
    ("podCidr", 21, False), ("podCidr", 22, True), ("podCidr", 9, False),   # Autopilot: at most /21
    ("nodeCidr", 28, False), ("nodeCidr", 29, True),
    ("serviceCidr", 27, False), ("serviceCidr", 28, True), ("serviceCidr", 16, False), ("serviceCidr", 15, True),
])
def test_cidr_prefix_bounds(key, prefix, refused):
    """A range of the stack's own, re-cut to the prefix (shorter ones start at an aligned address
    that may overlap another range: only this key's own prefix message is looked for)."""
    import ipaddress
    own = ipaddress.IPv4Network(load_stack_values("dev").config[P + key])
    value = str(ipaddress.IPv4Network(f"{own.network_address}/{prefix}", strict=False))
    found = problems_of(**{key: value})
    assert any(p.startswith(f"{P}{key} = '{value}': prefix length") for p in found) is refused, found


def test_shared_address_space_is_not_rfc_1918():
    value = "100.64.0.0/20"
    found = problems_of(nodeCidr=value)
    assert f"{P}nodeCidr = '{value}': must be a private (RFC 1918) range" in found, found


def test_adjacent_ranges_do_not_overlap_and_touching_ones_do():
    dev = parse("dev")
    node = dev.network.node_cidr
    import ipaddress
    after = ipaddress.IPv4Network(node).broadcast_address + 1
    assert not any("overlaps" in p for p in problems_of(serviceCidr=f"{after}/27"))
    last = ipaddress.IPv4Network(node).broadcast_address - 31
    assert any("overlaps" in p for p in problems_of(serviceCidr=f"{last}/27"))


@pytest.mark.parametrize(("networks", "refused"), [
    ({"office": "203.0.113.0/24"}, None), ({"one": "203.0.113.7/32"}, None),
    ({"all": "0.0.0.0/0"}, "opens the control plane to the whole internet"),
    ({"all6": "::/0"}, "opens the control plane to the whole internet"),
    ({"host-bits": "203.0.113.7/24"}, "must be a CIDR block"),
])
def test_authorized_networks(networks, refused):
    found = problems_of(controlPlaneAuthorizedNetworks=json.dumps(networks))
    assert (found == []) if refused is None else (len(found) == 1 and refused in found[0]), found


@pytest.mark.parametrize(("tag", "refused"), [("v" * 63, False), ("v" * 64, True), ("-v1", True), ("v1-", True),
                                              ("_v1", True), ("v1.", True), ("1", False)])
def test_the_release_label_from_the_tag(tag, refused):
    """The tag is the release label: a label value's rules (63 characters, alphanumeric at both
    ends); '-v1' is already no image tag (the tag pattern refuses it before the label rule)."""
    found = problems_of(agentImageTag=tag)
    assert any(p.startswith(f"{P}agentImageTag = ") for p in found) is refused, found
    if refused and tag != "-v1":
        assert any("labels every pod and metric as the release" in p for p in found), found


def test_a_tag_longer_than_a_label_is_fine_when_deploying_by_digest():
    assert problems_of(agentImageTag="v" * 64, agentImageDigest="sha256:" + "a" * 64) == []


# --------------------------------------------------------------------------------------------
# k8s/capacity.py cross-setting rules on the typed settings (prod: M, no bursting, 2000m/2000m,
# load threshold 0.7, HPA target 50 %, call cap 7, drain 2700 = 45 min).


def _prod():
    return parse("prod").workload


def _keys(w) -> list[str]:
    return [p.key.removeprefix(P) for p in workload_problems(w)]


def test_prod_settings_have_no_cross_setting_problem():
    w = _prod()
    assert (w.size, w.cpu_bursting, w.load_threshold, w.hpa.target_cpu_utilization, w.drain_timeout_seconds,
            w.max_session_minutes) == ("M", False, 0.7, 50, 2700, 45)
    assert _keys(w) == []


@pytest.mark.parametrize(("drain", "refused"), [(2699, True), (2700, False), (2701, False)])
def test_drain_covers_the_longest_call_exactly(drain, refused):
    assert ("drainTimeoutSeconds" in _keys(replace(_prod(), drain_timeout_seconds=drain))) is refused


@pytest.mark.parametrize(("threshold", "refused"), [(0.54, True), (0.55, True), (0.56, False)])
def test_hpa_load_exactly_at_the_threshold_is_refused(threshold, refused):
    """target 50 % x 1.1 x 2000m/2000m = 0.55: the same equality the policy rule refuses."""
    w = _prod()
    w = replace(w, load_threshold=threshold, dispatch=replace(w.dispatch, livekit_target_load=threshold))
    assert ("hpaTargetCpuUtilization" in _keys(w)) is refused


@pytest.mark.parametrize(("percent", "refused"), [(90, False), (91, True), (100, True)])
def test_calls_target_just_below_the_cap(percent, refused):
    """cap 7: 7 x 90 % x 1.1 = 6.93 < 7; 7 x 91 % x 1.1 = 7.007."""
    w = _prod()
    w = replace(w, hpa=replace(w.hpa, target_calls_percent=percent))
    assert ("hpaTargetCallsPercent" in _keys(w)) is refused
    assert MAX_SAFE_CALLS_PERCENT == 90


@pytest.mark.parametrize(("up", "down", "refused"), [(60, 60, True), (60, 61, False), (61, 60, True)])
def test_scale_down_strictly_slower(up, down, refused):
    w = _prod()
    w = replace(w, hpa=replace(w.hpa, scale_up_window_seconds=up, scale_down_window_seconds=down))
    assert ("hpaScaleDownWindowSeconds" in _keys(w)) is refused


@pytest.mark.parametrize(("warning", "refused"), [(599, False), (600, True)])
def test_the_warning_comes_before_the_end_of_the_call(warning, refused):
    w = _prod()
    w = replace(w, max_session_minutes=10, call=replace(w.call, warning_seconds=warning))
    assert ("callWarningSeconds" in _keys(w)) is refused


@pytest.mark.parametrize(("target_load", "refused"), [(0.69, True), (0.7, False), (0.71, False)])
def test_the_server_routes_until_the_worker_is_full(target_load, refused):
    w = _prod()
    w = replace(w, dispatch=replace(w.dispatch, livekit_target_load=target_load))
    assert ("loadThreshold" in _keys(w)) is refused


def test_with_bursting_admission_stays_within_the_request():
    """dev S with bursting: 1000m request, 1400m limit. The worker takes calls up to threshold x
    limit, which must not pass the request: 5/7 x 1400 = 1000 exactly is accepted."""
    w = parse("dev").workload
    assert (w.size, w.cpu_bursting) == ("S", True)
    exact = replace(w, load_threshold=5 / 7, dispatch=replace(w.dispatch, livekit_target_load=1.0))
    assert "loadThreshold" not in _keys(exact)
    over = replace(w, load_threshold=0.72, dispatch=replace(w.dispatch, livekit_target_load=1.0))
    [problem] = [p for p in workload_problems(over) if p.key == P + "loadThreshold"]
    assert problem.rule.endswith("use a loadThreshold of at most 0.71"), problem.rule  # two decimals, rounded down


def test_a_threshold_too_low_for_one_call_is_refused():
    w = _prod()
    low = replace(w, load_threshold=0.05, dispatch=replace(w.dispatch, livekit_target_load=0.05))
    assert any("it would never take a call" in p.rule for p in workload_problems(low))
    assert not any("hpaTargetCallsPercent" in p.key for p in workload_problems(low)), "reported once, by the room rule"


@pytest.mark.parametrize(("location", "model", "refused"), [
    ("", "", False),
    ("us-central1", "", True),                            # the primary's own region, same model
    ("", "gemini-live-2.5-flash-native-audio", True),     # the primary's own model, same region
    ("europe-west4", "", False),
    ("", "gemini-2.0-flash-live-001", False),
    ("us-central1", "gemini-2.0-flash-live-001", False),
])
def test_the_fallback_differs_from_the_primary(location, model, refused):
    w = _prod()
    assert (w.vertex_location, w.gemini_model) == ("us-central1", "gemini-live-2.5-flash-native-audio")
    w = replace(w, call=replace(w.call, gemini_fallback_location=location, gemini_fallback_model=model))
    keys = _keys(w)
    assert any(k.startswith("geminiFallback") for k in keys) is refused


@pytest.mark.parametrize(("text", "level", "refused"), [(True, "DEBUG", False), (True, "INFO", True), (False, "INFO", False)])
def test_conversation_text_needs_debug_lines(text, level, refused):
    w = _prod()
    w = replace(w, log_level=level, call=replace(w.call, log_conversation_text=text))
    assert ("logConversationText" in _keys(w)) is refused


def test_an_unknown_size_is_left_to_its_own_check():
    assert workload_problems(replace(_prod(), size="XXL")) == []


# --------------------------------------------------------------------------------------------
# infra/database_rules.py on the typed settings.


def _db():
    return parse("prod").database


@pytest.mark.parametrize(("tier", "refused"), [
    ("db-custom-1-3840", False), ("db-custom-2-7680", False), ("db-custom-3-7680", True),
    ("db-custom-96-393216", False), ("db-custom-98-401408", True),
    ("db-custom-2-1844", False), ("db-custom-2-1843", True),       # 0.9 GiB per vCPU = 1843.2 MiB for 2
    ("db-custom-2-13312", False), ("db-custom-2-13313", True),     # 6.5 GiB per vCPU = 13312 MiB for 2
    ("db-custom-10-9216", False), ("db-custom-10-9215", True),     # 0.9 GiB per vCPU exactly: 9216 MiB for 10
    ("db-n1-standard-2", True), ("db-custom-2", True),
])
def test_custom_tiers_at_their_limits(tier, refused):
    found = database_problems(replace(_db(), tier=tier))
    assert any(p.key == P + "databaseTier" for p in found) is refused, found


@pytest.mark.parametrize(("tier", "production", "refused"), [
    ("db-f1-micro", False, False), ("db-g1-small", False, False),
    ("db-f1-micro", True, True), ("db-g1-small", True, True), ("db-custom-1-3840", True, False)])
def test_shared_core_tiers_are_not_for_production(tier, production, refused):
    found = database_problems(replace(_db(), tier=tier, production=production))
    assert any(p.key == P + "databaseTier" for p in found) is refused


@pytest.mark.parametrize(("field", "low", "high"), [
    ("disk_size_gb", 10, 65536), ("retained_backups", 1, 365), ("transaction_log_retention_days", 1, 7),
])
def test_database_ranges_at_both_ends(field, low, high):
    for value, refused in ((low - 1, True), (low, False), (high, False), (high + 1, True), (True, True)):
        found = database_problems(replace(_db(), **{field: value}))
        assert bool(found) is refused, (field, value, found)


@pytest.mark.parametrize(("address", "prefix", "refused"), [
    ("10.60.0.0", 16, False), ("10.60.0.0", 24, False), ("10.60.0.0", 15, True), ("10.60.0.0", 25, True),
    ("10.60.0.1", 24, True),            # host bits set
    ("8.8.0.0", 20, True),              # not private
    ("not-an-ip", 20, True),
])
def test_private_services_access_range(address, prefix, refused):
    found = database_problems(replace(_db(), psa_range_address=address, psa_prefix_length=prefix))
    assert bool(found) is refused, found


def test_the_version_is_one_cloud_sql_offers():
    assert database_problems(replace(_db(), version="POSTGRES_17")) == []
    assert [p.key for p in database_problems(replace(_db(), version="POSTGRES_14"))] == [P + "databaseVersion"]


@pytest.mark.parametrize(("other", "refused"), [
    ("10.59.255.0/24", False),   # ends right before 10.60.0.0
    ("10.60.16.0/20", False),    # starts right after 10.60.0.0/20
    ("10.60.15.0/24", True),     # the range's last /24
    ("10.0.0.0/8", True),        # contains it
    ("nonsense", False),         # reported by its own setting
])
def test_the_database_range_overlaps_nothing_of_the_vpc(other, refused):
    db = replace(_db(), psa_range_address="10.60.0.0", psa_prefix_length=20)
    assert bool(overlap_problems(db, {P + "nodeCidr": other})) is refused


# --------------------------------------------------------------------------------------------
# priceOverrides (infra/cost.py).


@pytest.mark.parametrize(("raw", "parsed"), [
    ("", {}), ("   ", {}), ("{}", {}),
    ('{"autopilot.vcpu_hour": 0}', {"autopilot.vcpu_hour": 0.0}),           # zero is a price (free tier, credits)
    ('{"gemini.input_audio": 3}', {"gemini.input_audio": 3.0}),
])
def test_price_overrides_accepted_at_their_edges(raw, parsed):
    result = cost.parse_overrides(raw)
    assert result == parsed and all(isinstance(v, float) for v in result.values())


@pytest.mark.parametrize("raw", ['{"autopilot.vcpu_hour": -1e-9}', '{"autopilot.vcpu_hour": NaN}',
                                 '{"autopilot.vcpu_hour": Infinity}', '{"autopilot.vcpu_hour": true}',
                                 '{"autopilot.vcpu_hour": null}', '"0.05"', "0.05"])
def test_price_overrides_refused_just_outside(raw):
    with pytest.raises(ConfigError, match=r"priceOverrides"):
        cost.parse_overrides(raw)


def test_every_bad_override_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        cost.parse_overrides('{"autopilot.cpu_hour": 1, "gemini.input_audio": -1, "cluster_fee_per_hour": 0.1}')
    assert [p.key for p in caught.value.problems] == ["priceOverrides.autopilot.cpu_hour", "priceOverrides.gemini.input_audio"]


def test_overrides_reach_every_price_they_name():
    prices = cost.prices_for("us-central1", "gemini-live-2.5-flash-native-audio",
                             {"autopilot.vcpu_hour": 1.0, "autopilot.gib_hour": 2.0, "cluster_fee_per_hour": 3.0,
                              "gemini.input_audio": 4.0})
    assert (prices.vcpu_hour, prices.gib_hour, prices.cluster_fee_hour) == (1.0, 2.0, 3.0)
    assert prices.per_million_tokens["input_audio"] == 4.0
    listed = cost.prices_for("us-central1", "gemini-live-2.5-flash-native-audio")
    assert listed.per_million_tokens["output_audio"] == prices.per_million_tokens["output_audio"]
    assert math.isclose(cost.pod_cost_per_hour(2000, 4096, prices), 2 * 1.0 + 4 * 2.0)


def test_a_price_override_in_the_stack_config_is_checked_with_the_other_settings():
    found = problems_of(priceOverrides='{"autopilot.vcpu_hour": -1}', natMinPortsPerVm="1")
    assert [p.split(" = ")[0] for p in found] == [f"{P}natMinPortsPerVm", f"{P}priceOverrides.autopilot.vcpu_hour"]


# --------------------------------------------------------------------------------------------
# Cross-setting checks of single settings in the loader itself.

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(("repository", "digest", "refused"), [
    ("", "", False), ("", DIGEST, False),
    ("ghcr.io/acme/agent", DIGEST, False),
    ("ghcr.io/acme/agent", "", True),          # another registry by tag: tags there move
])
def test_another_registry_only_by_digest(repository, digest, refused):
    found = problems_of(agentImageRepository=repository, agentImageDigest=digest)
    assert any("deploys by tag (agentImageTag) from a registry outside the stack" in p for p in found) is refused, found


@pytest.mark.parametrize(("digest", "refused"), [(DIGEST, False), (DIGEST[:-1], True), (DIGEST.upper(), True),
                                                 (DIGEST + "0", True)])
def test_the_digest_is_exactly_64_lower_case_hex_digits(digest, refused):
    assert any(p.startswith(f"{P}agentImageDigest = ") for p in problems_of(agentImageDigest=digest)) is refused


# global serves no Gemini Live model (domain/data/gemini_live_locations.json)
@pytest.mark.parametrize(("location", "refused"), [("", False), ("global", True), ("europe-west4", False),
                                                   ("europe-west99", True), ("Global", True)])
def test_the_fallback_location_is_a_vertex_location(location, refused):
    found = problems_of(geminiFallbackLocation=location)
    assert any(p.startswith(f"{P}geminiFallbackLocation = ") for p in found) is refused, found


def test_a_bad_database_value_is_reported_alone():
    """The cross-setting database rules run only when every single database value is valid,
    so one bad value gives one message, not a cascade."""
    found = problems_of("prod", databaseDiskSizeGb="9", databaseTier="db-f1-micro", databaseProduction="true")
    assert [p.split(" = ")[0] for p in found] == [f"{P}databaseDiskSizeGb"]
    found = problems_of("prod", databaseTier="db-f1-micro", databaseProduction="true")
    assert [p.split(" = ")[0] for p in found] == [f"{P}databaseTier"]


def test_a_plain_text_secret_is_refused_without_showing_it():
    raw = {**load_stack_values("dev").config, **SECRETS}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", raw, (P + "livekitApiKey",))
    assert [str(p) for p in caught.value.problems] == [
        f"{P}livekitApiSecret = (secret, not shown): is stored in plain text, so the stack file (and git) hold it "
        "unencrypted; run `pulumi config set --secret livekitApiSecret <value>`, which replaces the plain entry"]


@pytest.mark.parametrize(("minutes", "turns"), [(0.05, 1), (1 / 12, 1), (0.24, 1), (0.25, 2)])
def test_a_call_shorter_than_one_turn_still_reads_the_instructions_once(minutes, turns):
    """Six turns a minute: a call of up to 1/12 min rounds to no turn (round half to even), but
    the model still read the persona's instructions once when it answered; 0.25 min is 1.5
    turns, which rounds to 2."""
    mix = cost.SpeechMix(call_minutes=minutes)
    assert cost.mix_tokens(mix)["input_text"] == turns * mix.instruction_tokens


def test_the_context_stops_growing_at_its_cap():
    """Two minutes, 12 turns 10 s apart, each adding 10 s x 25 tokens/s x 1.4 = 350 tokens of
    audio: capped at 1000, the turns read 350, 700, then 1000 ten times."""
    capped = cost.SpeechMix(call_minutes=2, context_cap_tokens=1000)
    uncapped = cost.SpeechMix(call_minutes=2, context_cap_tokens=10**9)
    assert cost.mix_tokens(capped)["input_audio"] == pytest.approx(350 + 700 + 10 * 1000)
    assert cost.mix_tokens(uncapped)["input_audio"] == pytest.approx(350 * sum(range(1, 13)))


# --------------------------------------------------------------------------------------------
# k8s/capacity.py: the memory cap is tight, the CPU cap exact at the threshold.


@pytest.mark.parametrize("name", ["S", "M", "L"])
def test_the_memory_cap_is_the_last_call_that_fits(name):
    """memory_calls_per_pod calls fit the limit with one job at its kill size; one more does not."""
    from domain import capacity
    from domain.sizes import SIZES

    resources = SIZES[name].resources(False)
    calls = capacity.memory_calls_per_pod(resources)
    assert capacity.memory_needed_mi(calls) <= resources.memory_limit_mi < capacity.memory_needed_mi(calls + 1)
    assert capacity.memory_needed_mi(calls) == (capacity.WORKER_BASE_MEMORY_MI + calls * capacity.MEMORY_PER_SESSION_MI
                                                + capacity.JOB_MEMORY_LIMIT_MI)


@pytest.mark.parametrize("name", ["S", "M", "L"])
@pytest.mark.parametrize("bursting", [False, True])
def test_the_cpu_cap_is_the_last_call_under_the_threshold(name, bursting):
    from domain import capacity
    from domain.sizes import SIZES

    resources = SIZES[name].resources(bursting)
    calls = capacity.cpu_calls_per_pod(resources, 0.7)
    admitted = 0.7 * resources.cpu_limit_m
    assert capacity.WORKER_BASE_CPU_M + calls * capacity.CPU_PER_SESSION_M <= admitted + 1e-6
    assert capacity.WORKER_BASE_CPU_M + (calls + 1) * capacity.CPU_PER_SESSION_M > admitted


def _sections(config) -> list:
    """Every settings dataclass instance in a parsed config, the config itself included."""
    import dataclasses

    found, todo = [], [config]
    while todo:
        item = todo.pop()
        found.append(item)
        todo.extend(v for f in dataclasses.fields(item) if dataclasses.is_dataclass(v := getattr(item, f.name)))
    return found


def test_a_validated_config_cannot_be_changed_afterwards():
    """The checks run once, on the values parsed; a section that could be assigned to later
    (a component, a rule) would carry a value no check saw. Every section refuses assignment."""
    import dataclasses

    sections = _sections(parse("prod"))
    assert {type(s).__name__ for s in sections} >= {"StackConfig", "ClusterSettings", "RegistrySettings",
                                                    "WorkloadSettings", "HpaSettings", "CallSettings",
                                                    "DispatchSettings", "ToolServerSettings", "NetworkSettings"}
    for section in sections:
        first = dataclasses.fields(section)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(section, first, getattr(section, first))


def test_a_declared_setting_has_its_default_in_one_place():
    """A setting's default is its declaration's (domain/declarations.py, merged from Pulumi.yaml);
    the typed field it lands in has none of its own, which the loader would never use and which
    could silently disagree."""
    import dataclasses

    from domain.declarations import SETTINGS

    config, second = parse("prod"), []
    for setting in (s for s in SETTINGS if s.to):
        *path, name = setting.to.split(".")
        owner = config
        for part in path:
            owner = getattr(owner, part)
        field = next(f for f in dataclasses.fields(owner) if f.name == name)
        if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
            second.append(f"{setting.name} -> {setting.to}")
    assert second == []
