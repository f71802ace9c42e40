"""Domain errors of the workbench's use cases. They know nothing of HTTP: the API answers each with a status
code and `{"detail": message}`, the web pages with an error page or the form again, the command line with
a line on stderr. Messages are Chinese and safe to show to the person who asked."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Something a use case refuses to do; `str(exc)` is the message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """It does not exist, or it is outside the user's scope (the same answer, so guessed ids tell nothing)."""


class Forbidden(DomainError):
    """The user's role may not do this."""


class Unauthorized(DomainError):
    """Who is asking is not established: wrong credentials, a locked account, no session."""


class Throttled(Unauthorized):
    """Too many failed logins from this client or for this name: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"登录失败次数过多，请 {retry_after} 秒后再试")
        self.retry_after = retry_after


class Conflict(DomainError):
    """The request contradicts the current state (a final decision, a duplicate, a historical score)."""


class Busy(DomainError):
    """Too much work at this moment: nothing was done or stored; ask again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Invalid(DomainError, ValueError):
    """The input is not acceptable."""


class TooLarge(DomainError):
    """More files, bytes or conversations than one request may carry."""


class RulebookProblem(Invalid):
    """An uploaded rulebook cannot be accepted; `errors` lists {file, line, key, reason}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("规则集校验未通过：" + "; ".join(str(e["reason"]) for e in errors))
        self.errors = errors
