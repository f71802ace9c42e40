"""The interface every rule kind implements, and the registry the rulebook schema is built from.

A kind is one module: a pydantic model for its YAML (a subclass of `RuleBase` with ``kind: Literal[...]``)
and a `Kind` subclass that compiles one rule (phrase sets into the shared index) and checks a conversation.
Register it with `@register`; a package outside kefuqa registers its kinds through the entry-point group
``kefuqa.kinds`` (each entry point names a module that registers on import).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

from ..rules.schema import PhraseItem, RuleBase, Trigger

if TYPE_CHECKING:
    from ..engine.context import Context
    from ..engine.hits import Hit


class Compiler(Protocol):
    """What a kind may ask of the checker while compiling: phrase sets in the shared index."""

    def phrases(self, phrases: Sequence[str | PhraseItem], rule: Any, role: str | None = None, **kw: Any) -> int: ...

    def trigger(self, trig: Trigger | None, rule: Any) -> int | None: ...


def by_sound(rule: Any) -> bool:
    """Whether the phrases a rule expects to be said (required, conditional `then`, sequence steps) also
    match by sound: unless the rule says `pinyin: false`. Missing one absence is better than reporting one
    because ASR wrote one character of the phrase as a homophone (供号 for 工号)."""
    return getattr(rule, "pinyin", None) is not False


class Kind:
    """One compiled rule of one kind. Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]  # the YAML `kind:` value
    schema: ClassVar[type[RuleBase]]  # the pydantic model of a rule of this kind
    needs_text: ClassVar[bool] = False  # not applicable to recordings without a transcript
    # When the kind can decide: "utterance" — as each utterance arrives (a forbidden phrase, an overlap, a
    # silence); "end" — only once the call is over (closing checks, counts per call, rates).
    decided: ClassVar[Literal["utterance", "end"]] = "end"

    def __init__(self, rule: Any, compiler: Compiler) -> None:
        self.rule = rule

    def bind(self, index: Any) -> None:
        """Called once the shared phrase index is built (its sets' derived flags are known)."""

    def run(self, ctx: Context) -> list[Hit]:
        """The rule's hits in this conversation; raise `NotApplicable` with a reason when it can't decide."""
        raise NotImplementedError

    @classmethod
    def refs(cls, rule: Any) -> list[str]:
        """IDs of the rules whose results this rule reads, beyond its `applies` conditions and triggers."""
        return []


K = TypeVar("K", bound=type[Kind])
_KINDS: dict[str, type[Kind]] = {}
_version = 0  # bumped on each registration, so schema caches know when to rebuild
_plugins_loaded = False


def register(cls: K) -> K:
    """Class decorator: make a kind available to rulebooks."""
    global _version
    name = cls.name
    if name in _KINDS and _KINDS[name] is not cls:
        raise ValueError(f"rule kind {name!r} is registered twice ({_KINDS[name].__module__}, {cls.__module__})")
    _KINDS[name] = cls
    _version += 1
    return cls


def unregister(name: str) -> None:
    """Remove a kind (tests; a plugin being reloaded)."""
    global _version
    if _KINDS.pop(name, None) is not None:
        _version += 1


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group="kefuqa.kinds"):
        ep.load()


def kinds() -> dict[str, type[Kind]]:
    """Every registered kind by name (the built-in ones and those of installed plugins)."""
    _load_plugins()
    return dict(_KINDS)


def kind_of(rule: Any) -> type[Kind]:
    return kinds()[rule.kind]


def version() -> int:
    _load_plugins()
    return _version


def rule_refs(rule: Any) -> list[str]:
    """Every rule ID a rule depends on: its conditions, its triggers and what its kind reads."""
    out: list[str] = []
    for c in rule.applies.when + rule.applies.unless:
        if c.fired:
            out.append(c.fired)
        if c.not_fired:
            out.append(c.not_fired)
    for name in ("after", "anchor", "if_"):
        t = getattr(rule, name, None)
        if isinstance(t, Trigger) and t.rule:
            out.append(t.rule)
    cls = _KINDS.get(rule.kind)
    if cls is not None:
        out.extend(cls.refs(rule))
    return out


def judges_used(rule: Any) -> list[str]:
    """The judges a rule asks: its own (`intent`), its triggers' and its groups' labels."""
    out = [rule.judge] if isinstance(getattr(rule, "judge", None), str) else []
    for name in ("after", "anchor", "if_"):
        t = getattr(rule, name, None)
        if isinstance(t, Trigger) and t.intent is not None:
            out.append(t.intent.judge)
    for holder in (rule, getattr(rule, "then", None)):
        out.extend(ref.judge for ref in (getattr(holder, "labels", None) or {}).values())
    return out
