"""Live assist's audio path under load (`bench_assist.py --audio` runs this): N concurrent calls stream
stereo 8 kHz L16 frames (espeak-ng speech, 20 ms frames at real speed) into `/api/assist/v1/audio` of a
server in its own process; for every utterance, the latency from the end of speech to its guidance frame,
EXCLUDING ASR (the ASR stage's wall time, queueing included, is reported by the server and taken off):

- from the last voiced 20 ms frame's sending: the hangover (silence that ends an utterance) + VAD + the rest;
- from the frame that closed the segment (end of speech detected): queueing, sequencing, the live step, send;
- the server's own measure of the latter (`pipeline_ms`).

Server CPU per live audio call (streaming VAD on both channels) in the same run. The ASR is a stand-in that
answers at once (`--asr standin`, the default: what is measured is everything but ASR), or a real engine
(`--asr faster-whisper:/path`), whose time is then shown apart.

    flock /tmp/bench.lock .venv/bin/python bench/bench_assist.py --audio --calls 1,10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from kefuqa.live.audio import HANGOVER

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
PASSWORD = "Bench-assist-audio-11!"
RATE = 8000
FRAME = 0.02
LAG: list[float] = []  # how late the client sent each frame (a loaded client is late)

TURNS = [("agent", "Hello thank you for calling how can I help you today"),
         ("customer", "My internet is not working since yesterday evening"),
         ("agent", "I am sorry to hear that let me check your line"),
         ("customer", "Thank you I will wait"),
         ("agent", "Your line is fixed now is there anything else")]
TEXTS = ["您好，请问有什么可以帮您？", "我家网络从昨天就断了", "我不是跟你说过了吗", "好的我等一下", "已经修好了，还有其他可以帮您的吗？"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def call_audio() -> tuple[list[bytes], float]:
    import audio_synth as synth
    from kefuqa.live.audio import pcm_frames

    parts = [np.zeros((2, int(0.5 * RATE)), np.float32)]
    for role, text in TURNS:
        x = synth.speak(text, voice="en" if role == "agent" else "en+f3", sample_rate=RATE)
        block = np.zeros((2, x.size), np.float32)
        block[0 if role == "customer" else 1] = x
        parts += [block, np.zeros((2, int(0.9 * RATE)), np.float32)]
    x = np.concatenate(parts, axis=1)
    return pcm_frames(x, RATE, int(FRAME * 1000)), x.shape[1] / RATE


class StandIn:
    name = "stand-in"

    def __init__(self) -> None:
        self.k = 0

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> Any:
        from kefuqa.audio.asr import TranscriptPiece

        self.k += 1
        return TranscriptPiece(text=TEXTS[self.k % len(TEXTS)])


def serve(port: int, asr: str, data: str) -> None:
    """The server process: `kefuqa serve`'s app, with the audio path's ASR set."""
    import uvicorn

    from kefuqa.service.app import create_app
    from kefuqa.service.assist_audio import AudioConfig
    from kefuqa.service.config import Settings
    from kefuqa.service.workbench import Workbench

    os.environ["KEFUQA_DATA_DIR"] = data
    os.environ["KEFUQA_ADMIN_PASSWORD"] = PASSWORD
    settings = Settings.from_env()
    wb = Workbench(settings)
    wb.setup()
    app = create_app(settings, wb)
    cfg = AudioConfig(asr=None if asr == "standin" else asr, max_speed=4.0)
    if asr == "standin":
        cfg.transcriber = StandIn()
    app.state.assist_audio = cfg
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def proc_stats(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    rss = next(int(ln.split()[1]) / 1024 for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
               if ln.startswith("VmRSS:"))
    return (int(fields[11]) + int(fields[12])) / tick, rss


async def one_call(url: str, token: str, frames: list[bytes], call_id: str, delay: float,
                   rows: list[dict[str, float]], errors: list[str]) -> None:
    from websockets.asyncio.client import connect

    await asyncio.sleep(delay)
    sent = [0.0] * len(frames)
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=2**22,
                       open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "start", "v": 1, "call": {"id": call_id, "direction": "inbound"},
                                  "audio": {"rate": RATE, "channels": 2, "roles": ["customer", "agent"]}}))
        ready = json.loads(await ws.recv())
        if ready["type"] != "ready":
            errors.append(ready.get("code", "?"))
            return

        async def reader() -> None:
            async for raw in ws:
                t = time.perf_counter()
                msg = json.loads(raw)
                u = msg.get("utterance")
                if msg["type"] == "guidance" and u:
                    k_end = min(len(sent) - 1, int(u["end"] / FRAME))
                    k_close = min(len(sent) - 1, int(u["closed_at"] / FRAME - 1e-9))
                    asr = u["asr_wall_ms"] / 1000
                    rows.append({"speech_end": t - sent[k_end] - asr, "detected": t - sent[k_close] - asr,
                                 "pipeline": u["pipeline_ms"] / 1000, "asr": asr, "asr_engine": u["asr_ms"] / 1000})
                elif msg["type"] == "error":
                    errors.append(msg["code"])
                elif msg["type"] == "ended":
                    return

        task = asyncio.create_task(reader())
        t0 = time.perf_counter()
        for k, b in enumerate(frames):
            wait = t0 + k * FRAME - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            sent[k] = time.perf_counter()
            LAG.append(sent[k] - (t0 + k * FRAME))
            await ws.send(b)
        await ws.send(json.dumps({"type": "hangup", "n": 1}))
        await asyncio.wait_for(task, 300)


async def load(url: str, token: str, frames: list[bytes], calls: int, tag: str
               ) -> tuple[list[dict[str, float]], list[str]]:
    rows: list[dict[str, float]] = []
    errors: list[str] = []
    await asyncio.gather(*[one_call(url, token, frames, f"audio-{tag}-{i}", 2.0 * i / calls, rows, errors)
                           for i in range(calls)])
    return rows, errors


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="1,20", help="concurrent calls per run, comma-separated")
    ap.add_argument("--asr", default="standin", help="standin, or an ASR spec such as faster-whisper:/path")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", default="", help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args(argv)
    if args.serve:
        serve(args.port, args.asr, args.data)
        return
    frames, seconds = call_audio()
    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        srv = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--asr", args.asr,
                                "--data", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    urllib.request.urlopen(base + "/login", timeout=1)
                    break
                except Exception:
                    time.sleep(0.2)
            req = urllib.request.Request(base + "/api/auth/login", data=json.dumps(
                {"username": "admin", "password": PASSWORD}).encode(), headers={"content-type": "application/json"})
            token = json.load(urllib.request.urlopen(req))["token"]
            url = f"ws://127.0.0.1:{port}/api/assist/v1/audio"
            asyncio.run(load(url, token, frames[: int(4 / FRAME)], 1, "warm"))  # load the VAD, the rulebook
            print(f"audio path: {seconds:.1f} s stereo 8 kHz calls, {len(TURNS)} utterances each, 20 ms frames at "
                  f"real speed; ASR {args.asr}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            for n in [int(c) for c in args.calls.split(",")]:
                time.sleep(3)
                cpu0, _ = proc_stats(srv.pid)
                LAG.clear()
                t0 = time.perf_counter()
                rows, errors = asyncio.run(load(url, token, frames, n, f"n{n}"))
                wall = time.perf_counter() - t0
                cpu1, rss = proc_stats(srv.pid)
                col = {k: [r[k] for r in rows] for k in ("speech_end", "detected", "pipeline", "asr", "asr_engine")}
                print(f"{n} concurrent calls: {len(rows)} utterances (expected {n * len(TURNS)}); "
                      f"end of speech → guidance excluding ASR: p50 {pct(col['speech_end'], .5) * 1e3:.0f} ms, "
                      f"p99 {pct(col['speech_end'], .99) * 1e3:.0f} ms (hangover {HANGOVER * 1e3:.0f} ms included); "
                      f"from end of speech detected: p50 {pct(col['detected'], .5) * 1e3:.0f} ms, "
                      f"p99 {pct(col['detected'], .99) * 1e3:.0f} ms; server pipeline p50 "
                      f"{pct(col['pipeline'], .5) * 1e3:.1f} ms, p99 {pct(col['pipeline'], .99) * 1e3:.1f} ms; "
                      f"ASR wall p50 {pct(col['asr'], .5) * 1e3:.0f} ms (engine {pct(col['asr_engine'], .5) * 1e3:.0f} ms); "
                      f"server CPU {(cpu1 - cpu0) / wall / n * 1e3:.0f} ms per second per call "
                      f"({(cpu1 - cpu0) / wall * 100:.0f} % of one core), RSS {rss:.0f} MiB; "
                      f"errors {len(errors)} {sorted(set(errors))}; client sending late by p99 "
                      f"{pct(LAG, .99) * 1e3:.0f} ms")
        finally:
            srv.terminate()
            srv.wait(10)


if __name__ == "__main__":
    main()
