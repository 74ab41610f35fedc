"""What a checkpoint snapshot costs the call's event loop (the audio path).

    agent/.venv/bin/python agent/bench/recovery_snapshot.py [--items 800] [--rounds 20]

Builds a livekit-agents 1.8.9 ChatContext of ``--items`` messages (about 200 characters each,
caller and agent alternating) and measures, per snapshot:
- ``inline_ms``: ChatContext.to_dict + JSON on the loop (what the writer did before);
- ``on_loop_ms``: what the session hook does now on the loop (ChatContext.copy, a list of
  references; recovery/resume.py ``_checkpoint``);
- ``stall_ms``: the longest gap a 1 ms ticker on the same loop sees while the writer encodes the
  snapshot in a thread (recovery/payload.py ``encode`` with the call's ``ItemCache``: one new
  item per round, as after a conversation turn; the GIL is shared, so this is not zero).

Prints one JSON object (medians and maxima over ``--rounds``). Not a test: it depends on the
machine; run it on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livekit.agents import llm  # noqa: E402

from voice_agent.recovery.payload import Checkpoint, ItemCache, encode  # noqa: E402


def context(items: int) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    for index in range(items):
        role = "user" if index % 2 == 0 else "assistant"
        ctx.add_message(role=role, content=f"turn {index}: " + "words of the conversation " * 8)
    return ctx


async def measure(items: int, rounds: int) -> dict[str, float]:
    ctx = context(items)
    cache = ItemCache()
    inline, on_loop, stalls = [], [], []
    for index in range(rounds):
        ctx.add_message(role="user", content=f"new turn {index}")
        start = time.perf_counter()
        json.dumps(ctx.to_dict(exclude_timestamp=False))
        inline.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        snapshot = Checkpoint(chat_ctx=ctx.copy(exclude_instructions=True, exclude_config_update=True))
        on_loop.append((time.perf_counter() - start) * 1000)

        longest = 0.0
        done = False

        async def ticker() -> None:
            nonlocal longest
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                longest = max(longest, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        await asyncio.to_thread(encode, snapshot, cache)
        done = True
        await tick
        stalls.append(longest * 1000)
    return {
        "items": items,
        "inline_ms_p50": round(statistics.median(inline), 2),
        "inline_ms_max": round(max(inline), 2),
        "on_loop_ms_p50": round(statistics.median(on_loop), 2),
        "on_loop_ms_max": round(max(on_loop), 2),
        "stall_ms_p50": round(statistics.median(stalls), 2),
        "stall_ms_max": round(max(stalls), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if args.items < 1 or args.rounds < 1:
        parser.error("--items and --rounds must be >= 1")
    print(json.dumps(asyncio.run(measure(args.items, args.rounds))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
