"""Service settings, read from the environment (``KEFUQA_*``) with defaults that work on a fresh machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "~/.local/share/kefuqa"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError as exc:  # a typo in an env var must not start a server with a silent default
        raise ValueError(f"{name}={raw!r} is not an integer") from exc


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    """Everything the service needs to know; `Settings.from_env()` is what `kefuqa serve` uses."""

    database_url: str = ""
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR).expanduser())
    # Rulebook activated on a fresh database (a bundled name, a directory or a YAML file).
    rulebook: str | None = None
    timezone: str = "Asia/Shanghai"
    # Upload limits: bytes per file, files per request, bytes of one request in all.
    max_file_bytes: int = 50 * 1024 * 1024
    max_text_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 100
    max_request_bytes: int = 200 * 1024 * 1024
    max_conversations_per_request: int = 5000
    session_hours: int = 12
    cookie_secure: bool = False
    # First administrator, created when the user table is empty.
    admin_username: str = "admin"
    admin_password: str | None = None
    # Logins that fail this many times in a row lock the account for `lockout_minutes`.
    max_failed_logins: int = 10
    lockout_minutes: int = 15

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if not self.database_url:
            self.database_url = default_database_url(self.data_dir)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        data_dir = Path(env.get("KEFUQA_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
        values: dict[str, object] = {
            "database_url": env.get("KEFUQA_DATABASE_URL", ""),
            "data_dir": data_dir,
            "rulebook": env.get("KEFUQA_RULEBOOK") or None,
            "timezone": env.get("KEFUQA_TIMEZONE") or "Asia/Shanghai",
            "max_file_bytes": _int("KEFUQA_MAX_UPLOAD_MB", 50) * 1024 * 1024,
            "max_files": _int("KEFUQA_MAX_UPLOAD_FILES", 100),
            "session_hours": _int("KEFUQA_SESSION_HOURS", 12),
            "cookie_secure": _bool("KEFUQA_COOKIE_SECURE", False),
            "admin_username": env.get("KEFUQA_ADMIN_USER") or "admin",
            "admin_password": env.get("KEFUQA_ADMIN_PASSWORD") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir).expanduser() / 'kefuqa.db').as_posix()}"
