from indexer.terms import fts_query, terms


def test_terms_segment_chinese_and_lowercase_latin():
    assert terms("使用 apt-get 安装软件包") == ["使用", "apt-get", "安装", "软件", "软件包"]
    assert terms("Call os.path.join() in Python 3.13") == ["call", "os.path.join", "in", "python", "3.13"]


def test_fts_query_quotes_every_term_and_drops_syntax():
    assert fts_query('NEAR("x") OR * 配置') == '"near" OR "x" OR "or" OR "配置"'
    assert fts_query("!!! ？？") is None
