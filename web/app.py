"""The web UI and JSON API over one index: FastAPI, pages rendered server-side with Jinja2.

Read-only: the app opens the index for reading and never writes. The model is loaded once per
process, at start-up, and warmed with one query so the first visitor does not pay for it.
Every user mistake becomes a 4xx with a JSON error (API) or a message on the page (HTML);
templates autoescape, so document and query text can never inject markup.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from core.choices import LANG_FILTERS, MAX_ID, MAX_K, MAX_QUERY_CHARS
from core.errors import XlsearchError
from search.gloss import Gloss, gloss
from search.searcher import Filters, Hit, SearchRequest, day_start
from search.snippets import segments
from search.summarize import reader_language
from xlsearch import Index
from xlsearch.index import relative_path

from .batching import MicroBatcher
from .schema import (
    DOC_ID,
    EMPTY_QUERY,
    MAX_SUMMARY_K,
    NOT_FOUND,
    NOT_FOUND_JSON,
    QUERY,
    Day,
    DocumentResponse,
    FileType,
    HealthResponse,
    Lang,
    Mode,
    SearchResponse,
    SummarizeResponse,
    capped_error,
)

HERE = Path(__file__).resolve().parent
# Swagger UI and ReDoc bundles (JS, CSS, favicon) as the fastapi-offline package ships them: /docs works offline
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
PAGE_SIZE = 10  # results per page unless ?k= says otherwise
MAX_PAGE_SIZE = 100


def _collection(index: Index) -> dict:
    """What the home page says about the index: documents per language, the model, queries to try."""
    info = index.info()
    return {"files": info["files"], "documents_by_lang": info["documents_by_lang"], "model": info["model"],
            "examples": index.examples()}


class Engine:
    """An opened index served to many threads: searches that arrive together are answered
    together (`web.batching`): one model call and one vector pass for the batch, each request
    ranked on its own. Everything else goes straight to the `Index`."""

    def __init__(self, index: Index):
        self.index = index
        self.batcher = MicroBatcher(index.search_batch)
        self.search("warm up", k=1)  # the first visitor does not pay for loading the vectors and calibration

    @classmethod
    def open(cls, db: Path, model: str | None = None, summarizer: str | Path | None = None, precision: str = "auto",
             runtime: str = "auto") -> Engine:
        """Open, load and warm the index and its model; a refused start leaves the folder as it was.
        The model is loaded as for queries (under "auto": ONNX Runtime where the model has an
        export, int8 on a CPU with VNNI, else fp32). Loaded as for bulk work (bf16 on PyTorch on a bf16 CPU) it served 100k
        chunks to 8 clients no faster, started 7 s later and held 470 MB more (README: Speed)."""
        index = Index(db, model, precision=precision, summarizer=summarizer, runtime=runtime)
        try:
            return cls(index.load())
        except BaseException:
            index.close()
            raise

    def search(self, query: str, k: int = 10, lang: str = "any", **options) -> list[Hit]:
        return self.batcher.submit(SearchRequest(query, k, lang, **options))


def _offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from DOCS_ASSETS instead of a CDN: FastAPI's self-hosting recipe.
    The app must be made with docs_url=None, redoc_url=None."""
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=app.title + " - Swagger UI",
                                   oauth2_redirect_url=root + app.swagger_ui_oauth2_redirect_url,
                                   swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js", swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs-assets/favicon.png")

    @app.get(app.swagger_ui_oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(openapi_url=root + app.openapi_url, title=app.title + " - ReDoc", redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/docs-assets/favicon.png", with_google_fonts=False)


def create_app(served: Engine | Path | str, model: str | None = None, summarizer: str | Path | None = None) -> FastAPI:
    """The app over an `Engine` (as `xlsearch serve` passes it, loaded and warm), or over an
    index folder that the app opens at start-up. The app closes the index when it stops."""
    state: dict[str, Engine] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["engine"] = served if isinstance(served, Engine) else Engine.open(Path(served), model, summarizer)
        yield
        state["engine"].index.close()

    app = FastAPI(title="xlsearch", summary="Cross-lingual English/Chinese search", lifespan=lifespan, docs_url=None, redoc_url=None)
    _offline_docs(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["segments"] = segments

    @app.exception_handler(XlsearchError)
    async def user_error(request: Request, exc: XlsearchError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/healthz")
    def healthz() -> HealthResponse:
        engine = state["engine"]
        sizes = engine.batcher.batch_sizes
        encoder = engine.index.encoder
        return HealthResponse(status="ok", model=encoder.name, precision=encoder.precision,
                              search_batches={str(size): sizes[size] for size in sorted(sizes)})

    @app.get("/api/search", response_model=SearchResponse, responses=EMPTY_QUERY)
    def api_search(
        q: str = QUERY,
        k: int = Query(10, ge=1, le=MAX_K),
        lang: Lang = "any",
        balance: bool = True,
        mode: Mode = "hybrid",
        offset: int = Query(0, ge=0, le=MAX_K, description="Skip this many hits (pagination)"),
        path: str | None = Query(None, max_length=500, description="fnmatch pattern on the file path"),
        type: list[FileType] = Query([], description="Only these file types"),
        after: Day | None = Query(None, description="Modified on or after (YYYY-MM-DD)"),
        before: Day | None = Query(None, description="Modified before (YYYY-MM-DD)"),
        semantic_snippets: bool = Query(False, description="For hits without a query term, show the sentence closest in meaning"),
    ) -> SearchResponse:
        filters = Filters(path, tuple(type), day_start(after), day_start(before))
        hits = state["engine"].search(
            q, k=k, lang=lang, balance=balance, mode=mode, filters=filters, offset=offset, semantic_snippets=semantic_snippets
        )
        return SearchResponse(query=q, lang=lang, balance=balance, hits=hits)

    @app.get("/api/summarize", response_model=SummarizeResponse, responses=EMPTY_QUERY)
    def api_summarize(
        q: str = QUERY,
        k: int = Query(5, ge=1, le=MAX_SUMMARY_K, description="Hits to summarise"),
        lang: Lang = "any",
    ) -> SummarizeResponse:
        engine = state["engine"]
        hits = engine.search(q, k=k, lang=lang)
        summary = engine.index.summarize(q, hits)
        return SummarizeResponse(query=q, summary=summary, hits=hits)

    @app.get("/api/gloss", response_model=list[Gloss])
    def api_gloss(text: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="Chinese text to gloss")) -> list[Gloss]:
        return gloss(text)

    @app.get("/api/documents/{doc_id}", response_model=DocumentResponse, responses=NOT_FOUND)
    def api_document(doc_id: int = DOC_ID) -> DocumentResponse:
        doc = state["engine"].index.document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id} in this index")
        return DocumentResponse(**doc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        """FastAPI's 422 body, with each rejected value cut short: a 100 kB query is not sent back."""
        return JSONResponse({"detail": [capped_error(error) for error in jsonable_encoder(exc.errors())]}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, q: str = "", lang: str = "any", page: int = 1, k: int = PAGE_SIZE, summary: bool = False):
        """The search page; with no query, the home page: what is indexed and queries to try."""
        index = state["engine"].index
        error, hits, digest, elapsed_ms = None, [], None, None
        page = max(1, page)
        if lang not in LANG_FILTERS:
            error = f"lang must be one of {', '.join(LANG_FILTERS)}, not {lang!r}"
        elif not 1 <= k <= MAX_PAGE_SIZE:
            error = f"k (results per page) must be between 1 and {MAX_PAGE_SIZE}, not {k}"
        elif (page - 1) * k >= MAX_K:
            error = f"results stop at {MAX_K}: page {page} of {k} per page is past them"
        elif q.strip():
            started = time.perf_counter()
            try:
                hits = state["engine"].search(q, k=k + 1, lang=lang, offset=(page - 1) * k, semantic_snippets=True)
                if summary:
                    digest = index.summarize(q, hits[:k])
            except XlsearchError as exc:
                error = str(exc)
            elapsed_ms = (time.perf_counter() - started) * 1000
        context = {
            "reader": reader_language(q), "q": q, "lang": lang, "hits": hits[:k], "error": error, "langs": LANG_FILTERS,
            "page": page, "k": k, "per_page_default": PAGE_SIZE, "has_next": len(hits) > k, "summary": digest,
            "want_summary": summary, "elapsed_ms": elapsed_ms, "shown_path": partial(relative_path, roots=index.roots()),
            "collection": None if q.strip() else _collection(index),
        }
        return templates.TemplateResponse(request, "search.html", context)

    @app.get("/documents/{doc_id}", response_class=HTMLResponse, responses=NOT_FOUND_JSON)
    def document_page(
        request: Request, doc_id: int = DOC_ID, chunk: int | None = Query(None, ge=1, le=MAX_ID, description="Chunk to highlight"),
        q: str = Query("", max_length=MAX_QUERY_CHARS),
    ):
        doc = state["engine"].index.document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id} in this index")
        span = state["engine"].index.chunk_span(doc_id, chunk) if chunk is not None else None
        text = doc["text"]
        parts = (text[: span[0]], text[span[0] : span[1]], text[span[1] :]) if span else (text, "", "")
        return templates.TemplateResponse(request, "document.html", {"doc": doc, "parts": parts, "q": q})

    return app
