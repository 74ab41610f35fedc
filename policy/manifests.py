"""Run the policy rules over plain Kubernetes YAML (rendered or hand-written manifests).

    python -m policy.manifests [--bursting] FILE...

Exit 0 when no mandatory rule fails, 1 otherwise. The same rule functions as the pack: a
manifest is the wire form of the Pulumi resource, typed `kubernetes:<group/version>:<Kind>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from policy.engine import violations
from policy.rules import MANDATORY, RULES, Resource


def resource_type(manifest: dict) -> str:
    api_version = manifest["apiVersion"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{manifest['kind']}"


def load_manifests(paths: list[Path]) -> list[Resource]:
    resources = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                resources.append(Resource(resource_type(doc), doc["metadata"]["name"], doc))
    return resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.manifests", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--bursting", action="store_true", help="Autopilot CPU bursting is on")
    args = parser.parse_args(argv)
    workload_rules = tuple(r for r in RULES if r.id.startswith("agent-"))
    # The same per-rule config form as policy/<stack>.json.
    config = {r.id: {"bursting": args.bursting} for r in workload_rules if "bursting" in r.config}
    found = violations(load_manifests(args.files), config, workload_rules)
    for v in found:
        print(f"[{v['severity']}] {v['rule']} {v['resource']}: {v['message']}")
    return 1 if any(v["severity"] == MANDATORY for v in found) else 0


if __name__ == "__main__":
    sys.exit(main())
