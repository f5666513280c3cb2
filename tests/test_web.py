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
    assert doc["text"].startswith("# 狐狸") and doc["lang"] == "zh"
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
    assert client.get("/api/summarize", params={"q": ""}).status_code == 400
    assert client.get("/api/summarize", params={"q": "x", "k": 99}).status_code == 422


def test_gloss_api(client):
    r = client.get("/api/gloss", params={"text": "快速的狐狸"})
    assert r.status_code == 200
    words = {g["word"]: g for g in r.json()}
    assert words["狐狸"]["pinyin"] == "hu2 li5" and words["狐狸"]["senses"]
    assert client.get("/api/gloss", params={"text": ""}).status_code == 422
    assert client.get("/", params={"q": "fox"}).text.count('data-reader="en"') == 1
