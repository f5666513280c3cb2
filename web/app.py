"""The web UI and JSON API over one index: FastAPI, pages rendered server-side with Jinja2.

Read-only: the app opens the index for reading and never writes. The model is loaded once per
process, at start-up, and warmed with one query so the first visitor does not pay for it.
Every user mistake becomes a 4xx with a JSON error (API) or a message on the page (HTML);
templates autoescape, so document and query text can never inject markup.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from core.choices import FILE_TYPES, LANG_FILTERS, MAX_K, MAX_QUERY_CHARS, MODES
from core.errors import XlsearchError
from search.gloss import Gloss, gloss
from search.searcher import Filters, Hit, SearchRequest
from search.snippets import segments
from search.summarize import Summary, reader_language
from xlsearch import Index

from .batching import MicroBatcher

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 10


def _epoch(day: date | None) -> float | None:
    return None if day is None else datetime(day.year, day.month, day.day).timestamp()


class SearchResponse(BaseModel):
    query: str
    lang: str
    balance: bool
    hits: list[Hit]


class DocumentResponse(BaseModel):
    id: int
    title: str
    path: str
    key: str
    lang: str
    text: str


class SummarizeResponse(BaseModel):
    query: str
    summary: Summary
    hits: list[Hit]


class ErrorResponse(BaseModel):
    error: str


class Engine:
    """An opened index served to many threads: searches that arrive together are answered
    together (`web.batching`): one model call and one vector pass for the batch, each request
    ranked on its own. Everything else goes straight to the `Index`."""

    def __init__(self, index: Index):
        self.index = index
        self.batcher = MicroBatcher(index.search_batch)
        self.search("warm up", k=1)  # the first visitor does not pay for loading the vectors and calibration

    @classmethod
    def open(cls, db: Path, model: str | None = None, summarizer: str | Path | None = None, precision: str = "auto") -> Engine:
        """Open, load and warm the index and its model; a refused start leaves the folder as it was."""
        index = Index(db, model, precision=precision, summarizer=summarizer)
        try:
            return cls(index.load())
        except BaseException:
            index.close()
            raise

    def search(self, query: str, k: int = 10, lang: str = "any", **options) -> list[Hit]:
        return self.batcher.submit(SearchRequest(query, k, lang, **options))


def create_app(served: Engine | Path | str, model: str | None = None, summarizer: str | Path | None = None) -> FastAPI:
    """The app over an `Engine` (as `xlsearch serve` passes it, loaded and warm), or over an
    index folder that the app opens at start-up. The app closes the index when it stops."""
    state: dict[str, Engine] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["engine"] = served if isinstance(served, Engine) else Engine.open(Path(served), model, summarizer)
        yield
        state["engine"].index.close()

    app = FastAPI(title="xlsearch", summary="Cross-lingual English/Chinese search", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["segments"] = segments

    @app.exception_handler(XlsearchError)
    async def user_error(request: Request, exc: XlsearchError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/healthz")
    def healthz() -> dict:
        engine = state["engine"]
        sizes = engine.batcher.batch_sizes
        encoder = engine.index.encoder
        return {"status": "ok", "model": encoder.name, "precision": encoder.precision,
                "search_batches": {str(size): sizes[size] for size in sorted(sizes)}}

    @app.get("/api/search", response_model=SearchResponse, responses={400: {"model": ErrorResponse}})
    def api_search(
        q: str = Query(..., max_length=MAX_QUERY_CHARS, description="Query, English or Chinese"),
        k: int = Query(10, ge=1, le=MAX_K),
        lang: str = Query("any", pattern="^(" + "|".join(LANG_FILTERS) + ")$"),
        balance: bool = True,
        mode: str = Query("hybrid", pattern="^(" + "|".join(MODES) + ")$"),
        offset: int = Query(0, ge=0, le=MAX_K, description="Skip this many hits (pagination)"),
        path: str | None = Query(None, max_length=500, description="fnmatch pattern on the file path"),
        type: list[str] = Query([], description="File types: " + ", ".join(FILE_TYPES)),
        after: date | None = Query(None, description="Modified on or after (YYYY-MM-DD)"),
        before: date | None = Query(None, description="Modified before (YYYY-MM-DD)"),
        semantic_snippets: bool = Query(False, description="For hits without a query term, show the sentence closest in meaning"),
    ) -> SearchResponse:
        filters = Filters(path, tuple(type), _epoch(after), _epoch(before))
        hits = state["engine"].search(
            q, k=k, lang=lang, balance=balance, mode=mode, filters=filters, offset=offset, semantic_snippets=semantic_snippets
        )
        return SearchResponse(query=q, lang=lang, balance=balance, hits=hits)

    @app.get("/api/summarize", response_model=SummarizeResponse, responses={400: {"model": ErrorResponse}})
    def api_summarize(
        q: str = Query(..., max_length=MAX_QUERY_CHARS, description="Query, English or Chinese"),
        k: int = Query(5, ge=1, le=20, description="Hits to summarise"),
        lang: str = Query("any", pattern="^(" + "|".join(LANG_FILTERS) + ")$"),
    ) -> SummarizeResponse:
        engine = state["engine"]
        hits = engine.search(q, k=k, lang=lang)
        summary = engine.index.summarize(q, hits)
        return SummarizeResponse(query=q, summary=summary, hits=hits)

    @app.get("/api/gloss", response_model=list[Gloss])
    def api_gloss(text: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="Chinese text to gloss")) -> list[Gloss]:
        return gloss(text)

    @app.get("/api/documents/{doc_id}", response_model=DocumentResponse, responses={404: {"model": ErrorResponse}})
    def api_document(doc_id: int) -> DocumentResponse:
        doc = state["engine"].index.document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id} in this index")
        return DocumentResponse(**doc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, q: str = "", lang: str = "any", page: int = 1, summary: bool = False):
        error, hits, digest = None, [], None
        lang = lang if lang in LANG_FILTERS else "any"
        page = max(1, min(page, MAX_K // PAGE_SIZE))
        if q.strip():
            try:
                hits = state["engine"].search(
                    q, k=PAGE_SIZE + 1, lang=lang, offset=(page - 1) * PAGE_SIZE, semantic_snippets=True
                )
                if summary:
                    digest = state["engine"].index.summarize(q, hits[:PAGE_SIZE])
            except XlsearchError as exc:
                error = str(exc)
        context = {
            "reader": reader_language(q), "q": q, "lang": lang, "hits": hits[:PAGE_SIZE], "error": error, "langs": LANG_FILTERS,
            "page": page, "has_next": len(hits) > PAGE_SIZE, "summary": digest, "want_summary": summary,
        }
        return templates.TemplateResponse(request, "search.html", context)

    @app.get("/documents/{doc_id}", response_class=HTMLResponse)
    def document_page(request: Request, doc_id: int, chunk: int | None = None, q: str = ""):
        doc = state["engine"].index.document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id} in this index")
        span = state["engine"].index.chunk_span(doc_id, chunk) if chunk is not None else None
        text = doc["text"]
        parts = (text[: span[0]], text[span[0] : span[1]], text[span[1] :]) if span else (text, "", "")
        return templates.TemplateResponse(request, "document.html", {"doc": doc, "parts": parts, "q": q})

    return app
