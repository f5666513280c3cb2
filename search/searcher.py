"""Dense search over the store: embed the query, take the nearest chunks, one hit per document.

FAISS ranks chunks; a document with several matching chunks should appear once, under its best
chunk, so we over-fetch chunks and group. Language and other filters are applied to the rows
after the vector search, widening the fetch until enough hits survive (FAISS knows nothing of
languages); a store that can filter as it searches (Milvus) is given them too, so its first
fetch already holds only hits that survive. With
`balance` (the default), candidates are ranked by scores calibrated per language
(`search.calibration`), so a document in the other language is not buried under
same-language text that merely shares the query's language.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime

import numpy as np

from core.choices import LANG_FILTERS, MAX_K, MAX_QUERY_CHARS, MODES
from core.config import SearchConfig
from core.errors import InputError
from core.language import detect_language
from core.terms import exact_terms, fts_match, fts_query, fts_tokens, query_terms, terms
from models.encoder import Encoder
from storage.store import Store
from storage.vector_store import VectorFilter

from .calibration import language_calibration
from .same_language import reorder_same_language
from .snippets import candidate_sentences, highlight_terms, make_snippet, term_hits

# Hits are ordered by their score as shown (rounded to this many decimals), ties by chunk id: so
# copies of one text, and near-ties that float rounding could flip (a query embedded alone or in
# a server's batch differs in its last bits), come in one order whichever way they were searched.
SCORE_DECIMALS = 4
BALANCE_FETCH = 200  # candidates scored per query when balancing, so both languages are present


@dataclass
class Hit:
    rank: int
    score: float  # what the ranking used: calibrated z-score (balanced), cosine, bm25 or fused
    similarity: float | None  # cosine between query and chunk (None for a lexical-only hit)
    doc_id: int
    chunk_id: int
    lang: str  # the chunk's language (what --lang filters and balancing use)
    doc_lang: str  # the document's dominant language (what a reader sees as "a Chinese document")
    title: str
    path: str
    key: str
    snippet: str
    start: int
    end: int
    more_chunks: int  # other matching chunks of the same document among the results
    highlights: list[tuple[int, int]]  # spans of `snippet` to mark
    also_at: list[str] = field(default_factory=list)  # other paths holding the same document (identical files)

    def to_dict(self) -> dict:
        return asdict(self)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_query(query: str, k: int, lang: str) -> str:
    query = " ".join(_CONTROL.sub(" ", query).split())  # control characters (NUL, ESC…) are not words
    if not query:
        raise InputError("empty query — type some words to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS} — shorten it")
    if not 1 <= k <= MAX_K:
        raise InputError(f"-k must be between 1 and {MAX_K}, not {k}")
    if lang not in LANG_FILTERS:
        raise InputError(f"--lang must be one of {', '.join(LANG_FILTERS)}, not {lang!r}")
    return query


def day_start(day: date | None) -> float | None:
    """Local midnight starting `day`, in seconds since the epoch, for `Filters` (None stays None).
    Before 0001-01-02 there is no file to tell apart, and mktime cannot reach back that far
    (ValueError "year 0 is out of range"): such a day is minus infinity."""
    if day is None:
        return None
    return float("-inf") if day < date(1, 1, 2) else datetime(day.year, day.month, day.day).timestamp()


@dataclass(frozen=True)
class Filters:
    """Which documents may be returned, besides the language."""

    path_glob: str | None = None  # fnmatch pattern on the full path, e.g. "*/manual/*"
    file_types: tuple[str, ...] = ()  # e.g. ("markdown", "html")
    modified_after: float | None = None  # file mtime, seconds since the epoch
    modified_before: float | None = None

    def allows(self, row: dict) -> bool:
        return (
            (self.path_glob is None or fnmatch.fnmatchcase(row["path"], self.path_glob))
            and (not self.file_types or row["file_type"] in self.file_types)
            and (self.modified_after is None or row["mtime"] >= self.modified_after)
            and (self.modified_before is None or row["mtime"] < self.modified_before)
        )


@dataclass(frozen=True)
class SearchRequest:
    """One search, as `search()` takes it; `search_batch()` answers several at once."""

    query: str
    k: int = 10
    lang: str = "any"
    balance: bool = True
    mode: str = "hybrid"
    filters: Filters = Filters()
    offset: int = 0
    semantic_snippets: bool = False

    def vector_filter(self) -> VectorFilter:
        """The filters, for a vector store that applies them as it searches (Milvus)."""
        f = self.filters
        return VectorFilter(None if self.lang == "any" else self.lang, f.path_glob, f.file_types, f.modified_after, f.modified_before)

    def checked(self) -> SearchRequest:
        """The request with its query cleaned, or an InputError naming what is wrong."""
        query = validate_query(self.query, self.k, self.lang)
        if not 0 <= self.offset <= MAX_K:
            raise InputError(f"offset must be between 0 and {MAX_K}, not {self.offset}")
        if self.mode not in MODES:
            raise InputError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        return replace(self, query=query, filters=self.filters or Filters())


def search(
    store: Store, encoder: Encoder, query: str, k: int = 10, lang: str = "any", balance: bool = True,
    mode: str = "hybrid", config: SearchConfig | None = None, filters: Filters | None = None, offset: int = 0,
    semantic_snippets: bool = False,
) -> list[Hit]:
    """Ranked hits, one per document: ranks offset+1 … offset+k.

    mode: dense (vectors), lexical (FTS5 bm25 over jieba/lower-cased terms) or hybrid
    (a calibrated mix of dense scores with lexical matches of the query's exact terms —
    identifiers, numbers, names — weights in `SearchConfig`; a query without such terms is
    ranked as dense). `semantic_snippets` picks,
    for hits without a query term, the sentence closest in meaning (costs one small encode).
    """
    request = SearchRequest(query, k, lang, balance, mode, filters or Filters(), offset, semantic_snippets)
    [result] = search_batch(store, encoder, [request], config)
    if isinstance(result, InputError):
        raise result
    return result


def search_batch(
    store: Store, encoder: Encoder, requests: Sequence[SearchRequest], config: SearchConfig | None = None
) -> list[list[Hit] | InputError]:
    """Several searches answered together, each as `search()` would (a server's concurrent
    requests): one model call embeds every query, and one FAISS pass fetches every query's
    candidates — a flat index reads all its vectors per pass, so at 100k chunks one query's pass
    costs ~20 ms and eight queries' ~33 ms. Query vectors embedded in a padded batch differ from
    single ones only in float rounding (~1e-7). A request with bad input gets its InputError in
    its place; the others are answered.
    """
    config = config or SearchConfig()
    results: list = []
    for request in requests:
        try:
            results.append(request.checked())
        except InputError as exc:
            results.append(exc)
    valid = [i for i, r in enumerate(results) if isinstance(r, SearchRequest)]
    dense = [i for i in valid if results[i].mode != "lexical"]
    qvecs = dict(zip(dense, encoder.encode_queries([results[i].query for i in dense])))
    # One SQLite snapshot for every read below: while an index run commits batches, the vectors,
    # term matches and rows all come from the same committed generation.
    with store.snapshot():
        total = store.vectors.count()
        candidates = {}
        groups: dict[VectorFilter, list[int]] = {}  # one vector search per distinct filter (usually one)
        for i in dense:
            groups.setdefault(results[i].vector_filter(), []).append(i)
        for where, members in groups.items():
            first = max(_first_fetch(results[i], total) for i in members)
            candidates.update(zip(members, store.vectors.search(np.stack([qvecs[i] for i in members]), first, where)))
        ranked = {i: _rank(store, results[i], qvecs.get(i), candidates.get(i, []), total, config) for i in valid}
        shown = [cid for i in valid for _, cid, _ in ranked[i][0]]
        texts = store.documents.chunk_texts_by_id(shown)  # ranking read no text: only the hits need it
        for i in valid:
            rows = ranked[i][1]
            for _, cid, _ in ranked[i][0]:
                rows[cid]["text"] = texts[cid]
    for i in valid:
        results[i] = _hits(encoder, results[i], qvecs.get(i), *ranked[i])
    return results


def _first_fetch(request: SearchRequest, total: int) -> int:
    """Chunks to fetch at first: enough for k documents, and both languages when balancing."""
    balance = request.balance and request.lang == "any" and request.mode != "lexical"
    return min(total, max((request.offset + request.k) * 10 + 20, BALANCE_FETCH if balance else 0))


def _same_language_match(store: Store, query: str, config: SearchConfig) -> str | None:
    """The FTS5 match that reorders the query's own language: its `same_language_words` rarest
    words (the common ones never), in the query's order.

    A bm25 pass costs what the postings it scores cost (100k chunks: 1 ms under 1,000 postings,
    13 ms over 10,000; README, "Where FTS5's time goes"), and the words many chunks hold add the
    most postings and tell pages apart least. A word the index does not hold is left out too: it
    can match nothing.
    """
    words = query_terms(query, drop_common=True)
    if config.same_language_words > 0 and words:
        tokens = {w: fts_tokens(w) for w in words}
        counts = store.documents.term_chunk_counts(sorted({t for ts in tokens.values() for t in ts}))
        # a phrase (`apt-get`) is in at most as many chunks as its rarest token
        held = {w: min(counts.get(t, 0) for t in tokens[w]) for w in words if tokens[w]}
        rarest = sorted((w for w in held if held[w] > 0), key=lambda w: held[w])[: config.same_language_words]
        words = [w for w in words if w in rarest]
    return fts_match(words)


def _rank(store: Store, request: SearchRequest, qvec, candidates: list[tuple[int, float]], total: int, config: SearchConfig):
    """Best chunk per distinct document, ranked: (top [(score, chunk id, also-at paths)], rows, cosine per chunk,
    matching chunks per document).

    `candidates`: the query's nearest chunks, fetched with the batch (a prefix of them is what a
    fetch of fewer would return); a filter that removes too many widens the fetch.
    """
    query, lang, filters, mode = request.query, request.lang, request.filters, request.mode
    want = request.offset + request.k
    balance = request.balance and lang == "any" and qvec is not None
    fetch = _first_fetch(request, total)
    match = fts_query(query, exact_only=mode == "hybrid") if mode != "dense" else None
    # hybrid: the query's rarest words, too, to reorder the query-language pages (search.same_language)
    words = _same_language_match(store, query, config) if mode == "hybrid" and config.same_language_weight > 0 else None
    query_lang = detect_language(query)
    # In hybrid, lexical weighs as much as the query is made of exact terms: all of an
    # identifier lookup, little of a sentence that merely mentions a name.
    exact_share = len(exact_terms(query)) / max(1, len(terms(query)))
    while True:
        if qvec is None:
            dense = []
        elif fetch <= len(candidates) or len(candidates) == total:
            dense = candidates[:fetch]
        else:
            dense = store.vectors.search(qvec[None, :], fetch, request.vector_filter())[0]
        lexical = store.documents.search_terms(match, fetch) if match else []
        worded = store.documents.search_terms(words, fetch) if words else []
        rows = store.documents.chunk_rows(list({cid for cid, _ in dense} | {cid for cid, _ in lexical} | {cid for cid, _ in worded}), text=False)
        # a row is missing when a chunk in an older FAISS file has since been deleted: skip it
        keep = lambda cid: cid in rows and lang in ("any", rows[cid]["lang"]) and filters.allows(rows[cid])  # noqa: E731
        dense = [(cid, sim) for cid, sim in dense if keep(cid)]
        lexical = [(cid, bm25) for cid, bm25 in lexical if keep(cid)]
        worded = [(cid, bm25) for cid, bm25 in worded if keep(cid)]
        similarity = dict(dense)
        scores = _dense_scores(store, qvec, dense, rows, balance)
        if mode == "lexical":
            scores = dict(lexical)
        elif mode == "hybrid":
            scores = _mix(scores, dict(lexical), config.dense_weight, config.lexical_weight * exact_share)
        best: dict[int, tuple[float, int]] = {}
        matches: dict[int, int] = {}
        for cid, score in scores.items():
            doc = rows[cid]["doc_id"]
            matches[doc] = matches.get(doc, 0) + 1
            if doc not in best or (round(score, SCORE_DECIMALS), -cid) > (round(best[doc][0], SCORE_DECIMALS), -best[doc][1]):
                best[doc] = (score, cid)
        if worded:
            best = reorder_same_language(best, worded, rows, query_lang, config.same_language_weight)
            for doc in best.keys() - matches.keys():
                matches[doc] = 1
        distinct = _collapse(best, rows)
        if len(distinct) >= want or fetch >= total:
            break
        fetch = min(total, fetch * 4)
    return distinct[request.offset : want], rows, similarity, matches


def _collapse(best: dict[int, tuple[float, int]], rows: dict) -> list[tuple[float, int, list[str]]]:
    """Ranked (score, chunk id, other paths) with one entry per distinct document content.

    The same file copied under several paths (same hash, same row key) is one answer, not a
    page of copies: it is shown once, at its best rank, with the other paths as "also at".
    """
    ranked = sorted(best.values(), key=lambda t: (-round(t[0], SCORE_DECIMALS), t[1]))
    first: dict[tuple[str, str], list[str]] = {}
    out = []
    for score, cid in ranked:
        row = rows[cid]
        content = (row["sha256"], row["key"])
        if content in first:
            first[content].append(row["path"])
            continue
        first[content] = also_at = []
        out.append((score, cid, also_at))
    return out


def _hits(encoder: Encoder, request: SearchRequest, qvec, top, rows, similarity, matches) -> list[Hit]:
    texts = [rows[cid]["text"] for _, cid, _ in top]
    sentence_scores = _sentence_scores(encoder, request.query, qvec, texts) if request.semantic_snippets else {}
    hits = []
    for i, (score, cid, also_at) in enumerate(top, start=request.offset):
        row = rows[cid]
        sim = similarity.get(cid)
        snippet = make_snippet(row["text"], request.query, sentence_scores.get(i - request.offset))
        hits.append(Hit(
            rank=i + 1, score=round(score, SCORE_DECIMALS), similarity=None if sim is None else round(sim, 4), doc_id=row["doc_id"],
            chunk_id=cid, lang=row["lang"], doc_lang=row["doc_lang"], title=row["title"], path=row["path"], key=row["key"],
            snippet=snippet.text, start=row["start"], end=row["end"], more_chunks=matches[row["doc_id"]] - 1,
            highlights=snippet.marks, also_at=sorted(also_at),
        ))
    return hits


def _sentence_scores(encoder: Encoder, query: str, qvec, texts: list[str]) -> dict[int, list[float]]:
    """For texts holding no query term: cosine of each candidate sentence with the query."""
    words = highlight_terms(query)
    todo = {i: candidate_sentences(t) for i, t in enumerate(texts) if not term_hits(t, words)}
    flat = [s for sentences in todo.values() for s in sentences]
    if not flat:
        return {}
    if qvec is None:
        qvec = encoder.encode_query(query)
    scores = (encoder.encode(flat, "passage") @ qvec).tolist()
    out, pos = {}, 0
    for i, sentences in todo.items():
        out[i] = scores[pos : pos + len(sentences)]
        pos += len(sentences)
    return out


def _dense_scores(store: Store, qvec, dense: list[tuple[int, float]], rows: dict, balance: bool) -> dict[int, float]:
    if not balance or not dense:
        return dict(dense)
    calibrated = language_calibration(store)(qvec, [sim for _, sim in dense], [rows[cid]["lang"] for cid, _ in dense])
    return {cid: float(z) for (cid, _), z in zip(dense, calibrated)}


def _mix(dense: dict[int, float], lexical: dict[int, float], dense_weight: float, lexical_weight: float) -> dict[int, float]:
    """Calibrated score mix: dense scores standardised over the candidates, bm25 over its best.

    Unlike rank fusion, a small lexical weight cannot flip two dense scores that are far apart,
    only near-ties; a large one (an identifier lookup) can lift an exact match to the top.
    """
    values = np.fromiter(dense.values(), np.float64, len(dense))
    mean, std = (values.mean(), values.std() or 1.0) if len(values) else (0.0, 1.0)
    best_bm25 = max(lexical.values(), default=1.0) or 1.0
    mixed = {cid: dense_weight * (score - mean) / std for cid, score in dense.items()}
    floor = min(mixed.values(), default=0.0)  # a lexical-only candidate starts at the bottom
    for cid, bm25 in lexical.items():
        mixed[cid] = mixed.get(cid, floor) + lexical_weight * bm25 / best_bm25
    return mixed
