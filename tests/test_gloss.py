import pytest

import search.gloss as gloss_module
from search.gloss import Gloss, gloss, tone_marks


def test_chinese_words_get_pinyin_and_senses_and_the_rest_passes_through():
    pieces = gloss("打开图层对话框 (Layers)")
    assert "".join(p.word for p in pieces) == "打开图层对话框 (Layers)"
    by_word = {p.word: p for p in pieces}
    assert by_word["图层"].pinyin == "tú céng" and "layer" in by_word["图层"].senses[0]
    assert by_word["打开"].senses
    assert all(p.pinyin is None and not p.senses for p in pieces if p.word.isascii())


def test_traditional_forms_are_found():
    assert gloss("圖層")[0].pinyin == "tú céng"


def test_compounds_are_glossed_as_words_with_the_common_reading():
    pieces = gloss("关闭系统")
    assert [p.word for p in pieces] == ["关闭", "系统"]
    assert [p.pinyin for p in pieces] == ["guān bì", "xì tǒng"]
    assert not any(p.senses[0].startswith("surname") for p in pieces)


def test_a_single_character_prefers_the_common_word_over_the_surname():
    (guan,) = gloss("关")
    assert guan.pinyin == "guān"
    assert "to close" in guan.senses and not guan.senses[0].startswith("surname")


def test_a_compound_jieba_knows_and_cedict_lacks_is_split_by_longest_match():
    assert [p.word for p in gloss("国防委员会")] == ["国防", "委员会"]  # 委员会, not 委员 + 会


def test_characters_no_word_covers_fall_back_to_single_characters(monkeypatch):
    table = {"关闭": ("guān bì", ("to close",)), "系": ("xì", ("system",))}
    monkeypatch.setattr(gloss_module, "_dictionary", lambda: table)
    monkeypatch.setattr(gloss_module, "_longest_entry", lambda: 2)
    assert list(gloss_module._longest_match("关闭系统")) == [Gloss("关闭", "guān bì", ("to close",)), Gloss("系", "xì", ("system",)), Gloss("统")]


def test_non_chinese_text_passes_through_unchanged():
    text = "Close the system, then reboot (v2.0)."
    pieces = gloss(text)
    assert "".join(p.word for p in pieces) == text
    assert all(p.pinyin is None and not p.senses for p in pieces)


@pytest.mark.parametrize(
    ("numbered", "marked"),
    [
        ("lu:4", "lǜ"),
        ("lü4", "lǜ"),
        ("nv3", "nǚ"),
        ("xiong2", "xióng"),
        ("liu2", "liú"),
        ("gui4", "guì"),
        ("er5", "er"),
        ("Guan1", "Guān"),
        ("guan1 bi4", "guān bì"),
        ("Ou1 yang2", "Ōu yáng"),
        ("lu:e4", "lüè"),
        ("A A zhi4", "A A zhì"),
    ],
)
def test_tone_marks(numbered, marked):
    assert tone_marks(numbered) == marked
