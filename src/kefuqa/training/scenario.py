"""Scenario practice: the simulated customer speaks scripted lines that depend on the trainee's replies
(rules fired, judgement labels, words); each reply gets immediate feedback from the same engine, and the
whole practice conversation is scored at the end exactly like a real call. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine.checker import Checker
from ..model import Finding, Report
from .grading import Feedback, clean_reply, contains_any, findings_on, labels_of, practice_conversation
from .schema import Node, Scenario, When

# Rules about how a call ends are judged on the whole conversation, not on each reply.
END_OF_CALL = ("CLS",)
MAX_TURNS = 60


class ScenarioError(ValueError):
    """A scenario that cannot go on (no branch matches and no `next`, too many turns)."""


def matches(when: When, fired: set[str], labels: set[str], text: str) -> bool:
    if when.fired and not any(r in fired for r in when.fired):
        return False
    if when.not_fired and any(r in fired for r in when.not_fired):
        return False
    if when.label and not labels & set(when.label):
        return False
    if when.not_label and labels & set(when.not_label):
        return False
    if when.said and not contains_any(text, when.said):
        return False
    return not (when.not_said and contains_any(text, when.not_said))


def next_node(node: Node, fired: set[str], labels: set[str], text: str) -> str | None:
    for b in node.branches:
        if matches(b.when, fired, labels, text):
            return b.next
    return node.next


@dataclass
class Step:
    """One reply and what came of it."""

    node: str
    reply: str
    feedback: Feedback
    labels: list[str]
    customer: str | None  # the customer's next line (None: the customer said nothing)
    ended: bool


@dataclass
class Session:
    """One run of a scenario. `reply(text)` until `ended`, then `report()`."""

    scenario: Scenario
    checker: Checker
    turns: list[tuple[str, str]] = field(default_factory=list)
    waits: dict[int, float] = field(default_factory=dict)  # turn index → hold after it (timed scenarios)
    steps: list[Step] = field(default_factory=list)
    node_id: str = ""
    ended: bool = False

    def __post_init__(self) -> None:
        self.node_id = self.scenario.start
        self._enter(self.scenario.start)

    @property
    def node(self) -> Node:
        return self.scenario.nodes[self.node_id]

    def _enter(self, nid: str) -> None:
        self.node_id = nid
        node = self.scenario.nodes[nid]
        if node.customer:
            self.turns.append(("customer", node.customer))
        if node.end:
            self.ended = True

    def opening_line(self) -> str | None:
        """The customer's first line (None when the trainee speaks first)."""
        return self.scenario.nodes[self.scenario.start].customer

    def _conv(self, turns: list[tuple[str, str]], waits: dict[int, float]) -> Any:
        s = self.scenario
        return practice_conversation(turns, cid=f"practice-{s.id}", channel=s.channel, direction=s.direction,
                                     waits=waits if s.timed else None)

    def conversation(self) -> Any:
        return self._conv(self.turns, self.waits)

    def check_reply(self, text: str) -> tuple[Feedback, set[str], set[str]]:
        """Feedback on a reply at the current step without moving on (fired rules, labels)."""
        t = clean_reply(text)
        waits = dict(self.waits)
        if self.node.hold_seconds:
            waits[len(self.turns)] = self.node.hold_seconds
        conv = self._conv([*self.turns, ("agent", t)], waits)
        found, _ = findings_on(self.checker, conv, len(self.turns), None, skip=END_OF_CALL)
        labels = labels_of(t)
        # a phrase is decided on the reply itself; an omission (no apology yet, no time promised yet) may still
        # be made good in a later reply: it is shown as a reminder, and the final report decides it
        on = [f for f in found if self._decided_now(f.rule)]
        pending = [f for f in found if not self._decided_now(f.rule)]
        sugg: list[str] = []
        for f in on + pending:
            if f.suggestion and f.suggestion not in sugg:
                sugg.append(f.suggestion)
        fb = Feedback(correct=not on, findings=on, pending=pending, suggestions=sugg, model=self.node.model,
                      explain=self.node.hint)
        return fb, {f.rule for f in found}, labels

    def _decided_now(self, rule: str) -> bool:
        c = self.checker.compiled.get(rule)
        return c is None or c.kind.decided == "utterance"

    def reply(self, text: str) -> Step:
        if self.ended:
            raise ScenarioError("练习已结束")
        if len(self.steps) >= MAX_TURNS:
            raise ScenarioError(f"练习超过 {MAX_TURNS} 轮仍未结束，请检查场景")
        fb, fired, labels = self.check_reply(text)  # raises ReplyError before anything changes
        t = text.strip()
        node = self.node
        nxt = next_node(node, fired, labels, t)
        if nxt is None or nxt not in self.scenario.nodes:
            raise ScenarioError(f"场景 {self.scenario.id} 的步骤 {self.node_id} 没有可走的下一步")
        here = self.node_id
        if node.hold_seconds:
            self.waits[len(self.turns)] = node.hold_seconds
        self.turns.append(("agent", t))
        self._enter(nxt)
        customer = self.scenario.nodes[nxt].customer
        step = Step(here, t, fb, sorted(labels), customer, self.ended)
        self.steps.append(step)
        return step

    def report(self) -> Report:
        """The whole practice conversation scored like a real call (every rule of the rulebook)."""
        return self.checker.check(self.conversation())

    def findings(self) -> list[Finding]:
        return self.report().findings


def play(scenario: Scenario, checker: Checker, replies: dict[str, str] | None = None) -> Session:
    """Play the model answer, with some steps' replies replaced (a poor answer), to the end."""
    s = Session(scenario, checker)
    while not s.ended:
        node = s.node
        text = (replies or {}).get(s.node_id) or node.model or ""
        s.reply(text)
    return s
