from search.gloss import gloss


def test_chinese_words_get_pinyin_and_senses_and_the_rest_passes_through():
    pieces = gloss("打开图层对话框 (Layers)")
    assert "".join(p.word for p in pieces) == "打开图层对话框 (Layers)"
    by_word = {p.word: p for p in pieces}
    assert by_word["图层"].pinyin == "tu2 ceng2" and "layer" in by_word["图层"].senses[0]
    assert by_word["打开"].senses
    assert all(p.pinyin is None and not p.senses for p in pieces if p.word.isascii())


def test_traditional_forms_are_found():
    assert gloss("圖層")[0].pinyin == "tu2 ceng2"
