"""The Ray engine: a pool of Ray actors, each holding one compiled `Checker` (and whatever models its readers
load: the VAD, an ASR engine) for all the units it is given.

Two ways to drive the pool (``pipeline``):

- ``actors`` (the default): the driver keeps every actor fed with at most two units (one running, one queued,
  so an actor never waits for the driver) and collects results with ``ray.wait``. Units are tiny (a path
  and a byte range); each actor reads its own input. Nothing else runs on the cluster, so no CPU has to be
  kept free. An actor that dies (killed, out of memory, a crashing library) is replaced by a new one and
  the units it held are given out again: a unit's results reach the driver once (a unit whose result
  arrived is never resent), so no call is lost or scored twice. This is done here rather than with Ray's
  ``max_restarts``/``max_task_retries`` so that a unit that kills every actor it meets stops after
  `UNIT_TRIES` and becomes a row of the errors table instead of retrying forever.
- ``data``: a Ray Data pipeline (`from_items`, one unit per block, `map_batches` with `ActorPoolStrategy`).
  It also works, but on small machines its executor thread and block conversions cost the driver CPU the
  actors need (docs/scale.md has the figures); kept for clusters where Ray Data is the house standard.

Sizing, so that a small machine always makes progress: at most one actor per cluster CPU, each asking for a
fraction of a CPU (the driver and Ray's daemons need some too); with ``data`` one CPU stays free for Ray
Data's own tasks. With ``gpus_per_actor`` every actor also asks for that share of a GPU, so on a cluster
with GPU nodes the actors (and the ASR model each loads) are placed there; four actors share a GPU at 0.25.
Without it (``None``), a run that transcribes (``--asr``) on a cluster that has GPUs asks for them by itself
(`gpu_share`: an equal share, at most `ACTORS_PER_GPU` actors a GPU), and an actor given a real GPU runs a
faster-whisper model without a ``device`` on it (`asr_on_gpu`); a run without ASR never asks for GPUs.
Memory stays flat however big the input is: units are ~1 MB, at most two per actor are in flight, and the
driver commits a part every `part_calls` calls.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..batch import Unit
from .work import EngineError, Job, Scored, Scorer

__all__ = ["PIPELINES", "RayEngine"]

PIPELINES = ("actors", "data")
IN_FLIGHT = 2  # units queued per actor: one running, one waiting
UNIT_TRIES = 3  # a unit whose actor died is given to a new actor, at most this many times in all
ACTORS_PER_GPU = 4  # GPUs asked for by themselves: at most this many ASR actors (one model each) share a GPU


def gpu_share(requested: float | None, asr: bool, cluster_gpus: float, actors: int) -> float:
    """The GPUs each actor asks Ray for: `requested` (``--gpus-per-actor``) when given; else, for a run that
    transcribes on a cluster with GPUs, an equal share 1/k of a GPU (k actors a GPU, 1 ≤ k ≤ `ACTORS_PER_GPU`),
    so the ASR actors are placed on the GPU nodes; else 0 (text, acoustic analysis only, or no GPU)."""
    if requested is not None:
        return requested
    if not asr or cluster_gpus < 1 or actors < 1:
        return 0.0
    per_gpu = -(-actors // int(cluster_gpus))  # actors per GPU, rounded up
    return 1.0 / min(max(per_gpu, 1), ACTORS_PER_GPU)


def asr_on_gpu(spec: str, cuda_devices: int) -> str:
    """The ASR spec an actor given a GPU uses: a faster-whisper model with no ``device`` runs on CUDA when
    CUDA devices are visible; any other spec (an explicit device, sherpa-onnx, no CUDA) is kept."""
    if cuda_devices < 1 or not spec.lower().startswith(("faster-whisper:", "faster_whisper:")):
        return spec
    from ..audio.asr import parse_spec

    _, _, options = parse_spec(spec)
    if "device" in options:
        return spec
    return spec + ("&" if options else "?") + "device=cuda"


def _job_on_gpu(job: Job) -> Job:
    """`job` for an actor: with ``--asr`` and a GPU from Ray that CUDA sees, the model goes on it."""
    import dataclasses

    import ray

    spec = job.read_options.get("asr")
    if not spec or not ray.get_gpu_ids():
        return job
    try:
        import ctranslate2  # faster-whisper's engine

        devices = int(ctranslate2.get_cuda_device_count())
    except Exception:  # noqa: BLE001 - no CUDA build or no driver: the CPU it is
        devices = 0
    on_gpu = asr_on_gpu(spec, devices)
    return job if on_gpu == spec else dataclasses.replace(job, read_options={**job.read_options, "asr": on_gpu})


class ScoringActor:
    """One worker of the ``actors`` pipeline (made a Ray actor class by `RayEngine`)."""

    def __init__(self, job: Job) -> None:
        self.scorer = Scorer(_job_on_gpu(job))
        self.pid = os.getpid()

    def score(self, index: int, unit: Unit) -> Scored:
        return self.scorer(index, unit)

    def ready(self) -> int:
        return self.pid

    def info(self) -> dict[str, Any]:
        """Where this actor runs and what it loaded (the tests check that models load once per actor)."""
        import ray

        ctx = ray.get_runtime_context()
        return {"pid": self.pid, "node": ctx.get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                **self.scorer.loads()}


class _RayScorer:
    """The ``data`` pipeline's callable class: built once per actor, called with batches of one unit."""

    def __init__(self, job_bytes: bytes) -> None:
        self.scorer = Scorer(_job_on_gpu(pickle.loads(job_bytes)))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for i in range(len(batch["index"])):
            unit: Unit = pickle.loads(batch["unit"][i])  # a file, a JSONL slice or the files of one call
            out.append(pickle.dumps(self.scorer(int(batch["index"][i]), unit), protocol=pickle.HIGHEST_PROTOCOL))
        return {"payload": out}


class RayEngine:
    """Connects to a cluster (``address``: ``auto``, ``ray://host:10001``) or starts a local Ray."""

    def __init__(self, address: str | None = None, *, concurrency: int | None = None, num_cpus: int | None = None,
                 cpus_per_actor: float | None = None, gpus_per_actor: float | None = None, pipeline: str = "actors",
                 num_gpus: int | None = None) -> None:
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown Ray pipeline {pipeline!r} ({' or '.join(PIPELINES)})")
        self.address = address
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.cpus_per_actor = cpus_per_actor
        self.gpus_per_actor = gpus_per_actor  # None: `gpu_share` decides when the run starts
        self.gpus = 0.0  # what each actor of this run asks for
        self.pipeline = pipeline
        self.actors: list[Any] = []
        self.actors_ready_seconds: float | None = None  # all actors of the pool started
        self.first_ready_seconds: float | None = None  # the first one started
        self.worker_info: list[dict[str, Any]] = []  # per actor: pid, node, GPU ids, units, ASR loads
        self.lost = 0  # actors that died during the run (each replaced, its units given out again)
        self._started_here = False
        self._stopping = threading.Event()
        self._job_ref: Any = None

    def start(self) -> None:
        import logging

        import ray

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-run INFO lines on the console
        if ray.is_initialized():
            return
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        address = self.address or os.environ.get("RAY_ADDRESS")
        if address:
            kw["address"] = address
        else:  # a new local Ray for this run: small object store, this machine's CPUs (or num_cpus)
            # and its actors at normal priority, as `--jobs` workers are: Ray lowers its workers to nice 15
            # by default, which on a busy machine hands their CPU to every other process (docs/scale.md)
            os.environ.setdefault("RAY_worker_niceness", "0")
            kw["address"] = "local"
            kw["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            kw["object_store_memory"] = 256 * 1024 * 1024
            if self.num_gpus is not None:
                kw["num_gpus"] = self.num_gpus
        ray.init(**kw)
        self._started_here = True

    def stop(self) -> None:
        self._stopping.set()
        import ray

        if ray.is_initialized():
            for a in self.actors:
                ray.kill(a)
        self.actors = []
        if self._started_here:
            ray.shutdown()
            self._started_here = False

    def sizing(self) -> tuple[int, float]:
        """(actors, CPUs per actor) for this cluster."""
        import ray

        total = float(ray.cluster_resources().get("CPU", 1.0))
        actors = self.concurrency or max(1, int(total))
        if self.cpus_per_actor is not None:
            return actors, self.cpus_per_actor
        if self.pipeline == "data":  # leave one CPU for Ray Data's own tasks; at most one CPU per actor
            per = min(1.0, max(0.1, (total - 1.0) / actors)) if total > 1 else 0.5
        else:  # the driver and Ray's daemons need a little of every small machine
            per = min(1.0, max(0.1, total * 0.9 / actors))
        return actors, round(per, 3)

    def remote_options(self, per: float) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": per}
        if self.gpus:
            opts["num_gpus"] = self.gpus
        return opts

    def decide_gpus(self, job: Job, actors: int) -> float:
        """Set and return the GPUs each actor of this run asks for (`gpu_share` on this cluster)."""
        import ray

        cluster = float(ray.cluster_resources().get("GPU", 0.0))
        self.gpus = gpu_share(self.gpus_per_actor, bool(job.read_options.get("asr")), cluster, actors)
        return self.gpus

    def run(self, units: list[Unit], job: Job) -> Iterator[Scored]:
        """Scored units as they finish (not in input order)."""
        if not units:
            return
        if self.pipeline == "data":
            yield from self._run_data(units, job)
        else:
            yield from self._run_actors(units, job)

    def make_actors(self, job: Job, count: int) -> list[Any]:
        """`count` scoring actors of this engine's size (each builds its `Scorer` once)."""
        import ray

        _, per = self.sizing()
        cls = ray.remote(ScoringActor)
        if self._job_ref is None:
            self._job_ref = ray.put(job)  # once for all actors: the skip list can be big
        made = [cls.options(**self.remote_options(per)).remote(self._job_ref) for _ in range(count)]
        self.actors.extend(made)
        return made

    def _run_actors(self, units: list[Unit], job: Job) -> Iterator[Scored]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        actors, _ = self.sizing()
        self.decide_gpus(job, min(actors, len(units)))
        if self.gpus_per_actor and self._started_here and not ray.cluster_resources().get("GPU"):
            raise EngineError(f"每个 actor 要求 {self.gpus_per_actor:g} 个 GPU，但本机启动的 Ray 没有 GPU；"
                              "去掉 --gpus-per-actor，或用 --address 连接有 GPU 节点的集群")
        self._job_ref = None
        t0 = time.perf_counter()
        starting = {a.ready.remote(): a for a in self.make_actors(job, min(actors, len(units)))}
        live: list[Any] = []  # actors that have started: only they are given units (one the cluster
        # cannot place, e.g. no GPU free, holds none back)
        todo = list(reversed(list(enumerate(units))))  # popped from the end: input order
        tries: dict[int, int] = {}
        pending: dict[Any, tuple[Any, int, Unit]] = {}  # result ref -> (actor, index, unit)
        failed: list[str] = []

        def top_up() -> None:  # every live actor holds IN_FLIGHT units while there are any
            busy: dict[Any, int] = {}
            for a, _, _ in pending.values():
                busy[a] = busy.get(a, 0) + 1
            for _ in range(IN_FLIGHT):
                for a in live:
                    if busy.get(a, 0) < IN_FLIGHT and todo:
                        busy[a] = busy.get(a, 0) + 1
                        i, u = todo.pop()
                        tries[i] = tries.get(i, 0) + 1
                        pending[a.score.remote(i, u)] = (a, i, u)

        while (pending or (todo and starting)) and not self._stopping.is_set():
            done, _ = ray.wait([*pending, *starting], num_returns=1, timeout=1.0)
            for ref in done:
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                    except (RayActorError, RayTaskError) as exc:  # its constructor failed
                        failed.append(str(exc))
                        continue
                    live.append(actor)
                    if self.first_ready_seconds is None:
                        self.first_ready_seconds = time.perf_counter() - t0
                    if not starting:
                        self.actors_ready_seconds = time.perf_counter() - t0
                    top_up()
                    continue
                actor, i, u = pending.pop(ref)
                try:
                    scored = ray.get(ref)
                except RayActorError as exc:  # the process died (out of memory, a crashing library)
                    if tries[i] >= UNIT_TRIES:
                        yield Scored(i, [("error", u.path, None, f"处理该输入的工作进程 {UNIT_TRIES} 次异常退出："
                                                               f"{type(exc).__name__}")], 0.0)
                    else:
                        todo.append((i, u))
                    if actor in live:  # replace the dead actor; its other units come back here too
                        live.remove(actor)
                        self.lost += 1
                        starting.update({a.ready.remote(): a for a in self.make_actors(job, 1)})
                    top_up()
                    continue
                except RayTaskError as exc:  # a bug, not the input's fault: the unit is an error row
                    scored = Scored(i, [("error", u.path, None, f"评分失败：{exc.cause!r}")], 0.0)
                top_up()
                yield scored
        if todo and not self._stopping.is_set():  # no actor could start: say why instead of losing units
            raise EngineError("Ray 评分 actor 无法启动：" + (failed[-1] if failed else "原因不明"))
        if not self._stopping.is_set() and live:  # what each actor loaded and did, for the run manifest
            try:
                self.worker_info = ray.get([a.info.remote() for a in live], timeout=30)
            except Exception:  # noqa: BLE001 - a report, never a reason to fail the run
                self.worker_info = []

    def _run_data(self, units: list[Unit], job: Job) -> Iterator[Scored]:
        import ray

        actors, per = self.sizing()
        self.decide_gpus(job, min(actors, len(units)))
        items = [{"index": i, "unit": pickle.dumps(u, protocol=pickle.HIGHEST_PROTOCOL)} for i, u in enumerate(units)]
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        source = ray.data.from_items(items, override_num_blocks=len(items))
        ds = source.map_batches(_RayScorer, fn_constructor_kwargs={"job_bytes": pickle.dumps(job)}, batch_size=1,
                                batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(actors, len(items))),
                                **self.remote_options(per))
        for row in ds.iter_rows():
            yield pickle.loads(row["payload"])
