"""Seed 001's three rollout checks, answered from Prometheus's HTTP API. Standard library only.

    python -m tooling.rollout_check --prometheus URL --old-version X --new-version Y [--window 10m]

1. New sessions land on the new version (sessions started on Y within the window > 0).
2. Old instances accept none: no instance of X is registered and out of drain, and no instance
   of X that drained for the whole window started a session in it.
3. Old active sessions drain to zero: X runs no session now, and no drain of X timed out in the
   window (a timed-out drain "reaches zero" by cutting calls).
4. The new version answers about as fast: Y's p95 time to first audio in the window is not both
   above --latency-p95-seconds (the stack's latencyAlertP95Seconds) and more than
   runbook.LATENCY_REGRESSION_FACTOR times X's. Without replies on either side there is nothing
   to compare and the check passes, saying so.

Each check prints one line (PASS/FAIL and the numbers), then one JSON line; exit 0 when all
pass, 1 when any fails, 2 on bad arguments or an unreachable Prometheus. For Google Cloud
Managed Service for Prometheus, point --prometheus at its query API
(https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus) and put an
access token in the variable named by --token-env (e.g. `gcloud auth print-access-token`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass

from domain import runbook

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_WINDOW = re.compile(r"^[1-9][0-9]*(s|m|h)$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class PrometheusError(RuntimeError):
    pass


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def query_scalar(base_url: str, expr: str, token: str | None = None, timeout: float = 10.0) -> float:
    """One instant query whose answer is a single number (every check expression ends in
    ``or vector(0)`` so that "nothing" reads as 0)."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise PrometheusError(f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}") from None
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise PrometheusError(f"{base_url}: {exc}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"query failed: {body.get('error', body)}")
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return float(result[1])
    return sum(float(sample["value"][1]) for sample in result)


def query_optional(base_url: str, expr: str, token: str | None = None) -> float | None:
    """A quantile: None when Prometheus has no sample (or NaN: no observation in the window)."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            body = json.loads(response.read().decode())
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise PrometheusError(f"{base_url}: {exc}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"query failed: {body.get('error', body)}")
    values = [float(sample["value"][1]) for sample in body["data"]["result"]]
    values = [v for v in values if v == v]  # NaN != NaN
    return max(values) if values else None


def latency_check(old: str, new: str, old_p95: float | None, new_p95: float | None, threshold: float) -> Check:
    name = "new version answers as fast"
    if old_p95 is None or new_p95 is None:
        return Check(name, True, f"no replies to compare (p95 {old}: {old_p95}, {new}: {new_p95})")
    slower = new_p95 > old_p95 * runbook.LATENCY_REGRESSION_FACTOR
    return Check(name, not (slower and new_p95 > threshold),
                 f"p95 time to first audio {new_p95:.3f} s on {new} vs {old_p95:.3f} s on {old} "
                 f"(fails above {threshold:g} s and {runbook.LATENCY_REGRESSION_FACTOR:g}x the old)")


def run_checks(base_url: str, old: str, new: str, window: str, token: str | None = None,
               latency_threshold: float = runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS) -> list[Check]:
    q = lambda expr: query_scalar(base_url, expr, token)  # noqa: E731
    new_sessions = q(runbook.new_sessions_on(new, window))
    accepting = q(runbook.accepting_instances_of(old))
    old_new_sessions = q(runbook.sessions_started_while_draining(old, window))
    active_old = q(runbook.active_sessions_of(old))
    timeouts = q(runbook.drain_timeouts_of(old, window))
    old_p95 = query_optional(base_url, runbook.p95_time_to_first_audio_of(old, window), token)
    new_p95 = query_optional(base_url, runbook.p95_time_to_first_audio_of(new, window), token)
    return [
        Check("new sessions land on the new version", new_sessions > 0,
              f"{new_sessions:g} sessions started on {new} in the last {window}"),
        Check("old instances accept none", accepting == 0 and old_new_sessions == 0,
              f"{accepting:g} instances of {old} registered and not draining; "
              f"{old_new_sessions:g} sessions started on draining {old} instances in the last {window}"),
        Check("old active sessions drain to zero", active_old == 0 and timeouts == 0,
              f"{active_old:g} sessions active on {old}; {timeouts:g} drains of {old} timed out in the last {window}"),
        latency_check(old, new, old_p95, new_p95, latency_threshold),
    ]


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tooling.rollout_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="base URL of the Prometheus HTTP API")
    parser.add_argument("--old-version", required=True, help="the release being replaced (AGENT_VERSION)")
    parser.add_argument("--new-version", required=True, help="the release rolling out (AGENT_VERSION)")
    parser.add_argument("--window", default="10m", help="look-back for new sessions and drain events (default 10m)")
    parser.add_argument("--token-env", default="", help="environment variable holding a bearer token")
    parser.add_argument("--latency-p95-seconds", type=float, default=runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS,
                        help="the stack's latencyAlertP95Seconds (default %(default)s)")
    return parser.parse_args(argv)


def _problems(args: argparse.Namespace) -> list[str]:
    problems = []
    for flag, value in (("--old-version", args.old_version), ("--new-version", args.new_version)):
        if not _VERSION.match(value):
            problems.append(f"{flag}={value!r} is not a release: an image tag or shortened digest "
                            "(letters, digits, '.', '_', ':' or '-', at most 128)")
    if args.old_version == args.new_version:
        problems.append(f"--old-version and --new-version are both {args.old_version!r}: nothing to compare")
    if not _WINDOW.match(args.window):
        problems.append(f"--window={args.window!r} is not a duration: a whole number of s, m or h, e.g. 10m")
    if not args.prometheus.startswith(("http://", "https://")):
        problems.append(f"--prometheus={args.prometheus!r} is not an http(s) URL")
    low, high = runbook.LATENCY_ALERT_P95_RANGE
    if not low <= args.latency_p95_seconds <= high:
        problems.append(f"--latency-p95-seconds={args.latency_p95_seconds:g} must be in [{low:g}, {high:g}] "
                        "(the stack's latencyAlertP95Seconds range)")
    if args.token_env and not os.environ.get(args.token_env):
        problems.append(f"--token-env={args.token_env}: that environment variable is empty or not set")
    return problems


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    problems = _problems(args)
    if problems:
        for problem in problems:
            print(f"rollout-check: {problem}", file=sys.stderr)
        return EXIT_USAGE
    token = os.environ.get(args.token_env) if args.token_env else None
    try:
        checks = run_checks(args.prometheus, args.old_version, args.new_version, args.window, token,
                            args.latency_p95_seconds)
    except PrometheusError as exc:
        print(f"rollout-check: cannot query Prometheus: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    ok = all(check.passed for check in checks)
    print(json.dumps({"ok": ok, "old_version": args.old_version, "new_version": args.new_version,
                      "window": args.window, "checks": [asdict(c) for c in checks]}))
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
