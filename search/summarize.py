"""Query-focused summaries of the top hits, in the reader's language, every sentence cited.

Extractive (default, offline, no extra model): split the hits into sentences; score each by its
similarity to the query with the cross-lingual encoder; pick with maximal marginal relevance
(MMR) so the summary does not repeat itself; when a sentence and its translation are both
among the candidates (a cross-lingual near-duplicate, typical of bilingual collections), keep the
one in the reader's language; stop at a length budget. Each sentence carries `[n]`, the rank of
the hit it came from.

Abstractive (optional): any local transformers seq2seq or causal model folder rewrites the cited
sentences into prose in the reader's language; citations the model drops are appended, so no
claim loses its source.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ModelError
from core.language import detect_language
from models.encoder import Encoder

from .snippets import candidate_sentences

log = logging.getLogger(__name__)


@dataclass
class SummaryConfig:
    max_chars: int = 360  # length budget (Chinese sentences are short: counts characters, not words)
    mmr_lambda: float = 0.7  # relevance vs novelty
    duplicate_cosine: float = 0.88  # above this two sentences say the same thing (translations included)
    hits_used: int = 5
    min_relevance: float = 0.0  # drop sentences whose similarity to the query is below this


@dataclass
class CitedSentence:
    text: str
    cite: int  # rank of the hit it comes from
    lang: str
    relevance: float


@dataclass
class Summary:
    reader_lang: str
    sentences: list[CitedSentence] = field(default_factory=list)
    text: str = ""
    abstractive: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def reader_language(query: str) -> str:
    lang = detect_language(query)
    return lang if lang in ("en", "zh") else "en"


def extractive_summary(encoder: Encoder, query: str, hits: list, texts: list[str], config: SummaryConfig | None = None) -> Summary:
    """`hits[i]` (with `.rank`) holds the chunk text `texts[i]`."""
    config = config or SummaryConfig()
    reader = reader_language(query)
    candidates: list[tuple[str, int]] = []
    for hit, text in list(zip(hits, texts))[: config.hits_used]:
        candidates.extend((s, hit.rank) for s in candidate_sentences(text) if _is_statement(s))
    summary = Summary(reader)
    if not candidates:
        return summary
    qvec = encoder.encode_query(query)
    vecs = encoder.encode([s for s, _ in candidates], "passage")
    relevance = vecs @ qvec
    langs = [detect_language(s) for s, _ in candidates]
    chosen: list[int] = []
    used = 0
    available = [i for i in range(len(candidates)) if relevance[i] >= config.min_relevance]
    while available and used < config.max_chars:
        sims = vecs[available] @ vecs[chosen].T if chosen else np.zeros((len(available), 1))
        redundancy = sims.max(axis=1)
        mmr = config.mmr_lambda * relevance[available] - (1 - config.mmr_lambda) * redundancy
        pick = available[int(np.argmax(mmr))]
        available.remove(pick)
        twins = [i for i in available if float(vecs[i] @ vecs[pick]) >= config.duplicate_cosine]
        if chosen and float((vecs[chosen] @ vecs[pick]).max()) >= config.duplicate_cosine:
            continue  # says what an earlier pick says
        if langs[pick] != reader and (same := [i for i in twins if langs[i] == reader]):
            pick = max(same, key=lambda i: relevance[i])  # the reader's version of the same sentence
            available.remove(pick)
        for i in twins:
            if i in available:
                available.remove(i)
        chosen.append(pick)
        used += len(candidates[pick][0])
    summary.sentences = [
        CitedSentence(candidates[i][0], candidates[i][1], langs[i], round(float(relevance[i]), 4)) for i in chosen
    ]
    summary.text = _join(summary.sentences, reader)
    return summary


_FINAL = tuple(".!?;:。！？；：)”」）")


def _is_statement(sentence: str) -> bool:
    """A sentence worth quoting: not a heading, a section number or a fragment of a list."""
    s = sentence.strip()
    return not s.startswith("#") and (s.endswith(_FINAL) and len(s) >= 8 or len(s) >= 40)


def _join(sentences: list[CitedSentence], reader: str) -> str:
    sep = "" if reader == "zh" else " "
    return sep.join(f"{s.text.strip()} [{s.cite}]" for s in sentences)


class AbstractiveSummarizer:
    """Rewrites an extractive summary with a local generative model (seq2seq or causal)."""

    def __init__(self, path: str | Path, max_new_tokens: int = 160):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").exists():
            raise ModelError(f"--summarizer {path}: not a transformers model folder (no config.json)")
        try:
            config = AutoConfig.from_pretrained(str(path), local_files_only=True)
            self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
            self.model = loader.from_pretrained(str(path), local_files_only=True).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # many exception types for a broken folder
            raise ModelError(f"cannot load summarizer from {path}: {exc}") from exc
        self.max_new_tokens = max_new_tokens

    def prompt(self, query: str, summary: Summary) -> str:
        language = "Chinese (简体中文)" if summary.reader_lang == "zh" else "English"
        sources = "\n".join(f"[{s.cite}] {s.text.strip()}" for s in summary.sentences)
        return (
            f"Question: {query}\nSources:\n{sources}\n"
            f"Write a short answer in {language} using only the sources. Keep the [n] citations.\nAnswer:"
        )

    def __call__(self, query: str, summary: Summary) -> Summary:
        import torch

        if not summary.sentences:
            return summary
        prompt = self.prompt(query, summary)
        inputs = self.tokenizer(prompt, return_tensors="pt", truncation=True, max_length=1024)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        if not self.seq2seq:
            out = out[:, inputs["input_ids"].shape[1] :]
        text = self.tokenizer.decode(out[0], skip_special_tokens=True).strip()
        cites = sorted({s.cite for s in summary.sentences})
        missing = [c for c in cites if f"[{c}]" not in text]
        if missing:
            text = (text + " " + "".join(f"[{c}]" for c in missing)).strip()
        return Summary(summary.reader_lang, summary.sentences, text, abstractive=True)


def summarize_hits(store, encoder: Encoder, query: str, hits: list, config: SummaryConfig | None = None,
                   abstractive: AbstractiveSummarizer | None = None) -> Summary:
    """Summary of `hits` (from `search`), reading their chunk texts from the store."""
    rows = store.documents.chunk_rows([h.chunk_id for h in hits])
    kept = [h for h in hits if h.chunk_id in rows]
    summary = extractive_summary(encoder, query, kept, [rows[h.chunk_id]["text"] for h in kept], config)
    return abstractive(query, summary) if abstractive else summary
