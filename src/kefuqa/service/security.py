"""Passwords (argon2id), session tokens, CSRF tokens and login lockout."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import lazyload

from .errors import Unauthorized
from .models import Session, User, utcnow

_hasher = PasswordHasher()  # argon2id with the library's maintained defaults
# A hash checked against when the user does not exist, so that a wrong username costs as long as a
# wrong password and response times do not tell which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 8


class AuthError(Unauthorized):
    """Login refused; the message is safe to show (it does not say whether the username exists)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why `password` is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少 {MIN_PASSWORD_LENGTH} 位"
    if password.isdigit() or password.isalpha():
        return "密码需同时包含字母和数字或符号"
    return None


def generate_password() -> str:
    """16 random URL-safe characters that pass `password_problem` (letters and digits or symbols)."""
    while True:
        password = secrets.token_urlsafe(12)
        if password_problem(password) is None:
            return password


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


@dataclass
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


def authenticate(db: DBSession, username: str, password: str, *, max_failed: int, lockout_minutes: int) -> User:
    user = db.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise AuthError("用户名或密码错误")
    now = utcnow()
    # No lockout: a locked account would answer differently from an unknown name (enumeration), and anyone
    # could lock the administrator out. Failed attempts are slowed down instead (service.throttle); the
    # count of failures since the last login is kept for the administrator to see.
    if not verify_password(user.password_hash, password) or not user.active:
        user.failed_logins = (user.failed_logins or 0) + 1
        raise AuthError("用户名或密码错误")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    return user


def open_session(db: DBSession, user: User, *, hours: int, kind: str = "web") -> NewSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(hours=hours)
    db.add(Session(id=token_digest(token), user_id=user.id, kind=kind, csrf_token=csrf, expires_at=expires))
    # Drop this user's expired sessions while we are here.
    db.execute(delete(Session).where(Session.user_id == user.id, Session.expires_at < utcnow()))
    return NewSession(token, csrf, expires)


def find_session(db: DBSession, token: str | None) -> tuple[Session, User] | None:
    if not token or len(token) > 200:
        return None
    # The user's team and agent load when a page uses them; the API's checks need only their ids.
    row = db.execute(
        select(Session, User).join(User, User.id == Session.user_id).where(Session.id == token_digest(token))
        .options(lazyload(User.team), lazyload(User.agent))
    ).first()
    if row is None:
        return None
    sess, user = row
    expires = aware(sess.expires_at)
    if expires is None or expires <= utcnow() or not user.active:
        return None
    return sess, user


def close_session(db: DBSession, token: str | None) -> None:
    if token:
        db.execute(delete(Session).where(Session.id == token_digest(token)))


def close_user_sessions(db: DBSession, user_id: int) -> None:
    db.execute(delete(Session).where(Session.user_id == user_id))

