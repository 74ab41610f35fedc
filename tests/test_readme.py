"""README "Going to `pulumi up`" works when run in order on a fresh project.

The section's shell blocks are read in order and checked against what exists: every API the
stack needs is enabled (infra/apis.py), Application Default Credentials come before the first
`pulumi` command, every setting is declared in Pulumi.yaml, every stack output and targeted URN
is in the stack's offline plan, every preview and update runs the policy pack with its stack's
config, the registry is created (component and repository targeted together) before its URL is
read, and the image is pushed before the full update. Negative controls show each check bites.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from infra.apis import STACK_APIS
from infra.images import IMAGES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^( *)```bash\n(.*?)^\1```", re.S | re.M)
ASSIGN = re.compile(r'^(\w+)="\$\((.*)\)"$')
REGISTRY = "gke-voice-agents:infra:AgentRegistry"


def section(text: str) -> str:
    start = text.index("## Going to `pulumi up`")
    return text[start:text.index("\n## ", start + 1)]


def commands(markdown: str) -> list[str]:
    """Shell commands in order, continuations joined, comments dropped."""
    lines: list[str] = []
    for indent, body in BLOCK.findall(markdown):
        pending = ""
        for raw in textwrap.dedent(body).splitlines():
            line = raw.rstrip()
            if not line or line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            lines.append((pending + line.strip()).strip())
            pending = ""
    return lines


def urns(plan) -> set[str]:
    by_name = {r["name"]: r for r in plan.resources}

    def chain(r) -> list[str]:
        parent = by_name.get(r["parent"]) if r["parent"] else None
        return (chain(parent) if parent else []) + [r["type"]]

    return {f"urn:pulumi:{plan.stack}::gke-voice-agents::{'$'.join(chain(r))}::{r['name']}" for r in plan.resources}


@dataclass
class Facts:
    settings: set[str]
    outputs: dict[str, set[str]]  # stack -> output names
    urns: dict[str, set[str]]  # stack -> URNs


@dataclass
class Check:
    facts: Facts
    problems: list[str] = field(default_factory=list)
    adc: bool = False
    registry_created: set[str] = field(default_factory=set)
    registry_vars: dict[str, str] = field(default_factory=dict)  # shell variable -> stack
    pushed: set[tuple[str, str]] = field(default_factory=set)  # (stack, image name)
    enabled_apis: set[str] = field(default_factory=set)

    def fail(self, line: str, why: str) -> None:
        self.problems.append(f"{why}: `{line}`")

    def run(self, line: str) -> None:
        if match := ASSIGN.match(line):
            var, inner = match.groups()
            self.run(inner)
            if (m := re.search(r"pulumi stack output registryUrl --stack (\w+)", inner)) is not None:
                self.registry_vars[var] = m.group(1)
            return
        try:
            # Inside double quotes bash turns `\$` into `$`; shlex keeps the backslash.
            words = [w.replace("\\$", "$") for w in shlex.split(line.split(" > ")[0])]
        except ValueError as err:
            self.fail(line, f"cannot split ({err})")
            return
        if words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # KUBECONFIG=... kubectl
        if not words:
            return
        if words[:3] == ["gcloud", "auth", "application-default"]:
            self.adc = True
        elif words[:3] == ["gcloud", "services", "enable"]:
            self.enabled_apis |= {w for w in words[3:] if w.endswith(".googleapis.com")}
        elif words[0] == "pulumi":
            self._pulumi(line, words[1:])
        elif words[:2] == ["docker", "push"]:
            var = re.match(r"\$\{?(\w+)\}?/([\w.-]+):", words[2])
            stack = self.registry_vars.get(var.group(1)) if var else None
            if stack is None:
                self.fail(line, "pushes to something other than the registryUrl stack output")
            else:
                self.pushed.add((stack, var.group(2)))

    def _pulumi(self, line: str, args: list[str]) -> None:
        if args[:1] != ["login"] and not self.adc:
            self.fail(line, "runs before `gcloud auth application-default login`, so Pulumi has no Google credentials")
        stack = args[args.index("--stack") + 1] if "--stack" in args else None
        if args[:1] in (["up"], ["preview"]):
            self._update(line, args, stack)
        elif args[:2] == ["config", "set"]:
            key = next(a for a in args[2:] if not a.startswith("--") and a != stack)
            if key.removeprefix("gke-voice-agents:") not in self.facts.settings and not key.startswith("gcp:"):
                self.fail(line, f"Pulumi.yaml declares no setting {key}")
        elif args[:2] == ["stack", "output"]:
            name = args[2]
            if name not in self.facts.outputs.get(stack, set()):
                self.fail(line, f"stack {stack} has no output {name}")
            if name == "registryUrl" and stack not in self.registry_created:
                self.fail(line, "reads registryUrl before any update created the registry")

    def _update(self, line: str, args: list[str], stack: str | None) -> None:
        if "--policy-pack" not in args or "--policy-pack-config" not in args:
            self.fail(line, "every preview and update runs the policy pack with its stack's config")
            return
        config = args[args.index("--policy-pack-config") + 1]
        if config != f"policy/{stack}.json" or not (ROOT / config).is_file() or not (ROOT / args[args.index("--policy-pack") + 1]).is_dir():
            self.fail(line, f"policy config {config} is not the stack's existing policy/{stack}.json")
        targets = [args[i + 1] for i, a in enumerate(args) if a == "--target"]
        for urn in targets:
            if urn not in self.facts.urns.get(stack or "", set()):
                self.fail(line, f"the offline plan has no resource {urn}")
            # urn:pulumi:<stack>::<project>::<component type>$<type>::<name>: the component's own
            # URN must be targeted as well, or the engine may refuse to create the child.
            qualified = urn.split("::")[-2]
            if "$" in qualified and not any(t.split("::")[-2] == qualified.split("$")[0] for t in targets):
                self.fail(line, f"targets {urn} without its parent component")
        if any(f"{REGISTRY}::registry" in t for t in targets) and any("repository:Repository::registry-docker" in t for t in targets):
            self.registry_created.add(stack)
        missing = sorted(i.name for i in IMAGES.values() if (stack, i.name) not in self.pushed)
        if args[:1] == ["up"] and not targets and missing:
            self.fail(line, f"the full update runs before {', '.join(missing)} is pushed: its pods cannot start")


@pytest.fixture(scope="module")
def facts() -> Facts:
    from tests.conftest import _evaluated_once

    plans = {s: _evaluated_once(s) for s in ("dev", "prod")}
    return Facts(settings=set(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]),
                 outputs={s: set(p.outputs) for s, p in plans.items()}, urns={s: urns(p) for s, p in plans.items()})


def check(markdown: str, facts: Facts) -> Check:
    session = Check(facts)
    for line in commands(markdown):
        session.run(line)
    return session


def test_the_readme_runs_in_order_on_a_fresh_project(facts):
    session = check(section(README.read_text()), facts)
    assert session.problems == []
    assert session.registry_created == {"dev"} and session.pushed == {("dev", i.name) for i in IMAGES.values()}


def test_the_readme_enables_exactly_the_apis_the_stack_needs(facts):
    enabled = check(section(README.read_text()), facts).enabled_apis
    assert sorted(set(STACK_APIS) - enabled) == [], "missing from the README's gcloud services enable"
    assert sorted(enabled - set(STACK_APIS)) == [], "enabled but not in infra/apis.py"


def test_the_readme_states_the_default_compute_account_caveat_and_its_fix():
    text = section(README.read_text())
    assert "terraform-provider-google #20230" in text
    assert any(c.startswith("gcloud iam service-accounts enable ") and "-compute@developer.gserviceaccount.com" in c
               for c in commands(text))


def test_every_file_the_section_names_exists():
    text = section(README.read_text())
    named = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:ya?ml|json|py|sh|md))`", text))
    named |= set(re.findall(r"`(Pulumi\.\w+\.yaml)`", text))
    named |= set(re.findall(r"\]\(((?:[\w.-]+/)*[\w.-]+\.md)\)", text))
    missing = sorted(p for p in named if "<" not in p and not (ROOT / p).exists())
    assert named and not missing, missing


def test_the_ci_bootstrap_enables_every_api_the_stack_needs():
    from bootstrap.apis import STACK_APIS as BOOTSTRAP_APIS

    assert sorted(set(STACK_APIS) - set(BOOTSTRAP_APIS)) == []


ADC = "```bash\ngcloud auth application-default login\n```\n"
UP = "pulumi up --stack dev --policy-pack policy --policy-pack-config policy/dev.json"
REGISTRY_URNS = ('--target "urn:pulumi:dev::gke-voice-agents::gke-voice-agents:infra:AgentRegistry::registry" '
                 '--target "urn:pulumi:dev::gke-voice-agents::gke-voice-agents:infra:AgentRegistry'
                 '$gcp:artifactregistry/repository:Repository::registry-docker"')


@pytest.mark.parametrize(("markdown", "problem"), [
    # The section before issue 19: push to registryUrl with no update before, `up` without the pack.
    (ADC + "```bash\nregistry=\"$(pulumi stack output registryUrl --stack dev)\"\n```\n",
     "reads registryUrl before any update created the registry"),
    (ADC + "```bash\npulumi up --stack dev\n```\n", "every preview and update runs the policy pack"),
    ("```bash\npulumi preview --stack dev --policy-pack policy --policy-pack-config policy/dev.json\n```\n",
     "runs before `gcloud auth application-default login`"),
    (ADC + f"```bash\n{UP}\n```\n", "the full update runs before places-mcp, voice-agent is pushed"),
    # Only the agent pushed: the tool server's Deployment would wait for an image nobody pushed.
    (ADC + f"```bash\n{UP} {REGISTRY_URNS}\nregistry=\"$(pulumi stack output registryUrl --stack dev)\"\n"
     f"docker push \"$registry/voice-agent:1\"\n{UP}\n```\n", "the full update runs before places-mcp is pushed"),
    (ADC + "```bash\npulumi config set --stack dev agentSise L\n```\n", "Pulumi.yaml declares no setting agentSise"),
    (ADC + "```bash\npulumi stack output clusterEndpoint --stack dev\n```\n", "stack dev has no output clusterEndpoint"),
    (ADC + f"```bash\n{UP} --target \"urn:pulumi:dev::gke-voice-agents::gke-voice-agents:infra:AgentRegistry"
     "$gcp:artifactregistry/repository:Repository::registry-docker\"\n```\n", "without its parent component"),
    (ADC + "```bash\npulumi preview --stack prod --policy-pack policy --policy-pack-config policy/dev.json\n```\n",
     "is not the stack's existing policy/prod.json"),
    (ADC + "```bash\ndocker push registry.example.com/voice-agent:1\n```\n", "pushes to something other than the registryUrl"),
])
def test_the_check_catches_what_would_fail(facts, markdown, problem):
    found = check(markdown, facts).problems
    assert any(problem in p for p in found), found


def test_a_missing_api_is_seen(facts):
    enabled = check(ADC + "```bash\ngcloud services enable container.googleapis.com\n```\n", facts).enabled_apis
    assert "containerscanning.googleapis.com" in set(STACK_APIS) - enabled


def test_the_registry_first_then_push_then_up_order_passes(facts):
    markdown = ADC + (f"```bash\n{UP} {REGISTRY_URNS}\n"
                      "registry=\"$(pulumi stack output registryUrl --stack dev)\"\n"
                      "docker push \"$registry/voice-agent:1\"\n"
                      "docker push \"$registry/places-mcp:1\"\n"
                      f"{UP}\n```\n")
    assert check(markdown, facts).problems == []
