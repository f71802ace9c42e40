"""The service's parts wired together once a process: settings, database engine and sessions, rulebook
versions, the audio store, reading files and ingest. The use cases (`service.usecases`) work with these;
the HTTP app, `kefuqa ingest` and `kefuqa user add` each build one Workbench."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from . import rollup
from .audio_store import AudioStore
from .config import Settings
from .db import make_engine, migrate, session_factory
from .ingest import Ingestor, Reader
from .models import AuditEntry, User
from .rulebooks import Rulebooks, ensure_active
from .security import generate_password, hash_password
from .throttle import DatabaseCounts, LoginThrottle


@dataclass
class SetupInfo:
    applied_migrations: list[str]
    rulebook: str
    admin_username: str | None = None
    admin_password: str | None = None  # set only when a password was generated now


class Workbench:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        self.rulebooks = Rulebooks(settings)
        self.audio = AudioStore(settings.audio_dir)
        self.reader = Reader(settings, self.audio)
        self.ingestor = Ingestor(self.sessions, self.rulebooks, self.engine.dialect.name, tz=settings.timezone)
        self.logins = LoginThrottle(per_pair=settings.max_failed_logins, cap_s=settings.lockout_minutes * 60,
                                    store=DatabaseCounts(self.engine))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def setup(self) -> SetupInfo:
        """Migrate, make sure a rulebook is active, and create the first administrator on an empty database."""
        applied = migrate(self.engine, self.settings.timezone)
        rollup.ensure(self.engine, self.settings.timezone)  # issue 13: the daily statistics, built for this zone
        with self.sessions() as db, db.begin():
            rec = ensure_active(db, self.settings)
            info = SetupInfo(applied, f"{rec.name} {rec.version}")
            if db.scalar(select(User.id).limit(1)) is None:
                password = self.settings.admin_password
                generated = password is None
                if generated:
                    password = generate_password()
                assert password is not None
                db.add(User(username=self.settings.admin_username, display_name="管理员", role="admin",
                            password_hash=hash_password(password)))
                db.add(AuditEntry(action="user.create", object_type="user", object_id=self.settings.admin_username,
                                  detail={"role": "admin", "first_admin": True}))
                info.admin_username = self.settings.admin_username
                info.admin_password = password if generated else None
        return info

    def active_label(self) -> str:
        """"name version" of the active rulebook."""
        with self.sessions() as db:
            label = self.rulebooks.active(db).label
            db.commit()
        return label
