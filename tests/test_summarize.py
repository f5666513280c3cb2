"""Extractive summaries with hand-made vectors; abstractive plumbing with a tiny random model."""

from dataclasses import dataclass

import numpy as np
import pytest

from search.summarize import AbstractiveSummarizer, Summary, SummaryConfig, extractive_summary


@dataclass
class FakeHit:
    rank: int


class FakeEncoder:
    """Vectors chosen by hand: the query, a fact in two languages, another fact, noise."""

    def __init__(self):
        e = np.eye(4, dtype=np.float32)
        self.table = {
            "how do I clean the apt cache": e[0],
            "Run apt-get clean to empty the cache.": (e[0] + 0.1 * e[1]),
            "运行 apt-get clean 清空缓存。": (e[0] + 0.12 * e[1]),
            "Old kernels can also be removed.": (0.6 * e[0] + e[2]),
            "The weather was nice.": e[3],
            "如何清理 apt 缓存": e[0],
        }

    def encode_query(self, query):
        return self.encode([query], "query")[0]

    def encode(self, texts, kind="passage", *args, **kwargs):
        v = np.stack([self.table[t] for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True)


HITS = [FakeHit(1), FakeHit(2)]
TEXTS = [
    "Run apt-get clean to empty the cache. The weather was nice. Old kernels can also be removed.",
    "运行 apt-get clean 清空缓存。",
]


def test_english_reader_gets_the_english_version_cited():
    s = extractive_summary(FakeEncoder(), "how do I clean the apt cache", HITS, TEXTS, SummaryConfig(max_chars=60))
    assert s.reader_lang == "en"
    assert [(x.text, x.cite) for x in s.sentences] == [
        ("Run apt-get clean to empty the cache.", 1),
        ("Old kernels can also be removed.", 1),
    ]
    assert s.text == "Run apt-get clean to empty the cache. [1] Old kernels can also be removed. [1]"


def test_chinese_reader_gets_the_chinese_version_of_the_same_fact():
    s = extractive_summary(FakeEncoder(), "如何清理 apt 缓存", HITS, TEXTS, SummaryConfig(max_chars=10))
    assert [(x.text, x.cite, x.lang) for x in s.sentences] == [("运行 apt-get clean 清空缓存。", 2, "zh")]
    assert s.text == "运行 apt-get clean 清空缓存。 [2]"


def test_budget_and_relevance_floor():
    s = extractive_summary(FakeEncoder(), "how do I clean the apt cache", HITS, TEXTS, SummaryConfig(max_chars=1000, min_relevance=0.3))
    assert "The weather was nice." not in [x.text for x in s.sentences]
    assert extractive_summary(FakeEncoder(), "how do I clean the apt cache", [], []).sentences == []


@pytest.fixture(scope="module")
def tiny_seq2seq(tmp_path_factory, tiny_model_dir):
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
                      decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("t5")
    T5ForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_abstractive_plumbing_keeps_every_citation(tiny_seq2seq):
    extractive = extractive_summary(FakeEncoder(), "how do I clean the apt cache", HITS, TEXTS)
    summarizer = AbstractiveSummarizer(tiny_seq2seq, max_new_tokens=8)
    assert "Write a short answer in English" in summarizer.prompt("q", extractive)
    out = summarizer("how do I clean the apt cache", extractive)
    assert out.abstractive and out.sentences == extractive.sentences
    assert all(f"[{c}]" in out.text for c in {s.cite for s in extractive.sentences})


def test_abstractive_rejects_a_non_model_folder(tmp_path):
    from core.errors import ModelError

    with pytest.raises(ModelError, match="not a transformers model folder"):
        AbstractiveSummarizer(tmp_path)


def test_empty_summary_passes_through(tiny_seq2seq):
    empty = Summary("en")
    assert AbstractiveSummarizer(tiny_seq2seq)("q", empty) is empty


def test_headings_and_fragments_are_not_quoted():
    from search.summarize import _is_statement

    assert not _is_statement("# 1.1.8. 怎样关闭系统")
    assert not _is_statement("sudo configuration")
    assert _is_statement("在单用户模式下，可以使用命令行关闭系统。")
    assert _is_statement("Run apt-get clean to empty the cache.")
