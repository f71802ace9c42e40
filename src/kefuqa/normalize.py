"""Text normalisation for matching, with a way back to the original characters.

Two views of every utterance are matched against:

- ``clean``: Traditional → Simplified (OpenCC ``t2s``, then Taiwan/Hong Kong words such as 甚麼, 聯絡, 帳單,
  留著 to the mainland ones: 什么, 联系, 账单, 留着), full-width → half-width, lower case, ASR pause
  marks (``_``) removed, spaces between two CJK characters, digits or punctuation marks removed (tokenised
  ASR output: ``你 好 ， 1 3 8`` → ``你好,138``; Chinese puts no spaces between words), numbers read out
  digit by digit written as digits (幺三八零 → 1380). Punctuation is kept, so regular expressions can use it.
- ``key``: ``clean`` without punctuation and spaces, and with CJK stutters collapsed (``我我我`` → ``我``;
  patterns are normalised the same way, so ``谢谢`` still matches ``谢谢``). Phrases are matched here.

Building the views is on the hot path (every utterance of every call), so it is done with
``str.translate`` and a few regexes over the whole call; the map from a key position back to the original text is computed only
when a finding needs evidence.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_T2S = opencc.OpenCC("t2s")

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_STUTTER = re.compile(f"([{_CJK}])\\1+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
# spaces (after the width table: full-width ones are plain spaces by then) between two CJK characters,
# digits or Chinese punctuation marks (half-width by then): 你 好 ， 1 3 8 → 你好,138; "ok, 好的" keeps its
_TIGHT = f"{_CJK}0-9,.!?;:、。"
_CJK_SPACE = re.compile(f"(?<=[{_TIGHT}])[ \t]+(?=[{_TIGHT}])")
# numbers read out digit by digit (phone, order, staff numbers: 幺三八零……), written as Arabic digits so
# that regexes on digits see them; one character per character
_SPOKEN_RUN = re.compile("[0-9〇零一二三四五六七八九幺]{4,}")
_SPOKEN_DIGIT = str.maketrans("〇零一二三四五六七八九幺", "001234567891")


def _spoken_digits(m: re.Match[str]) -> str:
    run = m.group(0)
    # five or more, or four with a sign of a read-out number (幺, 零): not 七七八八, 一二三四
    if len(run) >= 5 or any(c in "幺零〇" for c in run):
        return run.translate(_SPOKEN_DIGIT)
    return run


# Taiwan / Hong Kong wording that OpenCC's t2s leaves as it is (it converts characters, not vocabulary),
# mapped to the mainland word the rules are written with; every entry keeps its length, so offsets hold.
# Only words whose mainland reading is the same thing (not 支援, 影片, 行程, which tw2sp also rewrites).
_REGIONAL_WORDS = {
    "甚么": "什么", "妳": "你", "联络": "联系", "讯息": "信息", "资讯": "信息", "简讯": "短信",
    "网路": "网络", "软体": "软件", "程式": "程序", "登入": "登录", "预设": "默认", "点选": "点击",
    "列印": "打印", "宽频": "宽带", "视讯": "视频", "透过": "通过", "计程车": "出租车", "脚踏车": "自行车",
}
# 帳 (t2s: 帐) of accounts and bills is 账 on the mainland (帐单, 对帐; 帐篷, 蚊帐 stay); 著 is the particle
# 着 (等著, 留著, 著急) except in 著名, 显著, 名著 …. Their context is looked at in `_regional`: a plain
# alternation of literals is ten times faster than one with lookbehinds (this runs on every call).
_REGIONAL = re.compile("|".join(sorted(_REGIONAL_WORDS, key=len, reverse=True)) + "|帐|著")


def _regional(m: re.Match[str]) -> str:
    w = m.group(0)
    if len(w) > 1 or w == "妳":
        return _REGIONAL_WORDS[w]
    s, i = m.string, m.start()
    before = s[i - 1] if i else ""
    after = s[i + 1] if i + 1 < len(s) else ""
    if w == "帐":
        return "账" if (after and after in "单号户目款务") or (before and before in "对转记查结算到入销挂") else w
    return w if (before and before in "显卓土原名论编专巨遗译合昭") or (after and after in "名作称述者录书") else "着"


def _tidy(widened: str) -> str:
    """The steps of the clean view after the width table (each keeps or deletes characters, never adds)."""
    return _REGIONAL.sub(_regional, _SPOKEN_RUN.sub(_spoken_digits, _CJK_SPACE.sub("", widened)))


def _build_width_table() -> dict[int, int | str | None]:
    table: dict[int, int | str | None] = {}
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII
        table[code] = chr(code - 0xFEE0).lower()
    table[0x3000] = " "
    for code in range(ord("A"), ord("Z") + 1):
        table[code] = chr(code).lower()
    table[ord("_")] = None  # ASR pause marks
    table[ord("＿")] = None
    return table


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LN"  # letters (CJK included) and digits


class _KeyTable(dict[int, "str | None"]):
    """str.translate table deleting every non-letter, non-digit character; filled lazily."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        value = ch if _is_word_char(ch) else None
        self[code] = value
        return value


_WIDTH = _build_width_table()
_KEY = _KeyTable()


def t2s(text: str) -> str:
    """Traditional → Simplified, keeping one output character per input character."""
    out: str = _T2S.convert(text)
    if len(out) != len(text):
        # Phrase conversion changed the length (rare): fall back to character by character so that
        # positions still line up with the original.
        out = "".join(_t2s_char(ch) for ch in text)
    return out


@lru_cache(maxsize=65536)
def _t2s_char(ch: str) -> str:
    conv: str = _T2S.convert(ch)
    return conv if len(conv) == 1 else ch


def clean(text: str) -> str:
    """The ``clean`` view: t2s, half-width, lower case, no ASR pause marks, no spaces between CJK."""
    return _tidy(t2s(text).translate(_WIDTH))


_NON_WORD = re.compile(r"[\W_]+")  # the same characters as _KEY deletes (checked on every code point)


def _first(m: re.Match[str]) -> str:
    return m.group(1)


def key_of_clean(cleaned: str) -> str:
    return _STUTTER.sub(_first, _NON_WORD.sub("", cleaned))


def key(text: str) -> str:
    """The ``key`` view of any text (utterances and patterns alike)."""
    return key_of_clean(clean(text))


# Joins the utterances of a call so that each step runs once per call: a letter (category Lo, so it
# survives the removal of punctuation) that no transcript contains.
_SEP = "\ua66e"


def views_many(texts: list[str]) -> tuple[list[str], list[str], list[int]]:
    """`views` of every utterance of a call, plus each utterance's count of word characters (CJK,
    letters, digits — for speech rate), computed for the whole call at once."""
    joined = "\n".join(texts)
    conv: str = _T2S.convert(joined)
    parts = conv.split("\n") if len(conv) == len(joined) else []
    if len(parts) != len(texts) or any(len(a) != len(b) for a, b in zip(parts, texts, strict=False)):
        parts = [t2s(t) for t in texts]  # a text with its own newline, or a length-changing phrase
        conv = "\n".join(parts)
    cleaned = _tidy(conv.translate(_WIDTH))
    cleans = cleaned.split("\n")
    if len(cleans) != len(texts) or _SEP in cleaned:
        cleans = [_tidy(p.translate(_WIDTH)) for p in parts]
        words = [_NON_WORD.sub("", c) for c in cleans]
    else:
        words = _NON_WORD.sub("", cleaned.replace("\n", _SEP)).split(_SEP)
    keys = _STUTTER.sub(_first, _SEP.join(words)).split(_SEP)
    return cleans, keys, [len(w) for w in words]


def key_map(text: str) -> list[int]:
    """For each character of ``key(text)``, the index of the original character it came from.

    Built from the clean view and its map; only called when a finding needs its evidence.
    """
    return _key_map_of_clean(clean(text), clean_map(text))


def _key_map_of_clean(cleaned: str, cmap: list[int]) -> list[int]:
    """The key view keeps the word characters of the clean view that are not a repeat of the CJK
    character before them (a collapsed stutter keeps its first occurrence)."""
    kmap: list[int] = []
    prev = ""
    keyt = _KEY
    for j, c in enumerate(cleaned):
        if keyt[ord(c)] is None:
            continue
        if c == prev and _CJK_CHAR.match(c):
            continue
        kmap.append(cmap[j])
        prev = c
    return kmap


def maps_from_clean(text: str, cleaned: str) -> tuple[list[int], list[int]]:
    """(key → original, clean → original) index maps, from a text and its already computed clean view.

    t2s keeps one character per character and the width table only deletes ASR pause marks, so the clean
    view is the original less its ``_`` (and less the spaces between CJK characters: then the slow path).
    """
    if len(cleaned) == len(text):
        cmap = list(range(len(text)))
    else:
        cmap = [i for i, ch in enumerate(text) if ch != "_" and ch != "＿"]
        if len(cmap) != len(cleaned):  # not a view of this text after all: fall back to the slow path
            cmap = clean_map(text)
            return _key_map_of_clean(clean(text), cmap), cmap
    return _key_map_of_clean(cleaned, cmap), cmap


def clean_map(text: str) -> list[int]:
    """For each character of ``clean(text)``, the index of the original character."""
    conv = t2s(text)
    mapping: list[int] = []
    chars: list[str] = []
    for i, ch in enumerate(conv):
        w = _WIDTH.get(ord(ch), ch)
        if w is None:
            continue
        for c in w if isinstance(w, str) else chr(w):
            mapping.append(i)
            chars.append(c)
    widened = "".join(chars)
    dropped = {j for m in _CJK_SPACE.finditer(widened) for j in range(m.start(), m.end())}
    return [i for j, i in enumerate(mapping) if j not in dropped] if dropped else mapping


def original_span(text: str, start: int, end: int, *, view: str = "key") -> tuple[int, int]:
    """Map a [start, end) span of the key (or clean) view back to [start, end) in the original text."""
    mapping = key_map(text) if view == "key" else clean_map(text)
    return span_from_map(mapping, len(text), start, end)


def span_from_map(mapping: list[int], length: int, start: int, end: int) -> tuple[int, int]:
    if not mapping:
        return (0, length)
    start = min(max(start, 0), len(mapping) - 1)
    last = min(max(end - 1, start), len(mapping) - 1)
    return (mapping[start], mapping[last] + 1)


# ---- pinyin ---------------------------------------------------------------------------------------------


class _PinyinTable(dict[int, str]):
    """Maps each CJK character to one private-use character standing for its toneless syllable.

    Pinyin strings then have exactly one character per key character, so a pinyin match has the same
    offsets as in the key view, and Aho-Corasick runs on them unchanged. Heteronyms take the default
    reading; the same character always maps the same way on both sides, so this only adds homophones.
    """

    def __init__(self) -> None:
        super().__init__()
        self._syllables: dict[str, str] = {}

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        value = ch
        if re.match(f"[{_CJK}]", ch):
            s = _syllable(code)
            if s:
                value = self._syllables.setdefault(s, chr(0xF0000 + len(self._syllables)))
        self[code] = value
        return value


_READINGS: dict[str, str] | None = None
_TONES = str.maketrans({"ü": "v", "ǖ": "v", "ǘ": "v", "ǚ": "v", "ǜ": "v"})


def _syllable(code: int) -> str | None:
    """The toneless first reading of a character (zhōng → zhong, lǜ → lv), from pypinyin's data.

    Reads pypinyin's character table directly: importing the package also loads its phrase dictionary,
    which single characters don't need and which costs a fifth of a second at every start.
    """
    global _READINGS
    if _READINGS is None:
        _READINGS = _load_readings()
    reading = _READINGS.get(str(code))
    if not reading:
        return None
    first = reading.split(",")[0].translate(_TONES)
    plain = "".join(c for c in unicodedata.normalize("NFD", first) if not unicodedata.combining(c))
    return plain or None


def _load_readings() -> dict[str, str]:
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("pypinyin")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        table = Path(folder) / "pinyin_dict.json"
        if table.is_file():
            data: dict[str, str] = json.loads(table.read_text(encoding="utf-8"))
            return data
    from pypinyin.pinyin_dict import pinyin_dict  # another layout of the package: its own loader

    return {str(k): v for k, v in pinyin_dict.items()}


_PINYIN = _PinyinTable()


@lru_cache(maxsize=65536)
def syllable(ch: str) -> str | None:
    """The toneless first reading of one CJK character (在 → zai), None for anything else. Stable across
    processes, unlike the private-use characters of `pinyin_key`, which are numbered in the order a process
    first meets each syllable: anything saved to a file (a model's features) must use this."""
    if len(ch) != 1 or not re.match(f"[{_CJK}]", ch):
        return None
    return _syllable(ord(ch))


def pinyin_key(key_text: str) -> str:
    """One private-use character per syllable; non-CJK characters unchanged."""
    return key_text.translate(_PINYIN)
