"""One call from several files: a recording, its transcript and a row of metadata.

Call centers export a night's calls as recordings (``c1.wav``), the ASR vendor's transcripts (``c1.json``)
and a metadata table. `group_targets` turns a list of input files into calls:

- files named in a **manifest** (``manifest.csv`` / ``manifest.jsonl``, any ``*manifest*`` / ``*清单*``
  CSV, TSV or JSONL file, or one whose header names recording / transcript / files columns and no text
  column) are the calls its rows say, with the row's agent, team, direction, channel,
  start time, ring time, agent channel and offset; other columns are kept as attributes
  (``metrics["attributes"]``);
- otherwise a recording and a transcript with the same stem in the same folder are one call;
- every other file is read on its own, as before.

`read_call` reads one `CallFiles`: the transcript gives text, roles and times, the recording its measures
(through the merger the audio layer registers: `registry.register_recording_merger`), the manifest row
the call's fields. A manifest row naming a missing file, a bad value or a transcript and a recording that
do not fit are `InputError`s naming the file, the place and the reason; the other calls are read.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation, Party, unsafe_value

from .common import parse_json
from .source import ReadOptions, decode_all

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MANIFEST_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson")
_MANIFEST_NAME = re.compile(r"(manifest|清单|metadata|元数据)", re.I)
_TRANSCRIPT_TAIL = re.compile(r"[._-](asr|transcript|stt|转写)$", re.I)


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", str(name).lower())


# manifest field -> header spellings (compared lower-case without spaces, '_', '-', '.')
MANIFEST_FIELDS: dict[str, tuple[str, ...]] = {
    "call_id": ("call_id", "id", "通话编号", "会话编号", "通话ID", "录音编号", "流水号", "contact_id"),
    "recording": ("recording", "audio", "录音", "录音文件", "recording_file", "wav"),
    "transcript": ("transcript", "转写", "转写文件", "asr", "transcript_file", "text_file"),
    "files": ("files", "文件"),
    "agent_id": ("agent_id", "工号", "坐席工号", "座席工号", "agent_code"),
    "agent_name": ("agent_name", "坐席", "坐席姓名", "座席", "座席姓名", "agent"),
    "team": ("team", "班组", "组别", "agent_team"),
    "direction": ("direction", "呼叫方向", "方向"),
    "channel": ("channel", "渠道"),
    "started_at": ("started_at", "start_time", "开始时间", "接通时间", "answered_at"),
    "ring_seconds": ("ring_seconds", "振铃时长", "振铃秒数", "ring"),
    "agent_channel": ("agent_channel", "坐席声道", "座席声道"),
    "offset": ("offset", "偏移", "offset_seconds"),
    "ended_by": ("ended_by", "挂机方", "挂机方向"),
    "customer_id": ("customer_id", "客户编号"),
}
_ALIAS = {_squash(a): f for f, names in MANIFEST_FIELDS.items() for a in names}
_DIRECTIONS = {"inbound": "inbound", "in": "inbound", "呼入": "inbound", "来电": "inbound",
               "outbound": "outbound", "out": "outbound", "呼出": "outbound", "外呼": "outbound", "回访": "outbound",
               "去电": "outbound"}
_CHANNELS = {"phone": "phone", "电话": "phone", "chat": "chat", "在线": "chat", "email": "email", "邮件": "email",
             "web": "web", "网页": "web", "onsite": "onsite", "现场": "onsite"}
_LEFT = {"left", "l", "0", "ch0", "左", "左声道"}
_RIGHT = {"right", "r", "1", "ch1", "右", "右声道"}
# as PBX exports write who hung up: 客户挂机 / 用户挂机 / 坐席挂机 / 座席挂机 / 系统挂机 (座席 is the other spelling)
_ENDED = {"customer": "customer", "客户": "customer", "用户": "customer", "客户挂机": "customer",
          "用户挂机": "customer", "agent": "agent", "坐席": "agent", "座席": "agent", "坐席挂机": "agent",
          "座席挂机": "agent", "system": "system", "系统": "system", "系统挂机": "system"}


@dataclass(frozen=True)
class CallFiles:
    """The files of one call and what the manifest says about it."""

    transcript: str | None = None
    recording: str | None = None
    call_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # normalised manifest fields (JSON values)
    attributes: dict[str, str] = field(default_factory=dict)  # the manifest's other columns
    place: str | None = None  # "manifest.csv line 3"

    @property
    def name(self) -> str:
        """How the call is named in errors and in Conversation.source: its files joined by ' + '."""
        return " + ".join(p for p in (self.transcript, self.recording) if p)

    def __str__(self) -> str:
        return self.name


# ---- grouping --------------------------------------------------------------------------------------------


def is_recording(name: str | Path) -> bool:
    return str(name).lower().endswith(AUDIO_EXTENSIONS)


def is_manifest(path: str | Path) -> bool:
    """A CSV/TSV/JSONL file whose name says it is a manifest (manifest.csv, calls-manifest.jsonl, 清单.csv)."""
    p = Path(path)
    return p.suffix.lower() in MANIFEST_EXTENSIONS and bool(_MANIFEST_NAME.search(p.stem))


def looks_like_manifest(path: str | Path, head: bytes | None = None) -> bool:
    """A manifest by name, or by content: a CSV/TSV whose header names recording/transcript/files columns
    and no text column, or JSON Lines whose first object names those files and has no utterances.
    `head`: the file's first 4 KB when it is not a local file (object storage)."""
    p = Path(path)
    if is_manifest(p):
        return True
    if p.suffix.lower() not in MANIFEST_EXTENSIONS:
        return False
    if head is None:
        try:
            with p.open("rb") as fh:
                head = fh.read(4096)
        except OSError:
            return False
    text = next((t for t in (_decode(head, e) for e in ("utf-8-sig", "gb18030")) if t is not None), None)
    if not text or not text.strip():
        return False
    first = text.lstrip().splitlines()[0]
    files = {"recording", "transcript", "files"}
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        try:
            rec = json.loads(first)
        except json.JSONDecodeError:
            return False
        return isinstance(rec, dict) and "utterances" not in rec and bool(
            files & {_ALIAS.get(_squash(k)) for k in rec})
    from .tabular import FIELD_ALIASES

    cells = next(csv.reader([first], delimiter="\t" if p.suffix.lower() == ".tsv" else ","), [])
    names = {_squash(c) for c in cells}
    return bool(files & {_ALIAS.get(n) for n in names}) and not names & set(FIELD_ALIASES["text"])


def _decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        # the 4 KB may end inside a character: drop up to 3 trailing bytes
        for cut in (1, 2, 3):
            try:
                return data[:-cut].decode(encoding)
            except UnicodeDecodeError:
                continue
    return None


def _stem(p: Path) -> str:
    return _TRANSCRIPT_TAIL.sub("", p.stem) if not is_recording(p) else p.stem


def group_targets(files: Iterable[Any]) -> tuple[list[Any], list[InputError]]:
    """Files → the same files with manifests and same-stem pairs replaced by `CallFiles`, in the order of
    each call's first file; plus the errors of manifest rows (a missing file, a bad value)."""
    files = list(files)
    errors: list[InputError] = []
    calls_at: dict[int, list[CallFiles]] = {}
    claimed: set[str] = set()
    for i, f in enumerate(files):
        if isinstance(f, Path | str) and str(f) != "-" and looks_like_manifest(f):
            calls, errs = read_manifest(Path(f))
            errors.extend(errs)
            calls_at[i] = calls
            claimed.add(_key(f))
            for c in calls:
                claimed.update(_key(p) for p in (c.transcript, c.recording) if p)
    # same stem in the same folder: one recording and one transcript
    groups: dict[tuple[str, str], list[int]] = {}
    for i, f in enumerate(files):
        if not isinstance(f, Path | str) or str(f) == "-" or _key(f) in claimed:
            continue
        p = Path(f)
        groups.setdefault((str(p.parent), _stem(p)), []).append(i)
    pair_at: dict[int, CallFiles] = {}
    paired: set[int] = set()
    for members in groups.values():
        recs = [i for i in members if is_recording(files[i])]
        texts = [i for i in members if not is_recording(files[i])]
        if len(recs) == 1 and len(texts) == 1:
            pair_at[min(members)] = CallFiles(transcript=str(files[texts[0]]), recording=str(files[recs[0]]))
            paired.update(members)
    out: list[Any] = []
    for i, f in enumerate(files):
        if i in calls_at:
            out.extend(calls_at[i])
        elif i in pair_at:
            out.append(pair_at[i])
        elif i in paired or (isinstance(f, Path | str) and str(f) != "-" and _key(f) in claimed):
            continue
        else:
            out.append(f)
    return out, errors


def _key(p: str | Path) -> str:
    try:
        return str(Path(p).resolve())
    except OSError:
        return str(p)


# ---- manifests -------------------------------------------------------------------------------------------


Resolve = Callable[[str], "str | None"]  # a file named by a manifest row -> its path, None if it doesn't exist


def read_manifest(path: str | Path, *, data: bytes | None = None,
                  resolve: Resolve | None = None) -> tuple[list[CallFiles], list[InputError]]:
    """The calls a manifest lists, and an error for each row that cannot be used. A manifest in object
    storage comes as `data` (its bytes) with `resolve` (relative names against its folder, checked there)."""
    name = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return [], [InputError(name, None, f"无法读取清单：{e.strerror or e}")]
    text = decode_all(data, name)
    if isinstance(text, InputError):
        return [], [text]
    rows: list[tuple[str, dict[str, Any]]] = []
    errors: list[InputError] = []
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            rec = parse_json(line, name, f"第 {n} 行")
            if isinstance(rec, InputError):  # 第 3 行第 7 列: 不是有效的 JSON：缺少逗号
                errors.append(rec)
                continue
            if not isinstance(rec, dict):
                errors.append(InputError(name, f"第 {n} 行", "每行应是一个 JSON 对象"))
                continue
            rows.append((f"第 {n} 行", rec))
    else:
        delim = "\t" if suffix == ".tsv" else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delim)
        for rec in reader:
            rows.append((f"第 {reader.line_num} 行", {k: v for k, v in rec.items() if k is not None}))
        if reader.fieldnames is None:
            return [], [InputError(name, None, "清单是空的")]
        known = {_ALIAS.get(_squash(h)) for h in reader.fieldnames}
        if not known & {"recording", "transcript", "files"}:
            return [], [InputError(name, "第 1 行", "清单缺少文件列（recording / transcript / files）")]
    calls = []
    for place, rec in rows:
        got = _row(name, place, rec, resolve or _local_file(Path(path)))
        if isinstance(got, InputError):
            errors.append(got)
        else:
            calls.append(got)
    return calls, errors


def _local_file(manifest: Path) -> Resolve:
    def resolve(p: str) -> str | None:
        full = Path(p)
        if not full.is_absolute():
            full = manifest.parent / full
        return str(full) if full.is_file() else None
    return resolve


def _row(name: str, place: str, rec: dict[str, Any], resolve: Resolve) -> CallFiles | InputError:
    fields: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for k, v in rec.items():
        f = _ALIAS.get(_squash(k))
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        if f is None:
            attributes[str(k)] = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        else:
            fields[f] = v.strip() if isinstance(v, str) else v
    where = f"{place}" + (f"（{fields['call_id']}）" if fields.get("call_id") else "")
    files: list[str] = []
    if "files" in fields:
        raw = fields.pop("files")
        files = [str(x) for x in raw] if isinstance(raw, list) else [x for x in re.split(r"[;|,；，\s]+", str(raw)) if x]
    rec_path = fields.pop("recording", None)
    trans_path = fields.pop("transcript", None)
    for f in files:
        if is_recording(f):
            rec_path = rec_path or f
        else:
            trans_path = trans_path or f
    if not rec_path and not trans_path:
        return InputError(name, where, "这一行没有列出录音或转写文件")
    resolved: dict[str, str] = {}
    for kind, p in (("录音", rec_path), ("转写", trans_path)):
        if not p:
            continue
        full = resolve(str(p))
        if full is None:
            return InputError(name, where, f"{kind}文件不存在：{p}")
        resolved[kind] = full
    try:
        meta = _meta(fields)
    except ValueError as exc:
        return InputError(name, where, str(exc))
    bad = unsafe_value({"id": meta.get("call_id"), "fields": meta, "attributes": attributes})
    if bad is not None:  # the limits every call obeys: a call id over 200 characters, NUL, lone surrogates
        return InputError(name, where, bad[1])
    call_id = meta.pop("call_id", None)
    return CallFiles(transcript=resolved.get("转写"), recording=resolved.get("录音"), call_id=call_id, meta=meta,
                     attributes=attributes, place=f"{name} {place}")


def _meta(fields: dict[str, Any]) -> dict[str, Any]:
    """Manifest values checked and normalised; ValueError with the field and the reason."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        s = str(v).strip()
        if k in ("call_id", "agent_id", "agent_name", "team", "customer_id"):
            out[k] = s
        elif k == "direction":
            if s.lower() not in _DIRECTIONS:
                raise ValueError(f"direction 的值 {s!r} 无法识别（应为 inbound/outbound 或 呼入/呼出）")
            out[k] = _DIRECTIONS[s.lower()]
        elif k == "channel":
            if s.lower() not in _CHANNELS:
                raise ValueError(f"channel 的值 {s!r} 无法识别（应为 phone/chat/email/web/onsite）")
            out[k] = _CHANNELS[s.lower()]
        elif k == "ended_by":
            if s.lower() not in _ENDED:
                raise ValueError(f"ended_by 的值 {s!r} 无法识别（应为 customer/agent/system）")
            out[k] = _ENDED[s.lower()]
        elif k in ("ring_seconds", "offset"):
            try:
                out[k] = float(s)
            except ValueError:
                raise ValueError(f"{k} 的值 {s!r} 不是秒数") from None
        elif k == "started_at":
            try:
                out[k] = datetime.fromisoformat(s.replace("Z", "+00:00").replace("/", "-")).isoformat()
            except ValueError:
                raise ValueError(f"started_at 的值 {s!r} 不是日期时间（如 2026-03-05T14:32:10+08:00）") from None
        elif k == "agent_channel":
            low = s.lower()
            if low in _LEFT:
                out[k] = "left"
            elif low in _RIGHT:
                out[k] = "right"
            else:
                raise ValueError(f"agent_channel 的值 {s!r} 无法识别（应为 left/right 或 0/1、左/右）")
    return out


# ---- reading one call ------------------------------------------------------------------------------------


def read_call(call: CallFiles, input_format: str | None = None, *, recording_path: str | Path | None = None,
              **read_options: Any) -> Iterator[Conversation | InputError]:
    """The conversation of one call: its transcript measured against its recording, with the manifest's
    fields; or InputErrors naming file, place and reason. `recording_path` reads the recording from
    another place than it is named by (the workbench's copy in its audio store)."""
    from .api import read_path
    from .registry import recording_merger

    channels = read_options.get("channels")
    if call.meta.get("agent_channel") == "left":
        channels = "agent,customer"
    elif call.meta.get("agent_channel") == "right":
        channels = "customer,agent"
    offset = call.meta.get("offset", read_options.get("offset"))
    rec_source = call.recording
    rec_path = str(recording_path or call.recording) if call.recording else None
    if call.transcript is None:
        assert rec_path is not None
        opts = {**read_options, "channels": channels}
        for item in read_path(rec_path, source_name=rec_source, **opts):
            yield _in_row(item, call) if isinstance(item, InputError) else _meta_or_error(item, call)
        return
    items = list(read_path(call.transcript, input_format, **read_options))
    errors = [_in_row(i, call) for i in items if isinstance(i, InputError)]
    convs = [i for i in items if isinstance(i, Conversation)]
    yield from errors
    if errors:
        return
    if len(convs) != 1:
        yield _in_row(InputError(call.transcript, None, f"转写文件含 {len(convs)} 通会话，无法与一段录音配对"), call)
        return
    conv = _meta_or_error(convs[0], call)
    if isinstance(conv, InputError) or rec_path is None:
        yield conv
        return
    merge = recording_merger()
    if merge is None:
        conv.notes.append(f"录音 {Path(str(rec_source)).name} 未分析：需要安装 kefuqa[audio]；声学规则不适用")
        yield conv
        return
    options = ReadOptions(source_name=rec_source, extra={"channels": channels, "offset": offset,
                                                         "vad": read_options.get("vad")})
    merged = merge(conv, rec_path, options)
    yield _in_row(merged, call) if isinstance(merged, InputError) else merged


def _in_row(err: InputError, call: CallFiles) -> InputError:
    """An error about a file a manifest row names also says which row and which call (the file alone does
    not tell the QA lead which call of the export is missing)."""
    if not call.place:
        return err
    who = f"，通话 {call.call_id}" if call.call_id else ""
    return InputError(err.source, err.place, f"{err.reason}（见清单 {call.place}{who}）")


def _meta_or_error(conv: Conversation, call: CallFiles) -> Conversation | InputError:
    try:
        return _with_meta(conv, call)
    except ValueError as exc:
        return InputError(call.place or call.name, None, str(exc))


def _with_meta(conv: Conversation, call: CallFiles) -> Conversation:
    m = call.meta
    update: dict[str, Any] = {"source": call.name}
    if call.call_id:
        update["id"] = call.call_id
    for k in ("direction", "channel", "ring_seconds", "ended_by"):
        if k in m:
            update[k] = m[k]
    if "started_at" in m:
        update["started_at"] = datetime.fromisoformat(m["started_at"])
    if any(k in m for k in ("agent_id", "agent_name", "team")):
        data = conv.agent.model_dump() if conv.agent is not None else {}
        data.update({k2: m[k] for k, k2 in (("agent_id", "id"), ("agent_name", "name"), ("team", "team"))
                     if k in m})
        update["agent"] = Party.model_validate(data)
    if "customer_id" in m:
        data = conv.customer.model_dump() if conv.customer is not None else {}
        data["id"] = m["customer_id"]
        update["customer"] = Party.model_validate(data)
    metrics = dict(conv.metrics)
    if call.attributes:
        metrics["attributes"] = {**metrics.get("attributes", {}), **call.attributes}
    if call.place:
        metrics["manifest"] = call.place
    update["metrics"] = metrics
    return conv.model_copy(update=update)
