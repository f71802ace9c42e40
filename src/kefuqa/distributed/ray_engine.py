"""The Ray engine: units go through a Ray Data pipeline whose map step is a pool of actors, each holding one
compiled `Checker` (and whatever models its readers load) for all the units it is given.

Sizing, so that a small machine always makes progress: each actor asks for a fraction of a CPU, leaving at
least one CPU of the cluster free for Ray Data's own tasks, and the pool has at most as many actors as the
cluster has CPUs (``concurrency`` sets it). Every unit is its own block, so all actors get work; Ray Data's
backpressure keeps a bounded number of units in flight (memory stays flat however big the input is).
On a cluster with GPUs, recordings that need ASR can ask for them with ``num_gpus`` per actor.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from typing import Any

from ..batch import Unit
from .work import Job, Scored, Scorer

__all__ = ["RayEngine"]


class _RayScorer:
    """The map step's callable class: built once per actor, called with batches of one unit."""

    def __init__(self, job_bytes: bytes) -> None:
        self.scorer = Scorer(pickle.loads(job_bytes))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for i in range(len(batch["index"])):
            unit: Unit = pickle.loads(batch["unit"][i])  # a file, a JSONL slice or the files of one call
            out.append(pickle.dumps(self.scorer(int(batch["index"][i]), unit), protocol=pickle.HIGHEST_PROTOCOL))
        return {"payload": out}


class RayEngine:
    """Connects to a cluster (``address``: ``auto``, ``ray://host:10001``) or starts a local Ray."""

    def __init__(self, address: str | None = None, *, concurrency: int | None = None, num_cpus: int | None = None,
                 cpus_per_actor: float | None = None, gpus_per_actor: float = 0.0) -> None:
        self.address = address
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.cpus_per_actor = cpus_per_actor
        self.gpus_per_actor = gpus_per_actor
        self._started_here = False

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
            kw["address"] = "local"
            kw["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            kw["object_store_memory"] = 256 * 1024 * 1024
        ray.init(**kw)
        self._started_here = True

    def stop(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False

    def sizing(self) -> tuple[int, float]:
        """(actors, CPUs per actor) for this cluster."""
        import ray

        total = float(ray.cluster_resources().get("CPU", 1.0))
        actors = self.concurrency or max(1, int(total))
        if self.cpus_per_actor is not None:
            return actors, self.cpus_per_actor
        # leave one CPU for Ray Data's own tasks; never ask for more than one CPU per actor
        per = min(1.0, max(0.1, (total - 1.0) / actors)) if total > 1 else 0.5
        return actors, round(per, 3)

    def run(self, units: list[Unit], job: Job) -> Iterator[Scored]:
        """Scored units as they finish (not in input order)."""
        import ray

        if not units:
            return
        actors, per = self.sizing()
        items = [{"index": i, "unit": pickle.dumps(u, protocol=pickle.HIGHEST_PROTOCOL)} for i, u in enumerate(units)]
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        source = ray.data.from_items(items, override_num_blocks=len(items))
        remote: dict[str, Any] = {"num_cpus": per}
        if self.gpus_per_actor:
            remote["num_gpus"] = self.gpus_per_actor
        ds = source.map_batches(_RayScorer, fn_constructor_kwargs={"job_bytes": pickle.dumps(job)}, batch_size=1,
                            batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(actors, len(items))),
                            **remote)
        for row in ds.iter_rows():
            yield pickle.loads(row["payload"])
