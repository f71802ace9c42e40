"""The example conversations in examples/ are the README demo and the fixtures of the rule tests.

examples/EXPECTED.yaml holds, for every example file, the rule IDs (findings and EVT events) a strict QA
inspector gives when applying the service standards in shared/seeds. Each example is read with the
readers (native JSON, plain-text transcript, CSV, Alibaba Cloud ASR JSON), scored with the bundled
``standard`` rulebook, and the set of fired rule IDs must equal the inspector's set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import kefuqa
from kefuqa.errors import InputError
from kefuqa.model import Conversation
from kefuqa.readers import iter_paths, read_path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED_FILE = EXAMPLES / "EXPECTED.yaml"


def _expected() -> dict[str, list[str]]:
    data = yaml.safe_load(EXPECTED_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{EXPECTED_FILE} must map file names to lists of rule IDs"
    return {name: list(ids or []) for name, ids in data.items()}


EXPECTED = _expected()
# one file, one call: the files at the top of examples/ (examples/telephony/ holds recordings with their
# transcripts and a manifest, checked as calls by test_telephony_example_calls)
EXAMPLE_FILES = sorted(p.name for p in iter_paths([EXAMPLES]) if p.parent == EXAMPLES)


def _read_one(name: str) -> Conversation:
    items = list(read_path(EXAMPLES / name))
    errors = [i for i in items if isinstance(i, InputError)]
    assert not errors, f"{name}: {errors}"
    assert len(items) == 1, f"{name}: expected one conversation, read {len(items)}"
    conv = items[0]
    assert isinstance(conv, Conversation)
    return conv


def _fired(report: kefuqa.Report) -> set[str]:
    return {f.rule for f in report.findings} | {e.rule for e in report.events}


@pytest.fixture(scope="module")
def checker() -> kefuqa.Checker:
    return kefuqa.checker_for(None)  # the bundled standard rulebook


def test_every_example_has_an_expectation() -> None:
    missing = sorted(set(EXAMPLE_FILES) - set(EXPECTED))
    stale = sorted(set(EXPECTED) - set(EXAMPLE_FILES))
    assert not missing, f"examples without an entry in EXPECTED.yaml: {missing}"
    assert not stale, f"EXPECTED.yaml names files that are not examples: {stale}"


def test_expected_ids_are_rules_of_the_rulebook(checker: kefuqa.Checker) -> None:
    known = {r.id for r in checker.rulebook.rules}
    unknown = {name: sorted(set(ids) - known) for name, ids in EXPECTED.items() if set(ids) - known}
    assert not unknown, f"EXPECTED.yaml uses rule IDs the standard rulebook does not have: {unknown}"
    dupes = {name: ids for name, ids in EXPECTED.items() if len(ids) != len(set(ids))}
    assert not dupes, f"EXPECTED.yaml lists an ID twice: {dupes}"


def test_examples_cover_the_demo_scenarios() -> None:
    convs = {name: _read_one(name) for name in EXAMPLE_FILES}
    assert len(convs) >= 22
    exemplary = [n for n, ids in EXPECTED.items() if not ids]
    assert len(exemplary) >= 4, f"need at least 4 exemplary calls, have {exemplary}"
    for industry in ("telecom", "utility", "property", "ecommerce", "agri"):
        assert any(n.startswith(industry) for n in convs), f"no {industry} example"
    suffixes = {Path(n).suffix for n in convs}
    assert {".json", ".txt", ".csv"} <= suffixes
    channels = {c.channel for c in convs.values()}
    assert {"phone", "chat", "email", "web"} <= channels
    assert any(c.direction == "outbound" for c in convs.values())
    assert any(e.type == "hold" for c in convs.values() for e in c.events)
    assert any(e.type == "transfer" for c in convs.values() for e in c.events)
    assert any(c.received_at and c.first_response_at for c in convs.values())
    untimed_chat = [c for c in convs.values() if c.channel == "chat" and not c.timed]
    assert untimed_chat, "need a chat log without times"


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_fires_what_the_inspector_expects(name: str, checker: kefuqa.Checker) -> None:
    conv = _read_one(name)
    report = kefuqa.check(conv, checker)
    fired = _fired(report)
    expected = set(EXPECTED.get(name, []))
    extra = sorted(fired - expected)
    missing = sorted(expected - fired)
    if extra or missing:
        lines = [f"{name} ({conv.id}): fired rule IDs differ from EXPECTED.yaml"]
        if extra:
            lines.append(f"  extra (fired, inspector disagrees): {extra}")
            for f in report.findings:
                if f.rule in extra:
                    lines.append(f"    {f.rule} utterance {f.utterance}: {f.message} 「{f.evidence}」")
            for e in report.events:
                if e.rule in extra:
                    lines.append(f"    {e.rule} utterance {e.utterance}: 「{e.evidence}」")
        if missing:
            lines.append(f"  missing (inspector expects, did not fire): {missing}")
        pytest.fail("\n".join(lines), pytrace=False)


def test_exemplary_calls_score_full_marks(checker: kefuqa.Checker) -> None:
    """Exemplary calls that the rulebook already agrees with score 100; the demo relies on it."""
    checked = 0
    for name, ids in EXPECTED.items():
        if ids:
            continue
        report = kefuqa.check(_read_one(name), checker)
        if report.findings:
            continue  # a disagreement, reported by test_example_fires_what_the_inspector_expects
        assert report.score == 100.0, f"{name}: score {report.score} without findings"
        assert not report.fatal
        checked += 1
    assert checked >= 4, f"only {checked} exemplary calls scored without findings"


def test_abusive_caller_hangup_is_not_cls003(checker: kefuqa.Checker) -> None:
    report = kefuqa.check(_read_one("property-abusive-caller-agent-hangup.json"), checker)
    assert report.conversation is not None and report.conversation.ended_by == "agent"
    assert "EVT002" in _fired(report)
    assert "CLS003" not in _fired(report)


def test_readers_keep_times_and_roles() -> None:
    txt = _read_one("agri-pesticide-transcript.txt")
    assert txt.timed and txt.utterances[0].role == "agent" and txt.utterances[1].role == "customer"
    csv = _read_one("telecom-broadband-repair.csv")
    assert csv.id == "BB-20260313-0412" and csv.timed
    ali = _read_one("property-access-card-aliyun.json")
    assert ali.timed and ali.utterances[0].role == "agent"
    assert ali.utterances[6].start == pytest.approx(36.93)


TELEPHONY = EXAMPLES / "telephony"


@pytest.mark.slow
def test_telephony_example_calls(checker: kefuqa.Checker) -> None:
    """examples/telephony: each manifest row is one call (recording + transcript + agent and team), scored
    with the text and the voice rules; EXPECTED.yaml there lists what fires, by call id."""
    pytest.importorskip("soundfile")
    from kefuqa.batch import find_inputs, score

    expected = {k: set(v or []) for k, v in
                yaml.safe_load((TELEPHONY / "EXPECTED.yaml").read_text(encoding="utf-8")).items()}
    files, errors = find_inputs([TELEPHONY])
    assert errors == []
    reports = list(score(files, checker))
    assert all(isinstance(r, kefuqa.Report) for r in reports), reports
    assert {r.call_id: _fired(r) for r in reports} == expected
    for r in reports:
        conv = r.conversation
        assert conv is not None and conv.notes == [] and conv.metrics["audio"] is True
        assert conv.agent is not None and conv.agent.team and conv.metrics["attributes"] == {"queue": "宽带报障"}
