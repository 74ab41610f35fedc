"""Offline plan: evaluate a stack under Pulumi mocks, with its real config, and report.

    python -m tooling.plan --stack dev --out out/dev

Writes resources.json, manifests/*.yaml and violations.json. Exit 0: the stack is valid;
1: a mandatory policy failed; 2: the configuration is invalid (one line per problem).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import runpy
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import pulumi
import pulumi.resource as pulumi_resource
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from domain.settings import PROJECT, ConfigError
from tooling.mocks import ParentTrackingMonitor, RecordingMocks
from domain.capacity import capacity_summary
from domain.config import parse_stack_config
from domain.cost import (
    cost_lines, cost_summary, fixed_cost_lines, fixed_monthly_costs, places_search_lines, prices_for,
)
from tooling.preconditions import kept_after_destroy
from domain.stackfiles import ROOT, StackFileError, StackValues, example_values, load_stack_values

EXIT_OK, EXIT_POLICY, EXIT_CONFIG = 0, 1, 2


@dataclass
class PlanResult:
    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]
    invokes: list[str] = field(default_factory=list)
    capacity: dict[str, Any] = field(default_factory=dict)  # domain.capacity.capacity_summary, for people

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == typ]

    def named(self, name: str) -> dict[str, Any]:
        found = [r for r in self.resources if r["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name}, found {len(found)}")
        return found[0]

    def one(self, typ: str) -> dict[str, Any]:
        found = self.of_type(typ)
        if len(found) != 1:
            raise AssertionError(f"expected one {typ}, found {len(found)}")
        return found[0]


@dataclass
class ProgramRun:
    """A live evaluation: the mocks' records, the program's globals (its component objects) and
    its exports as Outputs. Tests use it to run `apply` assertions on real component outputs."""

    mocks: RecordingMocks
    namespace: dict[str, Any]
    exports: dict[str, pulumi.Output[Any]]


def run_program(stack: str, overrides: Mapping[str, str] | None = None, root: Path = ROOT,
                stack_dir: Path | None = None) -> ProgramRun:
    """Runs __main__.py in this process under fresh mocks and waits for every registration.

    Mocks, config and settings are process-global, so each call replaces all three; calls in
    one process are independent. Raises ConfigError or StackFileError before any resource
    exists when the stack's config is invalid.
    """
    values = load_stack_values(stack, root, stack_dir)
    config = {**values.config, **(overrides or {})}
    mocks = RecordingMocks()
    # preview=False: every Output is known, so every apply in the program (and in tests) runs.
    pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=False)
    set_all_config(config, list(values.secret_keys))
    set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=ParentTrackingMonitor(mocks))
    exports: dict[str, pulumi.Output[Any]] = {}
    real_export = pulumi.export
    pulumi.export = lambda key, value: exports.__setitem__(key, pulumi.Output.from_input(value))
    try:
        with _construction_order(mocks):
            namespace = runpy.run_path(str(root / "__main__.py"), run_name="__main__")
            _sync_await(wait_for_rpcs())
    finally:
        pulumi.export = real_export
    return ProgramRun(mocks, namespace, exports)


@contextmanager
def _construction_order(mocks: RecordingMocks) -> Iterator[None]:
    """Tells the mocks the order in which the program constructs resources.

    The SDK's Resource constructor calls `register_resource` synchronously, in program order,
    and only then schedules the asynchronous registration the mocks see. Wrapping that one
    call is the only place the order is still deterministic."""
    original = pulumi_resource.register_resource

    def noting(res, ty, name, *args, **kwargs):
        mocks.note_constructed(ty, name)
        return original(res, ty, name, *args, **kwargs)

    pulumi_resource.register_resource = noting
    try:
        yield
    finally:
        pulumi_resource.register_resource = original


def evaluate(stack: str, overrides: Mapping[str, str] | None = None, root: Path = ROOT,
             stack_dir: Path | None = None) -> PlanResult:
    """The stack's plan as plain data. Raises ConfigError/StackFileError on an invalid stack."""
    run = run_program(stack, overrides, root, stack_dir)
    outputs = {k: _sync_await(v.future()) for k, v in run.exports.items()}
    cfg = run.namespace.get("cfg")
    capacity = {"size": cfg.workload.size, **capacity_summary(cfg.workload)} if cfg is not None else {}
    return PlanResult(stack, [r.as_dict() for r in run.mocks.in_program_order()], outputs, run.mocks.invokes, capacity)


def render_tree(resources: list[dict[str, Any]]) -> str:
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in resources:
        children.setdefault(r["parent"], []).append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            lines.append(f"{'  ' * depth}{r['type']}  {r['name']}")
            walk(r["name"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as people write them (the LiveKit files' class
    carries its secrets list as YAML text); everything else as safe_dump writes it."""


def _literal_if_multiline(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ManifestDumper.add_representer(str, _literal_if_multiline)


def write_manifests(resources: list[dict[str, Any]], out: Path) -> list[Path]:
    from k8s.manifests import manifest_from_inputs

    directory = out / "manifests"
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    written = []
    for r in resources:
        manifest = manifest_from_inputs(r["type"], r["inputs"])
        if manifest is None:
            continue
        path = directory / f"{len(written):02d}-{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        path.write_text(yaml.dump(_json_safe(manifest), Dumper=_ManifestDumper, sort_keys=False))
        written.append(path)
    return written


def run(stack: str, out: Path, root: Path = ROOT, stack_dir: Path | None = None,
        policy_config_file: Path | None = None) -> int:
    from policy.engine import evaluate_plan, load_policy_config

    try:
        result = evaluate(stack, root=root, stack_dir=stack_dir)
        policy_config = (load_policy_config(policy_config_file.stem, policy_config_file.parent)
                         if policy_config_file else load_policy_config(stack))
    except (ConfigError, StackFileError) as err:
        print(f"stack {stack}: {err}", file=sys.stderr)
        return EXIT_CONFIG

    out.mkdir(parents=True, exist_ok=True)
    (out / "resources.json").write_text(json.dumps(_json_safe(result.resources), indent=2))
    manifests = write_manifests(result.resources, out)
    violations = evaluate_plan(result.resources, stack, policy_config)
    (out / "violations.json").write_text(json.dumps(violations, indent=2))
    print(render_tree(result.resources))
    for v in violations:
        print(f"[{v['severity']}] {v['rule']} {v['resource']}: {v['message']}")
    print(report(result, load_stack_values(stack, root, stack_dir)))
    mandatory = [v for v in violations if v["severity"] == "mandatory"]
    print(f"stack {stack}: {len(result.resources)} resources, {len(manifests)} manifests, "
          f"{len(violations)} policy violations ({len(mandatory)} mandatory) -> {out}")
    return EXIT_POLICY if mandatory else EXIT_OK


PLACES_FIELDS = ROOT / "tools" / "places" / "places_mcp" / "fields.py"


def places_tiers() -> tuple[str, str]:
    """(the billed tier of the Places tool server's searches, the tier without its priciest field),
    from the server's own field list (fields.py imports only the standard library)."""
    spec = importlib.util.spec_from_file_location("places_fields", PLACES_FIELDS)
    fields = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fields)
    tier = fields.billed_tier(fields.SEARCH_FIELDS)
    cheaper = {k: v for k, v in fields.SEARCH_FIELDS.items() if v != tier}
    return tier, fields.billed_tier(cheaper) if cheaper else tier


# Outputs too long or too secret to print; the plan names them instead.
_UNPRINTED_OUTPUTS = {"kubeconfig": "kubeconfig for the DNS endpoint (gke-gcloud-auth-plugin)"}


def plan_cost_lines(values: StackValues, resources: list[dict[str, Any]] | None = None) -> list[str]:
    """The cost lines for a stack's config (already validated by the plan run), and the fixed
    monthly cost of the plan's billed resources."""
    cfg = parse_stack_config(values.stack, values.config, values.secret_keys)
    prices = prices_for(cfg.region, cfg.workload.gemini_model, cfg.price_overrides)
    lines = cost_lines(cost_summary(cfg.workload, prices))
    if cfg.tool_server.places_enabled:
        lines += places_search_lines(*places_tiers())
    if resources is not None:
        fixed = fixed_monthly_costs(resources, cfg.region, prices, cfg.workload.cpu_bursting,
                                    registry_images=cfg.registry.keep_recent)
        lines += ["", *fixed_cost_lines(fixed)]
    return lines


def report(result: PlanResult, values: StackValues) -> str:
    """What a person needs after the tree: outputs, capacity, what is made up, what to run next."""
    lines = ["", "outputs (mocked GCP ids; names and wiring are real):"]
    for key, value in result.outputs.items():
        lines.append(f"  {key}: {_UNPRINTED_OUTPUTS.get(key) or value}")
    if result.capacity:
        c = result.capacity
        lines += ["", f"capacity: {c['calls_per_pod']} calls per pod (size {c['size']}); "
                      f"{c['min_pods']}-{c['max_pods']} pods carry {c['calls_at_min_pods']}-{c['calls_at_max_pods']} "
                      f"concurrent calls; a spike waits at most {c['seconds_to_new_capacity']} s for new capacity; "
                      f"a draining pod gets {c['grace_seconds']} s"]
    lines += ["", *plan_cost_lines(values, result.resources)]
    kept = kept_after_destroy(result.resources)
    if kept:
        lines += ["", "`pulumi destroy` leaves or stops at (docs/infra.md \"Destroying a stack\"):"]
        lines += [f"  {k}" for k in kept]
    made_up = [f"{k} (secret placeholder: not set or encrypted)" for k in values.placeholders]
    made_up += [f"{k} = {values.config[k]} (the example's value)" for k in example_values(values)]
    if made_up:
        lines += ["", "placeholders in this plan; set real values before `pulumi up`:"]
        lines += [f"  {m}" for m in made_up]
    ci = ci_bootstrap_line(values.stack, str(values.config.get("gcp:project", "")))
    if ci:
        lines += ["", ci]
    lines += ["", *policy_config_lines(values.stack)]
    return "\n".join(lines)


BOOTSTRAP_FILE = ROOT / "bootstrap" / "Pulumi.ci.yaml"
BOOTSTRAP_ENVIRONMENTS = "gke-voice-agents-bootstrap:environments"


def ci_bootstrap_line(stack: str, project: str, bootstrap_file: Path = BOOTSTRAP_FILE) -> str | None:
    """Whether CI can deploy this stack as it stands: the bootstrap (bootstrap/Pulumi.ci.yaml,
    docs/ci.md) gives each stack's deployer rights in one project, so a stack whose gcp:project
    differs, or that the bootstrap does not name, would fail its first CI `up` for want of rights.
    Said by the plan, not refused: a stack need not be deployed by CI at all."""
    if not bootstrap_file.is_file():
        return None
    environments = ((yaml.safe_load(bootstrap_file.read_text()) or {}).get("config") or {}).get(BOOTSTRAP_ENVIRONMENTS) or {}
    name = bootstrap_file.relative_to(ROOT) if bootstrap_file.is_relative_to(ROOT) else bootstrap_file
    if stack not in environments:
        return (f"ci: {name} names no environment for stack {stack}, so CI does not deploy it; add one "
                "(docs/ci.md) or deploy it yourself")
    ci_project = (environments[stack] or {}).get("project")
    if ci_project != project:
        return (f"ci: {name} gives stack {stack} project {ci_project}, but its gcp:project is {project}: CI's "
                f"deployer for {stack} holds no role there; make the two agree and re-run the bootstrap (docs/ci.md)")
    return None


def policy_config_lines(stack: str) -> list[str]:
    """The next command, with the stack's policy config when it has one; without one, what the
    pack then assumes and the file to create (any stack name works)."""
    from policy.engine import POLICY_DIR
    from policy.rules import RULES

    name = f"policy/{stack}.json"
    command = f"next: pulumi preview --stack {stack} --policy-pack policy"
    if (POLICY_DIR / f"{stack}.json").exists():
        return [f"{command} --policy-pack-config {name}   (README: Going to `pulumi up`)"]
    strict = ", ".join(rule.id for rule in RULES if "protected" in rule.config)
    return [f"policy: no {name}, so every rule runs at its strict default: the stack counts as protected "
            f"({strict} hold) and no CPU bursting is assumed. Right for production; for a throwaway stack, "
            f"start from dev's: cp policy/dev.json {name} (docs/policy.md)",
            f"{command}   (README: Going to `pulumi up`)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", required=True, type=Path, help="directory for the plan's files")
    parser.add_argument("--stack-dir", type=Path, default=None,
                        help="directory holding Pulumi.<stack>.yaml (default: beside Pulumi.yaml), e.g. examples/minimal")
    parser.add_argument("--policy-config", type=Path, default=None,
                        help="the policy pack's config for this stack (default: policy/<stack>.json), e.g. examples/minimal/policy.json")
    args = parser.parse_args(argv)
    return run(args.stack, args.out, stack_dir=args.stack_dir, policy_config_file=args.policy_config)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The mock monitor leaves an asyncio loop in each worker thread; finalising them at
    # interpreter exit now and then prints a spurious "Exception ignored ... Invalid file
    # descriptor" traceback. Everything is written and flushed, so skip finalisation.
    os._exit(code)
