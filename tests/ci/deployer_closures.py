"""What each stage's deployer can act as and reach: the policy pack's closure
(policy/rules/access_gcp.py) over the bootstrap's declared grants and the stacks' own plans.

    .venv/bin/python -m tests.ci.deployer_closures     # the committed bootstrap/Pulumi.ci.yaml and stacks

A deployer may act as the accounts its own stack runs as (the bootstrap creates them and grants
it serviceAccountAdmin on each, serviceAccountUser on the node account: bootstrap/roles.py
ACCOUNT_ROLES) and as nothing else: no other stage's account, no CI account, no default account,
no "every account of the project".
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from bootstrap.config import BootstrapConfig, load_bootstrap_config
from policy.engine import as_resources
from policy.rules.access_gcp import Account, Hop, Reach, closure, impersonated
from tests.ci.bootstrap_harness import BootstrapRun, evaluate_bootstrap, stack_file_config
from tests.ci.trust import own_accounts


def deployers(run: BootstrapRun) -> dict[str, Account]:
    return {stack: Account(email.lower()) for stack, email in run.outputs["deployServiceAccounts"].items()}


def _path(hops: Iterable[Hop]) -> str:
    return " -> ".join(h.describe() for h in hops)


def deployer_problems(resources: list[dict[str, Any]], run: BootstrapRun, cfg: BootstrapConfig) -> list[str]:
    """One line per account a deployer can act as that its own stack does not run as."""
    rs = as_resources(resources)
    problems = []
    for stack, deployer in deployers(run).items():
        own = own_accounts(cfg, frozenset({stack}))
        for account, hops in impersonated(rs, deployer).items():
            if account.email not in own:
                problems.append(f"deployer of {stack} ({deployer.email}) can act as {account}: {_path(hops)}")
    return problems


def report(resources: list[dict[str, Any]], run: BootstrapRun) -> list[str]:
    rs = as_resources(resources)
    lines = []
    for stack, deployer in deployers(run).items():
        lines.append(f"deployer of {stack} ({deployer.email})")
        accounts = impersonated(rs, deployer)
        lines += [f"  acts as {a}: {hops[-1].how}" + (f" (via {', '.join(h.account.email for h in hops[:-1])})" if len(hops) > 1 else "")
                  for a, hops in accounts.items()]
        reach: list[Reach] = closure(rs, deployer)
        for r in reach:
            via = "".join(f" via {a.email}" for a in r.via)
            condition = " (conditional)" if r.grant.condition else ""
            lines.append(f"  google{via}: {r.role} on {r.grant.where()}{condition} [{r.grant.source}]")
    return lines


def main() -> int:
    from tooling.plan import evaluate

    config = stack_file_config()
    cfg = load_bootstrap_config(config)
    run = evaluate_bootstrap(config)
    resources = [*run.resources, *(r for env in cfg.environments for r in evaluate(env.stack).resources)]
    print("\n".join(report(resources, run)))
    problems = deployer_problems(resources, run, cfg)
    print("\n".join(problems) if problems else "every deployer acts only as its own stack's accounts")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
