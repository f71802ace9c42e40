"""Who is speaking in a mono recording: the agent or the customer.

Two cues, both cheap: what is said (the agent greets with the company name and 工号, offers help and
closes with thanks; the customer states a problem with 我想/我的/你们), and how it sounds (two voices
usually differ in pitch, so segments cluster by median F0). With text, the text decides which pitch
cluster — or, when the voices are alike, which segment — is the agent's. Without text, the voice that
speaks first (the agent answers the call) is taken as the agent's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

AGENT_CUES = [
    r"您好.{0,8}(这里是|欢迎|很高兴为您|客服|热线)", r"工号", r"有什么(可以|能)?(帮|为)(您|你)", r"为您服务",
    r"请(您)?稍等", r"感谢您的(来电|耐心|支持)", r"还有(其他|别的|什么).{0,6}(帮|问题|需要)", r"我是.{0,8}(客服|号)",
    r"(先生|女士)", r"为您(查询|办理|处理|登记|记录|反馈)", r"请问您", r"(稍后|尽快)(给您|为您)",
    r"\bthank you for calling\b", r"\bhow (can|may) i help\b", r"\bmy name is\b", r"\banything else\b",
    r"\bthis is .{0,20}(support|service)\b",
]
CUSTOMER_CUES = [
    r"我(想|要)(问|咨询|投诉|查|办|反映|退|换)", r"我的", r"你们", r"怎么回事", r"为什么", r"投诉", r"我家",
    r"\bi (want|need|would like)\b", r"\bmy (order|account|bill|phone|package|internet|line|card|service)\b", r"\byour company\b",
    r"\bwhy\b",
]
_AGENT = [re.compile(p, re.I) for p in AGENT_CUES]
_CUSTOMER = [re.compile(p, re.I) for p in CUSTOMER_CUES]


def text_score(text: str) -> int:
    """Agent cues minus customer cues found in `text` (positive: sounds like the agent)."""
    if not text:
        return 0
    return sum(1 for p in _AGENT if p.search(text)) - sum(1 for p in _CUSTOMER if p.search(text))


@dataclass(slots=True)
class Assignment:
    roles: list[str]
    method: str  # "text", "text+pitch", "pitch", "order"


def pitch_clusters(medians: list[float | None], min_separation: float = 4.0) -> list[int] | None:
    """Two clusters of segments by median F0 (semitones, 1-D 2-means); None when the voices are not
    at least `min_separation` semitones apart or there are fewer than two voiced segments."""
    idx = [i for i, m in enumerate(medians) if m]
    if len(idx) < 2:
        return None
    st = np.array([12.0 * np.log2(float(medians[i] or 100.0) / 100.0) for i in idx])
    lo, hi = float(st.min()), float(st.max())
    if hi - lo < min_separation:
        return None
    c0, c1 = lo, hi
    for _ in range(20):
        lab = np.abs(st - c0) > np.abs(st - c1)
        if lab.all() or not lab.any():
            return None
        n0, n1 = float(st[~lab].mean()), float(st[lab].mean())
        if n0 == c0 and n1 == c1:
            break
        c0, c1 = n0, n1
    if c1 - c0 < min_separation:
        return None
    labels = [-1] * len(medians)
    for k, i in enumerate(idx):
        labels[i] = int(lab[k])
    # unvoiced segments join the cluster of the segment before them (or after, at the start)
    for i in range(len(labels)):
        if labels[i] < 0:
            prev = next((labels[j] for j in range(i - 1, -1, -1) if labels[j] >= 0), None)
            nxt = next((labels[j] for j in range(i + 1, len(labels)) if labels[j] >= 0), 0)
            labels[i] = prev if prev is not None else nxt
    return labels


def assign_roles(texts: list[str], pitch_medians: list[float | None]) -> Assignment:
    """Roles for the segments of a mono recording, in time order."""
    n = len(texts)
    if n == 0:
        return Assignment([], "order")
    scores = [text_score(t) for t in texts]
    has_text = any(t.strip() for t in texts)
    clusters = pitch_clusters(pitch_medians)
    if clusters is not None:
        first = clusters[0]
        agent_cluster = first
        if has_text:
            totals = {0: 0, 1: 0}
            for c, s in zip(clusters, scores, strict=True):
                totals[c] += s
            if totals[0] != totals[1]:
                agent_cluster = 0 if totals[0] > totals[1] else 1
        roles: list[str] = ["agent" if c == agent_cluster else "customer" for c in clusters]
        method = "text+pitch" if has_text and any(scores) else "pitch"
        return Assignment(roles, method)
    if has_text and any(scores):
        roles = []
        for i, s in enumerate(scores):
            if s > 0:
                roles.append("agent")
            elif s < 0:
                roles.append("customer")
            elif i == 0:
                roles.append("agent")
            else:  # no cue: people take turns
                roles.append("customer" if roles[-1] == "agent" else "agent")
        return Assignment(roles, "text")
    roles = ["agent" if i % 2 == 0 else "customer" for i in range(n)]
    return Assignment(roles, "order")
