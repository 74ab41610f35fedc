"""What each protected principal can reach in a stack's offline plan, as the access rules see it.

    .venv/bin/python -m tooling.closures --stack dev

Prints, for the agent, each tool server and the metrics adapter, every Google grant its
closure holds (directly or through an impersonated account, with the condition if any) and
every Kubernetes permission bound to its service account. The same functions the rules use
(policy/rules/access_gcp.py, access_k8s.py); docs/policy.md quotes this output.
"""

from __future__ import annotations

import argparse
import sys

from k8s.deletion_cost import ANNOTATION
from k8s.runtime import AGENT_ROLE, AGENT_SERVICE_ACCOUNT
from policy.rules import Resource
from policy.rules.access import ADAPTER_ACCOUNT, ADAPTER_NAMESPACE, workloads
from policy.rules.access_gcp import Workload, closure, workload_pools
from policy.rules.access_k8s import admission_problems, describe, permissions
from policy.rules.tools import TOOL_SERVER_ROLE


def protected(resources: list[Resource]) -> list[tuple[str, Workload]]:
    found = [("agent", w) for w in workloads(resources, AGENT_ROLE, AGENT_SERVICE_ACCOUNT)]
    found += [("tool server", w) for w in workloads(resources, TOOL_SERVER_ROLE)]
    return found + [("metrics adapter", Workload(ADAPTER_NAMESPACE, ADAPTER_ACCOUNT, workload_pools(resources)))]


def report(resources: list[Resource]) -> list[str]:
    lines = []
    for who, identity in protected(resources):
        lines.append(f"{who} ({identity})")
        for reach in closure(resources, identity):
            via = "".join(f" via {a.email}" for a in reach.via)
            condition = f" if {reach.grant.condition}" if reach.grant.condition else ""
            lines.append(f"  google{via}: {reach.role} on {reach.grant.where()}{condition} [{reach.grant.source}]")
        granted = permissions(resources, identity.namespace or "default", identity.name)
        lines += [f"  kubernetes: {describe(p)}" for p in granted]
        if who == "agent" and granted:
            problems = admission_problems(resources, identity.namespace or "default", identity.name, ANNOTATION)
            lines.append("  admission: " + ("; ".join(problems) if problems else
                                            f"bound with Deny; only {ANNOTATION} of its own pod may change"))
        if not granted:
            lines.append("  kubernetes: nothing")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.closures", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    from tooling.plan import evaluate
    from domain.stackfiles import StackFileError
    from domain.settings import ConfigError
    from policy.engine import as_resources

    try:
        plan = evaluate(args.stack)
    except (ConfigError, StackFileError) as err:
        print(err, file=sys.stderr)
        return 2
    print("\n".join(report(as_resources(plan.resources))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
