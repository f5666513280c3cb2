"""API and pages through FastAPI's TestClient, on a tiny-model index."""

import re

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cli import cli
from web.app import create_app

EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("webdocs")
    (root / "fox.md").write_text("# The fox\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")
    (root / "zh.md").write_text("# 狐狸\n\n快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    (root / "evil.md").write_text(f"# {EVIL}\n\n{EVIL} the lazy dog", encoding="utf-8")
    db = root.parent / (root.name + "-idx")
    assert CliRunner().invoke(cli, ["-q", "index", str(root), "--db", str(db), "--model", str(tiny_model_dir)]).exit_code == 0
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_api_search_and_document(client):
    r = client.get("/api/search", params={"q": "快速的棕色狐狸跳过了懒狗。", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["hits"][0]["title"] == "狐狸" and body["hits"][0]["lang"] == "zh" and len(body["hits"]) == 2
    doc = client.get(f"/api/documents/{body['hits'][0]['doc_id']}").json()
    assert doc["text"].startswith("狐狸\n") and doc["lang"] == "zh"  # Markdown is stored as its text
    r = client.get("/api/search", params={"q": "the lazy dog", "lang": "zh"})
    assert {h["lang"] for h in r.json()["hits"]} == {"zh"}


@pytest.mark.parametrize(
    "params, status",
    [
        ({"q": "   "}, 400),
        ({}, 422),
        ({"q": "x", "k": 0}, 422),
        ({"q": "x", "k": 100000}, 422),
        ({"q": "x", "lang": "fr"}, 422),
        ({"q": "x" * 3000}, 422),
        ({"q": "x", "balance": "maybe"}, 422),
    ],
)
def test_bad_search_parameters_are_4xx_json(client, params, status):
    r = client.get("/api/search", params=params)
    assert r.status_code == status and r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("path", ["/api/documents/999999", "/api/documents/abc", "/documents/999999", "/api/documents/..%2F..%2Fetc%2Fpasswd"])
def test_unknown_documents_are_4xx(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500


def test_pages_escape_document_and_query_text(client):
    r = client.get("/", params={"q": EVIL})
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    hits = client.get("/api/search", params={"q": EVIL}).json()["hits"]
    evil = next(h for h in hits if h["path"].endswith("evil.md"))
    page = client.get(f"/documents/{evil['doc_id']}", params={"chunk": evil["chunk_id"], "q": EVIL})
    assert page.status_code == 200 and "<script>alert" not in page.text and "<mark id=\"hit\">" in page.text


def test_search_page_without_javascript(client):
    r = client.get("/", params={"q": "快速的棕色狐狸", "lang": "any"})
    assert r.status_code == 200 and "狐狸" in r.text and 'class="badge lang-zh"' in r.text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/", params={"q": ""}).status_code == 200
    assert client.get("/", params={"q": "x", "lang": "nope"}).status_code == 200


def test_openapi_lists_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/documents/{doc_id}", "/healthz"} <= set(paths)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_no_asset_from_outside(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assets = re.findall(r'<script[^>]*\ssrc="([^"]*)"', r.text) + re.findall(r'<link[^>]*\shref="([^"]*)"', r.text)
    assert any(a.endswith(".js") for a in assets), r.text
    assert "http:" not in r.text and "https:" not in r.text and "//" not in "".join(assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    assert "'/openapi.json'" in r.text or '"/openapi.json"' in r.text
    assert client.get("/openapi.json").json()["info"]["title"] == "xlsearch"
    if page == "/docs":
        assert client.get("/docs/oauth2-redirect").status_code == 200


def test_filters_and_pagination(client):
    everything = client.get("/api/search", params={"q": "the lazy dog", "k": 10}).json()["hits"]
    assert len(everything) == 3
    second = client.get("/api/search", params={"q": "the lazy dog", "k": 1, "offset": 1}).json()["hits"]
    assert [h["doc_id"] for h in second] == [everything[1]["doc_id"]] and second[0]["rank"] == 2
    only_fox = client.get("/api/search", params={"q": "the lazy dog", "path": "*/fox.md"}).json()["hits"]
    assert [h["path"].rsplit("/", 1)[1] for h in only_fox] == ["fox.md"]
    assert client.get("/api/search", params={"q": "dog", "type": "html"}).json()["hits"] == []
    assert len(client.get("/api/search", params={"q": "dog", "type": "markdown"}).json()["hits"]) == 3
    assert client.get("/api/search", params={"q": "dog", "after": "2999-01-01"}).json()["hits"] == []
    assert len(client.get("/api/search", params={"q": "dog", "before": "2999-01-01"}).json()["hits"]) == 3
    assert client.get("/api/search", params={"q": "dog", "after": "yesterday"}).status_code == 422
    assert client.get("/api/search", params={"q": "dog", "offset": -1}).status_code == 422


def test_page_links_to_the_next_page(client):
    r = client.get("/", params={"q": "the lazy dog", "page": 1})
    assert r.status_code == 200 and 'rel="next"' not in r.text  # 3 hits fit on one page
    assert client.get("/", params={"q": "the lazy dog", "page": 99999}).status_code == 200


def test_summary_api_and_panel_cite_the_hits(client):
    r = client.get("/api/summarize", params={"q": "the lazy dog", "k": 3})
    assert r.status_code == 200
    body = r.json()
    ranks = {h["rank"] for h in body["hits"]}
    assert body["summary"]["sentences"] and {s["cite"] for s in body["summary"]["sentences"]} <= ranks
    assert body["summary"]["reader_lang"] == "en"
    page = client.get("/", params={"q": "the lazy dog", "summary": "true"})
    assert page.status_code == 200 and 'class="summary"' in page.text
    cites = re.findall(r'class="cite" href="#hit-(\d+)"', page.text)
    assert cites and all(f'id="hit-{n}"' in page.text for n in cites)
    assert client.get("/api/summarize", params={"q": " "}).status_code == 400  # no word: the app's rule
    assert client.get("/api/summarize", params={"q": ""}).status_code == 422  # no character: the schema's minLength
    assert client.get("/api/summarize", params={"q": "x", "k": 99}).status_code == 422


def test_gloss_api(client):
    r = client.get("/api/gloss", params={"text": "快速的狐狸"})
    assert r.status_code == 200
    words = {g["word"]: g for g in r.json()}
    assert words["狐狸"]["pinyin"] == "hú li" and words["狐狸"]["senses"]
    assert client.get("/api/gloss", params={"text": ""}).status_code == 422
    assert client.get("/", params={"q": "fox"}).text.count('data-reader="en"') == 1


def test_home_page_says_what_is_indexed(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "3 files indexed: 2 English documents, 1 Chinese document." in " ".join(r.text.split())
    assert "Model: <span class=\"model\">tiny-encoder</span>" in r.text
    assert sorted(re.findall(r'<li><a href="/\?q=[^"]+" lang="(\w+)">', r.text)) == ["en", "zh"]  # a query to try in each


def test_result_page_shows_the_ranking_score_relative_paths_and_timing(client):
    r = client.get("/", params={"q": "the lazy dog"})
    shown = [float(s) for s in re.findall(r'<span class="score" title="Relevance[^"]*">(-?[\d.]+)</span>', r.text)]
    assert len(shown) == 3 and shown == sorted(shown, reverse=True)
    paths = re.findall(r'<div class="path" title="([^"]+)">([^<]+)', r.text)
    assert sorted(short for _, short in paths) == ["evil.md", "fox.md", "zh.md"]
    assert all(full.endswith("/" + short) for full, short in paths)
    assert re.search(r'<p class="stats">Results 1–3 in \d+ ms</p>', r.text)


def test_result_page_honours_k_and_refuses_a_bad_language(client):
    r = client.get("/", params={"q": "the lazy dog", "k": 2})
    assert r.text.count('<li class="hit"') == 2 and "page=2&amp;k=2" in r.text
    second = client.get("/", params={"q": "the lazy dog", "k": 2, "page": 2})
    assert second.text.count('<li class="hit"') == 1 and 'id="hit-3"' in second.text
    bad = client.get("/", params={"q": "the lazy dog", "lang": "fr"})
    assert bad.status_code == 200 and '<p class="error">lang must be one of any, en, zh, other, not &#39;fr&#39;</p>' in bad.text
    assert '<li class="hit"' not in bad.text
    assert "k (results per page) must be between 1 and 100" in client.get("/", params={"q": "dog", "k": 0}).text
