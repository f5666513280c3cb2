"""The token-level objectives' batches: MLM over single texts, TLM over translation pairs.

Both mask a batch (`objectives.mask_tokens`), run the student's transformer and score the masked
positions with the `objectives.MaskedLM` head. `corpus_pieces` gives that head the pieces the
training text can produce, so its softmax covers those instead of all 250,002 (the English and
Chinese training text of a CPU recipe uses a few tens of thousands).
"""

from __future__ import annotations

import numpy as np
import torch

from .objectives import MaskedLM, mask_tokens, tlm_inputs
from .student import Student

EN, ZH = 0, 1  # token types used as language ids by TLM


def corpus_pieces(tokenizer, texts: list[str], max_tokens: int) -> torch.Tensor:
    """Sorted ids of every piece the texts tokenize to (as the losses cut them), specials included."""
    ids = tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]
    used = {i for row in ids for i in row} | set(tokenizer.all_special_ids)
    return torch.tensor(sorted(used), dtype=torch.long)


def word_ids(texts: list[str], offsets: torch.Tensor) -> torch.Tensor:
    """Per token, the index of the jieba word its first character lies in (−1 for specials/padding)."""
    import jieba

    ids = torch.full(offsets.shape[:2], -1, dtype=torch.long)
    for row, text in enumerate(texts):
        starts = [s for _, s, _ in jieba.tokenize(text)]
        for col, (a, b) in enumerate(offsets[row].tolist()):
            if b > a:
                ids[row, col] = int(np.searchsorted(starts, a, side="right")) - 1
    return ids


def mlm_loss(student: Student, head: MaskedLM, texts: list[str], max_tokens: int, probability: float,
             whole_word: bool, rng: torch.Generator) -> torch.Tensor:
    tok = student.tokenizer
    batch = tok(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt",
                return_special_tokens_mask=True, return_offsets_mapping=whole_word)
    words = word_ids(texts, batch["offset_mapping"]) if whole_word else None
    special = batch["special_tokens_mask"].bool() | (batch["attention_mask"] == 0)
    inputs, labels = mask_tokens(batch["input_ids"], special, len(tok), tok.mask_token_id, probability, rng, words, head.pieces)
    device = student.device
    hidden = student.hidden(inputs.to(device), batch["attention_mask"].to(device))
    return head(hidden, labels.to(device))


def tlm_loss(student: Student, head: MaskedLM, en: list[str], zh: list[str], max_tokens: int, probability: float,
             rng: torch.Generator) -> torch.Tensor:
    """Translation LM on the step's pairs; which language comes first is a coin flip per pair."""
    tok = student.tokenizer
    room = max(1, max_tokens - 2)
    en_ids = tok(en, add_special_tokens=False, truncation=True, max_length=room)["input_ids"]
    zh_ids = tok(zh, add_special_tokens=False, truncation=True, max_length=room)["input_ids"]
    flips = torch.rand(len(en), generator=rng) < 0.5
    rows = [tlm_inputs(z, e, ZH, EN, tok.bos_token_id, tok.eos_token_id) if flip else tlm_inputs(e, z, EN, ZH, tok.bos_token_id, tok.eos_token_id)
            for e, z, flip in zip(en_ids, zh_ids, flips.tolist())]
    width = max(len(r["input_ids"]) for r in rows)

    def pad(key: str, value: int) -> torch.Tensor:
        return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])

    input_ids, positions, types = pad("input_ids", tok.pad_token_id), pad("position_ids", 0), pad("token_type_ids", 0)
    attention = (torch.arange(width)[None, :] < torch.tensor([len(r["input_ids"]) for r in rows])[:, None]).long()
    special = torch.isin(input_ids, torch.tensor(tok.all_special_ids)) | (attention == 0)
    inputs, labels = mask_tokens(input_ids, special, len(tok), tok.mask_token_id, probability, rng, pieces=head.pieces)
    device = student.device
    hidden = student.hidden(inputs.to(device), attention.to(device), position_ids=positions.to(device), token_type_ids=types.to(device))
    return head(hidden, labels.to(device))
