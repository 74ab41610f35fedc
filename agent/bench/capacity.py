"""Capacity benchmark: what one worker costs per call, and where call quality gives out.

N concurrent calls against ONE worker (the contract command, ``python -m voice_agent start``)
running under a real CPU and memory limit:

- the real livekit-server (.tools/bin/livekit-server), real rtc callers (livekit rtc SDK) that
  publish speech-like audio (a 140 Hz voice with harmonics, shaped into 4 Hz syllables) in
  turns: 0.8 s of speech, then silence while the agent answers;
- the real Gemini plugin, google-genai client and google-auth, talking over TLS WebSockets to the
  network stand-in of tests/fakes (gemini_live.py + metadata_server.py); here its replies are
  streamed back at real-time rate (one 100 ms chunk per 100 ms, ``pace_replies``), as the Live
  API streams audio, so the client's decoding, resampling and WebSocket cost is that of a call;
- the worker in its own cgroup: CPU quota and memory limit of a pod. This machine runs cgroup v1
  (``mount | grep cgroup``: cpu, cpuacct, memory as separate v1 hierarchies). The worker is
  moved into new groups (cpu.cfs_quota_us / cpu.cfs_period_us, cpuacct, memory.limit_in_bytes),
  then ``unshare --cgroup --mount`` makes those groups its cgroup root and the v1 controllers
  are remounted inside, so the worker sees its own limits at /sys/fs/cgroup/<controller>/ as a
  container does, and livekit-agents 1.8.9 (utils/hw/cpu.py, CGroupV1CPUMonitor) measures its
  load against the quota. GKE Autopilot runs cgroup v2 (one unified hierarchy, cpu.max and
  memory.max; CGroupV2CPUMonitor). Differences that matter: the v1 monitor reports at least
  1.0 CPU (``max(quota / period, 1.0)``), v2 the exact quota; v2's memory.current and v1's
  memory.usage_in_bytes both include page cache, so the working set (what the kubelet and the
  OOM killer look at) is computed the kubelet's way: usage minus inactive file pages.

Per N the benchmark keeps N calls up for a warm-up and a measuring window, then reports CPU
(cpuacct delta over the window, millicores), the container working set, the worker's own
reported load (lk_agents_worker_load), and the quality signals at the callers:
- reply latency: the caller's end of speech to the first loud frame of the agent's answer
  (it contains the stand-in's fixed 500 ms end-of-turn silence; only its growth matters);
- stutter: replies whose loud audio had a gap over 100 ms (frames arriving late).
Quality holds while the p95 latency stays within ``--latency-budget-ms`` of N=1's, at most 5 %
of replies stutter and every call got an agent. After the first N that fails, the steps between
the last good and the failed N are tried (one bisection), so the limit is not only a power of 2.

Prints one line per N, then ONE JSON line:
{"cpu_m_per_call": N, "mem_mib_per_call": N, "base_cpu_m": N, "base_mem_mib": N,
 "calls_at_quality_limit_per_vcpu": N, ...details}

Must run as root (cgroups, namespaces). Run when the machine is quiet (``uptime``):

    agent/.venv/bin/python agent/bench/capacity.py [--cpu-m 1000] [--memory-mi 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AGENT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(AGENT_DIR / "tests"), str(AGENT_DIR)]

from fakes import google_stand_ins  # noqa: E402
from fakes.gemini_live import OUTPUT_RATE, Behaviour, _Connection  # noqa: E402
from helpers import participant  # noqa: E402
from helpers.livekit_server import LiveKitServer, start_livekit_server  # noqa: E402
from helpers.pod_cgroup import PodCgroup, PodCgroupError  # noqa: E402
from helpers.worker_process import (  # noqa: E402
    WorkerProcess,
    contract_argv,
    start_worker,
    wait_until_registered,
    worker_env,
)
from livekit import rtc  # noqa: E402

SAMPLE_RATE = 48000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
# A turn: speech, then silence long enough for the stand-in's end of turn (500 ms of silence,
# Behaviour.vad_silence_ms), its reply and a breath.
TALK_S = 0.8
CYCLE_S = 3.2
REPLY_S = 1.0
# A received frame carries sound above this int16 peak (helpers/participant.LOUD).
LOUD = 1000
GAP_S = 0.100
STUTTER_SHARE_LIMIT = 0.05


# ---- the worker's cgroup --------------------------------------------------------------------


@dataclass
class CgroupBox:
    """The worker's pod cgroups (tests/helpers/pod_cgroup.py: cpu, cpuacct and memory on cgroup
    v1, as a pod's container has; v2 on GKE), with the bench's own readings of them."""

    name: str
    cpu_m: int
    memory_mi: int
    dirs: dict[str, Path] = field(default_factory=dict)
    group: PodCgroup | None = None

    SHARES = 4096

    def create(self) -> CgroupBox:
        try:
            self.group = PodCgroup.create(self.cpu_m, self.memory_mi * 2**20)
        except PodCgroupError as error:
            raise SystemExit(f"capacity bench: {error}") from None
        if self.group.hierarchies[0].version != 1:
            self.group.remove()
            raise SystemExit("needs cgroup v1 cpu/cpuacct/memory hierarchies (see the docstring)")
        self.dirs = {c: self.group.dir_of(c) for c in ("cpu", "cpuacct", "memory")}
        # The kubelet gives a container cpu.shares in proportion to its CPU request, so a pod
        # gets its request on a busy node. This machine's other work runs in the root group
        # (1024 shares a task): four times the default keeps the worker's quota within reach.
        (self.dirs["cpu"] / "cpu.shares").write_text(str(self.SHARES))
        return self

    def join_world(self) -> None:
        """Put this process (callers, the Gemini stand-in, and livekit-server, started after)
        in a CPU group of the same weight, without a quota: in production they are the rest of
        the world, not on the pod's node, and on this shared machine they must not starve
        while the worker is being measured, or their lateness would read as the pod's."""
        world = self.dirs["cpu"].parent / f"{self.name}-world"
        world.mkdir(exist_ok=True)
        (world / "cpu.shares").write_text(str(self.SHARES))
        (world / "cgroup.procs").write_text(str(os.getpid()))
        self.dirs["world"] = world

    def cpu_ns(self) -> int:
        return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text())

    def working_set_mib(self) -> float:
        usage = int((self.dirs["memory"] / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (self.dirs["memory"] / "memory.stat").read_text().splitlines())
        return (usage - int(stat.get("total_inactive_file", 0))) / 2**20

    def peak_mib(self) -> float:
        return int((self.dirs["memory"] / "memory.max_usage_in_bytes").read_text()) / 2**20

    def throttled(self) -> tuple[int, int]:
        stat = dict(line.split() for line in (self.dirs["cpu"] / "cpu.stat").read_text().splitlines())
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def remove(self) -> None:
        world = self.dirs.get("world")
        if world is not None:
            (world.parent / "cgroup.procs").write_text(str(os.getpid()))
            world.rmdir()
        if self.group is not None:
            self.group.remove()


# ---- the Gemini stand-in, streaming at real-time rate ----------------------------------------


def pace_replies() -> None:
    """Send each audio chunk of a reply when the previous one has played (real time), with
    200 ms of lead, as the Live API streams generated audio; the stand-in sends them at once."""
    original = _Connection._send

    async def paced(self: _Connection, message: dict) -> None:
        turn = message.get("serverContent", {}).get("modelTurn")
        if turn:
            data = turn["parts"][0]["inlineData"]["data"]
            seconds = len(base64.b64decode(data)) / 2 / OUTPUT_RATE
            now = time.monotonic()
            start = max(getattr(self, "_play_until", 0.0), now)
            self._play_until = start + seconds
            await asyncio.sleep(max(0.0, start - now - 0.2))
        elif "turnComplete" in message.get("serverContent", {}):
            await asyncio.sleep(max(0.0, getattr(self, "_play_until", 0.0) - time.monotonic()))
        await original(self, message)

    _Connection._send = paced  # type: ignore[method-assign]


# ---- callers ----------------------------------------------------------------------------------


def speech_frames() -> list[bytes]:
    """One second of a voiced sound: 140 Hz and its harmonics, 4 syllables a second."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = 0.35 + 0.65 * np.abs(np.sin(2 * np.pi * 2 * t))
    pcm = (voice / np.max(np.abs(voice)) * syllables * 9000).astype(np.int16)
    return [pcm[i : i + FRAME_SAMPLES].tobytes() for i in range(0, SAMPLE_RATE, FRAME_SAMPLES)]


SPEECH = speech_frames()
SILENCE = bytes(FRAME_SAMPLES * 2)


@dataclass
class Caller:
    room_name: str
    room: rtc.Room = field(default_factory=rtc.Room)
    agent_joined: asyncio.Event = field(default_factory=asyncio.Event)
    talk_ends: list[float] = field(default_factory=list)
    loud_at: list[float] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def join(self, server: LiveKitServer, offset: float) -> None:
        def on_participant(p: rtc.RemoteParticipant) -> None:
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                self.agent_joined.set()

        def on_track(track: rtc.Track, *_: object) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                self.tasks.append(asyncio.create_task(self._listen(track)))

        self.room.on("participant_connected", on_participant)
        self.room.on("track_subscribed", on_track)
        token = participant.caller_token(server, self.room_name, f"caller-{self.room_name}")
        await self.room.connect(server.ws_url, token)
        for p in self.room.remote_participants.values():
            on_participant(p)
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self.tasks.append(asyncio.create_task(self._talk(source, offset)))

    async def _talk(self, source: rtc.AudioSource, offset: float) -> None:
        """Frames on the wall clock (not capture_frame's 1 s queue), so the end of speech is
        known to the frame."""
        per_cycle = round(CYCLE_S * 1000 / FRAME_MS)
        loud = round(TALK_S * 1000 / FRAME_MS)
        start = time.monotonic() + offset
        index = 0
        while True:
            due = start + index * FRAME_MS / 1000
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            phase = index % per_cycle
            if phase == loud:
                self.talk_ends.append(due)
            data = SPEECH[index % len(SPEECH)] if phase < loud else SILENCE
            await source.capture_frame(rtc.AudioFrame(data, SAMPLE_RATE, 1, FRAME_SAMPLES))
            index += 1

    async def _listen(self, track: rtc.Track) -> None:
        # 16 kHz is plenty to tell sound from silence and costs this process a third of 48 kHz
        stream = rtc.AudioStream(track, sample_rate=16000, num_channels=1)
        async for event in stream:
            if np.abs(np.frombuffer(event.frame.data, dtype=np.int16)).max() > LOUD:
                self.loud_at.append(time.monotonic())

    def replies(self, since: float, until: float) -> tuple[list[float], int, int]:
        """(latencies s, replies, stuttered replies) for speech that ended in [since, until)."""
        latencies, count, stutters = [], 0, 0
        loud = np.array(self.loud_at)
        for end in self.talk_ends:
            if not since <= end < until:
                continue
            window = loud[(loud > end) & (loud < end + CYCLE_S - TALK_S)]
            if not len(window):
                continue
            count += 1
            latencies.append(float(window[0] - end))
            if len(window) > 1 and float(np.max(np.diff(window))) > GAP_S:
                stutters += 1
        return latencies, count, stutters

    async def leave(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.room.disconnect()


# ---- one step ---------------------------------------------------------------------------------


@dataclass
class Step:
    calls: int
    cpu_m: float
    working_set_mib: float
    worker_load: float
    latency_p50_ms: float
    latency_p95_ms: float
    replies: int
    stutter_share: float
    agents: int
    throttled_share: float
    loadavg_1m: float
    verdict: str = ""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else float("nan")


def worker_load(worker: WorkerProcess) -> float:
    try:
        with urllib.request.urlopen(worker.metrics_url, timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return float("nan")
    match = re.search(r"^lk_agents_worker_load(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


async def measure(box: CgroupBox, worker: WorkerProcess, callers: list[Caller], warmup: float,
                  window: float) -> Step:
    await asyncio.sleep(warmup)
    periods0, throttled0 = box.throttled()
    cpu0, t0 = box.cpu_ns(), time.monotonic()
    loads, sets = [], []
    while time.monotonic() - t0 < window:
        await asyncio.sleep(2.0)
        loads.append(await asyncio.to_thread(worker_load, worker))
        sets.append(box.working_set_mib())
    cpu1, t1 = box.cpu_ns(), time.monotonic()
    periods1, throttled1 = box.throttled()
    await asyncio.sleep(CYCLE_S)  # the last turns' answers arrive
    latencies, replies, stutters = [], 0, 0
    for caller in callers:
        lat, count, stut = caller.replies(t0, t1 - CYCLE_S)
        latencies += lat
        replies += count
        stutters += stut
    periods = max(1, periods1 - periods0)
    return Step(
        calls=len(callers),
        cpu_m=(cpu1 - cpu0) / 1e6 / (t1 - t0),
        working_set_mib=statistics.median(sets),
        worker_load=statistics.median([x for x in loads if not math.isnan(x)] or [float("nan")]),
        latency_p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        latency_p95_ms=p95(latencies) * 1000,
        replies=replies,
        stutter_share=stutters / replies if replies else 1.0,
        agents=sum(1 for c in callers if c.agent_joined.is_set()),
        throttled_share=(throttled1 - throttled0) / periods,
        loadavg_1m=os.getloadavg()[0],
    )


async def add_calls(server: LiveKitServer, callers: list[Caller], target: int) -> None:
    """Grow to ``target`` calls one at a time (a job process starts per call), turns staggered."""
    while len(callers) < target:
        name = f"cap-{len(callers) + 1}"
        await participant.create_room(server, name)
        caller = Caller(name)
        await caller.join(server, offset=(len(callers) * 0.37) % CYCLE_S)
        callers.append(caller)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(caller.agent_joined.wait(), 20)


async def remove_calls(callers: list[Caller], target: int) -> None:
    while len(callers) > target:
        await callers.pop().leave()


def verdict(step: Step, reference: Step, budget_ms: float) -> str:
    """ok; "pod" when quality failed while the worker was at its own limit (throttled by its
    quota in over 5 % of periods, or its reported load at 0.9 or more: the pod's limit);
    "machine" when quality failed while the worker had CPU to spare (the shared machine, not
    the pod: noted, and the run goes on)."""
    holds = (
        step.agents == step.calls
        and step.replies > 0
        and step.latency_p95_ms <= reference.latency_p95_ms + budget_ms
        and step.stutter_share <= STUTTER_SHARE_LIMIT
    )
    if holds:
        return "ok"
    saturated = step.throttled_share > 0.05 or step.worker_load >= 0.9 or step.agents < step.calls
    return "pod" if saturated else "machine"


def line(step: Step) -> str:
    return (
        f"N={step.calls:3d} cpu={step.cpu_m:7.1f}m ws={step.working_set_mib:7.1f}MiB "
        f"load={step.worker_load:5.2f} throttled={step.throttled_share:5.1%} "
        f"reply_p50={step.latency_p50_ms:6.0f}ms p95={step.latency_p95_ms:6.0f}ms "
        f"stutter={step.stutter_share:5.1%} replies={step.replies} agents={step.agents}/{step.calls} "
        f"machine_load={step.loadavg_1m:.1f}"
    )


def fit(steps: list[Step]) -> tuple[float, float, float, float]:
    """Least-squares slope and intercept of CPU and working set over N (the good steps)."""
    n = np.array([s.calls for s in steps], dtype=float)
    cpu = np.polyfit(n, [s.cpu_m for s in steps], 1)
    mem = np.polyfit(n, [s.working_set_mib for s in steps], 1)
    return float(cpu[0]), float(cpu[1]), float(mem[0]), float(mem[1])


async def run_steps(server: LiveKitServer, box: CgroupBox, worker: WorkerProcess, args) -> list[Step]:
    callers: list[Caller] = []
    steps = [await measure(box, worker, callers, args.warmup, args.window)]
    print(line(steps[0]), flush=True)
    reference: Step | None = None
    good, bad = 0, None

    async def step_at(n: int) -> str:
        nonlocal reference
        if n > len(callers):
            await add_calls(server, callers, n)
        else:
            await remove_calls(callers, n)
        step = await measure(box, worker, callers, args.warmup, args.window)
        reference = reference or step
        step.verdict = verdict(step, reference, args.latency_budget_ms)
        steps.append(step)
        print(line(step) + {"ok": "", "pod": "  <- quality limit (the pod)",
                            "machine": "  <- quality lost to the shared machine"}[step.verdict], flush=True)
        return step.verdict

    try:
        n = 1
        while n <= args.max_calls:
            if await step_at(n) == "pod":
                bad = n
                break
            good = n
            n *= 2
        if bad is not None and bad - good > 1:
            mid = (good + bad) // 2
            if await step_at(mid) != "pod":
                good = mid
    finally:
        await remove_calls(callers, 0)
    return steps


def _finite(value: float) -> float | None:
    """JSON has no NaN: a step without replies has no latency."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


def limited_by(steps: list[Step], first_bad: int | None, memory_mi: int) -> str:
    if first_bad is None:
        return "not reached"
    step = next(s for s in steps if s.calls == first_bad)
    return "memory" if step.working_set_mib >= 0.9 * memory_mi else "cpu"


def summarise(steps: list[Step], args) -> dict:
    base = steps[0]
    measured = steps[1:]
    failed = [s.calls for s in measured if s.verdict == "pod"]
    first_bad = min(failed, default=None)
    # The limit is the most calls below the first step where the pod itself ran out. Steps whose
    # quality was lost to the shared machine (the worker unthrottled) count as within it: the
    # pod had CPU to spare; their lateness is reported, per step, not hidden.
    below = [s for s in measured if s.verdict != "pod" and (first_bad is None or s.calls < first_bad)]
    limit = max((s.calls for s in below), default=0)
    # cost per call from every step below the pod's limit (machine-bound steps still cost what
    # they cost: CPU time and memory are counted, only their latency is the machine's)
    costed = [s for s in measured if first_bad is None or s.calls < first_bad]
    cpu_slope, cpu_icpt, mem_slope, mem_icpt = fit([base, *costed]) if costed else (math.nan,) * 4
    vcpus = args.cpu_m / 1000
    return {
        "cpu_m_per_call": round(cpu_slope, 1),
        "mem_mib_per_call": round(mem_slope, 1),
        "base_cpu_m": round(base.cpu_m, 1),
        "base_mem_mib": round(base.working_set_mib, 1),
        "calls_at_quality_limit_per_vcpu": round(limit / vcpus, 2),
        "quality_limit_calls": limit,
        "steps_with_quality_lost_to_the_machine": [s.calls for s in measured if s.verdict == "machine"],
        "first_pod_bound_failure_calls": first_bad,
        "limited_by": limited_by(measured, first_bad, args.memory_mi),
        "fit_intercept_cpu_m": round(cpu_icpt, 1),
        "fit_intercept_mem_mib": round(mem_icpt, 1),
        "cpu_limit_m": args.cpu_m,
        "memory_limit_mi": args.memory_mi,
        "steps": [{k: _finite(v) for k, v in s.__dict__.items()} for s in steps],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-m", type=int, default=1000, help="the worker's CPU quota (millicores)")
    parser.add_argument("--memory-mi", type=int, default=4096, help="the worker's memory limit (MiB)")
    parser.add_argument("--max-calls", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--latency-budget-ms", type=float, default=250.0)
    parser.add_argument("--out", type=Path, help="also write the JSON, with the run's facts, here")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if os.geteuid() != 0:
        print("needs root: it creates cgroups and namespaces", file=sys.stderr)
        return 2
    pace_replies()
    print(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} host={socket.gethostname()} cpus={os.cpu_count()} "
          f"kernel={platform.release()} loadavg={os.getloadavg()[0]:.2f} cgroup=v1 "
          f"limit={args.cpu_m}m/{args.memory_mi}Mi", flush=True)
    work = Path(tempfile.mkdtemp(prefix="capacity-bench-"))
    box = CgroupBox(f"capacity-bench-{os.getpid()}", args.cpu_m, args.memory_mi).create()
    box.join_world()
    server = start_livekit_server(work / "server")
    try:
        with google_stand_ins(work, Behaviour(reply_seconds=REPLY_S)) as (_live, google_env):
            env = worker_env(server, fake_gemini=False, extra={
                "HOME": str(work), "TMPDIR": str(work), **google_env,
                # nobody talks to the model long enough to hit these; quiet callers never end
                "AGENT_SILENCE_TIMEOUT_SECONDS": "3600",
            })
            worker = start_worker(contract_argv(), env, log_path=work / "worker.log", cgroup=box.group)
            try:
                wait_until_registered(worker, timeout=90)
                steps = asyncio.run(run_steps(server, box, worker, args))
            finally:
                worker.stop()
    finally:
        server.stop()
        box.remove()
        shutil.rmtree(work, ignore_errors=True)
    result = summarise(steps, args)
    result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    if args.out:
        facts = {"date": started, "machine": f"{socket.gethostname()}: {os.cpu_count()} CPUs, "
                 f"{platform.processor() or platform.machine()}, kernel {platform.release()}, cgroup v1",
                 "command": "agent/.venv/bin/python agent/bench/capacity.py " + " ".join(sys.argv[1:])}
        args.out.write_text(json.dumps({**facts, **result}, indent=1) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
