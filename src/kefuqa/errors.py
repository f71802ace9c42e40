"""Errors that name the file, the place and the reason."""

from __future__ import annotations


class KefuqaError(Exception):
    """Base class of kefuqa's own errors."""


class InputError(KefuqaError):
    """A conversation file (or one record in it) could not be read.

    `source` is the file path (or "-" for stdin), `place` where in it (``line 12``, ``utterances[3].end``,
    ``row 7``), `reason` what is wrong, in words a QA engineer understands.
    """

    def __init__(self, source: str, place: str | None, reason: str) -> None:
        self.source = source
        self.place = place
        self.reason = reason
        where = f"{source}:{place}" if place else source
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str | None, str]]:
        return (InputError, (self.source, self.place, self.reason))  # picklable across processes

    def to_dict(self) -> dict[str, str | None]:
        return {"file": self.source, "place": self.place, "reason": self.reason}


class RuleError(KefuqaError):
    """A rulebook or scorecard file is invalid: file, line, key and reason."""

    def __init__(self, source: str, line: int | None, key: str | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.reason = reason
        where = source + (f":{line}" if line else "")
        self._args = (source, line, key, reason)
        what = f" {key}:" if key else ""
        super().__init__(f"{where}:{what} {reason}")

    def __reduce__(self) -> tuple[type[RuleError], tuple[str, int | None, str | None, str]]:
        return (RuleError, self._args)
