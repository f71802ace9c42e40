"""A call being checked while it goes on: utterances (partial and final) and events arrive one by one; each
returns what changed for the agent — new findings, alerts with the prescribed wording, checklist ticks,
situation cards, timers, the customer's style. At hang-up the report is `Checker.check` of the whole call,
so it equals `kefuqa check` of the same conversation.

Only rules that can be decided as utterances arrive (`Kind.decided == "utterance"`, and every rule they
read too) run live; their findings are provisional (an exception said later may remove one) and the final
report says which were withdrawn. Pure: no I/O, no clock — time is the call's own (seconds from answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import normalize
from ..engine.checker import Checker
from ..engine.context import Context
from ..engine.hits import NO_HITS, NotApplicable
from ..kinds import rule_refs
from ..model import Conversation, Event, EventHit, Finding, Report, Utterance
from ..rules.matcher import PhraseIndex
from .guidance import Guidance, Item

ROLES = ("agent", "customer", "system")
OUT_OF_ORDER_TOLERANCE = 0.5  # seconds a final utterance may start before the previous one (ASR jitter)


class LiveError(ValueError):
    """Bad input to a live session: `code` for programs, `message` in Chinese for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Compiled:
    """The guidance's phrase sets in their own index (the rulebook's index is already built)."""

    index: PhraseIndex
    items: dict[str, tuple[int, int | None]]  # "checklist.item" / "card.step" -> (phrases sid, also sid)
    card_said: dict[str, int]
    card_topic: dict[str, int]
    style_cues: dict[str, int]
    regex_sets: list[int]  # sets with a regex item (the raw scan alone cannot say they matched)


def compile_guidance(g: Guidance) -> _Compiled:
    index = PhraseIndex()
    items: dict[str, tuple[int, int | None]] = {}

    def add_item(key: str, it: Item) -> None:
        sid = index.add(list(it.phrases), role=it.role)
        also = index.add(list(it.also), role=it.role) if it.also else None
        items[key] = (sid, also)

    for cl in g.checklists:
        for it in cl.items:
            add_item(f"{cl.id}.{it.id}", it)
    card_said: dict[str, int] = {}
    card_topic: dict[str, int] = {}
    for card in g.cards:
        if card.when.said:
            card_said[card.id] = index.add(list(card.when.said), role="customer")
        if card.when.topic:
            card_topic[card.id] = index.add(list(card.when.topic), role="any")
        for st in card.steps:
            add_item(f"{card.id}.{st.id}", st)
    cues: dict[str, int] = {}
    if g.styles:
        for s in g.styles.kinds:
            if s.cues:
                cues[s.id] = index.add(list(s.cues), role="customer")
    index.build()
    return _Compiled(index, items, card_said, card_topic, cues, [p.id for p in index.sets if p.regex_items])


def live_rules(checker: Checker) -> list[str]:
    """IDs of the rules a live session runs on each final utterance, in the checker's order: those whose
    kind decides per utterance and whose every dependency is live too."""
    live: set[str] = set()
    out: list[str] = []
    for c in checker._sequence:
        r = c.rule
        if c.kind.decided != "utterance":
            continue
        if all(ref in live for ref in rule_refs(r)):
            live.add(r.id)
            out.append(r.id)
    return out


def _selected(rule_id: str, refs: list[str]) -> bool:
    return any(rule_id.startswith(p) for p in refs)


@dataclass
class _Partial:
    role: str
    start: float | None
    end: float | None
    text: str


@dataclass
class _Clock:
    now: float = 0.0
    hold_start: float | None = None  # a hold running now
    first_agent_end: float | None = None
    customer_spoke: bool = False
    last_speech_end: float | None = None
    run_start: float | None = None  # the customer's turn without a listening response began here
    run_end: float | None = None
    fired: set[str] = field(default_factory=set)


class LiveSession:
    """One live call. Feed it with `utterance`, `event`, `tick`; end it with `hangup`. Each call returns the
    new guidance items (dicts with a `seq` number, a `kind` and a `key` unique in the call)."""

    def __init__(self, checker: Checker, guidance: Guidance, call: dict[str, Any], *,
                 compiled: _Compiled | None = None, live_ids: list[str] | None = None) -> None:
        meta = {k: v for k, v in call.items() if k not in ("utterances", "events", "ended_by")}
        meta.setdefault("id", "live")
        try:
            # validated once, with a placeholder utterance (a conversation needs one)
            self._proto = Conversation.model_validate({**meta, "utterances": [{"role": "agent", "text": ""}]})
        except ValueError as exc:
            raise LiveError("bad_call", f"通话信息无效：{exc}") from None
        self.checker = checker
        self.guidance = guidance
        self.g = compiled or compile_guidance(guidance)
        ids = live_ids if live_ids is not None else live_rules(checker)
        self._live = [checker.compiled[i] for i in ids]
        self._live_ids = set(ids)
        self.call_id = self._proto.id
        self.utterances: list[Utterance] = []
        self.events: list[Event] = []
        self.partials: dict[str, _Partial] = {}
        self.log: list[dict[str, Any]] = []  # every item sent, in order (resume replays from here)
        self._keys: set[str] = set()
        # findings and events sent: key -> kind, rule, the item's key (key, or key#2… when shown again after
        # a withdrawal), times shown; withdrawn: those whose `retract` is the last word
        self._shown: dict[str, dict[str, Any]] = {}
        self._withdrawn: set[str] = set()
        self._scanned: dict[int, dict[int, int]] = {}  # utterance -> the guidance's phrase sets it says
        self._ticked: set[str] = set()
        self._cards: list[str] = []
        self._topics: set[str] = set()  # cards whose topic the call has mentioned
        self._style: str | None = None
        self._customer_chars = 0
        self._customer_secs = 0.0
        self._style_score: dict[str, int] = {}
        self.clock = _Clock()
        self.score: float | None = None
        self.report: Report | None = None
        self._checklists = [cl for cl in guidance.checklists
                            if (cl.directions is None or (self._proto.direction or "inbound") in cl.directions)
                            and (cl.channels is None or (self._proto.channel or "phone") in cl.channels)]

    # ---- output -------------------------------------------------------------------------------------

    def _emit(self, out: list[dict[str, Any]], kind: str, key: str, **data: Any) -> bool:
        if key in self._keys:
            return False
        self._keys.add(key)
        item = {"seq": len(self.log) + 1, "kind": kind, "key": key, **data}
        self.log.append(item)
        out.append(item)
        return True

    def start(self) -> list[dict[str, Any]]:
        """The checklists of this call type, all unticked (sent once when the call starts)."""
        out: list[dict[str, Any]] = []
        for cl in self._checklists:
            self._emit(out, "checklist", f"checklist:{cl.id}", id=cl.id, name=cl.name,
                       items=[{"id": it.id, "label": it.label} for it in cl.items])
        return out

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Everything sent after item `seq` (a client that reconnects says the last one it has)."""
        return self.log[max(seq, 0):]

    # ---- input --------------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.report is not None

    def _not_ended(self) -> None:
        if self.ended:
            raise LiveError("ended", "通话已挂断，不能再发送内容")

    def utterance(self, role: str, text: str, start: float | None = None, end: float | None = None, *,
                  final: bool = True, uid: str | None = None, attrs: dict[str, Any] | None = None,
                  ) -> list[dict[str, Any]]:
        self._not_ended()
        if role not in ROLES:
            raise LiveError("bad_role", f"未知的角色 {role!r}（应为 agent、customer 或 system）")
        if not isinstance(text, str):
            raise LiveError("bad_text", "text 应为字符串")
        for name, v in (("start", start), ("end", end)):
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v < 0 or v != v):
                raise LiveError("bad_time", f"{name} 应为非负的秒数")
        if start is not None and end is not None and end < start:
            raise LiveError("bad_time", f"结束时间 {end} 早于开始时间 {start}")
        out: list[dict[str, Any]] = []
        if not final:
            if uid is None:
                raise LiveError("bad_partial", "中间结果需要 id（同一句话的各次中间结果用同一个 id）")
            self.partials[uid] = _Partial(role, start, end, text)
            self._speech(role, start, end)
            out += self._timers()
            return out
        if start is not None and self.utterances:
            prev = self.utterances[-1].start
            if prev is not None and start < prev - OUT_OF_ORDER_TOLERANCE:
                raise LiveError("out_of_order", f"语句开始时间 {start} 早于上一句的开始时间 {prev}：请按说话顺序发送")
        if uid is not None:
            self.partials.pop(uid, None)
        try:
            u = Utterance(role=role, text=text, start=start, end=end, attrs=attrs or {})  # type: ignore[arg-type]
        except ValueError as exc:
            raise LiveError("bad_utterance", f"语句无效：{exc}") from None
        self.utterances.append(u)
        idx = len(self.utterances) - 1
        self._speech(role, start, end, final_agent=role == "agent")
        out += self._check(idx)
        out += self._guide(idx)
        out += self._timers()
        return out

    def event(self, type_: str, *, phase: str | None = None, start: float | None = None, end: float | None = None,
              at: float | None = None, target: str | None = None) -> list[dict[str, Any]]:
        """An event: a whole one (`start`/`end` or `at`), or a hold's `phase` "start" then "end"."""
        self._not_ended()
        if not type_ or not isinstance(type_, str):
            raise LiveError("bad_event", "事件需要 type")
        t = start if start is not None else at
        out: list[dict[str, Any]] = []
        if phase == "start":
            if t is None:
                raise LiveError("bad_event", "事件开始需要时间 at")
            if type_ == "hold":
                if self.clock.hold_start is not None:
                    raise LiveError("bad_event", "等候已在进行中")
                self.clock.hold_start = t
            self._advance(t)
            if type_ == "hold" and self.utterances:
                # rules anchored on the hold's start (the request before it, HLD001) are decided now: the call
                # so far has the hold as it begins (`_prefix`); the whole hold goes in when it ends
                out += self._check(len(self.utterances) - 1)
            return out + self._timers()
        if phase == "end":
            if type_ != "hold" or self.clock.hold_start is None:
                raise LiveError("bad_event", "没有进行中的等候可以结束")
            e_end = end if end is not None else at
            if e_end is None or e_end < self.clock.hold_start:
                raise LiveError("bad_time", "等候结束时间缺失或早于开始时间")
            start, end = self.clock.hold_start, e_end
            self.clock.hold_start = None
        elif phase is not None:
            raise LiveError("bad_event", f"未知的 phase {phase!r}（应为 start 或 end）")
        try:
            ev = Event(type=type_, start=start, end=end, at=at, target=target)
        except ValueError as exc:
            raise LiveError("bad_event", f"事件无效：{exc}") from None
        self.events.append(ev)
        self._advance(ev.end if ev.end is not None else ev.at)
        if type_ == "hold" and ev.end is not None:
            self.clock.last_speech_end = max(self.clock.last_speech_end or 0.0, ev.end)
        if self.utterances:
            out += self._check(len(self.utterances) - 1)
        out += self._timers()
        return out

    def tick(self, now: float) -> list[dict[str, Any]]:
        """The call's clock moved on to `now` with nothing said: timers may fire."""
        if self.ended:
            return []
        self._advance(now)
        return self._timers()

    def hangup(self, ended_by: str | None = None, at: float | None = None, *,
               metrics: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The call is over: the final report (as `kefuqa check` would give), findings only the whole call
        decides, and the live findings the whole call withdrew."""
        self._not_ended()
        if ended_by not in (None, "customer", "agent", "system"):
            raise LiveError("bad_hangup", f"未知的 ended_by {ended_by!r}")
        if not self.utterances:
            raise LiveError("empty", "通话没有任何语句，无法生成报告")
        if self.clock.hold_start is not None:  # a hold still running when the line dropped
            stop = at if at is not None else self.clock.now
            self.events.append(Event(type="hold", start=self.clock.hold_start, end=max(stop, self.clock.hold_start)))
            self.clock.hold_start = None
        conv = self.conversation(ended_by=ended_by, metrics=metrics)
        report = self.checker.check(conv)
        out: list[dict[str, Any]] = []
        final: set[str] = set()
        for f in report.findings:
            final.add(_finding_key(f))
            self._show(out, "finding", _finding_key(f), _finding_data(f), live=False)
        # events likewise: the whole call may decide one the call so far did not (a weak model reading with
        # its support), or withdraw one shown live
        for e in report.events:
            final.add(_event_key(e))
            self._show(out, "event", _event_key(e), _event_data(e), live=False)
        self._withdraw(out, final, {"finding": "通话结束后复核：此条不成立（后文的话使其成为例外）",
                                    "event": "通话结束后复核：此事件不成立（整通通话不支持这一判断）"})
        self.report = report
        self.score = report.score
        self._emit(out, "report", "report", score=report.score, grade=report.grade, fatal=report.fatal,
                   findings=len(report.findings), report=report.to_dict())
        return out

    # ---- the conversation so far --------------------------------------------------------------------

    def conversation(self, *, ended_by: str | None = None, metrics: dict[str, Any] | None = None) -> Conversation:
        data = self._proto.model_dump(exclude={"utterances", "events", "ended_by", "metrics", "notes", "source"},
                                      exclude_unset=True)
        return Conversation.model_validate({**data, "utterances": list(self.utterances),
                                            "events": list(self.events), "ended_by": ended_by,
                                            "metrics": metrics or {}})

    def _prefix(self) -> Conversation:
        events = list(self.events)
        if self.clock.hold_start is not None:  # a hold going on: its start is known (HLD001 reads it), its end not
            events.append(Event(type="hold", start=self.clock.hold_start, end=self.clock.hold_start))
        conv = self._proto.model_copy(update={"utterances": list(self.utterances), "events": events})
        return conv

    # ---- rules --------------------------------------------------------------------------------------

    def _check(self, idx: int) -> list[dict[str, Any]]:
        """Run the live rules on the call so far; report hits not reported yet."""
        checker = self.checker
        ctx = Context(checker, self._prefix())
        ctx.live = True  # the call goes on: a weak model reading waits for support (kinds/intent.py)
        fired = ctx.fired
        for c in checker._sequence:
            fired[c.rule.id] = NO_HITS
        for c in self._live:
            try:
                fired[c.rule.id] = checker._run(c, ctx)
            except NotApplicable:
                fired[c.rule.id] = NO_HITS
        report = checker.report(ctx, self._live_ids & checker._shown, {})
        self.score = report.score
        out: list[dict[str, Any]] = []
        alert_refs = self.guidance.alerts.rules
        current: set[str] = set()
        for f in report.findings:
            key = _finding_key(f)
            current.add(key)
            alert = (dict(rule=f.rule, name=f.name, utterance=f.utterance, said=f.evidence, say_instead=f.suggestion,
                          message=f.message, at=f.start) if _selected(f.rule, alert_refs) else None)
            self._show(out, "finding", key, _finding_data(f), live=True, alert=alert)
        new_rules = {e.rule for e in report.events}
        for e in report.events:
            current.add(_event_key(e))
            self._show(out, "event", _event_key(e), _event_data(e), live=True)
        # what the call so far no longer supports (the agent's next turn gave the reason for a no) is
        # withdrawn now, not left on the agent's screen until the call ends
        self._withdraw(out, current, {"finding": "后文的话使其成为例外：此条撤回",
                                      "event": "后文的话使其不成立：此事件撤回"})
        out += self._cards_for(new_rules, idx)
        return out

    def _show(self, out: list[dict[str, Any]], kind: str, key: str, data: dict[str, Any], *, live: bool,
              alert: dict[str, Any] | None = None) -> None:
        """Send a finding or an event, with its alert; again (a fresh item key) if it had been withdrawn."""
        prev = self._shown.get(key)
        if prev is not None and key not in self._withdrawn:
            return
        n = prev["n"] + 1 if prev is not None else 1
        item = key if n == 1 else f"{key}#{n}"
        self._shown[key] = {"kind": kind, "rule": data["rule"], "item": item, "n": n}
        self._withdrawn.discard(key)
        self._emit(out, kind, item, **data, live=live)
        if alert is not None:
            self._emit(out, "alert", "alert:" + item, **alert)

    def _withdraw(self, out: list[dict[str, Any]], holding: set[str], message: dict[str, str]) -> None:
        """A `retract` for each finding or event shown that `holding` (the check just made) no longer has."""
        for key, shown in self._shown.items():
            if key not in holding and key not in self._withdrawn:
                self._withdrawn.add(key)
                self._emit(out, "retract", "retract:" + shown["item"], item=shown["item"],
                           **{shown["kind"]: shown["item"]}, rule=shown["rule"], message=message[shown["kind"]])

    # ---- guidance -----------------------------------------------------------------------------------

    def _scan(self, idx: int) -> dict[int, int]:
        """The guidance's phrase sets said in utterance `idx`: set id -> number of matches. The automaton's
        raw hits are literal (and pinyin) matches, or only the literal a regex needs ("pre"): each regex runs
        on the clean text (those with no such literal on every utterance); a whole-utterance item must be
        the whole utterance; an item's or its set's `unless` said anywhere in the utterance cancels it."""
        got = self._scanned.get(idx)
        if got is not None:
            return got
        u = self.utterances[idx]
        if u.role not in ("agent", "customer"):
            return {}
        index = self.g.index
        clean = normalize.clean(u.text or "")
        key = normalize.key_of_clean(clean)
        raw = index.scan(key, u.role)
        found: dict[int, list[int]] = {}
        for sid, hits in raw.items():
            pset = index.sets[sid]
            if u.role not in pset.roles:
                continue
            for item, start, end, via in hits:
                if via == "pre":
                    continue
                whole = pset.items[item].whole
                if whole is not None and whole != (start == 0 and end == len(key)):
                    continue
                found.setdefault(sid, []).append(item)
        for sid in self.g.regex_sets:
            pset = index.sets[sid]
            if u.role not in pset.roles:
                continue
            pre = {h[0] for h in raw.get(sid, ()) if h[3] == "pre"}
            for i in pset.regex_items:
                rx = pset.items[i].regex
                if rx is None or (i in pset.prefiltered and i not in pre):
                    continue
                n = sum(1 for m in rx.finditer(clean) if m.end() > m.start())
                found.setdefault(sid, []).extend([i] * n)

        def said(unless: int | None) -> bool:
            return unless is not None and any(h[3] != "pre" for h in raw.get(unless, ()))

        out: dict[int, int] = {}
        for sid, items in found.items():
            pset = index.sets[sid]
            if said(pset.unless_set):
                continue
            n = sum(1 for i in items if not said(pset.items[i].unless_set))
            if n:
                out[sid] = n
        self._scanned[idx] = out  # a final utterance never changes: its cards and ticks read it once
        return out

    def _cards_for(self, rules: set[str], idx: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        hits = self._scan(idx)
        for cid, topic in self.g.card_topic.items():
            if topic in hits:
                self._topics.add(cid)
        for card in self.guidance.cards:
            if card.id in self._cards or (card.id in self.g.card_topic and card.id not in self._topics):
                continue
            by_rule = [r for r in rules if _selected(r, card.when.rules)]
            sid = self.g.card_said.get(card.id)
            if not by_rule and not (sid is not None and sid in hits):
                continue
            self._cards.append(card.id)
            self._emit(out, "card", f"card:{card.id}", id=card.id, title=card.title, source=card.source,
                       script=list(card.script), steps=[{"id": s.id, "label": s.label} for s in card.steps],
                       utterance=idx, at=self.utterances[idx].start, because=by_rule or ["said"])
        return out

    def _guide(self, idx: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        u = self.utterances[idx]
        hits = self._scan(idx)
        if hits:
            groups: list[tuple[str, list[Item]]] = [(cl.id, cl.items) for cl in self._checklists]
            groups += [(c.id, c.steps) for c in self.guidance.cards if c.id in self._cards and c.steps]
            for gid, items in groups:
                for it in items:
                    key = f"{gid}.{it.id}"
                    if key in self._ticked or it.role != u.role:
                        continue
                    sid, also = self.g.items[key]
                    if sid in hits and (also is None or also in hits):
                        self._ticked.add(key)
                        self._emit(out, "check", f"check:{key}", group=gid, id=it.id, label=it.label,
                                   utterance=idx, at=u.start)
        if u.role == "customer":
            out += self._guess_style(u, hits)
        return out

    def _guess_style(self, u: Utterance, hits: dict[int, int]) -> list[dict[str, Any]]:
        st = self.guidance.styles
        if st is None:
            return []
        text = u.text or ""
        self._customer_chars += sum(1 for ch in text if ch.isalnum())
        self._customer_secs += u.duration
        for s in st.kinds:
            sid = self.g.style_cues.get(s.id)
            if sid is not None and sid in hits:
                self._style_score[s.id] = self._style_score.get(s.id, 0) + hits[sid]
        if self._customer_chars < st.min_chars:
            return []
        rate = self._customer_chars / self._customer_secs * 60 if self._customer_secs > 0 else None
        best: tuple[int, str] | None = None
        for s in st.kinds:
            score = self._style_score.get(s.id, 0)
            if rate is not None and (s.min_rate is not None or s.max_rate is not None):
                if (s.min_rate is None or rate >= s.min_rate) and (s.max_rate is None or rate <= s.max_rate):
                    score += 1
            if score >= st.min_score and (best is None or score > best[0]):
                best = (score, s.id)
        if best is None or best[1] == self._style:
            return []
        self._style = best[1]
        s = next(x for x in st.kinds if x.id == best[1])
        out: list[dict[str, Any]] = []
        self._emit(out, "style", f"style:{s.id}:{len(self.utterances)}", id=s.id, name=s.name, traits=s.traits,
                   advice=s.advice, rate=round(rate) if rate is not None else None, hint=True,
                   source=st.source, at=u.start)
        return out

    # ---- clock and timers ---------------------------------------------------------------------------

    def _advance(self, t: float | None) -> None:
        if t is not None and t > self.clock.now:
            self.clock.now = t

    def _speech(self, role: str, start: float | None, end: float | None, final_agent: bool = False) -> None:
        c = self.clock
        self._advance(end if end is not None else start)
        if end is not None:
            c.last_speech_end = max(c.last_speech_end or 0.0, end)
        if role == "agent" and final_agent:
            if c.first_agent_end is None:
                c.first_agent_end = end if end is not None else start
            c.run_start = c.run_end = None  # a word from the agent breaks the customer's monologue
        elif role == "customer":
            c.customer_spoke = True
            if start is not None:
                if c.run_start is None:
                    c.run_start = start
                c.run_end = max(c.run_end or start, end if end is not None else start)

    def _timers(self) -> list[dict[str, Any]]:
        t = self.guidance.timers
        c = self.clock
        now = c.now
        out: list[dict[str, Any]] = []
        if t.hold and c.hold_start is not None and now - c.hold_start >= t.hold.after_seconds:
            self._emit(out, "timer", f"timer:hold:{c.hold_start}", timer="hold", title=t.hold.title,
                       script=list(t.hold.script), since=c.hold_start, at=now)
        if (t.customer_silent and not c.customer_spoke and c.first_agent_end is not None
                and now - c.first_agent_end >= t.customer_silent.after_seconds):
            self._emit(out, "timer", "timer:customer_silent", timer="customer_silent", title=t.customer_silent.title,
                       script=list(t.customer_silent.script), since=c.first_agent_end, at=now)
        if (t.dead_air and c.customer_spoke and c.hold_start is None and c.last_speech_end is not None
                and not self.partials and now - c.last_speech_end >= t.dead_air.after_seconds):
            self._emit(out, "timer", f"timer:dead_air:{c.last_speech_end}", timer="dead_air", title=t.dead_air.title,
                       script=list(t.dead_air.script), since=c.last_speech_end, at=now)
        if (t.monologue and c.run_start is not None and c.run_end is not None
                and c.run_end - c.run_start >= t.monologue.after_seconds):
            self._emit(out, "timer", f"timer:monologue:{c.run_start}", timer="monologue", title=t.monologue.title,
                       script=list(t.monologue.script), since=c.run_start, at=now)
        return out


def _finding_key(f: Finding) -> str:
    span = f"{f.span[0]}-{f.span[1]}" if f.span else ""
    return f"finding:{f.rule}:{f.utterance if f.utterance is not None else ''}:{span}"


def _event_key(e: EventHit) -> str:
    return f"event:{e.rule}:{e.utterance}"


def _event_data(e: EventHit) -> dict[str, Any]:
    return {"rule": e.rule, "name": e.name, "utterance": e.utterance, "evidence": e.evidence, "at": e.start}


def _finding_data(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "name": f.name, "severity": f.severity, "utterance": f.utterance, "at": f.start,
            "evidence": f.evidence, "message": f.message, "suggestion": f.suggestion}
