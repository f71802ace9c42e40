"""Accounts: create one (the admin page, the API, `kefuqa user add`), change one (role, links, state, a new
password)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ..errors import Conflict, Invalid, NotFound
from ..models import ROLES, Agent, Team, User
from ..repository import audit
from ..security import close_user_sessions, generate_password, hash_password, password_problem
from .context import Ctx

USERNAME = re.compile(r"^[A-Za-z0-9_.\-@\u4e00-\u9fff]{2,64}$")
ADMIN = ("admin",)


@dataclass
class NewUser:
    username: str
    role: str
    display_name: str | None = None
    password: str | None = None  # generated when absent
    team: str | None = None  # a leader's team name
    agent_code: str | None = None  # an agent's own agent id (工号)


@dataclass
class UserChanges:
    """What to change; None leaves a field as it is."""

    display_name: str | None = None
    role: str | None = None
    team: str | None = None
    agent_code: str | None = None
    active: bool | None = None
    reset_password: bool = False


@dataclass
class Saved:
    user: User
    password: str | None = None  # generated now: shown once, never stored in clear


def _longest(value: str | None, n: int, what: str) -> None:
    if value is not None and len(value) > n:
        raise Invalid(f"{what}不能超过 {n} 个字符")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise Invalid(f"未知角色 {role!r}（可选：{', '.join(ROLES)}）")


def _links(db: DBSession, role: str, team: str | None, agent_code: str | None) -> tuple[int | None, int | None]:
    """(team id, agent id) a user of `role` is linked to; a new team or agent code is created."""
    team_id = agent_id = None
    if role == "leader":
        if not team or not team.strip():
            raise Invalid("组长须指定所带班组")
        row = db.scalar(select(Team).where(Team.name == team.strip()))
        if row is None:
            row = Team(name=team.strip())
            db.add(row)
            db.flush()
        team_id = row.id
    if role == "agent":
        if not agent_code or not agent_code.strip():
            raise Invalid("坐席账号须关联坐席工号")
        agent = db.scalar(select(Agent).where(Agent.code == agent_code.strip()))
        if agent is None:
            agent = Agent(code=agent_code.strip())
            db.add(agent)
            db.flush()
        agent_id = agent.id
    return team_id, agent_id


def create_user(ctx: Ctx, new: NewUser) -> Saved:
    ctx.require(ADMIN, "只有管理员可以管理用户")
    if not USERNAME.match(new.username or ""):
        raise Invalid("用户名须为 2–64 个字母、数字、汉字或 _ . - @")
    _check_role(new.role)
    _longest(new.display_name, 100, "显示名称")
    _longest(new.team, 100, "班组名称")
    _longest(new.agent_code, 100, "坐席工号")
    _longest(new.password, 200, "密码")
    with ctx.transaction() as db:
        if db.scalar(select(User.id).where(User.username == new.username)) is not None:
            raise Conflict("用户名已存在")
        password = new.password
        generated = None
        if not password:
            password = generated = generate_password()
        problem = password_problem(password)
        if problem:
            raise Invalid(problem)
        team_id, agent_id = _links(db, new.role, new.team, new.agent_code)
        user = User(username=new.username, display_name=new.display_name, role=new.role,
                    password_hash=hash_password(password), team_id=team_id, agent_id=agent_id)
        db.add(user)
        db.flush()
        audit(db, ctx.user, "user.create", "user", user.username, ctx.ip, role=new.role, team=new.team,
              agent=new.agent_code)
    return Saved(user, generated)


def update_user(ctx: Ctx, user_id: int, changes: UserChanges) -> Saved:
    """Change an account. A new role, a deactivation or a password reset ends the user's sessions (a
    changed role takes effect at the next login); an admin cannot demote or deactivate themself."""
    ctx.require(ADMIN, "只有管理员可以管理用户")
    if changes.role is not None:
        _check_role(changes.role)
    _longest(changes.display_name, 100, "显示名称")
    _longest(changes.team, 100, "班组名称")
    _longest(changes.agent_code, 100, "坐席工号")
    with ctx.transaction() as db:
        user = db.get(User, user_id)
        if user is None:
            raise NotFound("用户不存在")
        if ctx.user is not None and user.id == ctx.user.id and (
                changes.role not in (None, "admin") or changes.active is False):
            raise Invalid("不能取消自己的管理员权限或停用自己")
        done: dict[str, Any] = {}
        role = changes.role or user.role
        if changes.role is not None or changes.team is not None or changes.agent_code is not None:
            team = changes.team if changes.team is not None else (user.team.name if user.team else None)
            code = changes.agent_code if changes.agent_code is not None else (user.agent.code if user.agent else None)
            user.team_id, user.agent_id = _links(db, role, team, code)
            user.role = role
            done.update(role=role, team=changes.team, agent=changes.agent_code)
        if changes.display_name is not None:
            user.display_name = changes.display_name
            done["display_name"] = changes.display_name
        if changes.active is not None:
            user.active = changes.active
            done["active"] = changes.active
        generated = None
        if changes.reset_password:
            generated = generate_password()
            user.password_hash = hash_password(generated)
            user.failed_logins, user.locked_until = 0, None
            done["password_reset"] = True
        if done.get("role") is not None or done.get("active") is False or generated:
            close_user_sessions(db, user.id)
        audit(db, ctx.user, "user.update", "user", user.username, ctx.ip, **done)
    return Saved(user, generated)
