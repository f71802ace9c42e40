"""Rules as data: YAML schema, loading with inheritance, and the phrase matcher."""

from .rulebook import Rulebook, bundled_names, lint, load_rulebook

__all__ = ["Rulebook", "bundled_names", "lint", "load_rulebook"]
