"""CSV and TSV: one utterance per row, many calls per file grouped by a call-id column.

Columns are found by their header (Chinese or English, see `FIELD_ALIASES`) or named by the caller with
``csv_columns={"role": "说话方", ...}``. Rows are streamed: a call is emitted when the call id changes, so
memory holds one call at a time (and each call id's first row, ~100 bytes a call, to name a call that
comes back). Rows of one call must be next to each other; a call id that comes back
later is an error for the later rows. An empty id cell continues the call above it (what Excel writes
for merged cells).

`row_slices` cuts a big file for parallel workers where one call ends and the next begins; each slice is
read with the header row in front of it. A call id that comes back in a later slice is then not this
reader's error but the batch's repeated id (`kefuqa.batch.DuplicateId`): the later rows are skipped
either way, and the first rows' call is the one scored.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from kefuqa.errors import InputError
from kefuqa.model import Conversation, Utterance, normalize_role

from .common import make_utterance, to_seconds, validate_conversation
from .source import (
    HEAD_SIZE,
    Line,
    ReadOptions,
    Source,
    decode_line,
    decode_order,
    head_text,
    line_encoding,
    undecodable,
)


def _keys(*names: str) -> tuple[str, ...]:
    return tuple(_squash(n) for n in names)


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.lower())


# canonical field -> header spellings (compared lower-case without spaces, '_', '-', '.')
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": _keys(
        "通话ID",
        "会话ID",
        "call_id",
        "id",
        "通话编号",
        "会话编号",
        "录音ID",
        "录音编号",
        "通话流水号",
        "流水号",
        "conversation_id",
        "session_id",
        "contact_id",
        "呼叫ID",
    ),
    "role": _keys(
        "角色",
        "role",
        "speaker",
        "说话人",
        "说话方",
        "发言人",
        "发言方",
        "讲话人",
        "身份",
        "participant",
        "participant_role",
        "speaker_role",
    ),
    "start": _keys("开始", "开始时间", "start", "begin", "start_time", "begin_time", "起始时间", "起始"),
    "end": _keys("结束", "结束时间", "end", "end_time", "stop", "终止时间", "截止时间"),
    "text": _keys(
        "内容",
        "文本",
        "text",
        "content",
        "话术",
        "对话内容",
        "通话内容",
        "说话内容",
        "识别文本",
        "识别结果",
        "transcript",
        "utterance",
        "sentence",
        "message",
        "消息",
        "消息内容",
    ),
    # call-level fields, taken from the first row of a call that has them
    "agent_id": _keys("坐席工号", "工号", "agent_id", "坐席ID", "客服工号", "坐席编号"),
    "agent_name": _keys("坐席姓名", "坐席名称", "agent_name", "客服姓名", "客服名称"),
    "channel": _keys("渠道", "channel", "服务渠道"),
    "direction": _keys("呼叫方向", "方向", "direction", "呼叫类型"),
    "started_at": _keys("通话开始时间", "呼叫时间", "通话时间", "来电时间", "started_at", "call_time"),
    # per-utterance measurements, kept in Utterance.attrs
    "emotion": _keys("情绪", "emotion", "情感"),
    "speech_rate": _keys("语速", "speech_rate"),
    "asr_confidence": _keys("置信度", "confidence", "asr_confidence"),
}
TIME_FIELDS = ("start", "end")
ATTR_FIELDS = ("emotion", "speech_rate", "asr_confidence")
CALL_FIELDS = ("agent_id", "agent_name", "channel", "direction", "started_at")

_DIRECTIONS = {
    "呼入": "inbound",
    "来电": "inbound",
    "in": "inbound",
    "inbound": "inbound",
    "呼出": "outbound",
    "外呼": "outbound",
    "去电": "outbound",
    "回访": "outbound",
    "out": "outbound",
    "outbound": "outbound",
}
_CHANNELS = {
    "电话": "phone",
    "语音": "phone",
    "热线": "phone",
    "phone": "phone",
    "在线": "chat",
    "在线客服": "chat",
    "文字": "chat",
    "微信": "chat",
    "chat": "chat",
    "邮件": "email",
    "email": "email",
    "网页": "web",
    "web": "web",
    "现场": "onsite",
    "onsite": "onsite",
}
_UNIT = re.compile(r"\s*[(（\[【]\s*([^)）\]】]*?)\s*[)）\]】]\s*$")
_MS_WORDS = {"ms", "毫秒", "millis", "milliseconds", "msec"}


def _header_key(cell: str) -> tuple[str, bool]:
    """(squashed header name, whether it says milliseconds): '开始时间(ms)' -> ('开始时间', True)."""
    text = cell.strip().lstrip("\ufeff")
    ms = False
    m = _UNIT.search(text)
    if m:
        ms = m.group(1).strip().lower() in _MS_WORDS
        text = text[: m.start()]
    key = _squash(text)
    for suffix in ("毫秒", "millis", "ms"):
        base = key.removesuffix(suffix)
        if base != key and any(base in FIELD_ALIASES[f] for f in TIME_FIELDS):
            return base, True
    return key, ms


@dataclass(slots=True)
class Columns:
    index: dict[str, int]  # canonical field -> column index
    ms: dict[str, bool]  # time field -> values are milliseconds


def find_columns(header: list[str], chosen: Mapping[str, str] | None) -> Columns | str:
    """Map the header to fields, or say in words what is missing."""
    keys = [_header_key(c) for c in header]
    index: dict[str, int] = {}
    ms: dict[str, bool] = {}
    for name, aliases in FIELD_ALIASES.items():
        wanted = chosen.get(name) if chosen else None
        if wanted is not None:
            hits = [i for i, c in enumerate(header) if c.strip().lstrip("\ufeff") == wanted.strip()]
            if not hits:
                hits = [i for i, (k, _) in enumerate(keys) if k == _header_key(wanted)[0]]
            if not hits:
                found = ", ".join(c.strip() for c in header if c.strip())
                return f"表头中没有为 {name} 指定的列 {wanted!r}；表头有：{found}"
        else:
            hits = [i for i, (k, _) in enumerate(keys) if k in aliases and i not in index.values()]
        if hits:
            index[name] = hits[0]
            ms[name] = keys[hits[0]][1] or (wanted is not None and _header_key(wanted)[1])
    missing = [f for f in ("role", "text") if f not in index]
    if missing:
        found = "、".join(c.strip() for c in header if c.strip()) or "（空）"
        need = " and ".join(f"a {f} column ({'/'.join(_EXAMPLES[f])})" for f in missing)
        return f"表头需要 {need}；实际有：{found}（可用 csv_columns 指定列名）"
    return Columns(index, ms)


_EXAMPLES = {"role": ("角色", "role", "说话人"), "text": ("内容", "text", "文本")}


HEADER_SEARCH = 5  # a header may follow a few title rows ("通话记录导出 2026-03-05")


def _sniff(head: bytes, delimiter: str, other: str) -> bool:
    lines = [ln for ln in head_text(head).splitlines() if ln.strip()][:HEADER_SEARCH]
    known = set(FIELD_ALIASES["role"] + FIELD_ALIASES["text"])
    for line in lines:
        if line.count(delimiter) < 1 or line.count(delimiter) < line.count(other):
            continue
        try:
            cells = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            continue
        if {_header_key(c)[0] for c in cells} & known:
            return True
    return False


def sniff_csv(head: bytes, name: str) -> bool:
    return _sniff(head, ",", "\t")


def sniff_tsv(head: bytes, name: str) -> bool:
    return _sniff(head, "\t", ",")


# ---- reading ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    id: str
    first_row: int
    utterances: list[Utterance] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    error: InputError | None = None


class _LineFeed:
    """Feeds decoded lines to the csv module and remembers the lines that did not decode."""

    def __init__(self, lines: Iterator[Line]) -> None:
        self._lines = lines
        self.bad: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            if not line.ok:
                self.bad.add(line.number)
            yield line.text


def read_csv(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    return _read(src, options, ",")


def read_tsv(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    return _read(src, options, "\t")


def _read(src: Source, options: ReadOptions, delimiter: str) -> Iterator[Conversation | InputError]:
    _, rows = _table(src.lines(), delimiter, src)
    _, columns = _find_header(rows, options.csv_columns, src.name)
    if isinstance(columns, Columns):
        yield from _group(rows, columns, src)
    else:
        yield columns


Rows = Iterator[tuple[int, list[str] | InputError, bool]]


def _table(lines: Iterator[Line], delimiter: str, src: Source) -> tuple[Any, Rows]:
    """The csv reader over decoded lines, and its non-empty rows (`_rows`)."""
    feed = _LineFeed(lines)
    reader = csv.reader(feed, delimiter=delimiter)
    return reader, _rows(reader, feed, src)


def _find_header(rows: Rows, csv_columns: Mapping[str, str] | None, name: str) -> tuple[int, Columns | InputError]:
    """The header among the first rows (title rows may come before it): its row and columns, else the
    first problem met (a row that is no header, or an empty file)."""
    first_problem: InputError | None = None
    for _ in range(HEADER_SEARCH):
        header = next(rows, None)
        if header is None:
            break
        row, cells, _ = header
        if isinstance(cells, InputError):
            first_problem = first_problem or cells
            continue
        columns = find_columns(cells, csv_columns)
        if isinstance(columns, Columns):
            return row, columns
        first_problem = first_problem or InputError(name, f"第 {row} 行", columns)
    return 0, first_problem or InputError(name, None, "文件是空的")


def _rows(reader: Any, feed: _LineFeed, src: Source) -> Iterator[tuple[int, list[str] | InputError, bool]]:
    """(first line of the row, its cells or a problem, whether its bytes decoded) for non-empty rows."""
    base = src.first_line - 1  # a slice of a bigger file numbers its lines as in the file
    while True:
        start = reader.line_num + 1 + base
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, InputError(src.name, f"第 {start} 行", f"CSV 格式错误：{e}"), True
            continue
        if not any(c.strip() for c in cells):
            continue
        ok = not any(n in feed.bad for n in range(start, reader.line_num + 1 + base))
        yield start, cells, ok


@dataclass
class RowSlices:
    """Where to cut a CSV/TSV file: its header row ``(start byte, end byte)``, the line encoding found at
    its start, and the slices ``(start byte, end byte, first line)`` that follow the header."""

    encoding: str
    header: tuple[int, int]
    slices: list[tuple[int, int, int]]


def row_slices(opener: Callable[[], BinaryIO], head: bytes, name: str, delimiter: str, size: int,
               slice_bytes: int, csv_columns: Mapping[str, str] | None = None) -> RowSlices | None:
    """Cut a table of calls into slices of about `slice_bytes`, each starting at the first row of a call
    (rows read as `read_csv` reads them). None when it is not worth it or not safe: one slice, no header
    or no call-id column, a header over several lines, UTF-16/32."""
    enc = line_encoding(head, complete=len(head) < HEAD_SIZE) or "utf-8"
    if enc.startswith(("utf-16", "utf-32")):
        return None
    order = decode_order(enc)
    offsets: dict[int, int] = {}  # line number -> byte offset of its start, for the lines not yet used

    def lines() -> Iterator[Line]:
        at = 0
        with opener() as f:
            for number, raw in enumerate(f, 1):
                offsets[number] = at
                at += len(raw)
                offsets[number + 1] = at
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                yield decode_line(number, raw, order)

    reader, rows = _table(lines(), delimiter, Source(name, name, name, head, opener, None))
    row, columns = _find_header(rows, csv_columns, name)
    if not isinstance(columns, Columns) or reader.line_num != row or columns.index.get("id") is None:
        return None
    id_col = columns.index["id"]
    header = (offsets[row], offsets[row + 1])
    slices = [(offsets[row + 1], size, row + 1)]
    call: str | None = None
    used = row + 1
    for row, cells, _ in rows:
        for n in range(used, row):
            offsets.pop(n, None)
        used = row
        if isinstance(cells, InputError):
            continue
        cid = _cell(cells, id_col).strip()
        if not cid or cid == call:
            continue
        at = offsets[row]
        if call is not None and at - slices[-1][0] >= slice_bytes:
            start, _, line = slices[-1]
            slices[-1] = (start, at, line)
            slices.append((at, size, row))
        call = cid
    if len(slices) < 2:
        return None
    return RowSlices(enc, header, slices)


def _group(
    rows: Iterator[tuple[int, list[str] | InputError, bool]], columns: Columns, src: Source
) -> Iterator[Conversation | InputError]:
    id_col = columns.index.get("id")
    seen: dict[str, int] = {}  # call id -> first row, for calls already emitted
    call: _Call | None = None
    count = 0
    for row, cells, ok in rows:
        if isinstance(cells, InputError):
            if call is not None and call.error is None:
                call.error = cells
            elif call is None:
                yield cells
            continue
        cid = _cell(cells, id_col).strip() if id_col is not None else src.stem
        if not cid:
            if call is None:
                yield InputError(src.name, f"第 {row} 行", "通话编号为空")
                continue
            cid = call.id
        if call is not None and cid != call.id:
            count += 1
            yield _finish(call, src)
            seen.setdefault(call.id, call.first_row)
            call = None
        if call is None:
            call = _Call(cid, row)
            if cid in seen:
                call.error = InputError(
                    src.name,
                    f"第 {row} 行",
                    f"通话 {cid!r} 在前面已出现过（从第 {seen[cid]} 行起）；同一通话的行必须相邻："
                    "请按通话编号排序",
                )
        if call.error is None:
            if not ok:
                call.error = undecodable(src.name, f"第 {row} 行")
            else:
                call.error = _add_row(call, cells, row, columns, src)
    if call is not None:
        count += 1
        yield _finish(call, src)
    if count == 0:
        yield InputError(src.name, None, "表头之后没有数据行")


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index]


def _add_row(call: _Call, cells: list[str], row: int, columns: Columns, src: Source) -> InputError | None:
    get = columns.index.get
    role = _cell(cells, get("role")).strip()
    data: dict[str, Any] = {"text": _cell(cells, get("text"))}
    where = "role"
    try:
        data["role"] = _role(role) if role else None
        for name in TIME_FIELDS:
            where = name
            data[name] = to_seconds(_cell(cells, get(name)), ms=columns.ms.get(name, False))
    except ValueError as e:
        reason = str(e) if where == "role" else f"{where} {e}"
        return InputError(src.name, f"第 {row} 行", reason)
    if data["role"] is None:
        return InputError(src.name, f"第 {row} 行", "the role is empty")
    attrs = {name: _number_or_text(v) for name in ATTR_FIELDS if (v := _cell(cells, get(name)).strip())}
    if attrs:
        data["attrs"] = attrs
    for name in CALL_FIELDS:
        value = _cell(cells, get(name)).strip()
        if value and name not in call.fields:
            call.fields[name] = value
    try:
        call.utterances.append(make_utterance(data))
    except ValueError as e:
        return InputError(src.name, f"第 {row} 行", str(e))
    call.rows.append(row)
    return None


def _role(value: str) -> str:
    """normalize_role, also for '客服(1023)' / '坐席-王芳' style cells."""
    try:
        return normalize_role(value)
    except ValueError:
        bare = re.sub(r"\s*(?:[(（].*[)）]|[-_:：].*)$", "", value)
        if bare and bare != value:
            try:
                return normalize_role(bare)
            except ValueError:
                pass
        raise


def _number_or_text(value: str) -> float | str:
    return float(value) if re.fullmatch(r"[+-]?\d+(\.\d+)?", value) else value


def _finish(call: _Call, src: Source) -> Conversation | InputError:
    if call.error is not None:
        return call.error
    data: dict[str, Any] = {"id": call.id, "utterances": call.utterances, "source": src.name}
    fields = call.fields
    if "agent_id" in fields or "agent_name" in fields:
        data["agent"] = {"id": fields.get("agent_id"), "name": fields.get("agent_name")}
    if "channel" in fields:
        data["channel"] = _CHANNELS.get(fields["channel"].lower(), fields["channel"])
    if "direction" in fields:
        data["direction"] = _DIRECTIONS.get(fields["direction"].lower(), fields["direction"])
    if "started_at" in fields:
        data["started_at"] = _datetime_text(fields["started_at"])

    def place(loc: tuple[int | str, ...]) -> str:
        if len(loc) >= 2 and loc[0] == "utterances" and isinstance(loc[1], int) and loc[1] < len(call.rows):
            return f"第 {call.rows[loc[1]]} 行"
        return f"第 {call.first_row} 行"

    return validate_conversation(data, src.name, place)


def _datetime_text(value: str) -> str:
    """'2026/03/05 14:32:10' (Chinese Excel) -> '2026-03-05 14:32:10'."""
    m = re.match(r"(\d{4})[/年.](\d{1,2})[/月.](\d{1,2})日?", value)
    if not m:
        return value
    y, mo, d = m.groups()
    return f"{y}-{int(mo):02d}-{int(d):02d}{value[m.end() :]}"
