"""Training round 2: multi-stage recipes, the corpus-vocabulary MLM softmax, mined hard negatives."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from core.errors import InputError
from training.config import load_config, stage_configs
from training.objectives import MarginInfoNCE, MaskedLM, mask_tokens

from .test_training import _WORDS, _metrics, _settings, write_parallel


@pytest.fixture
def parallel(tmp_path):
    return write_parallel(tmp_path)


# --- the corpus-vocabulary softmax ----------------------------------------------------------------


def test_a_head_over_a_piece_subset_is_the_softmax_over_those_rows():
    table = torch.nn.Embedding(30, 8)
    pieces = torch.tensor([2, 5, 7, 11, 19])
    head = MaskedLM(table, pieces=pieces)
    hidden = torch.randn(2, 4, 8)
    labels = torch.full((2, 4), -100)
    labels[0, 0], labels[1, 2] = 7, 19
    h = head.norm(F.gelu(head.dense(torch.stack([hidden[0, 0], hidden[1, 2]]))))
    expected = F.cross_entropy(h @ table.weight[pieces].T + head.bias, torch.tensor([2, 4]))  # rows of 7 and 19
    assert head(hidden, labels).item() == pytest.approx(expected.item(), rel=1e-5)
    labels[0, 1] = 3  # not a piece of the subset: a loud error, not a silent wrong label
    with pytest.raises(ValueError, match="outside the head's pieces"):
        head(hidden, labels)


def test_random_replacements_come_from_the_given_pieces():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 20, (64, 32))
    pieces = torch.tensor([10, 12, 14])
    inputs, labels = mask_tokens(ids, torch.zeros_like(ids, dtype=torch.bool), 1000, 4, 0.5, gen, pieces=pieces)
    changed = (inputs != ids) & (inputs != 4)
    assert changed.any() and set(inputs[changed].tolist()) <= {10, 12, 14}
    assert torch.equal(labels[labels != -100], ids[labels != -100])


def test_corpus_pieces_cover_every_label_the_losses_can_make(tiny_model_dir):
    from training.masked import corpus_pieces
    from training.student import Student

    student = Student(tiny_model_dir, 24)
    texts = ["the quick brown fox", "快速的棕色狐狸", "a b c"]
    pieces = corpus_pieces(student.tokenizer, texts, 24)
    ids = {i for row in student.tokenizer(texts)["input_ids"] for i in row}
    assert ids <= set(pieces.tolist()) and len(pieces) < len(student.tokenizer)
    assert pieces.tolist() == sorted(pieces.tolist())


def test_mlm_and_tlm_train_with_the_corpus_vocabulary(parallel, tiny_model_dir, tmp_path):
    from training.train import train

    out = tmp_path / "lm"
    settings = _settings(parallel, tiny_model_dir, out, **{
        "optim.max_steps": 3, "objectives.distill": 0, "objectives.contrastive": 0, "objectives.mlm": 1.0,
        "objectives.tlm": 1.0, "masking.vocabulary": "corpus", "data.dev_sets": "[]",
    })
    train(load_config(None, settings), progress=False)
    rows = [r for r in _metrics(out) if r["loss"]]
    assert len(rows) == 3 and all(float(r["mlm"]) > 0 and float(r["tlm"]) > 0 for r in rows)
    with pytest.raises(InputError, match="masking.vocabulary"):
        load_config(None, ["masking.vocabulary=tiny"])


# --- hard negatives ---------------------------------------------------------------------------------


def _qp_pairs(n: int = 40) -> list[tuple[str, str]]:
    words = list(_WORDS)
    return [(words[i % len(words)] + f" {i}", " ".join(words[(i + j) % len(words)] for j in range(6)) + f" {i}") for i in range(n)]


def test_mined_negatives_are_never_the_querys_own_passages_and_score_below_the_ceiling(tiny_model_dir, tmp_path):
    from training.hard_negatives import mine, with_negatives
    from training.student import Student

    student = Student(tiny_model_dir, 24)
    pairs = _qp_pairs()
    pairs += [(q, p.upper()) for q, p in pairs[:5]]  # a query with two passages: neither is its negative
    negatives = mine(student, pairs, tmp_path, ceiling=0.95)
    assert len(negatives) == len(pairs) and sum(n is not None for n in negatives) > len(pairs) // 2
    own: dict[str, set[str]] = {}
    for q, p in pairs:
        own.setdefault(q, set()).add(p)
    for (q, _), n in zip(pairs, negatives):
        if n is None:
            continue
        assert n not in own[q]
        qv, nv = student.encode([q], "query")[0], student.encode([n], "passage")[0]
        best_own = max(float(qv @ student.encode([o], "passage")[0]) for o in own[q])
        assert float(qv @ nv) < best_own - 0.05 * abs(best_own) + 1e-5
    cached = list(tmp_path.glob("hard-negatives-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == negatives
    assert mine(student, pairs, tmp_path, ceiling=0.95) == negatives  # read back, not mined again
    triples = with_negatives(pairs, negatives)
    assert len(triples) == sum(n is not None for n in negatives) and all(len(t) == 3 for t in triples)


def test_a_hard_negative_raises_the_loss_it_competes_in():
    en = F.normalize(torch.randn(4, 8), dim=-1)
    zh = F.normalize(en + 0.1 * torch.randn(4, 8), dim=-1)
    loss = MarginInfoNCE(0.0, 20.0)
    easy = F.normalize(-en, dim=-1)  # far from every query
    hard = F.normalize(en + 0.05 * torch.randn(4, 8), dim=-1)  # as close as the positives
    assert loss(en, zh, easy) < loss(en, zh, hard)


def test_retrieval_with_hard_negatives_trains(parallel, tiny_model_dir, tmp_path):
    from training.train import train

    (tmp_path / "qp.tsv").write_text("".join(f"{q}\t{p}\n" for q, p in _qp_pairs()), encoding="utf-8")
    out = tmp_path / "hard"
    settings = _settings(parallel, tiny_model_dir, out, **{
        "optim.max_steps": 6, "objectives.retrieval": 1.0, "data.retrieval_pairs": f"[{tmp_path / 'qp.tsv'}]",
        "data.hard_negatives": True, "data.hard_negative_ceiling": 1.0, "eval_every": 100,
    })
    summary = train(load_config(None, settings), progress=False)
    assert 10 <= summary["retrieval_pairs"] <= 40  # the pairs that got a negative (any passage scoring below their own)
    assert list(out.glob("hard-negatives-*.json"))
    assert len([r for r in _metrics(out) if r.get("retrieval")]) == 6


# --- stages -----------------------------------------------------------------------------------------


def test_stages_lay_their_keys_over_the_recipe_and_chain_their_models(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "out_dir: runs/two\nmodel: {base: trained}\noptim: {lr: 1.0e-4, batch_size: 8}\n"
        "stages:\n  lm:\n    objectives: {distill: 0, mlm: 1.0}\n    optim: {lr: 5.0e-5}\n"
        "  contrastive:\n    objectives: {contrastive: 1.0}\n", encoding="utf-8")
    cfg = load_config(recipe)
    lm, con = stage_configs(cfg)
    assert (lm.out_dir, con.out_dir) == ("runs/two/lm", "runs/two/contrastive")
    assert lm.model.base == "trained" and con.model.base == "runs/two/lm/model"
    assert (lm.optim.lr, lm.optim.batch_size, con.optim.lr) == (5e-5, 8, 1e-4)
    assert (lm.objectives.mlm, lm.objectives.distill, con.objectives.contrastive, con.objectives.distill) == (1.0, 0.0, 1.0, 1.0)
    assert cfg.model.base == "trained", "the recipe itself is not changed by its stages"
    recipe.write_text("stages:\n  lm:\n    optim: {lrr: 1}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"stage 'lm': unknown key 'optim.lrr'"):
        load_config(recipe)
    recipe.write_text("stages:\n  lm: 3\n", encoding="utf-8")
    with pytest.raises(InputError, match="'stages' must map names"):
        load_config(recipe)


def test_a_two_stage_recipe_runs_each_stage_from_the_last_and_resumes_past_finished_ones(parallel, tiny_model_dir, tmp_path):
    from training.stages import train_recipe

    out = tmp_path / "chain"
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(
        "stages:\n  lm:\n    objectives: {distill: 0, contrastive: 0, mlm: 1.0, tlm: 1.0}\n    masking: {vocabulary: corpus}\n"
        "    optim: {max_steps: 3}\n  contrastive:\n    optim: {max_steps: 4}\n", encoding="utf-8")
    settings = [s for s in _settings(parallel, tiny_model_dir, out) if not s.startswith("optim.max_steps")]
    summary = train_recipe(load_config(recipe, settings), progress=False, stop_at=2)
    assert [s["stage"] for s in summary["stages"]] == ["lm"] and not summary["finished"]
    summary = train_recipe(load_config(recipe, settings), resume=True, progress=False)
    assert [s["stage"] for s in summary["stages"]] == ["lm", "contrastive"] and summary["finished"]
    assert summary["steps"] == 7 and summary["model"] == str(out / "contrastive" / "model")
    info = json.loads((out / "contrastive" / "model" / "xlsearch_model.json").read_text())
    assert str(out / "lm" / "model") in json.dumps(info), "the second stage trained from the first stage's model"
    again = train_recipe(load_config(recipe, settings), resume=True, progress=False)
    assert again["model"] == summary["model"] and again["elapsed_s"] == summary["elapsed_s"], "nothing is run twice"


def test_retrieval_passages_get_their_own_token_budget(parallel, tiny_model_dir, tmp_path):
    """Passages are cut at data.passage_max_tokens, not at the sentence budget."""
    from training.student import Student
    from training.train import train

    student = Student(tiny_model_dir, 8)
    long = " ".join(list(_WORDS) * 3)
    assert student.tokenize([long])["input_ids"].shape[1] == 8
    assert student.tokenize([long], max_tokens=40)["input_ids"].shape[1] == 40
    rows = [(q, " ".join([p] * 6)) for q, p in _qp_pairs()]
    (tmp_path / "qp.tsv").write_text("".join(f"{q}\t{p}\n" for q, p in rows), encoding="utf-8")
    settings = _settings(parallel, tiny_model_dir, tmp_path / "long", **{
        "optim.max_steps": 2, "objectives.retrieval": 1.0, "data.retrieval_pairs": f"[{tmp_path / 'qp.tsv'}]",
        "data.passage_max_tokens": 64, "data.hard_negatives": True, "data.hard_negatives_from": str(tiny_model_dir),
        "data.hard_negative_ceiling": 1.0, "eval_every": 100,
    })
    assert train(load_config(None, settings), progress=False)["finished"]
