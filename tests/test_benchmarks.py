"""benchmarks/http_latency.py and benchmarks/ann.py run end to end at toy size (tiny model, own data).

Each script is run as a user would run it, on a few hundred made-up pairs written here (so the
shared data is not needed), with the collection cached in a temporary $XLSEARCH_HOME: the HTTP
run builds it, the ANN run reuses it. benchmarks/cold_start.py (fresh processes with the real
default model, minutes) is checked through its parts on trivial commands instead.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EN = "fox dog cat bird fish tree river hill road house window layer mask brush color image tool search index query".split()
ZH = "狐狸 狗 猫 鸟 鱼 树 河 山 路 房子 窗口 图层 蒙版 画笔 颜色 图像 工具 搜索 索引 查询".split()


def write_pairs(path: Path, n: int, rng: random.Random, tag: str) -> None:
    lines = []
    for i in range(n):
        words = rng.sample(range(len(EN)), 4)
        lines.append(" ".join(EN[w] for w in words) + f" {tag}{i}\t" + "".join(ZH[w] for w in words) + f"{tag}{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory, tiny_model_dir) -> dict:
    root = tmp_path_factory.mktemp("bench")
    rng = random.Random(0)
    for split, n, tag in (("train", 150, "t"), ("dev", 80, "d")):
        (root / split).mkdir()
        write_pairs(root / split / "toy.tsv", n, rng, tag)
    return {**os.environ, "XLSEARCH_HOME": str(root / "home"), "XLSEARCH_TRAIN_DATA": str(root / "train"),
            "XLSEARCH_DEV_DATA": str(root / "dev"), "HF_HUB_OFFLINE": "1", "out": str(root)}


def run_script(name: str, env: dict, *args: str) -> dict:
    out = Path(env["out"]) / f"{name}.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args, "--out", str(out), "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report
    return report


@pytest.mark.slow
def test_http_latency_then_ann(bench_env, tiny_model_dir):
    model = str(tiny_model_dir)
    r = run_script("http_latency", bench_env, "--size", "200", "--requests", "50", "--clients", "4", "--model", model)
    assert r["collection"]["chunks"] == 200 and set(r["collection"]["chunks_by_lang"]) <= {"en", "zh", "other"}
    for key in ("http_distinct", "http_cached"):
        assert r[key]["errors"] == 0 and r[key]["latency"]["n"] == 50 and r[key]["mean_hits"] == 10
        assert r[key]["connections"] == 4  # keep-alive: one connection per client
    assert r["http_cached"]["distinct_queries"] == 50
    for key in ("in_process", "baseline"):
        assert r[key]["n"] == 50 and 0 < r[key]["p50_ms"] <= r[key]["p99_ms"] <= r[key]["max_ms"]
    assert set(r["ratios"]) == {"http/in_process", "in_process/baseline", "http/baseline", "http_cached/http_distinct"}
    assert {"met", "p50_ms", "p99_ms"} <= set(r["target"]) and r["machine"]["cpu_count"] and r["command"]
    assert r["queries"]["english"] == 25

    a = run_script("ann", bench_env, "--size", "200", "--queries", "40", "--model", model)
    assert a["collection"]["build"] == r["collection"]["build"]  # the cached collection, not a rebuild
    assert a["vectors"] == 200 and a["queries"] == 40 and set(a["indexes"]) == {"flat", "flat16", "ivf", "hnsw"}
    assert a["indexes"]["ivf"]["built_as"] == "flat"  # too few vectors: the project's IVF falls back
    for res in a["indexes"].values():
        assert res["bytes"] > 0 and res["settings"]
        for s in res["settings"]:
            assert 0.0 <= s["recall@10"] <= 1.0 and s["single"]["n"] == 40
    assert a["indexes"]["flat"]["settings"][0]["recall@10"] == 1.0
    flat16 = a["indexes"]["flat16"]
    assert flat16["built_as"] == "flat16" and flat16["settings"][0]["recall@10"] >= 0.9
    assert flat16["bytes_per_vector"] < 0.6 * a["indexes"]["flat"]["bytes_per_vector"]  # 2 bytes a dimension, not 4
    hnsw = a["indexes"]["hnsw"]
    assert hnsw["M"] == 32 and hnsw["project_default"] == 512 and hnsw["at_project_default"]["efSearch"] == 512
    projection = a["projection_10M"]
    assert "EXTRAPOLATION" in projection["method"]
    assert {"flat", "flat16", "hnsw", "sqlite"} <= set(projection["memory"])
    assert [p["n"] for p in projection["latency"]["flat"]["points"]] == [50, 100, 200]
    assert projection["latency"]["hnsw"]["model"] == "p50 = a + b*ln(n)"

    t = run_script("index_types", bench_env, "--size", "200", "--queries", "20", "--model", model, "--index-type", "flat16")
    assert t["index_types"] == ["flat", "flat16"] and t["queries"] == 20
    assert t["shared_of_top10"] >= 0.9 and 0 <= t["max_cosine_diff"] < 0.01  # fp16 rounding, not another ranking
    from storage.store import Store

    with Store.open(Path(t["copy"])) as store:
        assert store.documents.meta("index_type") == "flat16" and store.info()["chunks"] == 200


def test_cold_start_helpers(tmp_path):
    """benchmarks/cold_start.py's parts, on trivial commands (its real runs need the default model and minutes)."""
    from benchmarks import cold_start as cs

    fake = "\n".join(["import time: self [us] | cumulative | imported package", "import time:   10 |   10 |   json",
                      "import time:   10 |   10 |     torch._C", "import time:   10 |   10 | transformers", "torchvision"])
    assert cs.imported_heavy(fake) == ["torch", "transformers"] and cs.imported_heavy("import time: 1 | 1 | torchvision") == []
    assert cs.summarize([3.0, 1.0, 2.0]) == {"n": 3, "median_s": 2.0, "min_s": 1.0, "max_s": 3.0}
    s = {"search/onnx/en": {"median_s": 0.5}, "baseline/en": {"median_s": 2.0}}
    assert cs.ratios(s) == {"baseline/en / search/onnx/en": 4.0}
    files = cs.corpus_files(ROOT / "demo" / "corpus")
    assert len(files) == 20 and [f.parent.name for f in files] == ["en"] * 10 + ["zh"] * 10 and files[:10] == sorted(files[:10])
    runs = cs.commands(tmp_path / "db", tmp_path / "base", files, tmp_path)
    assert set(runs) == {"search/onnx/en", "search/onnx/zh", "search/torch/en", "search/torch/zh", "baseline/en", "baseline/zh", "index"}
    assert runs["search/torch/zh"]()[3:] == ["search", "如何配置网络", "--db", str(tmp_path / "db"), "-k", "10", "--runtime", "torch"]
    assert runs["index"]()[-1] != runs["index"]()[-1]  # a fresh db per index run

    py = sys.executable
    assert 0 < cs.timed_run([py, "-c", "pass"]) < 10
    say = "import sys, time; print('x', file=sys.stderr, flush=True); print('embedding 3 chunks', file=sys.stderr, flush=True); "
    r = cs.first_line_run([py, "-c", say + "time.sleep(0.3)"])
    assert r["found"] and r["line"] == "embedding 3 chunks" and r["first_s"] + 0.25 < r["total_s"]
    r = cs.first_line_run([py, "-c", "import sys; print('loading the embedding model', file=sys.stderr)"])
    assert not r["found"] and r["first_s"] == r["total_s"]
    with pytest.raises(SystemExit):
        cs.timed_run([py, "-c", "raise SystemExit(3)"])
    for hang in (cs.timed_run, cs.first_line_run):  # a hung process fails the benchmark rather than blocking it
        with pytest.raises(SystemExit):
            hang([py, "-c", "import time; time.sleep(30)"], timeout=0.5)
    help_ = subprocess.run([py, str(ROOT / "benchmarks" / "cold_start.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "--repeats" in help_.stdout


def test_vector_stores_grow():
    """benchmarks/vector_stores.py's growing of real vectors: originals once, then noisy unit copies at the target cosine."""
    from benchmarks import vector_stores as vs

    rng = np.random.default_rng(0)
    real = rng.standard_normal((50, 384)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    source, out = vs.sources(50, 400, 0), np.zeros((400, 384), np.float32)
    cosine = vs.grow(real, source, vs.noise_sigma(384, 0.92), 0, out)
    assert np.array_equal(out[:50], real) and not np.array_equal(out[50:100], real)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5) and abs(cosine - 0.92) < 0.01
    assert np.allclose((out[50:] * real[source[50:]]).sum(1).mean(), cosine, atol=1e-5)
    subset = vs.sources(50, 20, 0)
    assert len(set(subset)) == 20 and np.isnan(vs.grow(real, subset, 0.1, 0, out[:20])) and np.array_equal(out[:20], real[subset])


def test_page_retrieval_reads_man_descriptions_and_ranks_own_page_and_twin(tmp_path, tiny_model_dir):
    """benchmarks/page_retrieval.py: the NAME line's description is the query; own page and twin
    are found by path in a real index (tiny model, so only the bookkeeping is checked)."""
    from benchmarks import page_retrieval as pr
    from xlsearch import Index

    assert pr._man_description("LS(1)\n\nNAME\n       ls - list directory\n       contents\n\nSYNOPSIS\n") == "list directory contents"
    assert pr._man_description("名称\n       df - 报告文件系统空间使用情况\n") == "报告文件系统空间使用情况"
    assert pr._man_description("NAME\n       nothing here\n") is None
    for lang, words in (("en", EN), ("zh", ZH)):
        (tmp_path / "c" / lang).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "c" / lang / f"p{i}.txt").write_text(" ".join(words[i * 4 : i * 4 + 4]), encoding="utf-8")
    queries = [pr.Query(" ".join(EN[4:8]), "en", "p1.txt", "p1.txt"), pr.Query("nothing", "zh", "p9.txt", "p9.txt")]
    with Index(tmp_path / "db", tiny_model_dir, create=True) as index:
        index.add([tmp_path / "c"])
        result = pr.measure(index, queries, "hybrid")
    assert result["en"]["queries"] == 1 and result["en"]["own@10"] == 1.0 and result["en"]["twin@10"] == 1.0
    assert result["zh"] == {"queries": 1, "own@1": 0.0, "own@10": 0.0, "own_mrr": 0.0, "twin@10": 0.0, "twin_mrr": 0.0}


class _Lookup:
    """An encoder whose vectors are given per text: exact expectations for the rank bookkeeping."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def encode(self, texts, kind="passage"):
        v = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_heldout_xquad_split_puts_each_article_in_one_language_and_counts_both_splits(tmp_path):
    """benchmarks/heldout.py on a two-article XQuAD look-alike: every question finds its own
    paragraph in its language, and in the split collection each article is in one language."""
    from benchmarks import heldout

    vectors = {}
    for lang in ("en", "zh"):
        data = []
        for a in range(2):
            context = f"{lang} paragraph {a}"
            vectors[context] = [1.0 if i == a else 0.0 for i in range(4)] + [0.1 if lang == "zh" else 0.0]
            q = f"{lang} question {a}"
            vectors[q] = vectors[context][:4] + [0.0]
            data.append({"title": str(a), "paragraphs": [{"context": context, "qas": [{"id": f"{a}", "question": q}]}]})
        (tmp_path / f"xquad.{lang}.json").write_text(json.dumps({"data": data}), encoding="utf-8")
    out = heldout.xquad(_Lookup(vectors), tmp_path)
    assert out["paragraphs"] == 2 and out["questions"] == 2
    assert out["same_en"]["r1"] == out["same_zh"]["r1"] == 1.0 and out["cross_en_zh"]["r1"] == 1.0
    # per split one article is in the query's language and one is not; both splits: 2 + 2 per language
    assert {k: v["n"] for k, v in out["split"].items()} == {"cross_en": 2, "cross_zh": 2, "same_en": 2, "same_zh": 2}
    assert all(v["r1"] == 1.0 for v in out["split"].values())
    assert heldout.ranks(np.eye(3), np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]), np.array([0, 0, 2])).tolist() == [2, 1, 1]


def test_section_retrieval_groups_pairs_by_direction_and_ranks_within_the_target_language():
    from benchmarks import section_retrieval as sr

    vectors = {"Tables": [1, 0, 0], "表格": [1, 0.1, 0], "Charts": [1, 0.01, 0],
               "tables text": [1, 0, 0], "表格文字": [1, 0, 0.1], "charts text": [0.9, 0.1, 0], "图表文字": [0, 1, 0.1]}
    pairs = [("Tables", "tables text"), ("表格", "表格文字"), ("Tables", "表格文字"), ("表格", "tables text"),
             ("Charts", "charts text"), ("Charts", "图表文字")]
    out = sr.measure(_Lookup(vectors), pairs)
    assert set(out) == {"en→en", "zh→zh", "en→zh", "zh→en"}
    assert out["en→en"] == {"queries": 2, "passages": 2, "r1": 0.5, "mrr10": 0.75}  # "Charts" ranks its own text second
    assert out["en→zh"]["r1"] == 0.5 and out["zh→en"] == {"queries": 1, "passages": 1, "r1": 1.0, "mrr10": 1.0}


def test_cloze_cuts_one_sentence_per_paragraph_the_same_one_in_both_languages_when_they_align():
    from benchmarks import cloze_retrieval as cr

    long_en = "First sentence of the paragraph is here. Second sentence follows it closely. " * 3
    long_zh = "这是第一句话呢。这是第二句话呢。这是第三句话呢。这是第四句话呢。这是第五句话呢。这是第六句话呢。"
    pairs = [(long_en, long_zh), ("Too short. For a paragraph.", "太短。"), (long_en.replace(". ", "; "), long_zh)]
    items = cr.cloze_items(pairs, seed=0)
    assert len(items) == 1, "short pairs and one-sentence English sides are left out"
    item = items[0]
    assert item["aligned"] and len(cr.sentences(long_en, "en")) == 6 == len(cr.sentences(long_zh, "zh"))
    cut = cr.sentences(long_zh, "zh").index(item["zh"][0])
    assert item["en"][0] == cr.sentences(long_en, "en")[cut] and item["zh"][0] not in item["zh"][1]
    assert cr.cloze_items(pairs, seed=0) == items, "seeded"
    texts = {t: [1.0, 0.0] for it in items for lang in ("en", "zh") for t in it[lang]}
    out = cr.cloze(_Lookup(texts), items)
    assert out["paragraphs"] == 1 and out["same_en"]["r1"] == out["cross_zh_en"]["r1"] == 1.0


def test_cloze_through_search_ranks_own_paragraph_and_twin_per_word_count(tmp_path, tiny_model_dir):
    """benchmarks/cloze_retrieval.py --search: one file per paragraph and language, one run per
    `same_language_words` value (tiny model, so only the bookkeeping is checked)."""
    from benchmarks import cloze_retrieval as cr

    items = [{"aligned": i != 2, "en": (" ".join(EN[i * 4 : i * 4 + 2]), " ".join(EN[i * 4 : i * 4 + 4])),
              "zh": (ZH[i * 4], " ".join(ZH[i * 4 : i * 4 + 4]))} for i in range(3)]
    runs = cr.search_cloze(items, str(tiny_model_dir), tmp_path, [0, 4])
    assert sorted(p.relative_to(tmp_path / "paragraphs").as_posix() for p in (tmp_path / "paragraphs").rglob("*.txt")) == [
        f"{lang}/p{i:04d}.txt" for lang in ("en", "zh") for i in range(3)]
    assert [r["same_language_words"] for r in runs] == [0, 4]
    for run in runs:
        assert run["en"]["queries"] == run["zh"]["queries"] == 3
        # the English query's words stand in its own paragraph: a hybrid search finds it in the top 10
        assert run["en"]["own_mrr"] > 0 and all(0 <= run[lang][k] <= 1 for lang in ("en", "zh") for k in ("own@1", "twin@10"))


@pytest.mark.slow
def test_indexing_on_a_synthetic_corpus_by_size_with_a_partial_baseline(bench_env, tiny_model_dir):
    """--megabytes picks the passage count; --baseline-limit compares rates over the baseline's own texts."""
    out = Path(bench_env["out"]) / "indexing.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "indexing.py"), "--corpus", "synthetic", "--megabytes", "0.03",
           "--baseline-limit", "12", "--queries", "6", "--warmup", "1", "--model", str(tiny_model_dir), "--out", str(out), "--json"]
    done = subprocess.run(cmd, env=bench_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert 0.02 <= r["megabytes"] <= 0.045 and r["texts"] > 12 and r["project"]["chunks"] >= r["texts"]
    b, p = r["baseline"], r["project"]
    assert b["texts"] == 12 and 0 < b["tokens"] < r["tokens"] and r["recall@10"] is None
    assert b["tokens_per_s"] == pytest.approx(b["tokens"] / b["index_s"], rel=1e-3)
    assert p["tokens_per_s"] == pytest.approx(r["tokens"] / p["index_s"], rel=1e-3)
    assert r["throughput_ratio"] == pytest.approx(p["tokens_per_s"] / b["tokens_per_s"], abs=0.01)
