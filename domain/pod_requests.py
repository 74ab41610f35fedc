"""What the scheduler reserves for a pod: its effective requests, from its containers' specs.

Pure arithmetic over Kubernetes quantities, shared by spare capacity (k8s/spare_capacity.py: a
placeholder holds room for one whole agent pod) and the plan's cost lines (domain/cost.py: pods
are billed by what Autopilot reserves).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|Ki|Mi|Gi)?$")
# Units as the pod specs write them, to millicores (cpu) or MiB (memory, ephemeral-storage).
_TO_UNIT = {"cpu": {"m": 1, None: 1000}, "memory": {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024},
            "ephemeral-storage": {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}}


def _amount(resource: str, quantity: str) -> float:
    match = _QUANTITY.match(str(quantity))
    unit = match.group(2) if match else "?"
    if not match or unit not in _TO_UNIT[resource]:
        raise ValueError(f"{resource} quantity {quantity!r} is not in a unit the spare-capacity sizing reads")
    return float(match.group(1)) * _TO_UNIT[resource][unit]


def _requests(container: Mapping) -> dict[str, float]:
    requested = (container.get("resources") or {}).get("requests") or {}
    return {r: _amount(r, requested[r]) if r in requested else 0.0 for r in _RESOURCES}


def effective_pod_requests(containers: Sequence[Mapping], init_containers: Sequence[Mapping] = ()) -> dict[str, float]:
    """What the scheduler reserves for a pod, per resource (KEP-753; Kubernetes docs "Effective
    Pod requests and limits"): during initialisation each ordinary init container runs beside
    the sidecars declared before it; afterwards the app containers run beside every sidecar
    (init container with restartPolicy Always). The pod needs the larger of the two phases.
    CPU in millicores, memory and ephemeral storage in MiB."""
    totals = {}
    for r in _RESOURCES:
        sidecars = 0.0
        init_peak = 0.0
        for init in init_containers:
            need = _requests(init)[r]
            if init.get("restartPolicy") == "Always":
                sidecars += need
                init_peak = max(init_peak, sidecars)
            else:
                init_peak = max(init_peak, sidecars + need)
        totals[r] = max(init_peak, sum(_requests(c)[r] for c in containers) + sidecars)
    return totals
