"""Agent rules about time: the drain within the grace period, the signal reaching the worker,
and the clocks that cut a pod short (the cluster autoscaler's 10 minutes, Spot's seconds)."""

from __future__ import annotations

import re
import shlex
from typing import Any, Mapping, Sequence

from domain.capacity import AUTOSCALER_GRACE_CAP_S, SHUTDOWN_BUDGET_S, SPOT_GRACE_S
from policy.rules.agent_pod import AgentPod, _is_sleep_only
from policy.rules.base import Context, prop, unless

SPOT_LABEL = "cloud.google.com/gke-spot"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def _grace_covers_drain(pod: AgentPod, ctx: Context) -> list[str]:
    needed = pod.pre_stop_seconds + pod.drain_timeout + SHUTDOWN_BUDGET_S
    return unless(pod.grace >= needed,
                   f"terminationGracePeriodSeconds {pod.grace} < preStop {pod.pre_stop_seconds} + drain timeout "
                   f"{pod.drain_timeout} + shutdown {SHUTDOWN_BUDGET_S} = {needed} s: SIGKILL lands "
                   f"{needed - pod.grace} s before running calls may finish")


def _sleep_only_pre_stop(pod: AgentPod, ctx: Context) -> list[str]:
    if not _is_sleep_only(pod.pre_stop):
        return []
    left = pod.grace - pod.pre_stop_seconds
    return [f"preStop only sleeps {pod.pre_stop_seconds} s: the worker still advertises itself and takes new calls "
            f"during the sleep, then has {left} s of the {pod.grace} s grace left to drain them. The worker drains on "
            "SIGTERM; remove the preStop hook"]


def _command_words(container: Mapping[str, Any]) -> list[str]:
    # list(): CrossGuard hands sequences over as read-only proxies, which do not support `+`.
    return [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]


_MODES = ("start", "dev", "console")


def _agent_statement(script: str) -> tuple[str, bool]:
    """The statement of a `sh -c` script that runs the worker, and whether the shell hands
    over to it (`exec` on the last statement) so the worker, not the shell, gets SIGTERM."""
    statements = [s.strip() for s in re.split(r"&&|\|\||;|\n", script) if s.strip()]
    if not statements:
        return "", False
    runs_worker = [s for s in statements if any(m in s.split() for m in _MODES)]
    statement = runs_worker[-1] if runs_worker else statements[-1]
    return statement, statement is statements[-1] and statement.startswith("exec ")


def _exec_form_start(pod: AgentPod, ctx: Context) -> list[str]:
    words = _command_words(pod.container)
    if not words:
        return ["no command: the image's entrypoint decides, which no manifest check can see; state the worker's command "
                "in exec form with its `start` mode (ours: `python -m voice_agent start`)"]
    messages = []
    if words[0].rpartition("/")[2] in ("sh", "bash", "dash") and "-c" in words:
        script = words[words.index("-c") + 1] if words.index("-c") + 1 < len(words) else ""
        statement, hands_over = _agent_statement(script)
        if not hands_over:
            messages.append(f"the agent runs under `{shlex.join(words)}`: the shell receives SIGTERM and the worker never "
                            "drains; use exec form, or make the worker the script's last statement with `exec`")
        words = shlex.split(statement.removeprefix("exec "))
    if any(m in words for m in ("dev", "console")):
        messages.append(f"`{shlex.join(words)}` runs development mode, which skips the drain on SIGTERM; use `start`")
    elif "start" not in words:
        messages.append(f"`{shlex.join(words)}` does not run the worker's `start` mode")
    return messages


def _extended_duration(pod: AgentPod, ctx: Context) -> list[str]:
    if pod.grace <= AUTOSCALER_GRACE_CAP_S:
        return []
    return unless(str(pod.annotations.get(SAFE_TO_EVICT)).lower() == "false",
                   f"grace {pod.grace} s exceeds the {AUTOSCALER_GRACE_CAP_S} s the cluster autoscaler honours: a node "
                   f"scale-down kills calls after 10 minutes; annotate the pod {SAFE_TO_EVICT}: \"false\"")


def _mentions(node: Any, text: str) -> bool:
    """Whether a string equal to `text` appears anywhere in nested props. Walks the structure
    rather than str() it: CrossGuard's read-only proxies do not print their contents."""
    if isinstance(node, Mapping):
        return any(_mentions(v, text) for v in node.values())
    if isinstance(node, Sequence) and not isinstance(node, str):
        return any(_mentions(v, text) for v in node)
    return node == text


def _no_spot(pod: AgentPod, ctx: Context) -> list[str]:
    selector = prop(pod.spec, "nodeSelector", default={})
    tolerations = prop(pod.spec, "tolerations", default=[])
    affinity = prop(pod.spec, "affinity", default={})
    if str(selector.get(SPOT_LABEL)).lower() == "true" or any(t.get("key") == SPOT_LABEL for t in tolerations) or _mentions(affinity, SPOT_LABEL):
        return [f"Spot Pods get {SPOT_GRACE_S} s to stop whatever the grace period says: every live call on a reclaimed "
                "node is cut"]
    return []
