"""Inputs of a batch run: local files and folders (through `kefuqa.batch`, the path `kefuqa check` takes)
and object storage (``s3://bucket/prefix``, or any fsspec URL), cut into picklable `Unit`s.

Local units are `kefuqa.batch.work_units` (whole files, big JSONL files in ~1 MB slices with their line
numbers) and are read by `kefuqa.batch.read_unit`, so a batch run reads exactly what `kefuqa check` reads.
Remote objects are listed with fsspec, sliced the same way, and read into memory
(`kefuqa.readers.read_bytes`); a recording is downloaded to a temporary file first (the audio reader
decodes files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from ..batch import SLICE_BYTES, Unit, find_inputs, read_unit, work_units
from ..errors import InputError
from ..model import Conversation

__all__ = ["is_url", "list_units", "read_any_unit"]


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _fs(url: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    return url_to_fs(url)


def _remote_files(url: str, errors: list[InputError]) -> list[str]:
    from ..readers.registry import known_extension

    fs, path = _fs(url)
    protocol = url.split("://", 1)[0]
    try:
        if fs.isdir(path):
            found = sorted(fs.find(path))
            names = [p for p in found if known_extension(p)
                     and not any(part.startswith(".") for part in PurePosixPath(p).relative_to(path).parts)]
        elif fs.exists(path):
            names = [path]
        else:
            errors.append(InputError(url, None, "no such file or folder"))
            return []
    except OSError as exc:
        errors.append(InputError(url, None, f"cannot list: {exc}"))
        return []
    return [f"{protocol}://{n}" for n in names]


def _remote_units(url: str, input_format: str | None, slice_bytes: int) -> Iterator[Unit]:
    from ..readers import detect_format

    fs, path = _fs(url)
    size = int(fs.size(path) or 0)
    fmt = input_format
    if fmt is None and size > slice_bytes:
        with fs.open(path, "rb") as fh:
            fmt = detect_format(fh.read(256 * 1024), PurePosixPath(path).name)
    if fmt != "jsonl" or size <= slice_bytes:
        yield Unit(url)
        return
    with fs.open(path, "rb") as fh:
        start, line = 0, 1
        while start < size:
            fh.seek(start)
            chunk = fh.read(slice_bytes)
            rest = fh.readline()
            end = start + len(chunk) + len(rest)
            yield Unit(url, start, end, line)
            line += chunk.count(b"\n") + rest.count(b"\n")
            start = end


def list_units(sources: Iterable[str], input_format: str | None = None, *,
               slice_bytes: int | None = None) -> tuple[list[Unit], list[InputError]]:
    """The work of a run, in input order, and an error for each source that cannot be found or listed."""
    slice_bytes = slice_bytes or SLICE_BYTES
    units: list[Unit] = []
    errors: list[InputError] = []
    for src in sources:
        if is_url(src):
            for url in _remote_files(src, errors):
                try:
                    units.extend(_remote_units(url, input_format, slice_bytes))
                except OSError as exc:
                    errors.append(InputError(url, None, f"cannot read: {exc}"))
            continue
        files, missing = find_inputs([src])
        errors.extend(missing)
        if any(str(f) == "-" for f in files):
            errors.append(InputError("-", None, "batch runs cannot read stdin; give files or folders"))
            files = [f for f in files if str(f) != "-"]
        units.extend(work_units(files, input_format, slice_bytes=slice_bytes))
    return units, errors


def read_any_unit(unit: Unit, input_format: str | None = None,
                  read_options: Mapping[str, Any] | None = None) -> Iterator[Conversation | InputError]:
    """The conversations of a unit, local or remote, as `kefuqa check` reads them."""
    opts = dict(read_options or {})
    if not is_url(unit.path):
        yield from read_unit(unit, input_format, **opts)
        return
    from ..readers import read_bytes, read_path
    from ..readers.registry import format_for_name

    fs, path = _fs(unit.path)
    try:
        with fs.open(path, "rb") as fh:
            if unit.end >= 0:
                fh.seek(unit.start)
                data = fh.read(unit.end - unit.start)
            else:
                data = fh.read()
    except OSError as exc:
        yield InputError(unit.path, None, f"cannot read: {exc}")
        return
    name = PurePosixPath(path).name
    fmt = input_format or (None if unit.end < 0 else "jsonl")
    binary = (fmt or format_for_name(name) or "") == "audio"
    if not binary:
        yield from read_bytes(data, unit.path, fmt, first_line=unit.first_line, **opts)
        return
    # recordings are decoded from a file: a private temporary copy, removed after reading
    fd, tmp = tempfile.mkstemp(suffix=PurePosixPath(name).suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield from read_path(tmp, fmt, source_name=unit.path, **opts)
    finally:
        os.unlink(tmp)
