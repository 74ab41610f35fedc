"""The HPA spec: fast up, slow down, on CPU relative to the request.

Why these numbers (config checks the cross-setting rules in domain/capacity.py):

- Target: 50 % of the request by default. With the HPA's 10 % tolerance a pod can sit at 55 %
  without the HPA acting. Without bursting (limit = request) the worker's load is then 0.55,
  below its 0.7 threshold; seed 000's 75 % would reach 0.83, i.e. every pod says "full" before
  the HPA scales, and callers wait. LiveKit's own advice for a 0.7 threshold is to scale at
  about 0.5. With bursting (CPU limit 1.4x) the same target is load 0.39.
- Scale-up window: 30 s (default, dev) / 60 s (prod), not seed 000's 120 s. The window delays
  every scale-up by its full length, and a pod that needs a new Autopilot node waits another
  80-120 s for it to boot; 120 s + 15 s sync + 120 s boot is over four minutes of callers
  ringing. 30 s still spans two HPA syncs, so one noisy sample does not add a pod. Prod takes
  60 s because every pod it adds is removed later by a slow drain (up to 45 min of calls) and
  its spare placeholder pod already removes the node boot: 60 + 15 + 6 s to a worker taking
  calls, still faster than dev's 30 + 15 + 120 + 6 without a placeholder.
- Calls: the second metric is active calls per pod (the agent's voice_agent_active_sessions
  gauge, scraped by Managed Service for Prometheus through the PodMonitoring, read by the HPA
  through the Custom Metrics Stackdriver Adapter, k8s/metrics_adapter.py), with a target of
  hpaTargetCallsPercent of the pod's call cap. The HPA takes the larger of the two metrics'
  proposals, so whichever of CPU and calls runs out first adds pods; the calls target fires
  before the cap refuses calls (domain/capacity.py, with the 10 % tolerance).
- Scale-up policies: at least 4 pods or 100 % a minute, whichever is more (`Max`): a small fleet
  can go from 1 to 5 pods in one step, a large one doubles; no call ramp outruns that.
- Scale-down window: 300 s (dev) / 900 s (prod), then 1 pod per 60 s / 300 s (`Min`). Every
  removed pod drains its calls for up to the drain timeout, and the HPA picks the pod to remove
  without looking at calls, so capacity should leave slowly and in single steps.
"""

from __future__ import annotations

from domain.settings import WorkloadSettings
from domain.capacity import calls_target
from k8s.pod import APP_NAME

SCALE_UP_PODS_PER_MINUTE = 4
SCALE_UP_PERCENT_PER_MINUTE = 100


# Managed Service for Prometheus stores a gauge as prometheus.googleapis.com/<name>/gauge; the
# Custom Metrics Stackdriver Adapter (v0.13.1+) serves it to the HPA under this name, "|" for "/"
# (GKE tutorial "Optimize Pod autoscaling based on metrics", custom Prometheus metric).
ACTIVE_CALLS_METRIC = "prometheus.googleapis.com|voice_agent_active_sessions|gauge"


def calls_quantity(calls: float) -> str:
    """A Kubernetes quantity in milli-units, so a fractional target (1.8 calls) stays exact."""
    return f"{round(calls * 1000)}m"


def calls_metric(w: WorkloadSettings) -> dict:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": ACTIVE_CALLS_METRIC},
            "target": {"type": "AverageValue", "averageValue": calls_quantity(calls_target(w))},
        },
    }


def hpa_spec(w: WorkloadSettings) -> dict:
    h = w.hpa
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP_NAME},
        "minReplicas": h.min_replicas,
        "maxReplicas": h.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": h.target_cpu_utilization}},
            },
            calls_metric(w),
        ],
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": h.scale_up_window_seconds,
                "selectPolicy": "Max",
                "policies": [
                    {"type": "Pods", "value": SCALE_UP_PODS_PER_MINUTE, "periodSeconds": 60},
                    {"type": "Percent", "value": SCALE_UP_PERCENT_PER_MINUTE, "periodSeconds": 60},
                ],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": h.scale_down_window_seconds,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": h.scale_down_pods_per_period,
                              "periodSeconds": h.scale_down_period_seconds}],
            },
        },
    }
