"""Typed, validated stack configuration: the one place where raw Pulumi config becomes settings.

Every setting is read through its declaration (domain/declarations.py): kind, bounds, choices
and pattern decide the check and the message, and `to` where the typed value lands. Defaults
live in Pulumi.yaml, generated from the same declarations; the Pulumi CLI merges them into the
config the program sees, and `domain.stackfiles` does the same offline. So every declared key is
treated as present and a missing one is a problem, with no second default here.

What a declaration cannot say stays explicit code below, one function per rule that spans
several settings, run once the single values it needs are valid. Every problem of a stack is
collected and raised together as one `ConfigError`, before any resource is declared; each
message names the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from dataclasses import fields, replace
from typing import Any, Callable, Mapping, Sequence

import pulumi

from domain.cost import parse_overrides, prices_for  # the price keys live with the cost model
from domain.database_rules import database_problems, overlap_problems
from domain.declarations import SETTINGS, rfc3339, rfc3339_rule
from domain.maintenance import hours, least_availability
from domain.settings import (
    EXCLUSION_SCOPES, MAINTENANCE_AVAILABILITY_PERIOD, MAX_NO_UPGRADES_EXCLUSION, MIN_MAINTENANCE_AVAILABILITY,
    MIN_MAINTENANCE_WINDOW, PROJECT, CallSettings, ClusterSettings, ConfigError, DatabaseSettings, DispatchSettings,
    HpaSettings, MaintenanceExclusion, NetworkSettings, Problem, RegistrySettings, Setting, StackConfig,
    ToolServerSettings, WorkloadSettings, setting_key,
)
from domain.stackfiles import gcp_provider_keys
from domain.stages import check_livekit_sharing, project_directory
from domain.vertex_locations import fallback_problems, location_problems, vertex_default
from domain.capacity import workload_problems
from domain.sizes import SIZES

_key = setting_key
# Long lists are not printed whole: a suggestion and where to find them all says more.
_LONGEST_LISTED = 8
_STABLE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_NOT_SET = "is not set; set it in Pulumi.<stack>.yaml or declare a default in Pulumi.yaml"


def one_of(value: str, choices: Sequence[str], what: str = "") -> str:
    """The rule for a value outside a fixed set, with the nearest allowed value when one is close.

    `what` names a long set and where it is listed ("GKE Autopilot region, domain/data/regions.json")."""
    # Best match first (difflib's order), so only [0] is read and no `n` is passed.
    near = difflib.get_close_matches(value, choices, cutoff=0.8)
    hint = f"; did you mean {near[0]}?" if near else ""
    if len(choices) <= _LONGEST_LISTED:
        return f"must be one of {', '.join(choices)}{hint}"
    kind, _, listed_in = what.partition(", ")
    return f"is not a known {kind or 'value'}{hint} ({len(choices)} allowed, listed in {listed_in or 'the code'})"


# ---------------------------------------------------------------------------------------------
# One value, read by its declaration. Raw values are strings, as the Pulumi engine hands them to
# the program (objects arrive as JSON text). Returns (typed value, None) or (None, problem).


def read(s: Setting, raw: str, choices: Sequence[str] | None = None) -> tuple[Any, Problem | None]:
    def fail(shown: Any, rule: str) -> tuple[None, Problem]:
        return None, Problem(s.key, shown, rule)

    if s.kind == "integer":
        because = f" ({s.why})" if s.why else ""
        span = f"{int(s.low)} to {int(s.high)}{s.unit}{because}"
        try:
            number = int(str(raw), 10)
        except ValueError:
            return fail(raw, f"must be a whole number from {span}")
        return (number, None) if s.low <= number <= s.high else fail(number, f"must be from {span}")
    if s.kind == "number":
        span = f"{'(' if s.low_open else '['}{s.low}, {s.high}]"
        try:
            number = float(raw)
        except ValueError:
            return fail(raw, f"must be a number in {span}")
        too_low = number <= s.low if s.low_open else number < s.low
        # NaN compares false with everything, so it would slip through both bounds.
        if too_low or number > s.high or number != number:
            return fail(number, f"must be in {span}")
        return number, None
    if s.kind == "boolean":
        lowered = str(raw).strip().lower()
        return (lowered == "true", None) if lowered in ("true", "false") else fail(raw, "must be true or false")
    if s.kind == "cidr":
        try:
            network = ipaddress.IPv4Network(raw, strict=True)
        except ValueError as err:
            return fail(raw, f"must be an IPv4 CIDR block such as 10.10.0.0/20 ({err})")
        if not s.low <= network.prefixlen <= s.high:
            because = f" ({s.why})" if s.why else ""
            return fail(raw, f"prefix length must be from /{s.low} to /{s.high}{because}")
        if not network.is_private:
            return fail(raw, "must be a private (RFC 1918) range")
        return str(network), None
    if s.kind == "map":
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            parsed = None
        return (parsed, None) if isinstance(parsed, dict) else fail(raw, "must be a map of name: value")
    if s.empty_ok and raw == "":
        return raw, None
    choices = choices or s.choices
    if choices and raw not in choices:
        return fail(raw, one_of(raw, choices, s.what))
    if s.pattern is not None and not (s.empty_ok and raw == "") and not s.pattern.match(raw):
        return fail(raw, f"must be {s.allowed}")
    rule = s.check(raw) if s.check else None
    return (raw, None) if rule is None else fail(raw, rule)


def read_all(raw: Mapping[str, str], choices: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], list[Problem]]:
    """Every declared setting but the secrets: name -> typed value (None when missing or
    invalid), and the problems, in declaration order. Maps are optional (Pulumi.yaml cannot
    declare their default); everything else is present once Pulumi.yaml's default is merged."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for s in SETTINGS:
        if s.secret:
            continue
        value = raw.get(s.key)
        if value is None:
            values[s.name] = {} if s.kind == "map" else None
            if s.kind != "map":
                problems.append(Problem(s.key, None, _NOT_SET))
            continue
        values[s.name], problem = read(s, value, choices.get(s.name))
        if problem:
            problems.append(problem)
    return values, problems


# ---------------------------------------------------------------------------------------------
# Rules over several settings, or over the parts of a map, each with the values it needs.
# `v` holds the typed values (None: already reported); each returns the problems it finds.


def _ranges_disjoint(v: Mapping[str, Any]) -> list[Problem]:
    named = [(_key(n), ipaddress.IPv4Network(v[n])) for n in ("nodeCidr", "podCidr", "serviceCidr") if v[n]]
    return [Problem(key_b, str(net_b), f"overlaps {key_a} = {net_a}; the node, pod and service ranges must be disjoint")
            for i, (key_a, net_a) in enumerate(named) for key_b, net_b in named[i + 1:] if net_a.overlaps(net_b)]


def _window(start_key: str, start: str, end_key: str, end: str, minimum=None) -> list[Problem]:
    begin, finish = rfc3339(start), rfc3339(end)
    if begin is None or finish is None:
        return []
    if finish <= begin:
        return [Problem(end_key, end, f"must be after {start_key} = {start}")]
    if minimum is not None and finish - begin < minimum:
        return [Problem(end_key, end, f"the window from {start} must last at least {minimum} (GKE minimum)")]
    return []


def _exclusions(v: dict[str, Any]) -> list[Problem]:
    """maintenanceExclusions item by item; v's value becomes {name: MaintenanceExclusion}."""
    key, problems, result = _key("maintenanceExclusions"), [], {}
    for name, item in sorted((v["maintenanceExclusions"] or {}).items()):
        item_key = f"{key}.{name}"
        if not _STABLE_NAME.match(name):
            problems.append(Problem(item_key, name, "exclusion names must be lower-case letters, digits and dashes, "
                                                    "starting with a letter"))
        if not isinstance(item, dict) or set(item) - {"start", "end", "scope"} or not {"start", "end"} <= set(item):
            problems.append(Problem(item_key, item, "must be a map with start, end (RFC 3339) and optional scope"))
            continue
        scope = item.get("scope", "NO_UPGRADES")
        if scope not in EXCLUSION_SCOPES:
            problems.append(Problem(f"{item_key}.scope", scope, f"must be one of {', '.join(EXCLUSION_SCOPES)}"))
        times = [Problem(f"{item_key}.{edge}", item[edge], rule) for edge in ("start", "end")
                 if (rule := rfc3339_rule(item[edge]))]
        problems += times or _window(f"{item_key}.start", item["start"], f"{item_key}.end", item["end"])
        begin, finish = rfc3339(item["start"]), rfc3339(item["end"])
        if scope == "NO_UPGRADES" and begin and finish and finish - begin > MAX_NO_UPGRADES_EXCLUSION:
            problems.append(Problem(f"{item_key}.end", item["end"], "a NO_UPGRADES exclusion may last at most 30 days"))
        result[name] = MaintenanceExclusion(start=item["start"], end=item["end"], scope=scope)
    v["maintenanceExclusions"] = result
    return problems


def _availability(v: Mapping[str, Any]) -> list[Problem]:
    """GKE's 48 hours in every 32 days (domain/maintenance.py), checked once every single
    maintenance value is valid. The window alone falling short is the window's fault; otherwise
    the NO_UPGRADES exclusion that overlaps the worst period is named."""
    start, end, recurrence = v["maintenanceStartTime"], v["maintenanceEndTime"], v["maintenanceRecurrence"]
    exclusions = v["maintenanceExclusions"]
    blocked = {name: (rfc3339(ex.start), rfc3339(ex.end)) for name, ex in exclusions.items() if ex.scope == "NO_UPGRADES"}
    alone = least_availability(rfc3339(start), rfc3339(end), recurrence)
    need = f"GKE requires at least {hours(MIN_MAINTENANCE_AVAILABILITY)} of maintenance availability in every 32 days"
    if not alone.enough:
        return [Problem(_key("maintenanceRecurrence"), recurrence,
                        f"the window {start} to {end} repeated {recurrence} leaves only {hours(alone.least)} in the "
                        f"32 days from {alone.period_start:%Y-%m-%d}; {need}: lengthen the window or add days")]
    worst = least_availability(rfc3339(start), rfc3339(end), recurrence, sorted(blocked.values()))
    if worst.enough:
        return []
    period_end = worst.period_start + MAINTENANCE_AVAILABILITY_PERIOD
    culprits = [n for n, (s, e) in sorted(blocked.items()) if s < period_end and e > worst.period_start]
    return [Problem(f"{_key('maintenanceExclusions')}.{name}", exclusions[name].end,
                    f"with this NO_UPGRADES exclusion the 32 days from {worst.period_start:%Y-%m-%d} keep only "
                    f"{hours(worst.least)} of maintenance; {need}: shorten it, or use scope NO_MINOR_OR_NODE_UPGRADES "
                    "(no node upgrades, so no drained calls; control-plane patches still allowed)")
            for name in culprits]


def _maintenance(v: dict[str, Any], before: Sequence[Problem]) -> list[Problem]:
    problems = _window(_key("maintenanceStartTime"), v["maintenanceStartTime"] or "",
                       _key("maintenanceEndTime"), v["maintenanceEndTime"] or "", MIN_MAINTENANCE_WINDOW)
    problems += _exclusions(v)
    if not any(p.key.startswith(_key("maintenance")) for p in [*before, *problems]):
        problems += _availability(v)
    return problems


def _authorized_networks(v: dict[str, Any]) -> list[Problem]:
    key, problems, result = _key("controlPlaneAuthorizedNetworks"), [], {}
    for name, cidr in sorted((v["controlPlaneAuthorizedNetworks"] or {}).items()):
        item_key = f"{key}.{name}"
        try:
            network = ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            problems.append(Problem(item_key, cidr, "must be a CIDR block such as 203.0.113.0/24"))
            continue
        if network.prefixlen == 0:
            problems.append(Problem(item_key, cidr, "opens the control plane to the whole internet; use the DNS "
                                                    "endpoint or a narrow range"))
            continue
        result[name] = str(network)
    v["controlPlaneAuthorizedNetworks"] = result
    return problems


def _attestor_needs_policy(v: Mapping[str, Any]) -> list[Problem]:
    if v["binaryAuthorizationAttestor"] and v["binaryAuthorization"] is False:
        return [Problem(_key("binaryAuthorizationAttestor"), v["binaryAuthorizationAttestor"],
                        "requires binaryAuthorization true: without the policy nothing checks the attestation")]
    return []


def stage_names(value: str) -> tuple[str, ...]:
    """livekitSharedWithStages as the stack names it lists (domain/stages.py compares them)."""
    return tuple(n.strip() for n in value.split(",") if n.strip())


def _replicas_ordered(v: Mapping[str, Any]) -> list[Problem]:
    low, high = v["hpaMinReplicas"], v["hpaMaxReplicas"]
    if low is None or high is None or low <= high:
        return []
    return [Problem(_key("hpaMinReplicas"), low, f"must not exceed {_key('hpaMaxReplicas')} = {high}")]


def _image_source(v: Mapping[str, Any]) -> list[Problem]:
    """Another registry only by digest: a tag there can be moved to another build. Deployed by
    tag, the tag labels every pod (app.kubernetes.io/version) and every metric: a label value
    has at most 63 characters and starts and ends with a letter or digit."""
    repository, digest, tag = v["agentImageRepository"], v["agentImageDigest"], v["agentImageTag"]
    problems = []
    if repository and digest == "":
        problems.append(Problem(_key("agentImageRepository"), repository,
                                "deploys by tag (agentImageTag) from a registry outside the stack, where tags are mutable: "
                                "set agentImageDigest to the build's sha256:... digest, or leave agentImageRepository empty"))
    if digest == "" and tag and (len(tag) > 63 or not (tag[0].isalnum() and tag[-1].isalnum())):
        problems.append(Problem(_key("agentImageTag"), tag,
                                "labels every pod and metric as the release, so it must be at most 63 characters and "
                                "start and end with a letter or digit; use a shorter tag or deploy by agentImageDigest"))
    return problems


def _vertex_location(v: dict[str, Any]) -> list[Problem]:
    """An empty vertexLocation follows the stack's geography (domain/vertex_locations.py); the
    fallback location, when set, must be served too."""
    chosen, region = v["vertexLocation"], v["gcp:region"]
    if chosen is None or region is None:  # already reported
        return []
    if chosen == "":
        v["vertexLocation"] = vertex_default(region)
    return [*location_problems(v["vertexLocation"], region, explicit=chosen != ""),
            *fallback_problems(v["geminiFallbackLocation"] or "", region)]


def _database(v: Mapping[str, Any], single: Sequence[Problem]) -> list[Problem]:
    """The checkpoint database (domain/database_rules.py holds its rules). Checked on every stack,
    so turning recoveryEnabled on never reveals an old mistake; only once its single values are
    valid, or the rules would repeat them."""
    if any(p.key.startswith(_key("database")) for p in single):
        return []
    db = _build(DatabaseSettings, v, "database")
    taken = {_key(n): v[n] or "" for n in ("nodeCidr", "podCidr", "serviceCidr")}
    return [*database_problems(db), *overlap_problems(db, taken)]


def _price_overrides(v: dict[str, Any]) -> list[Problem]:
    try:
        v["priceOverrides"] = parse_overrides(v["priceOverrides"] or "", _key("priceOverrides"))
    except ConfigError as exc:
        v["priceOverrides"] = {}
        return list(exc.problems)
    return []


# ---------------------------------------------------------------------------------------------
# Keys: every key in our namespace and in the gcp provider's must be one somebody reads.

GCP_KEYS_READ = tuple(s.key for s in SETTINGS if s.key.startswith("gcp:"))
# Settings that existed once and were removed on purpose: the reason beats a bare "unknown".
RETIRED_KEYS = {
    "spotPods": "Spot Pods get 25 s to stop whatever the grace period says, which cuts live calls; "
                "agents never run on Spot, so the setting is gone: delete the line",
    "preStopSeconds": "the worker drains on SIGTERM, and a preStop sleep only keeps it taking new calls while "
                      "the grace period runs down (DESIGN 3.2); the setting is gone: delete the line",
}


def _unknown_key_problems(raw: Mapping[str, str], secret_keys: set[str], declared: Sequence[str]) -> list[Problem]:
    ours = {*declared, *(s.key for s in SETTINGS if s.kind == "map")}
    gcp = {*GCP_KEYS_READ, *gcp_provider_keys()}
    problems = []
    for key in sorted(raw):
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and key not in ours:
            rule = (f"is no longer a setting: {RETIRED_KEYS[name]}" if name in RETIRED_KEYS
                    else "is not a setting of this project (Pulumi.yaml lists them all)" + _did_you_mean(key, ours))
        elif namespace == "gcp" and key not in gcp:
            rule = ("is not a setting of the gcp provider (pulumi-gcp) and nothing here reads it"
                    + _did_you_mean(key, gcp, prefer=GCP_KEYS_READ))
        else:
            continue
        problems.append(Problem(key, raw[key], rule, secret=key in secret_keys))
    return problems


def _did_you_mean(key: str, known: set[str], prefer: Sequence[str] = ()) -> str:
    # A typo of a key we read beats a near miss among the provider's two hundred settings.
    near = difflib.get_close_matches(key, list(prefer), cutoff=0.75) or difflib.get_close_matches(key, sorted(known))
    return f"; did you mean {near[0]}?" if near else ""


def _secret_problems(raw: Mapping[str, str], secret_keys: set[str]) -> list[Problem]:
    """A secret must be one (encrypted in the stack file) and must hold something."""
    problems = []
    for s in (s for s in SETTINGS if s.secret):
        key, value = s.key, raw.get(s.key)
        fix = f"run `pulumi config set --secret {s.name} <value>`"
        if value is None:
            problems.append(Problem(key, None, f"is not set; {fix}", secret=True))
        elif key not in secret_keys:
            problems.append(Problem(key, value, f"is stored in plain text, so the stack file (and git) hold it unencrypted; "
                                                f"{fix}, which replaces the plain entry", secret=True))
        elif not value.strip():
            problems.append(Problem(key, value, f"is empty: workers could never register with LiveKit; {fix}", secret=True))
    return problems


# ---------------------------------------------------------------------------------------------
# From typed values to the settings tree: each declaration's `to` names its field.

_SECTIONS = {"network": NetworkSettings, "cluster": ClusterSettings, "registry": RegistrySettings,
             "workload": WorkloadSettings, "workload.hpa": HpaSettings, "workload.call": CallSettings,
             "workload.dispatch": DispatchSettings, "tool_server": ToolServerSettings, "database": DatabaseSettings}
_LANDS = {s.to: s.name for s in SETTINGS if s.to}


def _build(cls: type, v: Mapping[str, Any], prefix: str = "", **extra: Any) -> Any:
    args = dict(extra)
    for f in fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in extra:
            continue
        if path in _LANDS:
            args[f.name] = v[_LANDS[path]]
        elif path in _SECTIONS:
            args[f.name] = _build(_SECTIONS[path], v, path)
    return cls(**args)


# ---------------------------------------------------------------------------------------------
# Entry points.


def parse_stack_config(
    stack: str,
    raw: Mapping[str, str],
    secret_keys: Sequence[str] = (),
    *,
    declared: Sequence[str] | None = None,
    size_names: Sequence[str] | None = None,
    workload_rules: Callable[[WorkloadSettings], list[Problem]] | None = None,
) -> StackConfig:
    """Builds the typed config from every config value the engine holds for the stack (ours, the
    gcp provider's, secrets included as text) or raises one ConfigError with every problem.

    `secret_keys` are the keys the engine marks secret; `declared` the keys Pulumi.yaml declares
    (the declarations' when not given)."""
    workload_rules = workload_rules or workload_problems
    # Pulumi.yaml's keys are the declarations' own (generated from them, tests/infra/test_declarations.py)
    declared = tuple(s.key for s in SETTINGS if s.ours) if declared is None else tuple(declared)
    secret = set(secret_keys)
    problems = _unknown_key_problems(raw, secret, declared) + _secret_problems(raw, secret)
    v, single = read_all(raw, {"agentSize": tuple(size_names or SIZES)})
    problems += single
    problems += _ranges_disjoint(v)
    problems += _maintenance(v, problems)
    problems += _authorized_networks(v)
    problems += _replicas_ordered(v)
    problems += _image_source(v)
    problems += _vertex_location(v)
    problems += _database(v, single)
    problems += _price_overrides(v)
    problems += _attestor_needs_policy(v)
    v["livekitSharedWithStages"] = stage_names(v["livekitSharedWithStages"] or "")
    if problems:
        raise ConfigError(problems)
    workload = _build(WorkloadSettings, v, "workload")
    # Cross-setting rules (drain vs calls, HPA vs load threshold, Autopilot sizing) need every
    # single value valid first, or they would report noise.
    problems = workload_rules(workload)
    if problems:
        raise ConfigError(problems)
    workload = _with_model_prices(workload, v["gcp:region"], v["priceOverrides"])
    return _build(StackConfig, v, stack=stack, workload=workload,
                  livekit_api_key=pulumi.Output.secret(raw[_key("livekitApiKey")]),
                  livekit_api_secret=pulumi.Output.secret(raw[_key("livekitApiSecret")]))


def _with_model_prices(w: WorkloadSettings, region: str, overrides: Mapping[str, float]) -> WorkloadSettings:
    """The Gemini prices the agent estimates each call's cost with: the plan's own (one home,
    domain/data/prices.json, with the stack's priceOverrides on top)."""
    return replace(w, model_prices=dict(prices_for(region, w.gemini_model, overrides).per_million_tokens))


def engine_config() -> tuple[dict[str, str], set[str]]:
    """Every config value the engine gave this program run, and which keys are secret.

    The SDK keeps them in two places: what `set_all_config` stored (mocks, the automation API,
    recent language hosts) and the PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS environment the
    CLI's language host sets. `pulumi.Config` reads both; so does this."""
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env()) | {k for k in values if runtime_config.is_config_secret(k)}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}, secret


def load_stack_config() -> StackConfig:
    """Reads and validates the running stack's config (under the CLI or the mocks), and checks it
    against the sibling stack files (domain/stages.py: no unacknowledged shared LiveKit project)."""
    raw, secret = engine_config()
    cfg = parse_stack_config(pulumi.get_stack(), raw, sorted(secret))
    check_livekit_sharing(cfg.stack, cfg.workload.livekit_url, cfg.workload.livekit_shared_with, project_directory())
    return cfg
