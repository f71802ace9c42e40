"""Rule kinds: one module per kind (its YAML schema and how it checks), behind one interface (`Kind`).

The rulebook schema — which `kind:` values exist and what keys each takes — is built from the registry, so
adding a kind is one new module that registers itself (and, outside kefuqa, an entry point in the group
``kefuqa.kinds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, create_model

from ..rules.schema import RulebookFileBase, Strict
from . import (  # noqa: F401 - the built-in kinds register themselves on import
    conditional,
    count,
    event,
    intent,
    metric,
    monologue,
    overlap,
    phrase,
    rate,
    ratio,
    repeat_ask,
    required,
    sequence,
    silence,
    voice,
)
from .base import Compiler, Kind, judges_used, kind_of, kinds, register, rule_refs, unregister, version

__all__ = ["Compiler", "Kind", "judges_used", "RuleModels", "kind_of", "kinds", "register", "rule_models", "rule_refs", "unregister"]


@dataclass(frozen=True)
class RuleModels:
    """The pydantic models of rule files and rulebook files for the kinds registered now."""

    rule: TypeAdapter[Any]  # one rule (discriminated by `kind`)
    rule_file: type[Strict]  # {rules: [...]}
    rulebook_file: type[RulebookFileBase]  # a rulebook: rules inline or file globs, extends, override …


_cache: tuple[int, RuleModels] | None = None


def rule_models() -> RuleModels:
    global _cache
    v = version()
    if _cache is None or _cache[0] != v:
        schemas = tuple(k.schema for k in kinds().values())
        union: Any = Annotated[Union[schemas], Field(discriminator="kind")]  # noqa: UP007 - built at run time
        rule_file = create_model("RuleFile", __base__=Strict, rules=(list[union], ...))
        rulebook_file = create_model("RulebookFile", __base__=RulebookFileBase,
                                     rules=(list[Union[union, str]], Field(default_factory=list)))  # noqa: UP007
        _cache = (v, RuleModels(TypeAdapter(union), rule_file, rulebook_file))
    return _cache[1]
