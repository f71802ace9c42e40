"""Features of one utterance for the fast judgement model: character n-grams of the normalised key view
(Simplified, no punctuation, stutters collapsed) with start/end marks, syllable n-grams of its pinyin view
(so an ASR homophone 在/再 weighs like the word it replaced), and whether the utterance is a question.

Every feature remembers the characters it covers, so the model can say which words weighed most.
"""

from __future__ import annotations

from .. import normalize

CHAR_N = (1, 2, 3)
SYLLABLE_N = (2,)


def features(text: str) -> tuple[str, list[tuple[str, int, int]]]:
    """(key view, [(feature, start, end) in key-view offsets])."""
    key = normalize.key(text)
    out: list[tuple[str, int, int]] = []
    n = len(key)
    marked = "^" + key + "$"
    for size in CHAR_N:
        for i in range(len(marked) - size + 1):
            gram = marked[i:i + size]
            if gram in ("^", "$"):
                continue
            s = max(0, i - 1)
            out.append(("c" + gram, s, min(n, s + size)))
    # syllables by name (zai|ta), never pinyin_key's per-process private-use characters: the feature
    # names are saved in the model and must mean the same in the process that loads it
    syl = [normalize.syllable(ch) for ch in key]
    for size in SYLLABLE_N:
        for i in range(n - size + 1):
            parts = syl[i:i + size]
            if all(parts):  # CJK only
                out.append(("p" + "|".join(parts), i, i + size))  # type: ignore[arg-type]
    cleaned = normalize.clean(text).rstrip(" 。.！!~～")
    if cleaned.endswith(("？", "?")):
        out.append(("?", max(0, n - 1), n))
    return key, out
