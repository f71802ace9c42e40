"""Batch scoring at archive scale: `kefuqa batch SRC… --out DST [--engine local|ray]`.

Inputs from local folders or object storage (``s3://…`` through fsspec), scored by local processes or by
Ray actors (`ray_engine`), written as partitioned Parquet (or JSON Lines) tables with a versioned schema
(`schema`), committed in parts so that reruns skip what is done and a killed run resumes (`store`), with an
errors table and a run manifest. The core never imports this package; it needs the ``ray`` extra
(pyarrow, fsspec/s3fs; Ray itself only for ``--engine ray``).

    from kefuqa.distributed import run_batch, read_table
    result = run_batch(["calls/"], "out/", load_rulebook(), engine="ray")
    rows = read_table("out/", "calls")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# loaded when first used, so that `kefuqa --help` does not pay for pyarrow
_WHERE = {"BatchResult": "runner", "Stalled": "runner", "run_batch": "runner", "SCHEMA_VERSION": "schema",
          "iter_table": "store", "latest_calls": "store", "read_table": "store"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SCHEMA_VERSION", "BatchResult", "Stalled", "iter_table", "latest_calls", "read_table", "run_batch"]
