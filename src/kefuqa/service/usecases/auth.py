"""Who is asking: the token of a request, login, logout, password change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import Forbidden, Invalid, Throttled
from ..models import User
from ..repository import audit
from ..security import (
    AuthError,
    NewSession,
    authenticate,
    close_session,
    close_user_sessions,
    hash_password,
    open_session,
    password_problem,
    verify_password,
)
from .context import Ctx

Via = Literal["api", "web"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def request_token(authorization: str | None, cookie: str | None) -> tuple[str | None, Literal["bearer", "cookie"]]:
    """A request's session token and how it came: a bearer header wins over the session cookie."""
    token = bearer_token(authorization)
    if token is not None:
        return token, "bearer"
    return cookie, "cookie"


@dataclass
class LoggedIn:
    user: User
    session: NewSession


def login(ctx: Ctx, username: str, password: str, *, via: Via) -> LoggedIn:
    """Check the password and open a session (a bearer token for the API, a cookie for the pages). A failed
    attempt is audited and slows down further attempts (`service.throttle`: by client, by account on that
    client, gently by account); one made too soon is refused unchecked (Throttled, 429 with Retry-After).
    Unknown and known names get the same answers; raises Unauthorized (`AuthError`)."""
    s = ctx.settings
    username = username[:64]
    throttle = ctx.wb.logins
    wait = throttle.wait(ctx.ip, username)
    if wait:
        raise Throttled(wait)
    with ctx.transaction() as db:
        try:
            user = authenticate(db, username, password[:200], max_failed=s.max_failed_logins,
                                lockout_minutes=s.lockout_minutes)
        except AuthError:
            throttle.failed(ctx.ip, username)
            audit(db, None, "auth.fail", "user", username, ctx.ip)
            db.commit()  # the failure is recorded even though this raises
            raise
        throttle.succeeded(ctx.ip, username)
        new = open_session(db, user, hours=s.session_hours, kind=via)
        audit(db, user, "auth.login", "user", user.id, ctx.ip, via=via)
    return LoggedIn(user, new)


def logout(ctx: Ctx, token: str | None, *, via: Via) -> None:
    with ctx.transaction() as db:
        close_session(db, token)
        if ctx.user is not None:
            audit(db, ctx.user, "auth.logout", "user", ctx.user.id, ctx.ip, via=via)


def change_password(ctx: Ctx, old: str, new: str, confirm: str | None = None) -> None:
    """Change the acting user's password (`confirm`, when given, must repeat it); every session of the user
    ends, so they log in again."""
    with ctx.transaction() as db:
        user = db.get(User, ctx.acting().id)
        if user is None:
            raise Forbidden("用户不存在")
        if not verify_password(user.password_hash, old):
            raise Forbidden("原密码不正确")
        if confirm is not None and new != confirm:
            raise Invalid("两次输入的新密码不一致")
        problem = password_problem(new)
        if problem:
            raise Invalid(problem)
        user.password_hash = hash_password(new)
        close_user_sessions(db, user.id)
        audit(db, user, "user.password", "user", user.id, ctx.ip)
