"""What every use case is given."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session as DBSession

from ..config import Settings
from ..errors import Forbidden
from ..models import User
from ..workbench import Workbench


@dataclass
class Ctx:
    """The workbench, this request's database session, who acts (None: the command line, run by whoever
    operates the server) and from which address."""

    wb: Workbench
    db: DBSession
    user: User | None = None
    ip: str | None = None

    @property
    def settings(self) -> Settings:
        return self.wb.settings

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    def require(self, roles: tuple[str, ...], message: str = "当前角色无此权限") -> None:
        """Forbidden unless the acting user has one of `roles` (the command line may do everything)."""
        if self.user is not None and self.user.role not in roles:
            raise Forbidden(message)

    def acting(self) -> User:
        """The acting user; Forbidden for the command line, where an action needs a person."""
        if self.user is None:
            raise Forbidden("此操作需要登录用户")
        return self.user

    @contextmanager
    def transaction(self) -> Iterator[DBSession]:
        """Commit at the end of the block; roll back when it raises."""
        try:
            yield self.db
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()
