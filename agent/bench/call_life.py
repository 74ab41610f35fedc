"""Call-life benchmark: every call-life scenario against the real livekit-server and worker.

Gemini and the metadata server are the network stand-ins of tests/fakes; their clocks are
time-scaled. The long-call scenario emulates 45 minutes (prod maxSessionMinutes) at prod
settings: Gemini connections of 10 min (GoAway, resumption), the 15-minute uncompressed
limit, AGENT_MAX_CALL_SECONDS=2700 with a 60 s warning, all divided by --scale.

Prints one line per scenario, then one JSON line:
{"scenarios": {...}, "rotation_gap_ms_p95": N, "longest_call_minutes_emulated": N}

    agent/.venv/bin/python agent/bench/call_life.py [--scale 90]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(AGENT_DIR / "tests"), str(AGENT_DIR)]

from call_scenarios import (  # noqa: E402
    GOODBYE_HZ,
    REPLY_HZ,
    WARNING_HZ,
    Behaviour,
    Outcome,
    apology_heard,
    rotation_facts,
    run_scenario,
)
from helpers.livekit_server import start_livekit_server  # noqa: E402

PROD_MAX_CALL_SECONDS = 2700
PROD_WARNING_SECONDS = 60
QUIET = {"AGENT_SILENCE_TIMEOUT_SECONDS": "3600"}


def p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def long_call(server, work: Path, scale: float) -> tuple[dict, list[float], float]:
    max_call = max(10, round(PROD_MAX_CALL_SECONDS / scale))
    warning = max(1, round(PROD_WARNING_SECONDS / scale))
    o = run_scenario(
        server,
        work / "long",
        "long-call",
        behaviour=Behaviour(scale=scale),
        env={
            **QUIET,
            "AGENT_MAX_CALL_SECONDS": str(max_call),
            "AGENT_CALL_WARNING_SECONDS": str(warning),
        },
        wait_for_end=max_call + 60,
    )
    facts = rotation_facts(o.live)
    duration = (o.ended or {}).get("duration_seconds", 0.0)
    history = facts["history_at_open"]
    ok = (
        facts["sessions"] == 1
        and facts["resumed"] == facts["connections"] - 1
        and facts["connections"] >= 4
        and history == sorted(history)
        and o.heard(REPLY_HZ) > 0
        and o.heard(WARNING_HZ) > 0
        and o.goodbye_before_room_closed()
        and o.room_deleted()
        and (o.ended or {}).get("reason") == "max_duration"
    )
    minutes = o.live.emulated(duration) / 60
    return (
        {
            "ok": ok,
            "emulated_minutes": round(minutes, 1),
            "connections": facts["connections"],
            "resumed": facts["resumed"],
            "history_at_open": history,
            "goodbye_before_room_closed": o.goodbye_before_room_closed(),
            "reason": (o.ended or {}).get("reason"),
        },
        facts["gaps_ms"],
        minutes,
    )


def simple(o: Outcome, reason: str, heard: bool) -> dict:
    return {
        "ok": heard and o.room_deleted() and (o.ended or {}).get("reason") == reason,
        "reason": (o.ended or {}).get("reason"),
        "room_deleted": o.room_deleted(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=90.0, help="emulated s per real s")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="call-life-bench-"))
    server = start_livekit_server(work / "livekit")
    scenarios: dict[str, dict] = {}
    gaps: list[float] = []
    longest = 0.0
    try:
        scenarios["long_call_45min"], gaps, longest = long_call(server, work, args.scale)
        _print("long_call_45min", scenarios["long_call_45min"])

        o = run_scenario(
            server, work / "end", "end-call",
            behaviour=Behaviour(end_call_after_turns=2), env=QUIET,
        )
        scenarios["end_call"] = simple(o, "end_call", o.goodbye_before_room_closed())
        _print("end_call", scenarios["end_call"])

        o = run_scenario(
            server, work / "silence", "silence",
            behaviour=Behaviour(), env={"AGENT_SILENCE_TIMEOUT_SECONDS": "5"}, talking=False,
        )
        scenarios["silence_timeout"] = simple(o, "silence_timeout", o.goodbye_before_room_closed())
        _print("silence_timeout", scenarios["silence_timeout"])

        for failure in ("permission_denied", "not_found", "resource_exhausted"):
            o = run_scenario(
                server, work / failure, f"fail-{failure.replace('_', '-')}",
                behaviour=Behaviour(fail_locations={"us-central1": failure}),
                env={**QUIET, "AGENT_GEMINI_CONNECT_RETRIES": "1"},
            )
            scenarios[f"connect_{failure}"] = simple(o, "model_unavailable", apology_heard(o) > 0)
            _print(f"connect_{failure}", scenarios[f"connect_{failure}"])

        o = run_scenario(
            server, work / "midcall", "midcall",
            behaviour=Behaviour(
                midcall_error_on_connection=1, midcall_error_after_s=3, then_fail_with="internal"
            ),
            env=QUIET,
        )
        scenarios["midcall_error"] = simple(o, "model_unavailable", apology_heard(o) > 0)
        _print("midcall_error", scenarios["midcall_error"])

        o = run_scenario(
            server, work / "fallback", "fallback",
            behaviour=Behaviour(fail_locations={"us-central1": "not_found"}),
            env={**QUIET, "AGENT_GEMINI_CONNECT_RETRIES": "0",
                 "AGENT_GEMINI_FALLBACK_LOCATION": "europe-west4"},
            hang_up_after=5.0,
        )
        served = o.heard(REPLY_HZ) > 0
        scenarios["fallback_location"] = {
            "ok": served and (o.ended or {}).get("reason") == "participant_disconnected",
            "answered_by_fallback": served,
        }
        _print("fallback_location", scenarios["fallback_location"])
    finally:
        server.stop()
    print(
        json.dumps(
            {
                "scenarios": scenarios,
                "rotation_gap_ms_p95": round(p95(gaps), 1),
                "longest_call_minutes_emulated": round(longest, 1),
            }
        )
    )
    return 0 if all(s["ok"] for s in scenarios.values()) else 1


def _print(name: str, result: dict) -> None:
    print(f"{name}: {'ok' if result['ok'] else 'FAILED'} {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
