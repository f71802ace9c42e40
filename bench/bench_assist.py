"""Live assist under load: N concurrent calls streamed into `kefuqa serve`'s WebSocket at real speed and
faster, latency from an utterance frame's sending to its guidance frame (p50/p99), server CPU per live
call and memory per live call. Baseline in the same run: the cost of one live step (`LiveSession`) against
re-checking the whole call so far with `Checker.check` for every utterance (what a naive live checker does).

    .venv/bin/python bench/bench_assist.py --calls 200 --seconds 20 --speeds 1,10 [--drops 20]
    .venv/bin/python bench/bench_assist.py --audio --calls 1,10     # the audio path (bench_assist_audio.py)

The client runs on the same machine as the server (2 cores here): its work is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kefuqa.engine import Checker
from kefuqa.errors import InputError
from kefuqa.live import LiveSession, compile_guidance, live_rules, load_guidance
from kefuqa.live.frames import frames, start_frame
from kefuqa.model import Conversation
from kefuqa.readers import iter_paths, read_path
from kefuqa.rules.rulebook import load_rulebook

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Bench-assist-11!"
SERVER_PID = [0]
SENT: list[float] = []  # when each measured utterance was sent (perf_counter), parallel to the latencies
PEAK = [0.0]
RESUMED: list[tuple[int, int, int]] = []  # calls dropped and resumed: (guidance items, lost, duplicated)


def conversations() -> list[Conversation]:
    out = [c for p in iter_paths([ROOT / "examples"]) for c in read_path(p)
           if not isinstance(c, InputError) and c.timed and len(c.utterances) >= 6]
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def step_baseline(convs: list[Conversation]) -> None:
    rb = load_rulebook("standard")
    checker = Checker(rb)
    g = load_guidance("standard", {r.id for r in rb.rules})
    comp, ids = compile_guidance(g), live_rules(checker)
    live: list[float] = []
    naive: list[float] = []
    long = [c for c in convs for _ in range(1)]
    for conv in long:
        utts = conv.utterances * max(1, 60 // len(conv.utterances))  # a 60-turn call
        s = LiveSession(checker, g, {"id": conv.id}, compiled=comp, live_ids=ids)
        t = 0.0
        for i, u in enumerate(utts):
            dur = u.duration or 2.0
            t0 = time.perf_counter()
            s.utterance(u.role, u.text or "", t, t + dur)
            live.append(time.perf_counter() - t0)
            prefix = Conversation(id="x", utterances=[{"role": x.role, "text": x.text, "start": 0.0, "end": 1.0}
                                                      for x in utts[: i + 1]])
            t0 = time.perf_counter()
            checker.check(prefix)
            naive.append(time.perf_counter() - t0)
            t += dur + 0.5
    print(f"one live step (60-turn calls, {len(live)} steps): p50 {pct(live, .5) * 1e3:.2f} ms, "
          f"p99 {pct(live, .99) * 1e3:.2f} ms; full re-check of the call so far: p50 {pct(naive, .5) * 1e3:.2f} ms, "
          f"p99 {pct(naive, .99) * 1e3:.2f} ms (ratio p50 {pct(naive, .5) / pct(live, .5):.2f}x)")


def proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds (user+system) and RSS MiB of a process and its children threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


async def one_call(url: str, token: str, conv: Conversation, call_id: str, speed: float, seconds: float,
                   delay: float, lat: list[float], errors: list[str], drop: bool = False,
                   resumed: list[tuple[int, int, int]] | None = None) -> None:
    """One call streamed at `speed`; with `drop`, its connection is cut halfway (a frame sent, its answer
    never read) and the call resumed on a new one: every guidance item must then arrive exactly once
    (`resumed` gets (items, lost, duplicated))."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    await asyncio.sleep(delay)
    plan = [(at, f) for at, f in frames(conv, tick=None) if f["type"] != "hangup" and at / speed <= seconds]
    cut = len(plan) // 2 if drop and len(plan) >= 4 else None
    pending: dict[int, float] = {}
    seqs: list[int] = []  # every guidance item received, by seq
    sent: list[dict] = []  # every numbered frame sent (resent after a reconnect when not received)
    headers = {"Authorization": f"Bearer {token}"}

    async def open_call(after_seq: int | None) -> tuple[Any, dict, asyncio.Task]:
        ws = await connect(url, additional_headers=headers, max_size=2**22, open_timeout=60)
        start = start_frame(conv, call_id)
        if after_seq is not None:
            start["resume"] = {"after_seq": after_seq}
        await ws.send(json.dumps(start, ensure_ascii=False))
        ready = json.loads(await ws.recv())

        async def reader() -> None:
            try:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "guidance":
                        seqs.extend(i["seq"] for i in msg["items"])
                        if msg.get("ack") in pending:
                            sent_at = pending.pop(msg["ack"])
                            lat.append(time.perf_counter() - sent_at)
                            SENT.append(sent_at)
                    elif msg["type"] == "error":
                        errors.append(msg["code"])
                        if msg["code"] == "empty":  # hung up before a word was said: nothing to report
                            return
                    elif msg["type"] == "ended":
                        return
            except ConnectionClosed:
                return

        return ws, ready, asyncio.create_task(reader())

    ws, _ready, task = await open_call(None)
    t0 = time.monotonic()
    last_tick = 0.0
    n = 0

    async def send(f: dict) -> None:
        sent.append(f)
        if f["type"] == "utterance" and f.get("final", True):
            pending[f["n"]] = time.perf_counter()
        await ws.send(json.dumps(f, ensure_ascii=False))

    for k, (at, f) in enumerate(plan):
        while True:
            now = time.monotonic() - t0
            wait = at / speed - now
            if now - last_tick >= 1.0:  # a tick per wall second, as a client's timer would send
                last_tick = now
                n += 1
                await send({"type": "tick", "n": n, "t": round(now * speed, 2)})
            if wait <= 0:
                break
            await asyncio.sleep(min(wait, 1.0))
        n += 1
        await send({**f, "n": n})
        if k == cut:  # the line drops: this frame's answer is lost with the connection
            ws.transport.abort()
            await task
            ws, ready, task = await open_call(max(seqs, default=0))
            for g in [g for g in sent if g["n"] > ready["received"]]:
                pending.pop(g["n"], None)  # its latency would include the reconnect
                await ws.send(json.dumps(g, ensure_ascii=False))
    rest = seconds - (time.monotonic() - t0)
    if rest > 0:
        await asyncio.sleep(rest)
    n += 1
    await ws.send(json.dumps({"type": "hangup", "n": n}))
    await asyncio.wait_for(task, 120)
    await ws.close()
    if drop and resumed is not None:
        top = max(seqs, default=0)
        resumed.append((top, len(set(range(1, top + 1)) - set(seqs)), len(seqs) - len(set(seqs))))


async def load(url: str, token: str, convs: list[Conversation], calls: int, speed: float, seconds: float,
               tag: str, drops: int = 0) -> tuple[list[float], list[str]]:
    lat: list[float] = []
    errors: list[str] = []
    peak = [0.0]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], proc_stats(SERVER_PID[0])[1])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    every = max(1, calls // drops) if drops else 0
    jobs = [one_call(url, token, convs[i % len(convs)], f"bench-{tag}-{i}", speed, seconds, 2.0 * i / calls, lat,
                     errors, drop=bool(every) and i % every == every - 1, resumed=RESUMED) for i in range(calls)]
    await asyncio.gather(*jobs)
    sampler.cancel()
    PEAK[0] = peak[0]
    return lat, errors


def main() -> None:
    if "--audio" in sys.argv:  # the audio path (PCM frames, VAD, ASR per segment): bench_assist_audio.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_assist_audio import main as audio_main

        audio_main([a for a in sys.argv[1:] if a != "--audio"])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0, help="wall seconds each load runs")
    ap.add_argument("--speeds", default="1,10")
    ap.add_argument("--port", type=int, default=8733)
    ap.add_argument("--database-url", default=None, help="e.g. postgresql+psycopg://…; default: SQLite in a temp dir")
    ap.add_argument("--server-src", default=None,
                    help="run the server from another source tree (e.g. an older commit's src/) for an A/B")
    ap.add_argument("--baseline-calls", type=int, default=5, help="a light load run first, as the baseline")
    ap.add_argument("--drops", type=int, default=0,
                    help="this many calls of each load lose their connection halfway and resume (lost/duplicated "
                         "guidance counted)")
    args = ap.parse_args()
    convs = conversations()
    step_baseline(convs)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "KEFUQA_DATA_DIR": tmp, "KEFUQA_ADMIN_PASSWORD": PASSWORD}
        if args.database_url:
            env["KEFUQA_DATABASE_URL"] = args.database_url
        if args.server_src:
            env["PYTHONPATH"] = args.server_src
            print(f"server from {args.server_src}")
        srv = subprocess.Popen([sys.executable, "-m", "kefuqa.cli", "serve", "--port", str(args.port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        SERVER_PID[0] = srv.pid
        try:
            base = f"http://127.0.0.1:{args.port}"
            for _ in range(600):  # a loaded machine may take a while to start the server
                try:
                    urllib.request.urlopen(base + "/login", timeout=1)
                    break
                except Exception:
                    time.sleep(0.2)
            req = urllib.request.Request(base + "/api/auth/login", data=json.dumps(
                {"username": "admin", "password": PASSWORD}).encode(), headers={"content-type": "application/json"})
            token = json.load(urllib.request.urlopen(req))["token"]
            url = f"ws://127.0.0.1:{args.port}/api/assist/v1/ws"
            asyncio.run(load(url, token, convs, 4, 50.0, 2.0, "warm"))  # compile the rulebook, warm caches
            loads = [(args.baseline_calls, 1.0, "baseline ")] if args.baseline_calls else []
            loads += [(args.calls, float(s), "") for s in args.speeds.split(",")]
            base_p99 = None
            for calls, speed, label in loads:
                time.sleep(5)  # the previous load's hung-up calls are stored by now
                cpu0, rss0 = proc_stats(srv.pid)
                t0 = time.perf_counter()
                SENT.clear()
                RESUMED.clear()
                lat, errors = asyncio.run(load(url, token, convs, calls, speed, args.seconds, f"x{speed:g}-{calls}",
                                               0 if label else args.drops))
                wall = time.perf_counter() - t0
                cpu1, rss1 = proc_stats(srv.pid)
                if base_p99 is None:
                    base_p99 = pct(lat, .99)
                print(f"{label}{calls} calls at {speed:g}x for {args.seconds:g} s: {len(lat)} utterances, "
                      f"latency p50 {pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms; "
                      f"(p99 {pct(lat, .99) / base_p99:.1f}x the baseline's); "
                      f"server CPU {(cpu1 - cpu0) / wall / calls * 1e3:.2f} ms per second per call "
                      f"({(cpu1 - cpu0) / wall * 100:.0f} % of one core); peak RSS {PEAK[0]:.0f} MiB "
                      f"(+{(PEAK[0] - rss0) / calls * 1024:.0f} KiB per live call); "
                      f"errors {len(errors)} {sorted(set(errors))}")
                # steady state: leave out the first 3 s (200 connections opening) and the last 3 s (hang-ups)
                steady = [x for x, at in zip(lat, SENT, strict=True) if t0 + 3 <= at <= t0 + 2 + args.seconds - 3]
                if RESUMED:
                    print(f"  reconnects: {len(RESUMED)} calls cut halfway and resumed, "
                          f"{sum(r[0] for r in RESUMED)} guidance items: lost {sum(r[1] for r in RESUMED)}, "
                          f"duplicated {sum(r[2] for r in RESUMED)}")
                print(f"  steady state ({len(steady)} utterances): p50 {pct(steady, .5) * 1e3:.1f} ms, "
                      f"p99 {pct(steady, .99) * 1e3:.1f} ms; load average {os.getloadavg()[0]:.1f} on "
                      f"{os.cpu_count()} cores")
        finally:
            srv.terminate()
            srv.wait(10)


if __name__ == "__main__":
    main()
