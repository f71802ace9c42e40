"""Every rule of the bundled rulebooks against its positive, hard-negative and not-applicable cases.

The cases live in tests/rules/cases_*.yaml. A file maps rule IDs to lists of cases; an optional top-level
``rulebook:`` names the bundled rulebook its cases run against (default ``standard``; the 95598 profile's
cases say ``rulebook: utility-95598``). A case:

    - name: what the case shows          # required, unique per rule and rulebook
      fire: true                         # the rule must fire (true) or must not (false) …
      na: true                           # … or must be not applicable, with a reason
      lines: ["C: …", "[1.0-2.5] A: …"]  # or utterances: [{role, start, end, text, attrs}]
      at: 1                              # where the rule's findings land: the utterance index of each
                                         # finding (an int for one finding, a list for several, null for
                                         # one call-level finding)
      evidence: 我怎么知道               # the words each finding quotes (a string, or a list in `at` order)
      suggestion: …                      # the suggestion each finding carries
      points: -8                         # what each finding costs (a profile's scorecard can change it)
      xfail: why                         # the case states the right behaviour; the engine does not meet it yet
      started_at: …                      # any other key is a conversation field (DESIGN §1)

Any other key is an error naming the file and the case, so a typo (``expext:``) fails the suite instead of
silently testing nothing.

Where a finding should land: words that must not be said, on the utterance that says them; an opening or
closing that lacks something, on its first or last turn; a missed answer to the other side's words (a
complaint, abuse, an outage report), on the checked role's first turn after them, quoting nothing (the
message names the words) — a phone number or address not read back too, on the agent's reply that takes it
down; a hold or transfer, on the agent's
turn that started it; a
measured rule (rate, loudness, pitch), on the agent's turn furthest out; a whole-call omission (全程没有…)
and a call field (ring time, response time, who hung up), call-level (`at: null`). Where the engine puts a
finding elsewhere today, the case keeps the right place and says `xfail: why`; the xfail is strict, so the
suite tells whoever fixes the engine to remove it.

Tests also check that every rule of the standard rulebook, and every rule a profile adds or changes, has
at least one positive and one negative case, and that every rule has at least one located positive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import kefuqa
from kefuqa.model import Conversation, Utterance

CASES_DIR = Path(__file__).parent / "rules"
_LINE = re.compile(r"^(?:\[(?P<s>[\d.]+)-(?P<e>[\d.]+)\]\s*)?(?P<role>[ACS]):\s*(?P<text>.*)$")
_ROLES = {"A": "agent", "C": "customer", "S": "system"}
DEFAULT_RULEBOOK = "standard"

# keys the harness reads; every other key of a case must be a conversation field
HARNESS_KEYS = {"name", "fire", "na", "lines", "at", "evidence", "suggestion", "points", "xfail"}
CONVERSATION_KEYS = set(Conversation.model_fields)
UTTERANCE_KEYS = set(Utterance.model_fields)
_MISSING = object()
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: the case files are big


@dataclass
class Case:
    file: str  # the case file's name, for messages
    rulebook: str
    rule: str
    index: int  # position among the rule's cases in this rulebook
    data: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.data.get("name", f"#{self.index}"))

    @property
    def where(self) -> str:
        return f"{self.file}: {self.rule} case {self.name!r}"

    @property
    def test_id(self) -> str:
        prefix = "" if self.rulebook == DEFAULT_RULEBOOK else f"{self.rulebook}:"
        return f"{prefix}{self.rule}-{self.index}-{self.name}"


def _index(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool))


def _problems(data: Any) -> list[str]:
    """What is wrong with one case: unknown keys, contradictory or malformed expectations."""
    if not isinstance(data, dict):
        return [f"a case must be a mapping, got {type(data).__name__}"]
    out = []
    unknown = sorted(set(data) - HARNESS_KEYS - CONVERSATION_KEYS)
    if unknown:
        out.append(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                   f"(a case takes {', '.join(sorted(HARNESS_KEYS))} or conversation fields)")
    if not isinstance(data.get("name"), str) or not data["name"]:
        out.append("a case needs a name")
    if ("fire" in data) == bool(data.get("na")):
        out.append("a case says either fire: true|false or na: true")
    elif "fire" in data and not isinstance(data["fire"], bool):
        out.append(f"fire must be true or false, got {data['fire']!r}")
    if "na" in data and data["na"] is not True:
        out.append(f"na must be true, got {data['na']!r}")
    located = [k for k in ("at", "evidence", "suggestion", "points") if k in data]
    if located and data.get("fire") is not True:
        out.append(f"{', '.join(located)} only make sense with fire: true")
    at = data.get("at", _MISSING)
    if at is not _MISSING and not _index(at) and not (isinstance(at, list) and all(map(_index, at))):
        out.append(f"at must be an utterance index, a list of them, or null; got {at!r}")
    ev = data.get("evidence", _MISSING)
    if ev is not _MISSING and not isinstance(ev, str) and not (
            isinstance(ev, list) and all(isinstance(e, str) for e in ev)):
        out.append(f"evidence must be a string or a list of strings; got {ev!r}")
    if isinstance(at, list) and isinstance(ev, list) and len(at) != len(ev):
        out.append(f"at has {len(at)} findings but evidence {len(ev)}")
    if "xfail" in data and (not isinstance(data["xfail"], str) or not data["xfail"].strip()):
        out.append("xfail needs the reason, as text")
    if ("lines" in data) == ("utterances" in data):
        out.append("a case gives either lines or utterances")
    for i, line in enumerate(data.get("lines") or []):
        if not isinstance(line, str) or not _LINE.match(line):
            out.append(f"lines[{i}]: {line!r} is not '[start-end] A|C|S: text'")
    for i, u in enumerate(data.get("utterances") or []):
        bad = sorted(set(u) - UTTERANCE_KEYS) if isinstance(u, dict) else ["(not a mapping)"]
        if bad:
            out.append(f"utterances[{i}]: unknown key{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}")
    return out


def load_file(path: Path) -> list[Case]:
    """The cases of one file; each carries the problems found in it (its own test reports them)."""
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    rulebook = str(doc.pop("rulebook", DEFAULT_RULEBOOK))
    cases = []
    for rule, items in doc.items():
        if not isinstance(items, list):
            cases.append(Case(path.name, rulebook, str(rule), 0, {"name": "(file)"},
                              [f"{rule} must map to a list of cases, got {type(items).__name__}"]))
            continue
        for data in items:
            cases.append(Case(path.name, rulebook, str(rule), 0, data if isinstance(data, dict) else {},
                              _problems(data)))
    return cases


def checker(case: Case) -> kefuqa.Checker:
    """The case's rulebook, compiled once per process; fails naming the file when it cannot be loaded."""
    try:
        return kefuqa.checker_for(case.rulebook)
    except kefuqa.KefuqaError as e:
        raise AssertionError(f"{case.file}: rulebook {case.rulebook!r} cannot be loaded: {e}") from e


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(directory.glob("cases_*.yaml")):
        cases.extend(load_file(path))
    seen: dict[tuple[str, str], int] = {}
    names: dict[tuple[str, str, str], str] = {}
    for c in cases:
        key = (c.rulebook, c.rule)
        c.index = seen[key] = seen.get(key, -1) + 1
        first = names.get((*key, c.name))
        if first is not None:
            c.problems.append(f"another {c.rule} case is named {c.name!r} (in {first})")
        names[(*key, c.name)] = c.file
    return cases


def conversation(case: Case) -> Conversation:
    data = {k: v for k, v in case.data.items() if k not in HARNESS_KEYS}
    if "lines" in case.data:
        utts = []
        for line in case.data["lines"]:
            m = _LINE.match(line)
            assert m, f"{case.where}: bad case line {line!r}"
            u: dict[str, Any] = {"role": _ROLES[m["role"]], "text": m["text"]}
            if m["s"] is not None:
                u["start"], u["end"] = float(m["s"]), float(m["e"])
            utts.append(u)
        data["utterances"] = utts
    data.setdefault("id", f"{case.rule}-{case.index}")
    return Conversation.model_validate(data)


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _order(u: int | None) -> int:
    return -1 if u is None else u


def _place(f: Any) -> tuple[int, int, str]:
    """Findings in the order `at` and `evidence` list them: by utterance, then by where the words start."""
    return _order(f.utterance), f.span[0] if f.span else -1, f.evidence or ""


def run_case(case: Case) -> None:
    """Check one case; fail with the file and the case's name in the message."""
    assert not case.problems, f"{case.where}: " + "; ".join(case.problems)
    ch = checker(case)
    assert case.rule in ch.rulebook.by_id, f"{case.where}: {case.rule} is not a rule of {case.rulebook}"
    report = ch.check(conversation(case))
    rule_id, data = case.rule, case.data
    fired = sorted([f for f in report.findings if f.rule == rule_id] + [e for e in report.events if e.rule == rule_id],
                   key=_place)
    got = [(f.utterance, getattr(f, "evidence", None)) for f in fired]
    if data.get("na"):
        assert rule_id in report.not_applicable, f"{case.where}: should be not applicable; fired at {got}"
        assert report.not_applicable[rule_id], f"{case.where}: a not-applicable rule needs a reason"
        return
    assert rule_id not in report.not_applicable, \
        f"{case.where}: not applicable: {report.not_applicable.get(rule_id)}"
    if not data["fire"]:
        assert not fired, f"{case.where}: should not fire; fired at (utterance, evidence) {got}"
        return
    assert fired, f"{case.where}: should fire"
    if "at" in data:
        want = _as_list(data["at"])
        assert [f.utterance for f in fired] == want, \
            f"{case.where}: findings should land at utterance(s) {want}; landed at (utterance, evidence) {got}"
    if "evidence" in data:
        want_ev = _as_list(data["evidence"])
        have_ev = [getattr(f, "evidence", None) for f in fired]
        if not isinstance(data["evidence"], list):
            want_ev = want_ev * len(fired)
        assert have_ev == want_ev, f"{case.where}: evidence should be {want_ev}; got {have_ev}"
    if "points" in data:
        have_pt = [getattr(f, "points", None) for f in fired]
        assert have_pt == [data["points"]] * len(fired), \
            f"{case.where}: each finding should cost {data['points']}; got {have_pt}"
    if "suggestion" in data:
        have_sg = [getattr(f, "suggestion", None) for f in fired]
        assert have_sg == [data["suggestion"]] * len(fired), \
            f"{case.where}: suggestion should be {data['suggestion']!r}; got {have_sg}"


CASES = load_cases()


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(reason=case.data["xfail"], strict=True)] if case.data.get("xfail") else []
    return pytest.param(case, id=case.test_id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_rule_case(case: Case) -> None:
    run_case(case)


def _changed_by_profile(name: str) -> set[str]:
    """The rules a profile adds or whose definition it changes (overrides, added phrases)."""
    rb = kefuqa.checker_for(name).rulebook
    parent = {r.id: r.model_dump() for r in kefuqa.checker_for(DEFAULT_RULEBOOK).rulebook.rules}
    return {r.id for r in rb.rules if r.enabled and parent.get(r.id) != r.model_dump()}


def _coverage(rulebook: str, rule_ids: set[str]) -> list[str]:
    missing = []
    for rid in sorted(rule_ids):
        items = [c.data for c in CASES if c.rulebook == rulebook and c.rule == rid]
        if not any(d.get("fire") is True for d in items):
            missing.append(f"{rulebook}: {rid} has no positive case")
        if not any(d.get("fire") is False for d in items):
            missing.append(f"{rulebook}: {rid} has no negative case")
        if not any(d.get("fire") is True and "at" in d for d in items):
            missing.append(f"{rulebook}: {rid} has no positive case that says where it lands (at:)")
    return missing


def test_every_rule_has_positive_and_negative_cases() -> None:
    assert not _coverage(DEFAULT_RULEBOOK, set(kefuqa.checker_for(DEFAULT_RULEBOOK).rulebook.ids))


def test_every_rule_a_profile_adds_or_changes_has_its_own_cases() -> None:
    changed = _changed_by_profile("utility-95598")
    # the GRD rules, the overridden thresholds and wording, the added phrases
    assert {"GRD001", "GRD002", "GRD003", "LST003", "OPN001", "RSP001", "LNG001"} <= changed
    assert not _coverage("utility-95598", changed)


def test_case_files_name_their_rulebook_and_only_its_rules() -> None:
    assert {c.rulebook for c in CASES} == {"standard", "utility-95598"}
    assert not [c.where for c in CASES if c.problems]
    assert not [c.where for c in CASES if c.rule not in kefuqa.checker_for(c.rulebook).rulebook.by_id]


def test_a_typo_in_a_case_fails_with_the_file_and_the_case(tmp_path: Path) -> None:
    p = tmp_path / "cases_typo.yaml"
    p.write_text("LNG001:\n  - {name: 我怎么知道, expext: true, lines: ['A: 我怎么知道']}\n"
                 "  - {name: attrs typo, fire: false, utterances: [{role: agent, text: 好的, atrs: {}}]}\n"
                 "LNG01:\n  - {name: unknown rule, fire: false, lines: ['A: 好的']}\n", encoding="utf-8")
    typo, utt, rule = load_file(p)
    with pytest.raises(AssertionError) as err:
        run_case(typo)
    msg = str(err.value)
    assert "cases_typo.yaml: LNG001 case '我怎么知道'" in msg and "unknown key 'expext'" in msg
    assert "either fire: true|false or na: true" in msg
    assert utt.problems == ["utterances[0]: unknown key 'atrs'"]
    with pytest.raises(AssertionError, match=re.escape("cases_typo.yaml: LNG01 case 'unknown rule': LNG01 is "
                                                       "not a rule of standard")):
        run_case(rule)
    p.write_text("rulebook: utility-9598\nLNG001:\n  - {name: a, fire: true, at: true, lines: ['A: 好的']}\n"
                 "  - {name: b, fire: false, lines: ['A: 好的']}\n", encoding="utf-8")
    bad, unknown_rulebook = load_file(p)
    assert bad.problems == ["at must be an utterance index, a list of them, or null; got True"]
    with pytest.raises(AssertionError, match="cases_typo.yaml: rulebook 'utility-9598' cannot be loaded: "):
        run_case(unknown_rulebook)


def test_a_wrong_location_fails(tmp_path: Path) -> None:
    p = tmp_path / "cases_where.yaml"
    p.write_text("LNG001:\n"
                 "  - {name: right, fire: true, at: 1, evidence: 我怎么知道, lines: ['C: 扣费？', 'A: 我怎么知道']}\n"
                 "  - {name: wrong place, fire: true, at: 0, lines: ['C: 扣费？', 'A: 我怎么知道']}\n"
                 "  - {name: wrong words, fire: true, evidence: 我哪知道, lines: ['C: 扣费？', 'A: 我怎么知道']}\n"
                 "  - {name: two findings, fire: true, at: [1], lines: ['A: 我怎么知道', 'A: 我怎么知道']}\n",
                 encoding="utf-8")
    right, place, words, count = load_file(p)
    run_case(right)
    for case, expected in ((place, "land at utterance(s) [0]; landed at (utterance, evidence) [(1, '我怎么知道')]"),
                           (words, "evidence should be ['我哪知道']; got ['我怎么知道']"),
                           (count, "[(0, '我怎么知道'), (1, '我怎么知道')]")):
        with pytest.raises(AssertionError, match=re.escape(expected)):
            run_case(case)


def test_taxonomy_is_complete() -> None:
    """Every ID of DESIGN §2 is in the bundled rulebook."""
    expected = (
        "OPN001 OPN002 OPN003 OPN004 OPN005 LNG001 LNG002 LNG003 LNG004 LNG005 LNG006 LNG007 LNG008 "
        "LST001 LST002 LST003 LST004 HLD001 HLD002 HLD003 TRF001 RSP001 RSP002 RSP003 CMP001 CMP002 CMP003 "
        "INF001 INF002 CLS001 CLS002 CLS003 SIL001 SIL002 VOC001 VOC002 VOC003 VOC004 VOC005 SLA001 "
        "EVT001 EVT002 EVT003 EVT004"
    ).split()
    ids = kefuqa.checker_for("standard").rulebook.ids
    assert sorted(ids) == sorted(expected)


def test_every_rule_is_documented() -> None:
    for rule in kefuqa.checker_for("standard").rulebook.rules:
        assert rule.doc.checks and rule.doc.why and rule.doc.example and (rule.doc.instead or rule.suggest), rule.id
