"""Rules as data: the YAML schema shared by every kind (`schema`), loading rulebooks with inheritance
(`rulebook`), YAML with line numbers (`yamlsrc`) and the phrase matcher (`matcher`).

The kinds' own schemas live in `kefuqa.kinds`; import loaders from `kefuqa.rules.rulebook` (or `kefuqa`).
"""
