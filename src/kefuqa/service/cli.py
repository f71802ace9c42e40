"""`kefuqa ingest PATH…`, `kefuqa serve` and `kefuqa user …`: plain functions, and typer commands that the
main CLI mounts (``python -m kefuqa.service`` runs them on their own)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .config import Settings

if TYPE_CHECKING:
    from .workbench import Workbench

# The main CLI mounts these commands only when the server extra is installed; importing this module is
# cheap (the heavy modules load when a command runs), so `kefuqa check` does not pay for the service.
_MISSING = [m for m in ("sqlalchemy", "alembic", "fastapi", "uvicorn", "argon2", "jinja2")
            if importlib.util.find_spec(m) is None]
if _MISSING:
    raise ImportError(f"the service needs the server extra (pip install 'kefuqa[server]'): missing {_MISSING}")

Echo = Callable[[str], None]


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _settings(database_url: str | None, rulebook: str | None, data_dir: str | None) -> Settings:
    return Settings.from_env(database_url=database_url or None, rulebook=rulebook or None,
                             data_dir=Path(data_dir).expanduser() if data_dir else None)


def safe_url(url: str) -> str:
    from .unavailable import safe_url as hidden

    return hidden(url)


UNREACHABLE = 3  # exit status when the database cannot be reached


def _guarded(database_url: str | None, data_dir: str | None, run: Callable[[], int]) -> int:
    """`run()`, or one Chinese line on stderr naming the database (without its password) and exit status 3
    when the database is unreachable or refuses — never a driver's traceback."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from .unavailable import reason

    try:
        return run()
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        _err(reason(exc, _settings(database_url, None, data_dir).database_url))
        return UNREACHABLE


def _announce_setup(wb: Workbench, echo: Echo) -> None:
    info = wb.setup()
    if info.applied_migrations:
        echo(f"数据库已初始化/升级（迁移 {', '.join(info.applied_migrations)}）：{safe_url(wb.settings.database_url)}")
    if info.admin_username:
        if info.admin_password:
            echo(f"已创建管理员账号 {info.admin_username}，初始密码：{info.admin_password}")
            echo("  （只显示这一次，登录后请在“修改密码”中修改；也可用 KEFUQA_ADMIN_PASSWORD 事先指定）")
        else:
            echo(f"已创建管理员账号 {info.admin_username}（密码取自 KEFUQA_ADMIN_PASSWORD）")


def ingest(paths: list[str], database_url: str | None = None, rulebook: str | None = None, *,
           replace: bool = False, data_dir: str | None = None, echo: Echo = print, err: Echo = _err,
           rescore: bool = False) -> int:
    """Read, score and store files and folders (every format the CLI reads, audio included); a folder
    written by `kefuqa batch` is stored as it was scored there (no re-scoring; with `rescore`, its rows
    scored by another rulebook version are scored again by the active one instead of being refused).

    Returns 0 when everything was stored (or already was), 1 when some input was refused, 2 when nothing
    could be read at all. `rulebook` (a bundled name, a folder or a YAML file) becomes the active rulebook.
    """
    from .usecases import Ctx
    from .usecases.uploads import ingest_paths
    from .workbench import Workbench

    wb = Workbench(_settings(database_url, rulebook, data_dir))
    _announce_setup(wb, echo)
    with wb.sessions() as db:
        from .usecases.batch_import import ingest_batch_output, is_batch_output

        outputs = [p for p in paths if is_batch_output(p)]  # `kefuqa batch` results: stored, not re-scored
        run = ingest_paths(Ctx(wb, db), [p for p in paths if p not in outputs], replace=replace, on_error=err)
        for p in outputs:
            got = ingest_batch_output(Ctx(wb, db), p, replace=replace, rescore=rescore, on_error=err)
            run.files += got.files
            run.outcomes.extend(got.outcomes)
    for o in run.outcomes:
        if o.status == "conflict":
            err(f"{o.source or ''} {o.call_id}: {o.error}")
    stored = run.count("stored", "replaced")
    unchanged = run.count("unchanged")
    bad = run.count("error", "conflict")
    avg = f"，平均分 {run.average:.1f}" if run.average is not None else ""
    echo(f"{run.files} 个文件：已存储 {stored} 通{avg}，未变化 {unchanged}，失败 {bad}（数据库 "
         f"{safe_url(wb.settings.database_url)}）")
    wb.engine.dispose()
    if run.missing or bad:
        return 2 if stored == 0 and unchanged == 0 else 1
    return 0


def serve(host: str = "127.0.0.1", port: int = 8000, database_url: str | None = None, *,
          rulebook: str | None = None, workers: int = 1, data_dir: str | None = None, echo: Echo = print) -> int:
    """Migrate, make sure an administrator exists (printing how to log in), and serve the API and the UI."""
    import uvicorn

    from .workbench import Workbench

    settings = _settings(database_url, rulebook, data_dir)
    wb = Workbench(settings)
    _announce_setup(wb, echo)
    if wb.dialect == "sqlite" and workers > 1:
        echo("SQLite 只支持单进程写入：workers 改为 1（多进程请使用 PostgreSQL）")
        workers = 1
    echo(f"评分规则集：{wb.active_label()}")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    echo(f"打开 http://{shown}:{port}/ 登录；API 文档 http://{shown}:{port}/api/docs")
    if workers > 1:
        wb.engine.dispose()
        # Workers build their own app from the environment.
        os.environ["KEFUQA_DATABASE_URL"] = settings.database_url
        os.environ["KEFUQA_DATA_DIR"] = str(settings.data_dir)
        os.environ.pop("KEFUQA_RULEBOOK", None)  # activated above, once
        uvicorn.run("kefuqa.service.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", proxy_headers=False)
        return 0
    from .app import create_app

    settings.rulebook = None
    uvicorn.run(create_app(settings, wb), host=host, port=port, log_level="warning", proxy_headers=False)
    return 0


def add_user(username: str, role: str, database_url: str | None = None, *, password: str | None = None,
             team: str | None = None, agent_code: str | None = None, display_name: str | None = None,
             data_dir: str | None = None, echo: Echo = print) -> int:
    """Create a user from the command line; prints a generated password once."""
    from .errors import DomainError
    from .usecases import Ctx
    from .usecases.users import NewUser, create_user
    from .workbench import Workbench

    wb = Workbench(_settings(database_url, None, data_dir))
    _announce_setup(wb, echo)
    with wb.sessions() as db:
        try:
            saved = create_user(Ctx(wb, db), NewUser(username=username, role=role, password=password, team=team,
                                                     agent_code=agent_code, display_name=display_name))
        except DomainError as exc:
            _err(f"无法创建用户：{exc}")
            return 1
    echo(f"已创建用户 {saved.user.username}（{saved.user.role_label}）"
         + (f"，初始密码：{saved.password}" if saved.password else ""))
    return 0


# ---- typer commands (the main CLI mounts these) ------------------------------------------------------------

DBOpt = Annotated[str | None, typer.Option("--database-url", envvar="KEFUQA_DATABASE_URL",
                                           help="数据库 SQLAlchemy URL；默认是数据目录里的 SQLite 文件")]
DataOpt = Annotated[str | None, typer.Option("--data-dir", envvar="KEFUQA_DATA_DIR",
                                             help="SQLite 文件和录音存放的目录（~/.local/share/kefuqa）")]


def ingest_command(
    paths: Annotated[list[str], typer.Argument(help="通话文件或文件夹（kefuqa 能读的任何格式）")],
    database_url: DBOpt = None,
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r",
                                                 help="先启用这个规则集（名称、文件夹或 YAML）")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="替换内容有变化的已存通话")] = False,
    rescore: Annotated[bool, typer.Option("--rescore", help="kefuqa batch 的输出若由其他规则集版本评分，"
                                          "用当前启用的规则集重新评分")] = False,
    data_dir: DataOpt = None,
) -> None:
    """为通话文件评分并存入质检工作台。"""
    raise typer.Exit(_guarded(database_url, data_dir, lambda: ingest(paths, database_url, rulebook, replace=replace,
                                                                     data_dir=data_dir, rescore=rescore)))


def serve_command(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    database_url: DBOpt = None,
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="启动时启用这个规则集")] = None,
    workers: Annotated[int, typer.Option(help="工作进程数（仅 PostgreSQL）")] = 1,
    data_dir: DataOpt = None,
) -> None:
    """启动质检工作台：网页和 HTTP API（自动创建并迁移数据库）。"""
    raise typer.Exit(_guarded(database_url, data_dir, lambda: serve(host, port, database_url, rulebook=rulebook,
                                                                    workers=workers, data_dir=data_dir)))


def user_add_command(
    username: Annotated[str, typer.Argument(help="登录名")],
    role: Annotated[str, typer.Option("--role", help="角色：admin（管理员）| qa（质检员）| leader（组长）| agent（坐席）")],
    team: Annotated[str | None, typer.Option(help="组长所在的团队")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="坐席的工号")] = None,
    name: Annotated[str | None, typer.Option("--name", help="显示名称")] = None,
    database_url: DBOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """创建工作台用户；密码自动生成并只显示一次（或取自 KEFUQA_NEW_PASSWORD）。"""
    raise typer.Exit(_guarded(database_url, data_dir, lambda: add_user(
        username, role, database_url, password=os.environ.get("KEFUQA_NEW_PASSWORD"), team=team, agent_code=agent,
        display_name=name, data_dir=data_dir)))


def register(app: typer.Typer) -> None:
    """Mount `ingest`, `serve` and `user add` on a typer app (the main `kefuqa` CLI calls this)."""
    app.command("ingest")(ingest_command)
    app.command("serve")(serve_command)
    users = typer.Typer(help="工作台用户（第一个管理员由 serve 创建）。",
                        no_args_is_help=True)
    users.command("add")(user_add_command)
    app.add_typer(users, name="user")
    __import__("kefuqa.service.cli_retention", fromlist=["register"]).register(app)  # issue 13: kefuqa retention
    __import__("kefuqa.service.cli_stats", fromlist=["register"]).register(app)  # issue 13: kefuqa stats


app = typer.Typer(help="kefuqa 质检工作台：存储、HTTP API 和网页", no_args_is_help=True,
                  add_completion=False)
register(app)
