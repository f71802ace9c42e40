"""The reader registry: one entry per input format, in detection order.

The built-in text formats register when `kefuqa.readers` is imported. Other layers add formats with
`register_reader`; the readers never import them. Installed plugins are found through the entry-point
group ``kefuqa.readers``, loaded the first time the registry is consulted (after the built-in formats):
each entry point names a callable taking no arguments that calls `register_reader` (or a module that
registers on import). kefuqa's own audio layer is such a plugin (``audio = "kefuqa.audio:register"`` in
pyproject.toml); a plugin whose imports fail (an extra not installed) is skipped.

How a registered ``read`` is called depends on ``binary``:

- text formats: ``read(source: Source, options: ReadOptions)``; the `Source` gives decoded lines or text;
- binary formats: ``read(path: Path, options: ReadOptions)``; ``path`` is a real file (a temporary copy
  when the input came from stdin or memory) and ``options.source_name`` is the name to put in
  ``Conversation.source`` and ``InputError.source``.

Either way ``read`` yields `Conversation` or `InputError` items and never raises for bad content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation

ReadResult = Iterator[Conversation | InputError]
Sniffer = Callable[[bytes, str], bool]


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    name: str
    extensions: tuple[str, ...]
    sniff: Sniffer | None
    read: Callable[..., ReadResult]
    binary: bool = False


ENTRY_POINT_GROUP = "kefuqa.readers"

_READERS: dict[str, ReaderSpec] = {}
# Names of the registered formats, in registration order (updated in place by `register_reader`); read
# it as `FORMATS` or `formats()`, which load the installed plugins first.
_NAMES: list[str] = []
_plugins_loaded = False


def load_plugins() -> None:
    """Register the readers of installed plugins (entry-point group ``kefuqa.readers``), once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _READERS:
            continue  # registered explicitly already
        try:
            target = ep.load()
        except ImportError:
            continue
        if callable(target):
            target()


def formats() -> list[str]:
    """Names of the registered formats, the plugins' included, in registration order (the list itself:
    `register_reader` updates it in place)."""
    load_plugins()
    return _NAMES


def __getattr__(name: str) -> Any:
    if name == "FORMATS":
        return formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _norm_ext(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else "." + ext


def register_reader(
    name: str,
    *,
    extensions: tuple[str, ...],
    sniff: Sniffer | None,
    read: Callable[..., Any],
    binary: bool = False,
) -> None:
    """Add (or replace) the reader of format `name`.

    `extensions` ("wav" or ".wav") are hints for detection and decide which files `iter_paths` picks up
    inside folders; `sniff(head, name)` looks at the first bytes of the input and its file name and says
    whether they are this format (None: only chosen by extension or by name).
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"format name {name!r} must be letters, digits, '_' or '-'")
    if not callable(read) or (sniff is not None and not callable(sniff)):
        raise TypeError("read and sniff must be callables")
    spec = ReaderSpec(name, tuple(_norm_ext(e) for e in extensions), sniff, read, binary)
    if name not in _READERS:
        _NAMES.append(name)
    _READERS[name] = spec


def get_reader(name: str) -> ReaderSpec:
    load_plugins()
    try:
        return _READERS[name]
    except KeyError:
        raise ValueError(f"unknown input format {name!r} (known: {', '.join(_NAMES)})") from None


def readers_in_detection_order() -> list[ReaderSpec]:
    """Binary formats first (their magic bytes are unambiguous), then text formats, each in
    registration order."""
    load_plugins()
    specs = [_READERS[n] for n in _NAMES]
    return [s for s in specs if s.binary] + [s for s in specs if not s.binary]


def format_for_name(filename: str) -> str | None:
    """The first registered format whose extension ends `filename`, if any."""
    load_plugins()
    low = filename.lower()
    best: tuple[int, str] | None = None
    for name in _NAMES:
        for ext in _READERS[name].extensions:
            # the longest matching extension wins (".tar.gz" over ".gz")
            if low.endswith(ext) and (best is None or len(ext) > best[0]):
                best = (len(ext), name)
    return best[1] if best else None


def known_extension(filename: str) -> bool:
    return format_for_name(filename) is not None


# ---- recordings paired with transcripts ------------------------------------------------------------------
# A layer that can measure a recording (kefuqa.audio) registers here how it adds a recording's measures to
# a transcript: ``merge(conversation, recording_path, options) -> Conversation | InputError`` (options: a
# ReadOptions with ``channels``, ``offset``, ``vad``, ``source_name``). The readers pair files
# (`kefuqa.readers.calls`) without importing that layer.

RecordingMerger = Callable[..., Any]
_MERGERS: list[RecordingMerger] = []


def register_recording_merger(merge: RecordingMerger) -> None:
    """Set the function that adds a recording's measures to its transcript (the last one registered wins)."""
    if not callable(merge):
        raise TypeError("merge must be callable")
    _MERGERS[:] = [merge]


def recording_merger() -> RecordingMerger | None:
    """The registered merger, or None when no installed layer measures recordings."""
    load_plugins()
    return _MERGERS[0] if _MERGERS else None
