"""Policy pack entry: `pulumi preview --policy-pack policy [--policy-pack-config policy/prod.json]`."""

import sys
from pathlib import Path

# The rules share the workload's capacity math with the program, one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.pack import policies  # noqa: E402

PolicyPack(
    name="gke-voice-agents",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=policies(),
)
