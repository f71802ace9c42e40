"""Where the bytes come from (a file, stdin, memory) and how they become text.

Text is decoded as UTF-8 (a BOM is dropped), else GB18030 (what Chinese Excel and call-center systems
export), else whatever `charset-normalizer` recognises; UTF-16/32 with a BOM (Excel's "Unicode text") is
read too. Line by line reading keeps memory constant however large the file is.
"""

from __future__ import annotations

import codecs
import io
import os
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from kefuqa.errors import InputError

HEAD_SIZE = 256 * 1024
_FALLBACKS = ("utf-8", "gb18030")
_SHOWN = {"utf-8": "UTF-8", "gb18030": "GB18030"}


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Options every reader receives (readers ignore the ones that do not concern them).

    Options of registered readers (the audio reader's ``channels``, ``asr``, ``vad`` …) travel in
    `extra` and read as attributes too: ``options.asr``.
    """

    # canonical field -> header in the file, e.g. {"role": "说话方", "text": "话术内容"} (tabular formats)
    csv_columns: Mapping[str, str] | None = None
    # the name put in Conversation.source / InputError.source instead of the path
    source_name: str | None = None
    # vendor formats: channel/speaker 0 is the customer and 1 the agent (default: 0 agent, 1 customer)
    swap_roles: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "extra")[name]
        except (KeyError, AttributeError):
            raise AttributeError(name) from None


@dataclass(slots=True)
class Line:
    number: int  # 1-based
    text: str  # with its line ending
    ok: bool  # False when the bytes could not be decoded (text holds U+FFFD replacements)


def _bom_encoding(data: bytes) -> str | None:
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def line_encoding(head: bytes, *, complete: bool) -> str | None:
    """The encoding to try first on each line, from the start of the input: the BOM's, else UTF-8 or
    GB18030 if it decodes everything (or else most lines: then only the bad lines fail), else
    charset-normalizer's guess; None when nothing fits."""
    enc = _bom_encoding(head) or next((e for e in _FALLBACKS if _decodes(head, e, complete)), None)
    return enc or majority_encoding(head, complete) or _guess_encoding(head, complete)


def majority_encoding(data: bytes, complete: bool = True) -> str | None:
    """UTF-8 or GB18030, whichever decodes more of the non-ASCII lines (None when neither decodes any)."""
    lines = data.split(b"\n")
    if not complete:
        lines = lines[:-1]
    votes = dict.fromkeys(_FALLBACKS, 0)
    for raw in lines:
        if raw.isascii():
            continue
        for enc in _FALLBACKS:
            if _decodes(raw, enc, True):
                votes[enc] += 1
                break
    best = max(_FALLBACKS, key=lambda e: votes[e])
    return best if votes[best] else None


def first_bad_line(data: bytes, encoding: str) -> int | None:
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not _decodes(raw.removeprefix(codecs.BOM_UTF8), encoding, True):
            return number
    return None


def _decodes(data: bytes, encoding: str, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(data, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _guess_encoding(data: bytes, complete: bool) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return None
    enc = codecs.lookup(best.encoding).name
    return enc if _decodes(data, enc, complete) else None


@lru_cache(maxsize=2)
def head_text(head: bytes) -> str:
    """The start of the input as text, for sniffing ("" when it does not decode)."""
    enc = line_encoding(head, complete=False)
    if enc is None:
        return ""
    return codecs.getincrementaldecoder(enc)("replace").decode(head, final=False).lstrip("\ufeff")


class _Replay(io.RawIOBase):
    """A stream that gives `head` again and then the rest of `rest` (stdin cannot be rewound)."""

    def __init__(self, head: bytes, rest: BinaryIO, close_rest: bool = False) -> None:
        self._head = memoryview(head)
        self._rest = rest
        self._close_rest = close_rest

    def close(self) -> None:
        if self._close_rest and not self.closed:
            self._rest.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Source:
    """One input: its display name, the stem used for ids, its first bytes, and a way to read it."""

    def __init__(
        self, name: str, stem: str, hint: str, head: bytes, opener: Callable[[], BinaryIO], path: Path | None
    ) -> None:
        self.name = name  # goes into Conversation.source / InputError.source
        self.stem = stem  # ids of formats that carry none
        self.hint = hint  # file name whose extension hints at the format
        self.head = head  # the first HEAD_SIZE bytes
        self.path = path  # the real file, when there is one
        self._opener = opener
        self.first_line = 1  # a slice of a bigger file (parallel reading) numbers its lines from here
        self.encoding: str | None = None  # a slice of a bigger file: the encoding found at the file's start

    # -- constructors ---------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: Path, name: str, stem: str) -> Source:
        """Raises OSError when the file cannot be opened. A pipe (``<(cat call.json)``, a FIFO) or a
        device is read once, as stdin is: its head is kept and replayed."""
        f = open(path, "rb")  # noqa: SIM115 - kept open for a pipe
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return cls.from_stdin(name, stem, path.name, f)
        with f:
            head = f.read(HEAD_SIZE)
        return cls(name, stem, path.name, head, lambda: open(path, "rb"), path)

    @classmethod
    def from_bytes(cls, data: bytes, name: str, stem: str, hint: str) -> Source:
        return cls(name, stem, hint, data[:HEAD_SIZE], lambda: io.BytesIO(data), None)

    @classmethod
    def from_stdin(cls, name: str, stem: str, hint: str, stream: BinaryIO | None = None) -> Source:
        raw = stream if stream is not None else sys.stdin.buffer
        head = _read_up_to(raw, HEAD_SIZE)
        opened = False

        def opener() -> BinaryIO:
            nonlocal opened
            if opened:
                raise RuntimeError("stdin can only be read once")
            opened = True
            replay = _Replay(head, raw, close_rest=stream is not None and stream is not sys.stdin.buffer)
            return io.BufferedReader(replay, buffer_size=64 * 1024)  # type: ignore[return-value]

        return cls(name, stem, hint, head, opener, None)

    # -- reading --------------------------------------------------------------------------------------

    def open(self) -> BinaryIO:
        return self._opener()

    def read_all(self) -> bytes:
        with self.open() as f:
            return f.read()

    @property
    def complete_head(self) -> bool:
        """True when `head` is the whole input."""
        return len(self.head) < HEAD_SIZE

    def text(self) -> str | InputError:
        """The whole input decoded, or an InputError naming the file (and the first bad line when the
        rest of the file is UTF-8 or GB18030)."""
        return decode_all(self.read_all(), self.name)

    def lines(self) -> Iterator[Line]:
        """Decoded lines, one at a time (constant memory). Each line is decoded on its own, with the
        encoding found at the start of the file and UTF-8 / GB18030 as fallbacks, so one bad line does
        not spoil the others."""
        enc = self.encoding or line_encoding(self.head, complete=self.complete_head) or "utf-8"
        with self.open() as f:
            if enc.startswith(("utf-16", "utf-32")):  # not ASCII-compatible: let the codec find lines
                wrapper = io.TextIOWrapper(f, encoding=enc, errors="replace", newline="")
                for number, text in enumerate(wrapper, self.first_line):
                    if number == 1:
                        text = text.lstrip("\ufeff")
                    yield Line(number, text, "\ufffd" not in text)
                return
            order = decode_order(enc)
            for number, raw in enumerate(f, self.first_line):
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                yield _decode_line(number, raw, order)


def decode_order(enc: str) -> list[str]:
    """The encodings each line is tried in: the file's (a UTF-8 BOM's as UTF-8), then UTF-8 / GB18030."""
    primary = "utf-8" if enc == "utf-8-sig" else enc
    return [primary] + [e for e in _FALLBACKS if e != primary]


def decode_line(number: int, raw: bytes, order: list[str]) -> Line:
    return _decode_line(number, raw, order)


def _decode_line(number: int, raw: bytes, order: list[str]) -> Line:
    for enc in order:
        try:
            return Line(number, raw.decode(enc), True)
        except UnicodeDecodeError:
            continue
    return Line(number, raw.decode(order[0], errors="replace"), False)


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def decode_all(data: bytes, name: str) -> str | InputError:
    """UTF-8 (BOM dropped), else GB18030, else charset-normalizer's guess, which is only taken when no
    line is UTF-8 or GB18030: a UTF-8 file with a bad byte is an error at that line, not Latin-1."""
    bom = _bom_encoding(data)
    for enc in [bom] if bom else _FALLBACKS:
        try:
            return data.decode(enc).lstrip("\ufeff")
        except UnicodeDecodeError:
            continue
    mostly = majority_encoding(data)
    if mostly is not None:
        line = first_bad_line(data, mostly)
        return InputError(
            name, f"第 {line} 行", f"有不符合 {_SHOWN[mostly]} 编码的字节（文件其余部分是 {_SHOWN[mostly]}）"
        )
    guess = _guess_encoding(data, True)
    return data.decode(guess) if guess else undecodable(name)


def undecodable(name: str, place: str | None = None) -> InputError:
    return InputError(
        name, place, "无法解码文本：既不是 UTF-8 也不是 GB18030，也没有其他编码能读通"
    )
