"""Training objectives, each a small module whose maths the tests check on hand-made tensors.

- Sentence-level (on pooled, unit-length embeddings of a batch of pairs):
  `Distillation`, `NeighbourDistillation` and `MarginInfoNCE`. They share one forward pass per step and, through
  `GradientCache`, can use batches larger than memory allows.
- Token-level (on hidden states): `MaskedLM` for MLM and, given `tlm_inputs`, for TLM.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def target_sides(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The English and Chinese targets: (n, dim) is one point per pair, (n, 2, dim) one per side."""
    return (target[:, 0], target[:, 1]) if target.dim() == 3 else (target, target)


class Distillation(nn.Module):
    """Student(en) and student(zh) both regress onto one frozen target per pair.

    Reimers & Gurevych (2020): pulling both sides of a translation to the same point removes
    same-language bias at its root. The target is the teacher's English embedding or, better,
    `pair_targets`. The loss is the mean squared distance between unit vectors, summed over
    dimensions (= 2 − 2·cosine), so its scale does not depend on the embedding width.
    """

    def forward(self, en: torch.Tensor, zh: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`target` is (n, dim), one point per pair, or (n, 2, dim): one per side (English, Chinese)."""
        en_target, zh_target = target_sides(target)
        return ((en - en_target) ** 2).sum(-1).mean() + ((zh - zh_target) ** 2).sum(-1).mean()


def pair_targets(teacher_en: torch.Tensor, teacher_zh: torch.Tensor, groups: list[str]) -> torch.Tensor:
    """One language-neutral target per pair: the mean of the teacher's two embeddings after each is
    centred on its language's mean (per group, e.g. e5's query/passage modes) and re-normalised.

    Why not the English embedding alone: the base encoder's Chinese-to-Chinese structure is better
    than its English one on our same-language check, and a student distilled onto English alone
    loses it (zh MRR@10 .465 → .383 in the first CPU run). Averaging two views of one meaning
    keeps both: on aligned dev segments these targets score above either language of the teacher.
    Centering first (Libovický et al. 2020) keeps the language offset out of the mean. The means
    come from the teacher vectors themselves — the same recipe as `xlsearch model center`.
    """

    def centred(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        for g in set(groups):
            rows = torch.tensor([i for i, k in enumerate(groups) if k == g])
            out[rows] = F.normalize(x[rows] - x[rows].mean(0), dim=-1)
        return out

    return F.normalize(centred(teacher_en) + centred(teacher_zh), dim=-1)


class NeighbourDistillation(nn.Module):
    """Each text's neighbours among the batch, as the teacher ranks them (relational distillation).

    `Distillation` pulls a student's vector towards the teacher's, but a student at cosine ≈ 0.87
    to its teacher still shares only ~65 % of each text's ten nearest neighbours with it
    (training/MODEL_CARD.md, the fast model): retrieval is ranking, so this matches the ranking
    itself. Over both sides of the batch's pairs, each text's similarities to all the others
    become a softmax at `temperature`; the loss is KL(teacher ‖ student), averaged over texts,
    which weighs a text's nearest neighbours most (Tung & Mori 2019 and Park et al. 2019 distil
    relations this way). The text itself and its translation are left out: the translation would
    take nearly all of the softmax, and `Distillation` / `MarginInfoNCE` already hold it.
    """

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = temperature

    def forward(self, en: torch.Tensor, zh: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`target` as for `Distillation`: (n, dim) or (n, 2, dim)."""
        en_target, zh_target = target_sides(target)
        n = len(en)
        if n < 2:  # no other pair to rank
            return en.sum() * 0.0
        student, teacher = torch.cat([en, zh]), torch.cat([en_target, zh_target])
        pair = torch.eye(n, dtype=torch.bool, device=en.device)
        self_pairs = pair.repeat(2, 2)  # a text and its translation
        s = (student @ student.T / self.temperature).masked_fill(self_pairs, float("-inf"))
        t = (teacher @ teacher.T / self.temperature).masked_fill(self_pairs, float("-inf"))
        p = F.softmax(t, dim=-1)
        # KL(p ‖ q) row by row; the masked entries (p = 0) contribute nothing
        log_ratio = (F.log_softmax(t, dim=-1) - F.log_softmax(s, dim=-1)).masked_fill(self_pairs, 0.0)
        return (p * log_ratio).sum(-1).mean()


class MarginInfoNCE(nn.Module):
    """Bidirectional in-batch softmax with an additive margin on the positive (LaBSE, Feng et al. 2022).

    Row i of en·zhᵀ should pick column i and column i should pick row i; subtracting `margin` from
    the positives' cosine before scaling makes the model separate them by at least that much.
    Optional hard negatives (more Chinese candidates) join the en→zh direction only.
    """

    def __init__(self, margin: float = 0.3, scale: float = 20.0, learnable_scale: bool = False):
        super().__init__()
        self.margin = margin
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)), requires_grad=learnable_scale)

    def forward(self, en: torch.Tensor, zh: torch.Tensor, hard_zh: torch.Tensor | None = None) -> torch.Tensor:
        n = len(en)
        sims = en @ zh.T - self.margin * torch.eye(n, device=en.device, dtype=en.dtype)
        scale = self.log_scale.exp()
        gold = torch.arange(n, device=en.device)
        rows = sims if hard_zh is None else torch.cat([sims, en @ hard_zh.T], dim=1)
        return (F.cross_entropy(scale * rows, gold) + F.cross_entropy(scale * sims.T, gold)) / 2


class GradientCache:
    """Large contrastive batches in small memory (Gao et al. 2021; sentence-transformers' CachedMNRL).

    1. embed the whole batch in mini-batches without a graph, remembering each one's RNG state;
    2. compute the loss on those embeddings and take its gradient with respect to them;
    3. re-embed each mini-batch with a graph (same RNG → same dropout) and backpropagate that
       gradient through it. The parameter gradients equal those of one big batch.
    """

    def __init__(self, embed: Callable[[dict], torch.Tensor], mini_batch: int):
        self.embed = embed
        self.mini_batch = mini_batch

    def _chunks(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        n = len(batch["input_ids"])
        return [{k: v[i : i + self.mini_batch] for k, v in batch.items()} for i in range(0, n, self.mini_batch)]

    def step(self, batches: list[dict[str, torch.Tensor]], loss_fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        """Backpropagate loss_fn(*embeddings of batches) into the model; returns the loss value."""
        if all(len(b["input_ids"]) <= self.mini_batch for b in batches):  # fits: one plain pass
            loss = loss_fn(*(self.embed(b) for b in batches))
            loss.backward()
            return loss.detach()
        chunked = [self._chunks(b) for b in batches]
        states, cached = [], []
        with torch.no_grad():
            for chunks in chunked:
                reps = []
                for chunk in chunks:
                    states.append(_rng_state())
                    reps.append(self.embed(chunk))
                cached.append(torch.cat(reps).requires_grad_(True))
        loss = loss_fn(*cached)
        loss.backward()
        state_iter = iter(states)
        for chunks, reps in zip(chunked, cached):
            start = 0
            for chunk in chunks:
                _set_rng_state(next(state_iter))
                out = self.embed(chunk)
                grad = reps.grad[start : start + len(out)]
                start += len(out)
                out.backward(grad)
        return loss.detach()


def _rng_state() -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def mask_tokens(
    input_ids: torch.Tensor, special: torch.Tensor, vocab_size: int, mask_id: int,
    probability: float = 0.15, generator: torch.Generator | None = None, word_ids: torch.Tensor | None = None,
    pieces: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick `probability` of the non-special tokens — whole words when `word_ids`
    (one id per token, −1 for none) is given; of the picked, 80 % become the mask token, 10 % a
    random token (of `pieces` when given, else of the whole vocabulary), 10 % stay. Returns
    (inputs, labels) with labels −100 where nothing is predicted.
    """
    shape = input_ids.shape
    if word_ids is None:
        picked = torch.rand(shape, generator=generator) < probability
    else:
        per_word = torch.rand((shape[0], int(word_ids.max()) + 2), generator=generator) < probability
        picked = torch.gather(per_word, 1, word_ids.clamp(min=0)) & (word_ids >= 0)
    picked &= ~special
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(shape, generator=generator)
    inputs = input_ids.clone()
    inputs[picked & (roll < 0.8)] = mask_id
    random_slots = picked & (roll >= 0.8) & (roll < 0.9)
    drawn = torch.randint(vocab_size if pieces is None else len(pieces), (int(random_slots.sum()),), generator=generator)
    inputs[random_slots] = (drawn if pieces is None else pieces[drawn]).to(input_ids.dtype)
    return inputs, labels


def tlm_inputs(first: list[int], second: list[int], first_lang: int, second_lang: int, bos: int, eos: int) -> dict[str, list[int]]:
    """One TLM sequence (Conneau & Lample 2019): <s> first </s> <s> second </s>.

    Positions restart at 0 for the second sentence so both halves look like sentence starts, and
    token types carry the language (e5 has two token-type embeddings: 0 = English, 1 = Chinese),
    so the model sees which half is which and can copy across.
    """
    a, b = [bos, *first, eos], [bos, *second, eos]
    return {
        "input_ids": a + b,
        "position_ids": list(range(len(a))) + list(range(len(b))),
        "token_type_ids": [first_lang] * len(a) + [second_lang] * len(b),
    }


class MaskedLM(nn.Module):
    """A language-model head for MLM and TLM: dense → GELU → LayerNorm → the (tied, frozen) word
    embeddings. e5 ships no such head, so it starts fresh and is only used while training.
    Logits are computed for the masked positions only: 250k-way softmaxes are the cost here.

    `pieces` (sorted piece ids) restricts the softmax to a vocabulary subset — the pieces the
    training text uses (`training.masked.corpus_pieces`): every label lies in it, so this is the
    exact softmax over the pieces that can occur, at a fraction of the 250k-way cost.
    """

    def __init__(self, word_embeddings: nn.Embedding, eps: float = 1e-12, pieces: torch.Tensor | None = None):
        super().__init__()
        hidden = word_embeddings.embedding_dim
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.decoder_weight = word_embeddings.weight
        size = word_embeddings.num_embeddings if pieces is None else len(pieces)
        self.bias = nn.Parameter(torch.zeros(size))
        self.pieces = None if pieces is None else pieces.long()
        if self.pieces is not None:  # piece id → its row in the subset (−1: not in it)
            position = torch.full((word_embeddings.num_embeddings,), -1, dtype=torch.long)
            position[self.pieces] = torch.arange(len(self.pieces))
            self.register_buffer("position", position, persistent=False)

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        where = labels != -100
        if not where.any():
            return hidden.sum() * 0.0
        h = self.norm(F.gelu(self.dense(hidden[where])))
        gold = labels[where]
        if self.pieces is None:
            return F.cross_entropy((h @ self.decoder_weight.T + self.bias).float(), gold)
        gold = self.position[gold]
        if bool((gold < 0).any()):
            raise ValueError("a masked label lies outside the head's pieces — build them from the same texts")
        weight = self.decoder_weight[self.pieces.to(h.device)]
        return F.cross_entropy((h @ weight.T + self.bias).float(), gold)
