"""A JSON array read one element at a time, in bounded memory, with the errors `json.loads` gives.

`ArrayStream(fh, encoding)` decodes the stream chunk by chunk and parses each element with the standard
library's scanner (`json.JSONDecoder.raw_decode`, no extra package). Only the current element and one
or two 256 kB chunks are held. A syntax error is raised as `StreamError` with the message, line and column that
`json.loads` of the whole text gives (the same scanner sees the same characters in the same order), so a
streamed file and a file read whole report the same place. What the whole-file reader decides on the
whole text — a top level that is not a list, bytes that do not decode, nesting too deep for the parser —
raises `NotStreamable`, and the caller reads such a file whole.

    with open(path, "rb") as fh:
        for index, offset, value in ArrayStream(fh, "utf-8"):   # offset: the element's first byte
            ...
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

CHUNK = 256 * 1024  # bytes read at a time
_WS = re.compile(r"[ \t\n\r]*")
_NEAR_END = 16  # an error this close to the end of the buffer may only mean the element goes on


class StreamError(Exception):
    """The text is not valid JSON: `msg` in the parser's words, `lineno`/`colno` in the whole text, or
    `constant` (NaN, Infinity) with no place, as the whole-file reader reports it."""

    def __init__(self, msg: str, lineno: int | None, colno: int | None, constant: bool = False) -> None:
        super().__init__(msg)
        self.msg = msg
        self.lineno = lineno
        self.colno = colno
        self.constant = constant


class NotStreamable(Exception):
    """The whole-file reader must decide (top level not a list, undecodable bytes, nesting too deep)."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"JSON 中不允许出现 {name}")


class ArrayStream:
    """The elements of the JSON array in `fh` as ``(index, byte offset, value)`` (the offset -1 unless
    `offsets`: finding them costs an encoding of the text).

    With `elements_only` the stream is a slice of an array cut at element starts (``e, e, e`` and maybe
    the closing ``]``): no opening bracket is expected, and `first_index` numbers the elements."""

    def __init__(self, fh: BinaryIO, encoding: str, *, offset: int = 0, elements_only: bool = False,
                 first_index: int = 0, chunk: int | None = None, offsets: bool = False) -> None:
        self._fh = fh
        self._enc = encoding
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._json = json.JSONDecoder(parse_constant=_no_constants)
        self._chunk = chunk or CHUNK
        self._elements_only = elements_only
        self._first_index = first_index
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._offsets = offsets  # the elements' byte offsets wanted (else -1: no encoding work)
        self._mark_pos = 0  # a position in buf …
        self._mark_byte = offset  # … and its byte offset in the file
        self.line_base = 1  # line of buf[0] in the whole text
        self.col_base = 0  # characters between the last newline before buf[0] and buf[0]
        self._started = False

    # -- buffer ---------------------------------------------------------------------------------------

    def _fill(self, at_least: int = 0) -> bool:
        """Read more (at least `at_least` bytes, else one chunk); False at the end of the input."""
        if self.eof:
            return False
        if self.pos > self._chunk:  # drop what was parsed, keeping the place of what is left
            if self._offsets:
                self.byte_offset()
            newlines = self.buf.count("\n", 0, self.pos)
            self.line_base += newlines
            if newlines:
                self.col_base = self.pos - self.buf.rfind("\n", 0, self.pos) - 1
            else:
                self.col_base += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = self._mark_pos = 0
        data = self._fh.read(max(self._chunk, at_least))
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise NotStreamable("undecodable") from None
        if not self._started:
            self._started = True
            stripped = text.lstrip("\ufeff")  # as the whole-file reader strips it
            self._mark_byte += len(text[: len(text) - len(stripped)].encode(self._enc))
            text = stripped
        self.buf += text
        if not data:
            self.eof = True
        return True

    def _skip_ws(self) -> None:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self._fill():
                return

    def _at(self) -> str:
        """The character at the position, '' at the end of the input (after skipping whitespace)."""
        self._skip_ws()
        return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def _error(self, msg: str, at: int) -> StreamError:
        buf = self.buf
        newlines = buf.count("\n", 0, at)
        if newlines:
            col = at - buf.rfind("\n", 0, at)
        else:
            col = self.col_base + at + 1
        return StreamError(msg, self.line_base + newlines, col)

    def _value(self) -> Any:
        """Parse the value at the position, reading on while the buffer may have cut it."""
        while True:
            try:
                value, end = self._json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                cut = e.pos >= len(self.buf) - _NEAR_END or e.msg.startswith("Unterminated string")
                if cut and self._fill(len(self.buf)):
                    continue
                raise self._error(e.msg, e.pos) from None
            except RecursionError:
                raise NotStreamable("too deep") from None
            except ValueError as e:  # NaN / Infinity (the parse_constant hook)
                raise StreamError(str(e), None, None, constant=True) from None
            if end >= len(self.buf) and self._fill(len(self.buf)):
                continue  # a number may go on in the next chunk
            self.pos = end
            return value

    def byte_offset(self) -> int:
        """The byte offset in the file of the current position (-1 unless `offsets` were asked for)."""
        if not self._offsets:
            return -1
        self._mark_byte += len(self.buf[self._mark_pos: self.pos].encode(self._enc))
        self._mark_pos = self.pos
        return self._mark_byte

    # -- the array ------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        index = self._first_index
        if self._elements_only:
            while True:
                c = self._at()
                if c in ("", "]"):
                    return
                offset = self.byte_offset()
                yield index, offset, self._value()
                index += 1
                if self._at() == ",":
                    self.pos += 1
            return
        c = self._at()
        if c == "":
            raise self._error("Expecting value", self.pos)
        if c != "[":
            raise NotStreamable("not a list")
        self.pos += 1
        if self._at() == "]":
            self.pos += 1
        else:
            while True:
                if self._at() == "":  # '[' or '[1,' at the end: the parser points at the last character
                    raise self._error("Expecting value", max(len(self.buf) - 1, 0))
                offset = self.byte_offset()
                yield index, offset, self._value()
                index += 1
                c = self._at()
                if c == "]":
                    self.pos += 1
                    break
                if c != ",":
                    raise self._error("Expecting ',' delimiter", self.pos)
                self.pos += 1
        if self._at() != "":
            raise self._error("Extra data", self.pos)
