"""Trigger positions (a rule's hits, an event, phrases said) and the phrase groups a window must contain."""

from __future__ import annotations

from .. import normalize
from ..labels import MEASURE_NAMES, OP_WORDS, VALUE_NAMES
from ..rules.schema import Condition, IntentRef, Trigger
from .context import Context
from .events import event_pos
from .hits import EVENT_NAMES, ROLE_NAMES, Pos

INTENT_MIN_CHARS = 4  # the default min_chars of intent rules


def positions(ctx: Context, trig: Trigger, trigger_sid: int | None) -> list[Pos]:
    """Where a trigger occurs in the call: the hits of a rule, the events of a type, or utterances of a
    role that say one of its phrases (`trigger_sid`, compiled by the kind)."""
    if trig.rule is not None:
        return [Pos(h.utterance, h.start, h.end, h.evidence, None, h.span) for h in ctx.fired.get(trig.rule, [])]
    if trig.event is not None:
        return [event_pos(ctx, e, trig.edge) for e in ctx.events if e.type == trig.event]
    out = []
    utts = ctx.conv.utterances
    if trig.said is not None and trigger_sid is not None:
        for u in ctx.candidates(trigger_sid, ctx.role_utts(trig.said.role)):
            ms = ctx.matches(trigger_sid, u)
            if ms:
                m = ms[0]
                k = ctx.keys[u][m.start:m.end] if m.view == "key" else \
                    normalize.key_of_clean(ctx.cleans[u][m.start:m.end])
                out.append(Pos(u, utts[u].start, utts[u].end, None, k, None, m))
    if trig.intent is not None:
        it = trig.intent
        said = {p.u for p in out}
        # as intent rules: 嗯、好的、再见 are listening, not statements, and are never judged; the judgements
        # are kept with the views by `Context.judgements`, shared with the intent rules asking the same label
        ask = [u for u in ctx.role_utts(it.role) if u not in said and ctx.word_count(u) >= INTENT_MIN_CHARS]
        hit: list[int] = []
        for u, j in zip(ask, ctx.judgements(it.judge, it.label, ask) if ask else [], strict=True):
            score = getattr(j, "score", None)  # None: Undecided (endpoint down), asked again next time
            if score is not None and score >= (it.threshold if it.threshold is not None else j.threshold):
                hit.append(u)
        for u in hit:
            text = utts[u].text or ""
            # the judged sentence is the trigger's evidence (a message quotes it)
            out.append(Pos(u, utts[u].start, utts[u].end, text.strip(), ctx.keys[u], (0, len(text))))
        out.sort(key=lambda p: p.u if p.u is not None else -1)
    return out


def groups_missing(ctx: Context, groups: dict[str, int], us: list[int], need: str | int,
                   labels: dict[str, IntentRef] | None = None) -> list[str]:
    """Names of the groups not said in `us`, when fewer than `need` (all, any, or a number) were. A group
    is said by one of its phrases or, when it has a label, by an utterance a judge finds to be that label."""
    names = list(dict.fromkeys([*groups, *(labels or {})]))
    missing = []
    for name in names:
        sid = groups.get(name)
        if sid is not None and ctx.said(sid, us) is not None:
            continue
        ref = (labels or {}).get(name)
        if ref is not None and ctx.labelled(ref.judge, ref.label, us, ref.threshold) is not None:
            continue
        missing.append(name)
    total = len(names)
    if need == "all":
        return missing
    if need == "any":
        return missing if len(missing) == total else []
    return missing if total - len(missing) < int(need) else []


def trigger_text(t: Trigger | None) -> str:
    """Why a triggered rule is not applicable: its trigger never occurred."""
    if t is None:
        return "没有触发条件"
    if t.rule:
        return f"{t.rule} 未触发"
    if t.event:
        return f"本通没有{EVENT_NAMES.get(t.event, t.event)}"
    return "未出现触发语句"


def condition_text(cond: Condition) -> str:
    """Why a rule whose `applies.when` condition does not hold is not applicable."""
    if cond.fired:
        return f"仅在 {cond.fired} 触发时适用"
    if cond.not_fired:
        return f"仅在 {cond.not_fired} 未触发时适用"
    if cond.said:
        return f"仅在{ROLE_NAMES[cond.said.role]}说出特定语句时适用"
    name = MEASURE_NAMES.get(str(cond.field), str(cond.field))
    value = cond.value
    if isinstance(value, list):
        value = "、".join(VALUE_NAMES.get(str(v), str(v)) for v in value)
    else:
        value = VALUE_NAMES.get(str(value), value)
    return f"仅当{name}{OP_WORDS.get(str(cond.op), str(cond.op))} {value} 时适用"
