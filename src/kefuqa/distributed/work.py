"""One unit of work, wherever it runs (a local process or a Ray actor): read it, skip the calls already
scored, check the rest with this worker's compiled `Checker`, and return rows for the tables.

A `Scorer` is built once per worker (the rulebook compiled once, as are any judgement or ASR models the
readers load), then called for many units.
"""

from __future__ import annotations

import hashlib
import time
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..batch import Unit
from ..engine import Checker
from ..errors import InputError, KefuqaError
from ..rules.rulebook import Rulebook
from .inputs import read_any_unit
from .schema import call_rows, content_hash, conversation_data


class EngineError(KefuqaError):
    """The engine cannot run at all (no actor could start, GPUs asked of a cluster without any)."""


def _key64(call_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(call_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class DoneIndex:
    """The (call id, content hash) pairs already scored under the run's scoring key, as two sorted arrays of
    64-bit integers: 16 bytes a call (a Python dict of the strings takes about 250), so a rerun over an
    archive of 10 M calls ships 160 MB to each worker instead of gigabytes. A false skip needs two
    64-bit hashes to collide at once."""

    def __init__(self, done: Mapping[str, str] | None = None) -> None:
        pairs = sorted((_key64(cid), int(digest[:16], 16)) for cid, digest in (done or {}).items())
        self.keys = array("Q", (k for k, _ in pairs))
        self.digests = array("Q", (d for _, d in pairs))

    def __len__(self) -> int:
        return len(self.keys)

    def has(self, call_id: str, digest: str) -> bool:
        if not self.keys:
            return False
        key, want = _key64(call_id), int(digest[:16], 16)
        i = bisect_left(self.keys, key)
        while i < len(self.keys) and self.keys[i] == key:
            if self.digests[i] == want:
                return True
            i += 1
        return False


@dataclass
class Job:
    """What every worker needs to know about the run (picklable, sent once per worker)."""

    rulebook: Rulebook
    run_id: str
    scoring: str  # the scoring key: rulebook version and rule selection
    done: DoneIndex = field(default_factory=DoneIndex)  # (call id, content hash) already scored this way
    input_format: str | None = None
    read_options: dict[str, Any] = field(default_factory=dict)
    select: list[str] | None = None
    ignore: list[str] | None = None


@dataclass
class Scored:
    """A unit's results in file order: ``("call", call_id, source, digest, row, findings)``,
    ``("skip", call_id, source, digest)`` or ``("error", file, place, reason)``."""

    index: int
    items: list[tuple[Any, ...]]
    seconds: float


def scoring_key(rulebook: Rulebook, select: list[str] | None, ignore: list[str] | None) -> str:
    key = f"{rulebook.name}@{rulebook.version}"
    if select:
        key += f"|select={','.join(sorted(select))}"
    if ignore:
        key += f"|ignore={','.join(sorted(ignore))}"
    return key


class Scorer:
    """A worker: one compiled checker (and one ASR model, with ``--asr``) for many units.

    The ASR model is loaded here, once per worker, so a bad ``--asr`` fails the run at start with the
    engine's reason instead of once per recording; the audio reader then finds it in its per-process cache
    (`kefuqa.audio.asr.make_transcriber`)."""

    def __init__(self, job: Job, checker: Checker | None = None) -> None:
        self.job = job
        self.checker = checker if checker is not None else Checker(job.rulebook)
        self.units = 0
        self.calls = 0
        self.busy = 0.0
        self.asr_loads = 0
        self.asr_seconds = 0.0
        self.transcriber: Any = None
        spec = job.read_options.get("asr")
        if spec:
            self._load_asr(spec)

    def _load_asr(self, spec: str) -> None:
        from ..audio.asr import make_transcriber

        t0 = time.perf_counter()
        try:
            transcriber = make_transcriber(spec)
        except Exception:  # noqa: BLE001 - a bad spec or model: every recording's error names the reason
            return
        if transcriber is not self.transcriber:
            self.transcriber = transcriber
            self.asr_loads += 1
            self.asr_seconds += time.perf_counter() - t0

    def loads(self) -> dict[str, Any]:
        """What this worker loaded and did: units and calls scored, seconds busy scoring, ASR models built
        (1 with ``--asr``, however many units), the seconds that took, and the engine's name."""
        return {"units": self.units, "calls": self.calls, "busy_seconds": round(self.busy, 3),
                "asr_loads": self.asr_loads, "asr_seconds": round(self.asr_seconds, 3),
                "asr": getattr(self.transcriber, "name", None)}

    def __call__(self, index: int, unit: Unit) -> Scored:
        t0 = time.perf_counter()
        self.units += 1
        spec = self.job.read_options.get("asr")
        if spec:
            self._load_asr(spec)  # the cached model: counts a load only if the cache lost it
        job = self.job
        items: list[tuple[Any, ...]] = []
        for conv in read_any_unit(unit, job.input_format, job.read_options):
            if isinstance(conv, InputError):
                items.append(("error", conv.source, conv.place, conv.reason))
                continue
            source = conv.source or unit.path
            data = conversation_data(conv)
            digest = content_hash(data)
            if job.done.has(conv.id, digest):
                items.append(("skip", conv.id, source, digest))
                continue
            report = self.checker.check(conv, select=job.select, ignore=job.ignore)
            report.conversation = None
            row, findings = call_rows(conv, report, source=source, digest=digest, data=data, run_id=job.run_id,
                                      scored_at=datetime.now(timezone.utc), kefuqa_version=__version__)
            items.append(("call", conv.id, source, digest, row, findings))
            self.calls += 1
        seconds = time.perf_counter() - t0
        self.busy += seconds
        return Scored(index, items, seconds)
