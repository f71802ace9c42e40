"""Readers turn files of many shapes into `Conversation`s (DESIGN §1).

Interface (the CLI, the service and the batch layer only use these):

- ``read_path(path, input_format=None, *, csv_columns=None, source_name=None, swap_roles=False, **more)``
  yields one `Conversation` or `InputError` per conversation found in the file (``"-"``: stdin); a bad
  record yields an `InputError` naming file, place and reason, and reading goes on with the next record.
- ``read_bytes(data, name, input_format=None, **same options)``: the same from memory (uploads).
- ``iter_paths(paths)`` expands folders recursively into readable files.
- ``register_reader(name, extensions=..., sniff=..., read=..., binary=False)`` adds a format; `FORMATS`
  (or ``formats()``) lists the registered names.

Built-in formats, in detection order: aliyun, funasr, aws (vendor ASR JSON), json, jsonl (native),
csv, tsv, text. Other layers plug in without the readers knowing them: the entry-point group
``kefuqa.readers`` (see `registry`) brings ``audio`` from `kefuqa.audio` (binary formats are sniffed
first).
"""

from __future__ import annotations

from typing import Any

from . import native, tabular, text, vendors
from .api import iter_paths, read_bytes, read_path
from .detect import detect_format
from .registry import ReaderSpec, formats, load_plugins, register_reader
from .source import ReadOptions, Source

register_reader("aliyun", extensions=(), sniff=vendors.sniff_aliyun, read=vendors.read_aliyun)
register_reader("funasr", extensions=(), sniff=vendors.sniff_funasr, read=vendors.read_funasr)
register_reader("aws", extensions=(), sniff=vendors.sniff_aws, read=vendors.read_aws)
register_reader("json", extensions=(".json",), sniff=native.sniff_json, read=native.read_json)
register_reader("jsonl", extensions=(".jsonl", ".ndjson"), sniff=native.sniff_jsonl, read=native.read_jsonl)
register_reader("csv", extensions=(".csv",), sniff=tabular.sniff_csv, read=tabular.read_csv)
register_reader("tsv", extensions=(".tsv", ".tab"), sniff=tabular.sniff_tsv, read=tabular.read_tsv)
register_reader("text", extensions=(".txt", ".text"), sniff=text.sniff_text, read=text.read_text)


def __getattr__(name: str) -> Any:
    if name == "FORMATS":  # complete only once the plugins are loaded: looked up when asked for
        return formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "ReadOptions",
    "ReaderSpec",
    "Source",
    "detect_format",
    "formats",
    "iter_paths",
    "load_plugins",
    "read_bytes",
    "read_path",
    "register_reader",
]
