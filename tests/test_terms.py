from core.terms import fts_query, terms


def test_terms_segment_chinese_and_lowercase_latin():
    assert terms("使用 apt-get 安装软件包") == ["使用", "apt-get", "安装", "软件", "软件包"]
    assert terms("Call os.path.join() in Python 3.13") == ["call", "os.path.join", "in", "python", "3.13"]


def test_fts_query_quotes_every_term_and_drops_syntax():
    assert fts_query('NEAR("x") OR * 配置') == '"near" OR "x" OR "or" OR "配置"'
    assert fts_query("!!! ？？") is None


def test_exact_terms_are_the_language_neutral_ones():
    from core.terms import exact_terms

    assert exact_terms("how do I call os.path.join in Python 3.13") == ["os.path.join", "3.13"]
    assert exact_terms("McPartlin scored for LiverpoolFC and the NHS") == ["mcpartlin", "liverpoolfc", "nhs"]
    assert exact_terms("如何配置 sudo 权限") == ["sudo"]
    assert exact_terms("what does 图层 mean") == ["图层"]
    assert exact_terms("how do I shut down the system") == []


SENTENCES = [
    "使用软件包管理器安装程序", "如何关闭系统并重新启动计算机", "中华人民共和国国务院办公厅发布通知",
    "他来到了网易杭研大厦", "小明硕士毕业于中国科学院计算所，后在日本京都大学深造", "用 GnuPG 加密文件",
    "图层蒙版画笔颜色选择工具", "编写脚本中的条件判断和循环语句", "这是一个伸手不见五指的黑夜",
]


def test_short_texts_cut_over_the_dictionary_copy_give_jiebas_own_words(tmp_path, monkeypatch):
    import jieba

    from core import chinese_words

    monkeypatch.setenv("XLSEARCH_HOME", str(tmp_path))
    monkeypatch.setattr(chinese_words, "_full", None)
    monkeypatch.setattr(chinese_words, "_short", None)
    monkeypatch.setattr(chinese_words, "_short_chars", 0)
    assert chinese_words._short_tokenizer() is not None and list((tmp_path / "jieba").glob("dict-*.sqlite"))
    monkeypatch.setattr(chinese_words, "_full", None)  # writing the copy loaded it: cut on the copy, as a fresh process
    for sentence in SENTENCES:
        assert chinese_words.cut_for_search(sentence) == [w for w in jieba.lcut_for_search(sentence) if w.strip()], sentence
    assert chinese_words._full is None  # the whole dictionary was not needed
    assert chinese_words.cut_for_search("长" * chinese_words.SHORT_BUDGET) and chinese_words._full is not None  # bulk text


def test_full_text_queries_leave_out_words_every_page_holds():
    assert fts_query("how to list the files in a directory", drop_common=True) == '"list" OR "files" OR "directory"'
    assert fts_query("如何列出目录中的文件", drop_common=True) == fts_query("列出目录文件", drop_common=True)
    assert fts_query("the of", drop_common=True) is None


def test_fts_tokens_are_what_sqlites_tokenizer_stores():
    import sqlite3

    from core.terms import fts_text, fts_tokens

    text = "apt-get os.path my_var 配置文件 GPU2 x86_64"
    conn = sqlite3.connect(":memory:")
    conn.execute("create virtual table t using fts5(terms)")
    conn.execute("create virtual table v using fts5vocab(t, row)")
    conn.execute("insert into t values (?)", (fts_text(text),))
    stored = {r[0] for r in conn.execute("select term from v")}
    assert stored == {tok for term in terms(text) for tok in fts_tokens(term)}
    assert fts_tokens("apt-get") == ["apt", "get"]
