"""The HTTP API keeps the contract its OpenAPI document states, under Schemathesis (a schema-driven fuzzer).

Every operation in /openapi.json, with all of Schemathesis's checks: no server errors, only
documented status codes and content types, bodies that match their schema, schema-valid requests
accepted and schema-invalid ones rejected. A fixed seed keeps runs repeatable; the larger run is
`slow`.

Schemathesis sends its requests to `APP`, which passes them to the app the `served` fixture
opened (`with TestClient`), so the index is opened once for the module, not once per operation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cli import cli
from core.choices import FILE_TYPES, LANG_FILTERS, MAX_K, MAX_QUERY_CHARS, MODES
from core.errors import InputError
from search.searcher import validate_query
from web.app import create_app
from web.schema import QUERY_PATTERN

SEED = 20240617


class OpenedApp:
    """An ASGI app over the one `served` opened. The lifespan Schemathesis runs for each test
    stops here: the app's own lifespan (opening and closing the index) belongs to the fixture.
    Until the fixture runs, the app is an unopened one, enough to serve /openapi.json."""

    def __init__(self):
        self.app = create_app(Path("not-opened"))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.app(scope, receive, send)


APP = OpenedApp()


def _schema(max_examples: int):
    config = schemathesis.Config.from_dict({"seed": SEED, "generation": {"max-examples": max_examples, "database": "none"}})
    return schemathesis.openapi.from_asgi("/openapi.json", APP, config=config)


schema = _schema(max_examples=25)
schema_large = _schema(max_examples=1000)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("fuzzdocs")
    (root / "fox.md").write_text("# The fox\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")
    (root / "zh.md").write_text("# 狐狸\n\n快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    (root / "notes.txt").write_text("search engines rank documents by relevance to a query", encoding="utf-8")
    db = root.parent / (root.name + "-idx")
    r = CliRunner().invoke(cli, ["-q", "index", str(root), "--db", str(db), "--model", str(tiny_model_dir)])
    assert r.exit_code == 0, r.output
    unopened, APP.app = APP.app, create_app(db)
    try:
        with TestClient(APP.app, raise_server_exceptions=False) as client:
            yield client
    finally:
        APP.app = unopened


@schema.parametrize()
def test_api_keeps_its_contract(case, served):
    case.call_and_validate()


@pytest.mark.slow
@schema_large.parametrize()
def test_api_keeps_its_contract_under_a_longer_run(case, served):
    case.call_and_validate()


# -- what the fuzzer found, one test each ----------------------------------------------------

EMPTY = {"error": "empty query — type some words to search for"}
ERROR_SCHEMA = {"properties": {"error": {"title": "Error", "type": "string"}}, "required": ["error"], "title": "ErrorResponse", "type": "object"}


def test_every_status_code_is_documented_with_its_body(served):
    """Schemathesis: 404 from /documents/{doc_id} and 400 for an empty query were not in the document."""
    spec = served.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    documented = {path: {int(code): response for code, response in op["get"]["responses"].items()} for path, op in spec["paths"].items()}
    assert {path: set(codes) for path, codes in documented.items()} == {
        "/healthz": {200},
        "/api/search": {200, 400, 422},
        "/api/summarize": {200, 400, 422},
        "/api/gloss": {200, 422},
        "/api/documents/{doc_id}": {200, 404, 422},
        "/": {200, 422},
        "/documents/{doc_id}": {200, 404, 422},
    }
    assert components["ErrorResponse"] == ERROR_SCHEMA
    for path, codes in documented.items():
        for code, response in codes.items():
            [(media_type, body)] = response["content"].items()
            html = path in ("/", "/documents/{doc_id}") and code == 200
            assert media_type == ("text/html" if html else "application/json"), (path, code)
            if code in (400, 404):  # inline on an HTML route, where FastAPI would otherwise say text/html
                assert body["schema"] in ({"$ref": "#/components/schemas/ErrorResponse"}, ERROR_SCHEMA), (path, code)
            if code == 422:
                assert body["schema"] == {"$ref": "#/components/schemas/HTTPValidationError"}


@pytest.mark.parametrize("endpoint", ["/api/search", "/api/summarize"])
def test_the_schema_says_what_a_query_is(served, endpoint):
    """Schemathesis: q= was schema-valid and answered 400. Now the schema says a query has a character
    (minLength 1, so an empty one is 422) and a word (its pattern; a query without one is still 400)."""
    [q] = [p for p in served.get("/openapi.json").json()["paths"][endpoint]["get"]["parameters"] if p["name"] == "q"]
    assert q["required"] and q["schema"]["minLength"] == 1 and q["schema"]["maxLength"] == MAX_QUERY_CHARS
    assert q["schema"]["pattern"] == QUERY_PATTERN
    r = served.get(endpoint, params={"q": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "q"]
    for blank in (" ", "\t\n", "\x00\x1b", "\u3000\u2028\xa0", "\x85"):
        r = served.get(endpoint, params={"q": blank})
        assert r.status_code == 400 and r.json() == EMPTY, repr(blank)
        assert re.search(QUERY_PATTERN, blank) is None
    for word in ("\u200b", "\ufeff", "😀", "\U0010fffd", "ǅ"):  # not whitespace to Python: a word, however odd
        assert served.get(endpoint, params={"q": f" {word} "}).status_code == 200, repr(word)
        assert re.search(QUERY_PATTERN, word)


def test_the_query_pattern_is_the_rule_the_search_applies():
    """QUERY_PATTERN (in the schema) and validate_query (what answers 400) agree on every code point."""
    def has_word(text):
        try:
            validate_query(text, 1, "any")
        except InputError:
            return False
        return True

    word = re.compile(QUERY_PATTERN)
    disagree = [hex(c) for c in range(0x110000) if (word.match(chr(c)) is not None) != has_word(chr(c))]
    assert disagree == []


@pytest.mark.parametrize("day", ["0000-01-01", "0000-02-29", "0001-01-01", "0001-01-02", "1970-01-01", "9999-12-31"])
@pytest.mark.parametrize("param", ["after", "before"])
def test_any_date_the_schema_allows_is_answered(served, param, day):
    """0001-01-01 was a 500: its local midnight is before year 1, which mktime refuses. Schemathesis:
    0000-01-01 (a valid RFC 3339 date) was a 422, year 0 being out of Python's range."""
    r = served.get("/api/search", params={"q": "the lazy dog", param: day})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == (3 if (param == "after") == (day < "2000") else 0)


@pytest.mark.parametrize("day", ["0", "1700000000", "2024-01-01T00:00", "20240101", "2024-1-1", "２０２４-01-01", "2024-02-30", "0000-02-30", "0000-13-01"])
def test_a_date_is_only_yyyy_mm_dd(served, day):
    """Schemathesis: after=0 (not a `format: date`) was accepted, as pydantic reads it as a timestamp."""
    r = served.get("/api/search", params={"q": "the lazy dog", "after": day})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "after"], r.text


@pytest.mark.parametrize(
    "params",
    [{"lang": "en\n"}, {"lang": "EN"}, {"mode": "hybrid\n"}, {"mode": "fuzzy"}, {"type": "exe"}, {"type": ["markdown", "Markdown"]}],
)
def test_choices_are_enums(served, params):
    r = served.get("/api/search", params={"q": "fox", **params})
    assert r.status_code == 422, r.text
    spec = served.get("/openapi.json").json()["paths"]["/api/search"]["get"]["parameters"]
    enums = {p["name"]: p["schema"].get("enum") or p["schema"].get("items", {}).get("enum") for p in spec}
    assert enums["lang"] == list(LANG_FILTERS) and enums["mode"] == list(MODES) and enums["type"] == list(FILE_TYPES)


def test_unicode_in_every_string_parameter(served):
    odd = "\U0001f600\u200b\ufeff[!*?]\\%00\ud7ff\U0010fffd"
    for path, params in [
        ("/api/search", {"q": f"fox {odd}", "path": odd, "type": ["markdown", "text"]}),
        ("/api/search", {"q": "fox", "path": "[", "mode": "lexical"}),
        ("/api/summarize", {"q": f"狐狸 {odd}"}),
        ("/api/gloss", {"text": odd}),
        ("/api/gloss", {"text": " "}),
        ("/", {"q": odd, "lang": odd}),
        ("/documents/1", {"q": odd}),
    ]:
        r = served.get(path, params=params)
        assert r.status_code == 200, (path, params, r.text[:300])


@pytest.mark.parametrize("k, offset", [(MAX_K, MAX_K), (1, MAX_K), (MAX_K, 0), (1, 2)])
def test_largest_k_and_offset_together(served, k, offset):
    r = served.get("/api/search", params={"q": "the lazy dog", "k": k, "offset": offset})
    assert r.status_code == 200 and len(r.json()["hits"]) == max(0, min(k, 3 - offset))
