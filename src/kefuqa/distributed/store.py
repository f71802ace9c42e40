"""The output of batch runs: a folder (local or ``s3://…``) of partitioned tables, written in committed parts.

    DST/calls/date=2026-03-05/part-<run>-00001.parquet   one row per scored call
    DST/findings/date=2026-03-05/part-<run>-00001.parquet
    DST/errors/run=<run>/part-00001.parquet              bad inputs met by that run
    DST/_commits/<run>-00001.json                        the files of a part and the calls in it
    DST/runs/<run>.json                                  a run's manifest (inputs, counts, versions, timings)

A part is committed when its commit file exists (one small object, written last, atomically: a local
file is renamed into place, an S3 PUT is all or nothing). A run killed half-way leaves at most one part
without a commit; the next run deletes such files before it starts and skips every call that a committed
part holds with the same content hash and scoring key. So a resumed run has no duplicates and no losses.

The tables are append-only history: a call whose content changed, or that is scored with another rulebook,
gets a new row; `latest_calls` gives the newest row per call id.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .schema import SCHEMA_VERSION, SCHEMAS

__all__ = ["Output", "iter_table", "latest_calls", "latest_keys", "read_table"]

COMMITS = "_commits"


@dataclass(frozen=True)
class Key:
    call_id: str
    content_hash: str
    scoring: str  # rulebook version (+ rule selection): what decides the report besides the content


class Output:
    """One output folder: where parts go, which calls it already holds, and how they are committed."""

    def __init__(self, url: str, fmt: str = "parquet") -> None:
        from fsspec.core import url_to_fs

        if fmt not in ("parquet", "jsonl"):
            raise ValueError(f"unknown output format {fmt!r} (parquet or jsonl)")
        self.url = url.rstrip("/")
        self.fmt = fmt
        self.fs, self.root = url_to_fs(self.url)
        self.root = self.root.rstrip("/")
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    # ---- paths ----

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _write_bytes(self, rel: str, data: bytes) -> None:
        """Write a file so that it is either absent or complete (local: temp file + rename)."""
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        if self.local:
            os.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(target, data)

    def _read_bytes(self, rel: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(rel)))

    def _list(self, rel: str) -> list[str]:
        base = self.path(rel)
        try:
            if not self.fs.exists(base):
                return []
            return sorted(p[len(self.root) + 1:] for p in self.fs.find(base))
        except FileNotFoundError:
            return []

    # ---- commits ----

    def commits(self) -> Iterator[dict[str, Any]]:
        for rel in self._list(COMMITS):
            if rel.endswith(".json"):
                yield json.loads(self._read_bytes(rel))

    def done_keys(self) -> dict[str, dict[str, str]]:
        """Scoring key → {call id: content hash} of every committed call."""
        out: dict[str, dict[str, str]] = {}
        for commit in self.commits():
            for call_id, digest, scoring in commit.get("calls", []):
                out.setdefault(scoring, {})[call_id] = digest
        return out

    def clean_uncommitted(self) -> list[str]:
        """Delete data files of parts that were never committed (a run killed while writing)."""
        committed: set[str] = set()
        for commit in self.commits():
            committed.update(commit.get("files", []))
        removed = []
        for table in ("calls", "findings", "errors"):
            for rel in self._list(table):
                name = rel.rsplit("/", 1)[-1]
                if rel not in committed and not name.startswith("."):
                    self.fs.rm(self.path(rel))
                    removed.append(rel)
        if self.local:  # temporary files of a write that was interrupted
            for dirpath, _dirs, files in os.walk(self.root):
                for f in files:
                    if f.startswith(".") and f.endswith(".tmp"):
                        os.unlink(os.path.join(dirpath, f))
        return removed

    def commit_part(self, part: str, calls: list[dict[str, Any]], findings: list[dict[str, Any]],
                    errors: list[dict[str, Any]], keys: list[tuple[str, str, str]], run_id: str) -> list[str]:
        """Write one part (its tables, partitioned) and then its commit; returns the files written."""
        files: list[str] = []
        for table, rows, by in (("calls", calls, "date"), ("findings", findings, "date"), ("errors", errors, None)):
            if not rows:
                continue
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(f"date={row['date']}" if by else f"run={run_id}", []).append(row)
            for folder, group in sorted(groups.items()):
                rel = f"{table}/{folder}/part-{part}.{self.fmt}"
                self._write_bytes(rel, self._encode(table, group))
                files.append(rel)
        commit = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "part": part, "files": files,
                  "calls": [list(k) for k in keys]}
        self._write_bytes(f"{COMMITS}/{part}.json", json.dumps(commit, ensure_ascii=False).encode())
        return files

    def _encode(self, table: str, rows: list[dict[str, Any]]) -> bytes:
        if self.fmt == "jsonl":
            return "".join(json.dumps(_plain(r), ensure_ascii=False, default=str) + "\n" for r in rows).encode()
        import pyarrow.parquet as pq

        schema = SCHEMAS[table].with_metadata({"kefuqa.schema_version": str(SCHEMA_VERSION), "kefuqa.table": table})
        tab = pa.Table.from_pylist(rows, schema=schema)
        buf = io.BytesIO()
        pq.write_table(tab, buf, compression="zstd")
        return buf.getvalue()

    def write_manifest(self, run_id: str, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode()
        self._write_bytes(f"runs/{run_id}.json", data)
        self._write_bytes("_kefuqa_batch.json", data)

    def committed_files(self, table: str) -> list[str]:
        return sorted(f for c in self.commits() for f in c.get("files", []) if f.startswith(table + "/"))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("dimensions"), list):
        out["dimensions"] = dict(out["dimensions"])
    return out


def read_table(url: str, table: str) -> list[dict[str, Any]]:
    """Every committed row of a table of a batch output (Parquet or JSON Lines), as dicts."""
    out = Output(url, _guess_format(url))
    rows: list[dict[str, Any]] = []
    for rel in out.committed_files(table):
        rows.extend(_read_rows(out, rel))
    return rows


def iter_table(url: str, table: str) -> Iterator[dict[str, Any]]:
    """`read_table`, one part at a time (bounded memory)."""
    out = Output(url, _guess_format(url))
    for rel in out.committed_files(table):
        yield from _read_rows(out, rel)


def _read_rows(out: Output, rel: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    data = out._read_bytes(rel)
    if rel.endswith(".jsonl"):
        rows = [json.loads(line) for line in data.decode().splitlines() if line]
        return [{c: r.get(c) for c in columns} for r in rows] if columns else rows
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(data), columns=columns).to_pylist()
    for r in rows:
        if isinstance(r.get("dimensions"), list):
            r["dimensions"] = dict(r["dimensions"])
    return rows


def latest_keys(url: str) -> dict[str, tuple[str, str]]:
    """Call id → (run id, scored at) of its newest committed row, reading only those columns."""
    out = Output(url, _guess_format(url))
    best: dict[str, tuple[str, str]] = {}
    for rel in out.committed_files("calls"):
        for r in _read_rows(out, rel, ["call_id", "run_id", "scored_at"]):
            key = (r["run_id"], str(r["scored_at"]))
            old = best.get(r["call_id"])
            if old is None or (key[1], key[0]) >= (old[1], old[0]):
                best[r["call_id"]] = key
    return best


def _guess_format(url: str) -> str:
    out = Output(url)
    for c in out.commits():
        for f in c.get("files", []):
            return "jsonl" if f.endswith(".jsonl") else "parquet"
    return "parquet"


def latest_calls(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest row of each call id (by ``scored_at``, then run id)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        old = best.get(r["call_id"])
        if old is None or (str(r["scored_at"]), r["run_id"]) >= (str(old["scored_at"]), old["run_id"]):
            best[r["call_id"]] = r
    return best
