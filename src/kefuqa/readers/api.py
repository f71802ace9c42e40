"""The readers' public functions: `read_path`, `read_bytes`, `iter_paths`."""

from __future__ import annotations

import codecs
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation

from .detect import detect_format
from .registry import get_reader, known_extension
from .source import ReadOptions, Source, line_encoding, undecodable
from .tabular import FIELD_ALIASES

Item = Conversation | InputError


def read_path(
    path: str | Path,
    input_format: str | None = None,
    *,
    csv_columns: Mapping[str, str] | None = None,
    source_name: str | None = None,
    swap_roles: bool = False,
    **reader_options: Any,
) -> Iterator[Item]:
    """Read the conversations in a file (``"-"``: stdin), one item per conversation.

    A malformed record yields an `InputError` (file, place, reason) and reading goes on with the next
    record. `input_format` overrides detection; `csv_columns` names the columns of CSV/TSV files
    (``{"role": "说话方", "text": "话术"}``); `source_name` replaces the path in ``Conversation.source`` and
    errors (and gives the id of formats without one); `swap_roles` makes channel/speaker 0 the customer
    in vendor ASR results (and in recordings). Other keywords go to registered readers that use them
    (audio: ``channels``, ``asr``, ``vad``) and are ignored by the others. Raises only for bad
    arguments (unknown format or column field).
    """
    options = _options(input_format, csv_columns, source_name, swap_roles, reader_options)
    return _read_path(str(path) if str(path) == "-" else Path(path), input_format, options)


def read_bytes(
    data: bytes,
    name: str,
    input_format: str | None = None,
    *,
    csv_columns: Mapping[str, str] | None = None,
    source_name: str | None = None,
    swap_roles: bool = False,
    first_line: int = 1,
    encoding: str | None = None,
    **reader_options: Any,
) -> Iterator[Item]:
    """Like `read_path`, for content held in memory (an upload); `name` is its file name.

    `first_line` numbers the lines of a slice of a bigger JSONL file as in the whole file (places in
    errors, default ids), for readers that read a file in parallel slices; `encoding` is then the one
    found at the start of the whole file (line by line readers).
    """
    options = _options(input_format, csv_columns, source_name, swap_roles, reader_options)
    shown = source_name or name
    src = Source.from_bytes(data, shown, _stem(shown), name)
    src.first_line = first_line
    src.encoding = encoding
    return _read_source(src, input_format, options)


def iter_paths(paths: Iterable[str | Path], errors: list[InputError] | None = None) -> Iterator[Path]:
    """Files to read: folders are expanded recursively (sorted by name, skipping hidden entries and
    files whose extension no reader claims); a file named explicitly is always given, as is ``-``.

    A folder that cannot be listed (no permission) is never skipped silently: its error is appended
    to `errors` when given, else the folder itself is yielded and `read_path` reports why."""
    for p in paths:
        path = Path(p)
        if str(p) != "-" and _is_dir(path):
            yield from _walk(path, set(), errors)
        else:
            yield path


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def folder_error(folder: Path | str, e: OSError) -> InputError:
    """The error of a folder that cannot be listed."""
    return InputError(str(folder), None, f"无法读取该文件夹：{_os_reason(e)}")


def _walk(folder: Path, visited: set[Path], errors: list[InputError] | None) -> Iterator[Path]:
    try:
        real = folder.resolve()
        if real in visited:  # a symlink loop
            return
        visited.add(real)
        entries = sorted(folder.iterdir(), key=lambda e: e.name)
    except OSError as e:
        if errors is None:
            yield folder
        else:
            errors.append(folder_error(folder, e))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if _is_dir(entry):
            yield from _walk(entry, visited, errors)
        elif known_extension(entry.name):
            try:
                regular = stat.S_ISREG(entry.stat().st_mode)
            except OSError:
                regular = True  # the reader names the error
            if regular:
                yield entry


# ---- internals --------------------------------------------------------------------------------------


def _options(
    input_format: str | None,
    csv_columns: Mapping[str, str] | None,
    source_name: str | None,
    swap_roles: bool,
    extra: dict[str, Any],
) -> ReadOptions:
    if input_format is not None:
        get_reader(input_format)  # ValueError for an unknown format
    if csv_columns:
        unknown = sorted(set(csv_columns) - set(FIELD_ALIASES))
        if unknown:
            raise ValueError(
                f"未知的列字段 {'、'.join(unknown)}（可用：{'、'.join(FIELD_ALIASES)}）"
            )
    return ReadOptions(dict(csv_columns) if csv_columns else None, source_name, swap_roles, extra)


def _stem(name: str) -> str:
    if name in ("", "-"):
        return "stdin"
    base = Path(name).name
    return Path(base).stem or base


def _read_path(path: str | Path, input_format: str | None, options: ReadOptions) -> Iterator[Item]:
    if isinstance(path, str):  # "-": stdin
        shown = options.source_name or "-"
        src = Source.from_stdin(shown, _stem(options.source_name or "-"), options.source_name or "")
    else:
        shown = options.source_name or str(path)
        try:
            src = Source.from_file(path, shown, _stem(options.source_name or path.name))
        except IsADirectoryError:
            try:
                next(path.iterdir(), None)
            except OSError as e:
                yield folder_error(shown, e)
            else:
                yield InputError(shown, None, _os_reason(IsADirectoryError()))
            return
        except OSError as e:
            yield InputError(shown, None, _os_reason(e))
            return
    yield from _read_source(src, input_format, options)


def _os_reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "文件不存在"
    if isinstance(e, IsADirectoryError):
        return "这是一个文件夹，不是文件"
    if isinstance(e, PermissionError):
        return "没有读取权限"
    return f"无法读取文件：{e.strerror or e}"


def _is_empty(head: bytes) -> bool:
    for bom in (
        codecs.BOM_UTF8,
        codecs.BOM_UTF32_LE,
        codecs.BOM_UTF32_BE,
        codecs.BOM_UTF16_LE,
        codecs.BOM_UTF16_BE,
    ):
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    return not head.strip(b" \t\r\n\x00")


def _read_source(src: Source, input_format: str | None, options: ReadOptions) -> Iterator[Item]:
    if _is_empty(src.head):
        yield InputError(src.name, None, "文件是空的")
        return
    name = input_format or detect_format(src.head, src.hint)
    if name is None:
        if line_encoding(src.head, complete=src.complete_head) is None:
            yield undecodable(src.name)
        else:
            yield InputError(
                src.name,
                None,
                "无法识别格式：不是会话 JSON/JSON Lines、表头可识别的 CSV/TSV、带 坐席：/客户： 前缀的文本，"
                "也不是厂商 ASR 结果；请用 --format 指定格式",
            )
        return
    spec = get_reader(name)
    if spec.binary:
        yield from _read_binary(src, spec.read, replace(options, source_name=src.name))
        return
    if line_encoding(src.head, complete=src.complete_head) is None:
        yield undecodable(src.name)
        return
    yield from spec.read(src, options)


def _read_binary(src: Source, read: Callable[..., Iterator[Item]], options: ReadOptions) -> Iterator[Item]:
    """Binary readers get a real path; input from stdin or memory is copied to a temporary file."""
    if src.path is not None:
        yield from read(src.path, options)
        return
    fd, tmp = tempfile.mkstemp(suffix=Path(src.hint).suffix, prefix="kefuqa-")
    try:
        with os.fdopen(fd, "wb") as out, src.open() as data:
            shutil.copyfileobj(data, out)
        yield from read(Path(tmp), options)
    finally:
        os.unlink(tmp)
