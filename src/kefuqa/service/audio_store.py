"""Recordings kept by the workbench: one file per distinct content under the data dir's `audio/` folder,
named by its SHA-256 (never by a client's name), and found again only inside that folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3"}
MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}


def sniff(head: bytes, ext: str) -> bool:
    """Whether the first bytes of a file are what its extension says."""
    if ext == ".wav":
        return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"
    if ext == ".flac":
        return head[:4] == b"fLaC"
    if ext in (".ogg", ".oga"):
        return head[:4] == b"OggS"
    if ext == ".mp3":
        return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)
    return False


def supported() -> bool:
    """Whether audio files can be read here (the audio extra installed and its reader registered)."""
    from ..readers.registry import known_extension

    if known_extension("x.wav"):
        return True
    try:
        from .. import audio
    except ImportError:
        return False
    if audio.available() is not None:
        return False
    audio.register()
    return known_extension("x.wav")


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


class AudioStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _target(self, digest: str, ext: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{digest}{ext}"

    def name_for(self, data: bytes, ext: str) -> str:
        """The file name `keep_bytes` gives that content."""
        return f"{hashlib.sha256(data).hexdigest()}{ext}"

    def discard(self, names: set[str], referenced: set[str]) -> list[str]:
        """Remove the stored files of `names` that no call references (`referenced`): what a rejected upload
        left. Returns the names removed."""
        gone = []
        for name in sorted(names - referenced):
            path = self.find(name)
            if path is not None:
                path.unlink(missing_ok=True)
                gone.append(name)
        return gone

    def keep_bytes(self, data: bytes, ext: str) -> Path:
        """Store uploaded audio (written to a temporary name, then renamed: never half a file)."""
        path = self._target(hashlib.sha256(data).hexdigest(), ext)
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return path

    def keep_file(self, source: Path) -> Path:
        """Store a copy of a local recording (for `kefuqa ingest`)."""
        path = self._target(hashlib.sha256(source.read_bytes()).hexdigest(), source.suffix.lower())
        if not path.exists():
            shutil.copyfile(source, path)
        return path

    def find(self, name: str) -> Path | None:
        """The stored file of that name, only inside the folder; None when there is none."""
        folder = self.folder.resolve()
        path = (folder / Path(name).name).resolve()
        if path.parent != folder or not path.is_file():
            return None
        return path
