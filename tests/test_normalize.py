"""Normalisation views and the map back to the original characters."""

from __future__ import annotations

import pytest

from kefuqa import normalize


def test_key_view_unifies_script_width_punctuation_and_marks():
    assert normalize.key("我怎麼知道！") == "我怎么知道"
    assert normalize.key("ＡＢＣ１２３，Ok") == "abc123ok"
    assert normalize.key("不_行 不行") == "不行不行"


def test_stutters_collapse_but_digits_stay():
    assert normalize.key("我我我怎么知道") == "我怎么知道"
    assert normalize.key("13800138000") == "13800138000"
    assert normalize.key("这个这个") == "这个这个"


def test_clean_view_keeps_punctuation_for_regexes():
    assert normalize.clean("什麼？") == "什么?"


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("您好，我怎麼知道！", "我怎么知道"),
        ("喂_喂，我我我怎么知道啊", "我怎么知道"),
        ("ＯＫ，我怎么知道", "我怎么知道"),
        ("嗯…… 这 个 这 个", "这个这个"),
    ],
)
def test_original_span_points_at_the_original_characters(text, phrase):
    key = normalize.key(text)
    start = key.index(phrase)
    s, e = normalize.original_span(text, start, start + len(phrase))
    quoted = text[s:e]
    assert normalize.key(quoted) == phrase
    # the quote starts and ends on characters of the phrase, not on surrounding punctuation
    assert normalize.key(quoted[0]) and normalize.key(quoted[-1])


def test_key_map_has_one_entry_per_key_character():
    for text in ["您好，我我是小王！", "ＡＢ_Ｃ，１２", "這個這個，就是說"]:
        assert len(normalize.key_map(text)) == len(normalize.key(text))


def test_pinyin_key_keeps_offsets_and_merges_homophones():
    a, b = normalize.key("我知道了"), normalize.key("我知到了")
    assert len(normalize.pinyin_key(a)) == len(a)
    assert normalize.pinyin_key(a) == normalize.pinyin_key(b)
    assert normalize.pinyin_key("abc123") == "abc123"


def test_clean_view_drops_spaces_of_tokenised_asr_between_cjk_digits_and_punctuation():
    assert normalize.clean("你 好 ， 请 讲") == "你好,请讲"
    assert normalize.clean("号码是 1 3 8 0 0 1 3 8 0 0 0 。") == "号码是13800138000。"
    assert normalize.clean("你　好") == "你好"  # full-width space
    # spaces that separate Latin words, or a Latin word from Chinese, stay
    assert normalize.clean("hello, world") == "hello, world"
    assert normalize.clean("打开 app 查一下") == "打开 app 查一下"


@pytest.mark.parametrize("text", ["你 好 ， 请 讲", "您 好_ 請 講 ， ok 好", "1 3 8 號 ， A B", "   你 好   "])
def test_clean_map_follows_the_removed_spaces(text):
    cleaned = normalize.clean(text)
    cmap = normalize.clean_map(text)
    assert len(cmap) == len(cleaned)
    assert normalize.maps_from_clean(text, cleaned)[1] == cmap
    assert normalize.views_many([text, "好的"])[0][0] == cleaned
    for j, i in enumerate(cmap):  # each clean character comes from the original character it maps to
        assert normalize.clean(text[i]) in (cleaned[j], "")


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("我的号码是幺三五八八四零二七幺六。", "我的号码是13588402716。"),
        ("分机幺零零八", "分机1008"),  # four, with 幺/零: read out
        ("幺 三 八 零 零 一 三 八", "13800138"),  # tokenised ASR
        ("一三八0013八000", "13800138000"),  # digits and numerals mixed
    ],
)
def test_numbers_read_out_digit_by_digit_become_digits(text, clean):
    assert normalize.clean(text) == clean
    assert len(normalize.key_map(text)) == len(normalize.key(text))


@pytest.mark.parametrize("text", ["差不多七七八八了", "一二三四", "一五一十地说", "三十五块", "两三天", "一一对应"])
def test_words_made_of_numerals_stay(text):
    assert normalize.clean(text) == text


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("請問有甚麼可以幫妳？", "请问有什么可以帮你?"),
        ("專員會盡快聯絡您", "专员会尽快联系您"),
        ("帳單和帳號都對帳了", "账单和账号都对账了"),
        ("留著收據，別著急", "留着收据,别着急"),
        ("用簡訊傳訊息", "用短信传信息"),
    ],
)
def test_taiwan_and_hong_kong_wording_becomes_the_mainland_word(text, clean):
    assert normalize.clean(text) == clean
    assert len(normalize.clean_map(text)) == len(normalize.clean(text))


@pytest.mark.parametrize("text", ["著名的帐篷", "效果显著", "一部名著", "蚊帐", "甚至"])
def test_words_where_the_mainland_keeps_the_character_stay(text):
    assert normalize.clean(text) == text
