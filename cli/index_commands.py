"""The verbs over an index: index, search, info, serve — each a thin layer over `xlsearch.Index`."""

from __future__ import annotations

from pathlib import Path

import click

from core.choices import FILE_TYPES, INDEX_TYPES, LANG_FILTERS, MAX_K, MODES
from core.config import VECTOR_STORE_ENV, ChunkConfig, IndexConfig
from xlsearch import Index, IndexSummary

from .group import db_dir, db_option, emit_json, log, model_option, precision_option, runtime_option


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@db_option
@model_option
@precision_option
@runtime_option
@click.option("--text-field", default="text", show_default=True, help="Field (JSONL) or column (CSV) holding the text.")
@click.option("--id-field", default=None, help="Field/column with a unique row id (default: the line number).")
@click.option("--prune", is_flag=True, help="Remove indexed files under PATHS that no longer exist.")
@click.option("--index-type", type=click.Choice(INDEX_TYPES), default=None,
              help="Vector index: flat (exact, default), flat16 (the same search over 16-bit vectors: half the memory, "
                   "about twice as fast one query at a time; FAISS only), ivf or hnsw (approximate, for large "
                   "collections); FAISS's or Milvus's. Recorded in the index; to change it, name it again: "
                   "xlsearch index --db DIR --index-type T (no paths needed) rebuilds only the vectors.")
@click.option("--vector-store", default=None, envvar=VECTOR_STORE_ENV, metavar="STORE",
              help="Where vectors are searched: faiss (a file in --db, the default), milvus-lite (Milvus Lite, a folder "
                   "in --db) or milvus://HOST:PORT[/COLLECTION] (a Milvus server; pip install 'xlsearch[milvus]'). "
                   "Recorded in the index: search, serve and info use it without this option; naming another one "
                   f"moves the vectors there. [env: {VECTOR_STORE_ENV}]")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Read, chunk and embed on a Ray cluster: a local one on this machine's cores, or the cluster at "
                   "ADDRESS (HOST:6379, ray://HOST:10001, auto). Same index as without it. pip install 'xlsearch[ray]'.")
@click.option("--max-tokens", type=click.IntRange(16, 510), default=256, show_default=True, help="Token budget per chunk.")
@click.option("--overlap-tokens", type=click.IntRange(0, 256), default=32, show_default=True, help="Tokens repeated between chunks.")
@click.option("--head-tokens", type=click.IntRange(0, 510), default=64, show_default=True,
              help="A document longer than one chunk also gets its opening (title, summary line) as a chunk of up to "
                   "this many tokens, so a page whose answer is its title is found; 0: none.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True, help="Chunks per encoder batch.")
@click.option("--commit-every", type=click.IntRange(1), default=2048, show_default=True,
              help="Chunks per committed batch: an interrupted run keeps what was committed and resumes after it.")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Only files whose path under PATH (or name) matches, e.g. '*.md' or 'manual/*' (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Leave out files and folders whose path under PATH (or name) matches, e.g. '*.log' or 'build' (repeatable).")
@click.option("--no-ignore", is_flag=True, help="Walk into what .gitignore files ignore, too.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def index(ctx, paths, db, model, precision, runtime, text_field, id_field, prune, index_type, vector_store, ray_address, max_tokens, overlap_tokens,
          head_tokens, batch_size, commit_every, include, exclude, no_ignore, as_json):
    """Index files and folders: .txt .md .html .jsonl .csv (.pdf with the pdf extra), and any other
    file that is text (README, LICENSE, notes.1, app.conf).

    Re-running is incremental: unchanged files (same content hash) are not embedded again,
    changed ones are replaced, and --prune drops files that were deleted. A folder walk passes
    over hidden files, what .gitignore files ignore (unless --no-ignore), files with a binary
    suffix (.png, .zip, ...) and what --include/--exclude leave out. Files that cannot be read
    are skipped, counted per reason in the summary (listed with xlsearch -v index); the rest of
    the index is untouched.
    """
    db = db_dir(db)
    config = IndexConfig(
        chunk=ChunkConfig(max_tokens=max_tokens, overlap_tokens=min(overlap_tokens, max_tokens // 2), head_tokens=head_tokens),
        index_type=index_type, vector_store=vector_store, batch_size=batch_size, commit_every_chunks=commit_every, text_field=text_field,
        id_field=id_field, prune=prune, include=tuple(include), exclude=tuple(exclude), gitignore=not no_ignore,
    )
    if ray_address and Path(ray_address).exists():
        raise click.UsageError(f"--ray took {ray_address!r}, a path, as the cluster's address — put --ray after the paths, or write --ray=ADDRESS")
    ray = False if ray_address is None else ray_address or True
    with Index(db, model, precision=precision, create=True, runtime=runtime) as opened:
        summary = opened.add(paths, config, progress=not ctx.obj["quiet"] and not as_json, ray=ray)
        precision = opened.encoder.precision
    if as_json:
        emit_json({"db": str(db), **summary.to_dict(), "precision": precision})
        return
    _echo_summary(db, summary, precision, ctx.obj["verbose"])


def _echo_summary(db: Path, summary: IndexSummary, precision: str, verbose: bool) -> None:
    """Counts, then one line per skip reason; the files themselves only when asked (-v), since a
    folder of hundreds of binaries would bury the line that matters."""
    click.echo(
        f"indexed into {db}: {summary.found} files found, {summary.added} added, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {summary.removed} removed, {len(summary.skipped)} skipped, {summary.excluded} excluded; "
        f"{summary.chunks} chunks in {summary.seconds:.1f} s "
        f"({summary.chunks_per_second:.1f} chunks/s{', int8' if precision == 'int8' else ''})"
    )
    for reason, skipped in summary.skipped_by_reason().items():
        click.echo(f"  skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''}: {reason}")
        for path in skipped if verbose else ():
            click.echo(f"    {path}")


@click.command()
@click.argument("query")
@db_option
@model_option
@precision_option
@runtime_option
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of documents to return.")
@click.option("--lang", type=click.Choice(LANG_FILTERS), default="any", show_default=True, help="Only hits in this language.")
@click.option("--balance/--no-balance", default=True, show_default=True,
              help="Rank by scores calibrated per language, so answers in the other language are not buried.")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True,
              help="dense vectors, lexical (FTS5 + jieba) or hybrid (rank fusion of both).")
@click.option("--path", "path_glob", default=None, metavar="GLOB", help="Only files whose full path matches, e.g. '*/manual/*'.")
@click.option("--type", "file_types", multiple=True, type=click.Choice(FILE_TYPES), help="Only these file types (repeatable).")
@click.option("--after", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only files modified on or after this date.")
@click.option("--before", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only files modified before this date.")
@click.option("--offset", type=click.IntRange(0, MAX_K), default=0, show_default=True, help="Skip this many hits (pagination).")
@click.option("--summary", is_flag=True, help="Also print a cited summary of the top hits in the query's language.")
@click.option("--summarizer", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Local transformers seq2seq/causal model that rewrites the summary (implies --summary).")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search(query, db, model, precision, runtime, k, lang, balance, mode, path_glob, file_types, after, before, offset, summary, summarizer, as_json):
    """Search the index; QUERY may be English or Chinese, hits come in both.

    Hits are grouped by document (its best-matching chunk), with score, language, path and a
    snippet.
    """
    from search.searcher import Filters, SearchRequest, day_start

    filters = Filters(path_glob, tuple(file_types), day_start(after and after.date()), day_start(before and before.date()))
    request = SearchRequest(query, k, lang, balance, mode, filters, offset)
    request.checked()  # an empty query should not cost a model load
    with Index(db_dir(db), model, precision=precision, summarizer=summarizer, runtime=runtime) as opened:
        hits = opened.search(request)
        digest = opened.summarize(query, hits) if summary or summarizer else None
    if as_json:
        emit_json({"query": query, "hits": [h.to_dict() for h in hits], **({"summary": digest.to_dict()} if digest else {})})
        return
    if digest is not None:
        click.echo(f"Summary: {digest.text or '(nothing to summarise)'}\n")
    if not hits:
        click.echo("no hits")
    for h in hits:  # the score shown is the one the hits are ordered by (--json also has the raw cosine)
        where = h.path + (f" [{h.key}]" if h.key else "") + "".join(f"\n    also at {p}" for p in h.also_at)
        more = f"  (+{h.more_chunks} more in this document)" if h.more_chunks else ""
        click.echo(f"{h.rank:>2}. [{h.doc_lang}] {h.score:6.2f}  {h.title}{more}\n    {where}\n    {h.snippet}\n")


@click.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(db, as_json):
    """Describe an index: documents per language, chunks, model, size on disk."""
    with Index(db_dir(db)) as opened:
        data = opened.info()
    if as_json:
        emit_json(data)
        return
    langs = ", ".join(f"{n} {lang}" for lang, n in data["documents_by_lang"].items()) or "none"
    click.echo(
        f"index      {data['db']}\n"
        f"files      {data['files']}\n"
        f"documents  {data['documents']} ({langs})\n"
        f"chunks     {data['chunks']}\n"
        f"model      {data['model']} ({data['model_path']}, dim {data['dim']})\n"
        f"precision  {(data['precision'] or '-').replace('+', ' and ')}"
        f"{' (runs at different precisions wrote vectors)' if '+' in (data['precision'] or '') else ''}\n"
        f"vectors    {data['vector_store']} {data['index_type']}, generation {data['generation']}"
        f"{'' if data['vectors_in_sync'] else ' (an index run is in progress)' if data['indexing'] else ' (out of date: run xlsearch index to repair)'}\n"
        f"size       {data['size_bytes'] / 1e6:.1f} MB\n"
        f"updated    {data['updated_at']}"
    )


@click.command()
@db_option
@model_option
@precision_option
@runtime_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--summarizer", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Local transformers model that rewrites summaries (default: extractive only).")
def serve(db, model, precision, runtime, host, port, summarizer):
    """Serve the search page and JSON API (/api/search, /api/documents/ID, /healthz, /docs).

    Read-only; the model is loaded and warmed before the first request.
    """
    import uvicorn

    from web.app import Engine, create_app

    db = db_dir(db)
    engine = Engine.open(db, model, summarizer, precision, runtime)  # fail here, as one line, rather than inside the server
    log.info("serving %s on http://%s:%d", db, host, port)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning")
