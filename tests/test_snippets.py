from search.snippets import candidate_sentences, make_snippet, segments

TEXT = (
    "Debian uses apt to install packages. The cache lives in /var/cache/apt. "
    "To clean it, run apt-get clean. Old kernels can be removed too."
)


def test_best_sentence_holds_the_query_terms_and_they_are_marked():
    s = make_snippet(TEXT, "apt-get clean")
    assert "run apt-get clean." in s.text and s.text.startswith("…")
    assert [s.text[a:b] for a, b in s.marks] == ["clean", "apt-get", "clean"]


def test_chinese_terms_are_marked():
    s = make_snippet("安装软件包之前先更新。然后配置软件包的选项。", "配置软件包")
    marked = [s.text[a:b] for a, b in s.marks]
    assert "配置" in marked and "软件包" in marked


def test_cross_lingual_hit_marks_the_closest_sentence():
    zh = "第一句讲别的事情。这一句说明如何清理缓存。最后一句也无关。"
    scores = [0.1, 0.9, 0.2]
    assert len(candidate_sentences(zh)) == 3
    s = make_snippet(zh, "how to clean the cache", scores)
    assert [s.text[a:b] for a, b in s.marks] == ["这一句说明如何清理缓存。"]


def test_without_terms_or_scores_the_start_is_shown():
    s = make_snippet(TEXT, "完全无关")
    assert s.text.startswith("Debian uses apt") and s.marks == []


def test_long_text_is_cut_to_width():
    s = make_snippet("word " * 500, "word", width=100)
    assert len(s.text) <= 102


def test_segments_cover_the_text():
    assert segments("abcdef", [(1, 2), (4, 6)]) == [("a", False), ("b", True), ("cd", False), ("ef", True)]


def test_marks_skip_function_words_and_respect_word_boundaries():
    s = make_snippet("Together, the other system starts systemd.", "the system")
    assert [s.text[a:b] for a, b in s.marks] == ["system"]


def test_a_latin_words_pattern_bounds_it_as_ignorecase_would():
    """The pattern spells out the word characters IGNORECASE folds in (İ ı ſ K), so a word
    next to one of them is still not a whole word, and the word itself matches in any case."""
    import itertools
    import re

    from search.snippets import _pattern

    folded = re.compile(r"(?<![A-Za-z0-9_])sudo(?![A-Za-z0-9_])", re.IGNORECASE)
    around = ["", " ", "-", "_", "a", "Z", "0", "é", "中", "İ", "ı", "ſ", "\u212a"]
    for before, word, after in itertools.product(around, ["sudo", "SUDO", "Sudo"], around):
        text = before + word + after
        assert [m.span() for m in _pattern("sudo").finditer(text)] == [m.span() for m in folded.finditer(text)], text
