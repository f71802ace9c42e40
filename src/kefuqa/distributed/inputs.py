"""Inputs of a batch run: local files and folders (through `kefuqa.batch`, the path `kefuqa check` takes)
and object storage (``s3://bucket/prefix``, or any fsspec URL), cut into picklable `Unit`s.

Local units are `kefuqa.batch.work_units` (whole files, big JSONL files in ~1 MB slices with their line
numbers) and are read by `kefuqa.batch.read_unit`, so a batch run reads exactly what `kefuqa check` reads.
Remote objects are listed with fsspec and grouped as local files are (`kefuqa.readers.calls`): a manifest
(its rows' files resolved against its folder in the bucket) and a recording with the transcript of the same
stem are one call each. Other objects are sliced the same way and read into memory
(`kefuqa.readers.read_bytes`); recordings, and the files of a call, are downloaded to a private temporary
folder first (the audio reader decodes files), named in reports and errors by their URLs.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from ..batch import SLICE_BYTES, Unit, find_inputs, format_slices, read_slice, read_unit, work_units
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


def _remote_units(url: str, input_format: str | None, slice_bytes: int,
                  csv_columns: Mapping[str, str] | None = None) -> Iterator[Unit]:
    from ..readers import detect_format

    fs, path = _fs(url)
    size = int(fs.size(path) or 0)
    fmt = input_format
    head = b""
    if size > slice_bytes:
        with fs.open(path, "rb") as fh:
            head = fh.read(256 * 1024)
        fmt = fmt or detect_format(head, PurePosixPath(path).name)
    if fmt != "jsonl" or size <= slice_bytes:
        cut = format_slices(lambda: fs.open(path, "rb"), head, url, fmt, size, slice_bytes, csv_columns)
        yield from cut or [Unit(url)]
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


class _Slot:
    """Where a manifest's calls go in the listing (kept in place by `group_targets`)."""

    def __init__(self, at: int) -> None:
        self.at = at


def _remote_targets(urls: list[str], errors: list[InputError]) -> list[Any]:
    """Listed objects → calls as `kefuqa.batch.find_inputs` groups local files: the calls of each manifest
    (at its place), a recording with the transcript of the same stem, and every other object on its own."""
    from ..readers.calls import MANIFEST_EXTENSIONS, group_targets, looks_like_manifest, read_manifest

    listed = set(urls)
    slots: dict[int, list[Any]] = {}
    claimed: set[str] = set()
    for i, url in enumerate(urls):
        if PurePosixPath(url).suffix.lower() not in MANIFEST_EXTENSIONS:
            continue
        fs, path = _fs(url)
        try:
            with fs.open(path, "rb") as fh:
                head = fh.read(4096)
            if not looks_like_manifest(url, head=head):
                continue
            data = fs.cat_file(path)
        except OSError as exc:
            errors.append(InputError(url, None, f"无法读取清单：{exc}"))
            slots[i] = []
            continue
        calls, bad = read_manifest(url, data=data, resolve=_resolver(url, listed))
        errors.extend(bad)
        slots[i] = calls
        claimed.update(p for c in calls for p in (c.transcript, c.recording) if p)
    rest = [_Slot(i) if i in slots else u for i, u in enumerate(urls) if i in slots or u not in claimed]
    grouped, bad_rows = group_targets(rest)
    errors.extend(bad_rows)
    out: list[Any] = []
    for t in grouped:
        out.extend(slots[t.at] if isinstance(t, _Slot) else [t])
    return out


def _resolver(manifest: str, listed: set[str]) -> Any:
    """A manifest row's file name → its URL, against the manifest's folder (``../`` allowed, a full URL
    as it is), when the object exists."""
    protocol, key = manifest.split("://", 1)
    folder = posixpath.dirname(key)

    def resolve(name: str) -> str | None:
        url = name if is_url(name) else f"{protocol}://{posixpath.normpath(posixpath.join(folder, name))}"
        if url in listed:
            return url
        fs, path = _fs(url)
        try:
            return url if fs.isfile(path) else None
        except OSError:
            return None
    return resolve


def list_units(sources: Iterable[str], input_format: str | None = None, *, slice_bytes: int | None = None,
               csv_columns: Mapping[str, str] | None = None) -> tuple[list[Unit], list[InputError]]:
    """The work of a run, in input order, and an error for each source that cannot be found or listed
    (`csv_columns`: the tables' columns as the readers are told them, to cut tables where calls begin)."""
    slice_bytes = slice_bytes or SLICE_BYTES
    units: list[Unit] = []
    errors: list[InputError] = []
    for src in sources:
        if is_url(src):
            from ..readers.calls import CallFiles

            for target in _remote_targets(_remote_files(src, errors), errors):
                if isinstance(target, CallFiles):
                    units.append(Unit(target.name, call=target))
                    continue
                try:
                    units.extend(_remote_units(target, input_format, slice_bytes, csv_columns))
                except OSError as exc:
                    errors.append(InputError(target, None, f"cannot read: {exc}"))
            continue
        files, missing = find_inputs([src])
        errors.extend(missing)
        if any(str(f) == "-" for f in files):
            errors.append(InputError("-", None, "batch runs cannot read stdin; give files or folders"))
            files = [f for f in files if str(f) != "-"]
        units.extend(work_units(files, input_format, slice_bytes=slice_bytes, csv_columns=csv_columns))
    return units, errors


def read_any_unit(unit: Unit, input_format: str | None = None,
                  read_options: Mapping[str, Any] | None = None) -> Iterator[Conversation | InputError]:
    """The conversations of a unit, local or remote, as `kefuqa check` reads them."""
    opts = dict(read_options or {})
    if unit.call is not None and any(is_url(p) for p in (unit.call.transcript, unit.call.recording) if p):
        yield from _read_remote_call(unit.call, input_format, opts)
        return
    if not is_url(unit.path):
        yield from read_unit(unit, input_format, **opts)
        return
    from ..readers import read_bytes, read_path
    from ..readers.registry import format_for_name

    fs, path = _fs(unit.path)
    header = b""
    try:
        with fs.open(path, "rb") as fh:
            if unit.part is not None and unit.part[0] != "json":
                fh.seek(unit.part[1])
                header = fh.read(unit.part[2] - unit.part[1])
            if unit.end >= 0:
                fh.seek(unit.start)
                data = fh.read(unit.end - unit.start)
            else:
                data = fh.read()
    except OSError as exc:
        yield InputError(unit.path, None, f"cannot read: {exc}")
        return
    if unit.end >= 0:
        yield from read_slice(unit, data, header, input_format, **opts)
        return
    name = PurePosixPath(path).name
    fmt = input_format
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


def _read_remote_call(call: Any, input_format: str | None,
                      opts: dict[str, Any]) -> Iterator[Conversation | InputError]:
    """A call whose files are in object storage: copied to a private folder (same file names, so formats are
    detected as locally), read by `kefuqa.readers.calls.read_call`, named by the URLs again."""
    from ..readers.calls import read_call

    with tempfile.TemporaryDirectory(prefix="kefuqa-call-") as tmp:
        local: dict[str, str] = {}
        for kind, url in (("transcript", call.transcript), ("recording", call.recording)):
            if not url:
                continue
            dst = os.path.join(tmp, kind, PurePosixPath(url).name)
            os.makedirs(os.path.dirname(dst))
            fs, path = _fs(url)
            try:
                with fs.open(path, "rb") as src, open(dst, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except OSError as exc:
                yield InputError(url, None, f"无法读取：{exc}")
                return
            local[kind] = dst
        here = dataclasses.replace(call, transcript=local.get("transcript", call.transcript))
        if call.transcript:
            opts = {**opts, "source_name": call.transcript}
        names = {here.name: call.name, local.get("transcript", ""): call.transcript or ""}
        for item in read_call(here, input_format, recording_path=local.get("recording"), **opts):
            if isinstance(item, InputError):
                yield InputError(names.get(item.source, item.source), item.place, item.reason)
            elif item.source in names:
                yield item.model_copy(update={"source": names[item.source]})
            else:
                yield item
