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
