"""Training: each objective's maths on hand-made tensors, the data plumbing, and short real runs
of the loop on the tiny random model (loss goes down; a paused and resumed run equals one run)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import load_file

from cli import cli
from core.errors import InputError
from core.pairs import read_any_pairs
from training.config import TrainConfig, load_config
from training.data import batch_plan, read_monolingual, sample_pairs, training_pairs
from training.objectives import (
    Distillation,
    GradientCache,
    MarginInfoNCE,
    MaskedLM,
    NeighbourDistillation,
    mask_tokens,
    pair_targets,
    tlm_inputs,
)

# --- objectives ----------------------------------------------------------------------------------


def test_masking_statistics_follow_bert():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (200, 100), generator=gen)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    inputs, labels = mask_tokens(ids, special, vocab_size=1000, mask_id=4, probability=0.15, generator=gen)
    picked = labels != -100
    assert not picked[special].any(), "special tokens are never predicted"
    assert picked.float().mean().item() == pytest.approx(0.15 * 98 / 100, abs=0.005)
    assert torch.equal(labels[picked], ids[picked])
    n = picked.sum().item()
    masked = (inputs == 4) & picked
    kept = (inputs == ids) & picked
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.02)
    # kept ≈ 10 % + the random draws that hit the same id (≈ 0.1 % here)
    assert kept.sum().item() / n == pytest.approx(0.1, abs=0.015)
    assert torch.equal(inputs[~picked], ids[~picked]), "unpicked tokens are untouched"


def test_whole_word_masking_is_all_or_nothing_per_word():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 1000, (50, 30), generator=gen)
    words = torch.arange(30).div(3, rounding_mode="floor").repeat(50, 1)  # 10 words of 3 tokens
    words[:, 0] = -1  # a special token belongs to no word
    special = words < 0
    _, labels = mask_tokens(ids, special, 1000, 4, 0.3, gen, word_ids=words)
    picked = labels != -100
    assert not picked[:, 0].any()
    for w in range(1, 10):  # words 1..9 are whole (word 0 lost its first token to the special)
        cols = picked[:, 3 * w : 3 * w + 3]
        assert (cols.all(1) | ~cols.any(1)).all(), f"word {w} is partly masked"
    assert picked[:, 3:].float().mean().item() == pytest.approx(0.3, abs=0.05)


def test_tlm_inputs_reset_positions_and_mark_languages():
    row = tlm_inputs([11, 12, 13], [21, 22], first_lang=0, second_lang=1, bos=0, eos=2)
    assert row["input_ids"] == [0, 11, 12, 13, 2, 0, 21, 22, 2]
    assert row["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert row["token_type_ids"] == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_pair_targets_remove_each_languages_offset_per_group():
    g = torch.Generator().manual_seed(0)
    en = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=-1)
    groups = ["query", "passage"] * 3
    offset = {"query": torch.tensor([3.0, 0, 0, 0]), "passage": torch.tensor([0, 0, -2.0, 0])}
    zh = en + torch.stack([offset[k] for k in groups])  # the same meanings, shifted by language and mode
    t = pair_targets(en, zh, groups)
    assert torch.allclose(t.norm(dim=-1), torch.ones(6))
    # the offsets vanish: the target is each English vector centred within its own group
    for k in ("query", "passage"):
        rows = [i for i, x in enumerate(groups) if x == k]
        want = torch.nn.functional.normalize(en[rows] - en[rows].mean(0), dim=-1)
        assert torch.allclose(t[rows], want, atol=1e-6)


def test_pair_targets_are_the_mean_of_both_views():
    en = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    zh = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # means are 0: centring changes nothing
    t = pair_targets(en, zh, ["query", "query"])
    s = 2 ** -0.5
    assert torch.allclose(t, torch.tensor([[s, s], [-s, -s]]))


def test_distillation_is_squared_distance_to_the_target():
    teacher = torch.tensor([[1.0, 0.0]])
    assert Distillation()(teacher, teacher, teacher).item() == 0.0
    # zh orthogonal to the teacher: |zh − t|² = 2 − 2·cos = 2
    assert Distillation()(teacher, torch.tensor([[0.0, 1.0]]), teacher).item() == pytest.approx(2.0)
    # both sides are pulled to the target, not to each other
    assert Distillation()(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]]), teacher).item() == pytest.approx(4.0)


def test_neighbour_distillation_is_zero_only_for_the_teachers_ranking():
    unit = lambda x: F.normalize(x, dim=-1)  # noqa: E731
    torch.manual_seed(0)
    teacher = unit(torch.randn(4, 2, 8))
    en, zh = teacher[:, 0].clone(), teacher[:, 1].clone()
    loss = NeighbourDistillation(0.1)
    assert loss(en, zh, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # a rotation keeps every similarity, so the ranking is the teacher's although no vector is
    rotation = torch.linalg.qr(torch.randn(8, 8))[0]
    assert loss(en @ rotation, zh @ rotation, teacher).item() == pytest.approx(0.0, abs=1e-5)
    assert Distillation()(en @ rotation, zh @ rotation, teacher).item() > 0.1
    # one pair: a text and its translation are left out, so nothing is left to rank
    assert loss(unit(torch.tensor([[1.0, 0.0]])), unit(torch.tensor([[1.0, 1.0]])), unit(torch.tensor([[0.0, 1.0]]))).item() == 0.0
    # two pairs: each text's two neighbours (the other pair), ranked like the teacher or reversed
    t = unit(torch.tensor([[[1.0, 0.0], [1.0, 0.1]], [[0.0, 1.0], [0.1, 1.0]]]))
    assert loss(t[:, 0], t[:, 1], t).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(t[:, 1], t[:, 0], t).item() > 0.0  # the sides swapped: each text's nearer neighbour changes
    # a shuffled student disagrees, and the gradient moves it towards the teacher's ranking
    student = unit(torch.randn(8, 8)).requires_grad_(True)
    before = loss(student[:4], student[4:], teacher)
    before.backward()
    with torch.no_grad():
        moved = unit(student - 0.5 * student.grad)
    assert before.item() > 0.1 and loss(moved[:4], moved[4:], teacher).item() < before.item()


def test_margin_infonce_hand_values_and_margin_effect():
    en = torch.eye(2)
    zh = torch.eye(2)  # each positive has cosine 1, each negative 0
    s, m = 10.0, 0.3
    expected = math.log(1 + math.exp(-(1 - m) * s))  # −log(e^{s(1−m)} / (e^{s(1−m)} + e^0))
    assert MarginInfoNCE(m, s)(en, zh).item() == pytest.approx(expected, rel=1e-4)
    assert MarginInfoNCE(0.0, s)(en, zh).item() == pytest.approx(math.log(1 + math.exp(-s)), rel=1e-3)
    assert MarginInfoNCE(m, s)(en, zh) > MarginInfoNCE(0.0, s)(en, zh), "the margin makes the same batch cost more"


def test_margin_infonce_is_bidirectional_and_takes_hard_negatives():
    en = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=-1)
    zh = F.normalize(torch.tensor([[1.0, 0.2], [0.0, 1.0]]), dim=-1)
    loss = MarginInfoNCE(0.3, 20.0)
    sims = en @ zh.T - 0.3 * torch.eye(2)
    gold = torch.arange(2)
    by_hand = (F.cross_entropy(20 * sims, gold) + F.cross_entropy(20 * sims.T, gold)) / 2
    assert loss(en, zh).item() == pytest.approx(by_hand.item(), rel=1e-5)
    hard = F.normalize(torch.tensor([[1.0, 0.1]]), dim=-1)  # close to en[0]: a hard negative
    assert loss(en, zh, hard_zh=hard) > loss(en, zh)


def test_learnable_scale_gets_a_gradient_only_when_asked():
    en, zh = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    fixed, learnable = MarginInfoNCE(learnable_scale=False), MarginInfoNCE(learnable_scale=True)
    assert not fixed.log_scale.requires_grad
    learnable(en, zh).backward()
    assert learnable.log_scale.grad is not None and learnable.log_scale.grad.item() != 0


class _Embedder(torch.nn.Module):
    """A stand-in encoder: an embedding table, dropout, mean pooling, unit length."""

    def __init__(self, dropout: float):
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(50, 8)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, batch):
        return F.normalize(self.drop(self.table(batch["input_ids"])).mean(1), dim=-1)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradient_cache_matches_one_big_batch(dropout):
    """The cached step's gradient equals backpropagating through the same embeddings with a graph.

    The reference embeds the same chunks in the same order from the same seed, so with dropout on
    it sees the same masks as the cache's first pass; the cache matches it only if its second pass
    replays each chunk's RNG state.
    """
    gen = torch.Generator().manual_seed(3)
    a = {"input_ids": torch.randint(50, (12, 5), generator=gen)}
    b = {"input_ids": torch.randint(50, (12, 5), generator=gen)}
    loss_fn = MarginInfoNCE(0.3, 20.0)
    mini = 5

    reference = _Embedder(dropout)
    torch.manual_seed(7)
    chunks = lambda batch: [{"input_ids": batch["input_ids"][i : i + mini]} for i in range(0, 12, mini)]  # noqa: E731
    ref_loss = loss_fn(*(torch.cat([reference(c) for c in chunks(x)]) for x in (a, b)))
    ref_loss.backward()

    cached = _Embedder(dropout)
    torch.manual_seed(7)
    loss = GradientCache(cached, mini).step([a, b], loss_fn)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    assert torch.allclose(cached.table.weight.grad, reference.table.weight.grad, atol=1e-6)
    if dropout == 0.0:  # without dropout, chunking does not matter at all: one plain pass agrees
        plain = _Embedder(0.0)
        GradientCache(plain, 100).step([a, b], loss_fn)
        assert torch.allclose(plain.table.weight.grad, reference.table.weight.grad, atol=1e-6)


def test_masked_lm_scores_only_masked_positions():
    table = torch.nn.Embedding(20, 8)
    head = MaskedLM(table)
    hidden = torch.randn(2, 5, 8)
    labels = torch.full((2, 5), -100)
    assert head(hidden, labels).item() == 0.0  # nothing masked: zero loss, still differentiable
    labels[0, 1], labels[1, 3] = 7, 11
    h = head.norm(F.gelu(head.dense(torch.stack([hidden[0, 1], hidden[1, 3]]))))
    expected = F.cross_entropy(h @ table.weight.T + head.bias, torch.tensor([7, 11]))
    assert head(hidden, labels).item() == pytest.approx(expected.item(), rel=1e-5)
    assert head.decoder_weight is table.weight, "the output layer is tied to the word embeddings"


# --- config --------------------------------------------------------------------------------------


def test_recipe_loads_with_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\noptim:\n  batch_size: 8\n  lr: 1.0e-4\nobjectives:\n  contrastive: 1\n")
    cfg = load_config(recipe, ["optim.max_steps=20", "data.files=[a, b]"])
    assert isinstance(cfg, TrainConfig)
    assert (cfg.optim.batch_size, cfg.optim.lr, cfg.optim.max_steps) == (8, 1e-4, 20)
    assert cfg.objectives.contrastive == 1.0 and isinstance(cfg.objectives.contrastive, float)
    assert cfg.data.files == ["a", "b"]
    assert cfg.optim.epochs == 1  # untouched defaults stay
    # YAML 1.1 reads 3e-4 (no dot) as a string: a float key takes it as the number it is
    assert load_config(recipe, ["optim.lr=3e-4"]).optim.lr == 3e-4


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted(Path(__file__).parent.parent.joinpath("training", "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        load_config(path)


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("optim:\n  batchsize: 8\n", [], "unknown key 'optim.batchsize'"),
        ("optim:\n  batch_size: eight\n", [], "'optim.batch_size' = 'eight' — expected int"),
        ("optim: 3\n", [], "'optim' must be a mapping"),
        ("name: [unclosed\n", [], "not valid YAML"),
        ("", ["optim.max_steps"], "expected KEY=VALUE"),
        ("", ["model.freeze_word_embeddings=maybe"], "expected bool"),
        ("", ["optim.lr=fast"], "'optim.lr' = 'fast' — expected float"),
    ],
)
def test_recipe_mistakes_name_the_key(tmp_path, text, overrides, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        load_config(recipe, overrides)


# --- data ----------------------------------------------------------------------------------------


def test_pair_readers_and_sampling(tmp_path):
    (tmp_path / "a.tsv").write_text("".join(f"en {i}\tzh {i}\n" for i in range(10)), encoding="utf-8")
    (tmp_path / "b.tsv").write_text("one\t一\n", encoding="utf-8")
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"en": "two", "zh": "二"}\n\n{"english": "three", "chinese": "三"}\n', encoding="utf-8")
    assert read_any_pairs(jsonl) == [("two", "二"), ("three", "三")]
    pairs = training_pairs(tmp_path, [], per_file=4, extra=[str(jsonl)], seed=0)
    assert len(pairs) == 4 + 1 + 2 and pairs[-2:] == [("two", "二"), ("three", "三")]
    assert pairs == training_pairs(tmp_path, [], 4, [str(jsonl)], 0), "seeded: same sample every time"
    sample = sample_pairs(list(range(100)), 10, seed=1)
    assert sample == sorted(sample) and len(set(sample)) == 10


def test_long_pairs_are_a_second_sample_of_paragraphs(tmp_path):
    short = [(f"en {i}", f"zh {i}") for i in range(20)]
    paragraphs = [("word " * 80 + str(i), f"段落 {i}") for i in range(6)]
    (tmp_path / "a.tsv").write_text("".join(f"{e}\t{z}\n" for e, z in short + paragraphs), encoding="utf-8")
    pairs = training_pairs(tmp_path, [], per_file=5, extra=[], seed=0, long_per_file=3, long_chars=300)
    first, extra = pairs[:5], pairs[5:]
    assert len(extra) == 3 and all(p in paragraphs for p in extra), "only pairs of ≥ 300 English characters"
    assert not set(first) & set(extra), "a pair is never taken twice"
    assert training_pairs(tmp_path, [], 5, [], 0, long_per_file=100)[5:] == [p for p in paragraphs if p not in first]


@pytest.mark.parametrize(
    "line, message",
    [('{"en": "x"}', 'line 1: expected an object with non-empty "en" and "zh"'), ("{oops", "line 1: invalid JSON")],
)
def test_bad_jsonl_pairs_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_any_pairs(path)


def test_monolingual_from_text_files_and_an_index(tmp_path, tiny_model_dir):
    text = tmp_path / "notes.txt"
    text.write_text("first line\n\n  第二行  \n", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("the quick brown fox. 快速的棕色狐狸。", encoding="utf-8")
    db = tmp_path / "idx"
    r = CliRunner().invoke(cli, ["-q", "index", str(docs), "--db", str(db), "--model", str(tiny_model_dir)])
    assert r.exit_code == 0, r.output
    texts = read_monolingual([str(text), str(db)])
    assert texts[:2] == ["first line", "第二行"]
    assert "".join(texts[2:]).replace(" ", "") == "thequickbrownfox.快速的棕色狐狸。", "the index's chunk texts"
    with pytest.raises(InputError, match="no such file"):
        read_monolingual([str(tmp_path / "missing.txt")])


def test_batch_plan_is_seeded_full_and_length_bucketed():
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(1000)]
    plan = batch_plan(lengths, 10, seed=5, bucket_batches=10)
    assert plan == batch_plan(lengths, 10, seed=5, bucket_batches=10)
    assert plan != batch_plan(lengths, 10, seed=6, bucket_batches=10)
    assert all(len(b) == 10 for b in plan) and len(plan) == 100
    assert sorted(i for b in plan for i in b) == list(range(1000)), "each example once per epoch"
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plan) / len(plan)
    assert spread < 20, "batches hold sentences of similar length (random batches spread ≈ 80)"


# --- the loop, on the tiny model -----------------------------------------------------------------

_WORDS = dict(zip(
    "the quick brown fox jumps over lazy dog search engines rank documents by relevance to a query".split(),
    "的快棕狐跳过懒狗搜引排文按相对一查",
))


@pytest.fixture
def parallel(tmp_path):
    return write_parallel(tmp_path)


def write_parallel(tmp_path):
    """Train and dev TSV files of made-up pairs: random English words and their word-for-word
    Chinese "translation" (one character each) — learnable, and inside the tiny model's vocabulary."""
    rng = random.Random(0)

    def pairs(n):
        lines = []
        for _ in range(n):
            words = rng.choices(list(_WORDS), k=rng.randint(3, 9))
            lines.append(f"{' '.join(words)}\t{''.join(_WORDS[w] for w in words)}\n")
        return "".join(lines)

    for split, n in (("train", 128), ("dev", 24)):
        (tmp_path / split).mkdir()
        (tmp_path / split / "salad.tsv").write_text(pairs(n), encoding="utf-8")
    return tmp_path


def _settings(parallel, tiny_model_dir, out, **extra) -> list[str]:
    values = {
        "out_dir": out, "model.base": tiny_model_dir, "data.train_dir": parallel / "train", "data.dev_dir": parallel / "dev",
        "data.dev_pairs": 24, "data.max_tokens": 24, "optim.batch_size": 8, "optim.epochs": 2, "optim.max_steps": 20, "optim.lr": 1e-2,
        "model.freeze_word_embeddings": False,
        "optim.warmup_steps": 2, "objectives.contrastive": 1.0, "contrastive.mini_batch": 4, "log_every": 1,
        "eval_every": 10, "checkpoint_every": 5, "threads": 1, **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def _metrics(out):
    import csv

    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_twenty_steps_lower_the_loss_and_a_resumed_run_equals_one_run(parallel, tiny_model_dir, tmp_path):
    from training.train import train

    whole = tmp_path / "whole"
    summary = train(load_config(None, _settings(parallel, tiny_model_dir, whole)), progress=False)
    assert summary["finished"] and summary["steps"] == 20
    rows = [r for r in _metrics(whole) if r["loss"]]
    first, last = [float(r["loss"]) for r in rows[:5]], [float(r["loss"]) for r in rows[-5:]]
    assert sum(last) / 5 < 0.9 * sum(first) / 5, f"loss did not go down: {first} → {last}"
    checks = [r for r in _metrics(whole) if r["dev_bitext"]]
    assert [int(r["step"]) for r in checks] == [0, 10, 20]
    assert (whole / "metrics.png").stat().st_size > 0
    model = whole / "model"
    assert (model / "trained.safetensors").exists() and (model / "xlsearch_model.json").exists()

    split = tmp_path / "split"
    cfg = load_config(None, _settings(parallel, tiny_model_dir, split))
    paused = train(cfg, progress=False, stop_at=10)
    assert not paused["finished"] and paused["steps"] == 10 and not (split / "model").exists()
    with pytest.raises(InputError, match="pass --resume"):
        train(cfg, progress=False)
    with (split / "metrics.csv").open("a") as f:  # a row the run wrote after its checkpoint, then died
        f.write("12,0,9.9,0.001,9.99,,,,,,,\n")
    resumed = train(cfg, resume=True, progress=False)
    assert resumed["finished"] and resumed["steps"] == 20
    assert [r["step"] for r in _metrics(split)] == [r["step"] for r in _metrics(whole)], "each step logged once"
    a, b = load_file(str(model / "model.safetensors")), load_file(str(split / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), f"{name} differs after resume"


def test_a_trained_folder_is_a_working_model_and_its_patch_rebuilds_it(parallel, tiny_model_dir, tmp_path):
    from models.modelfolder import apply_patch
    from models.torch_encoder import TorchEncoder
    from training.train import train

    out = tmp_path / "run"
    train(load_config(None, _settings(parallel, tiny_model_dir, out, **{"optim.max_steps": 3})), progress=False)
    model = out / "model"
    trained = TorchEncoder(model).encode(["the quick brown fox", "快速的棕色狐狸"], kind="query")
    base = TorchEncoder(tiny_model_dir).encode(["the quick brown fox", "快速的棕色狐狸"], kind="query")
    assert trained.shape == base.shape and not torch.allclose(torch.as_tensor(trained), torch.as_tensor(base))
    rebuilt = apply_patch(tiny_model_dir, model / "trained.safetensors", tmp_path / "rebuilt", {"name": "rebuilt"})
    again = TorchEncoder(rebuilt).encode(["the quick brown fox", "快速的棕色狐狸"], kind="query")
    assert torch.allclose(torch.as_tensor(again), torch.as_tensor(trained), atol=2e-3), "fp16 patch ≈ the trained weights"
    assert json.loads((rebuilt / "xlsearch_model.json").read_text())["name"] == "rebuilt"

    from training.blend import blend

    base_w = load_file(str(tiny_model_dir / "model.safetensors"))
    trained_w = load_file(str(model / "model.safetensors"))
    half = load_file(str(blend(model, 0.5, tmp_path / "blend") / "model.safetensors"))
    patched = load_file(str(model / "trained.safetensors"))
    for name in patched:  # trained tensors land halfway; the rest stay the base's
        assert torch.allclose(half[name], (base_w[name] + trained_w[name]) / 2, atol=2e-3), name
    assert all(torch.equal(half[name], base_w[name]) for name in base_w if name not in patched)


def test_mlm_and_tlm_steps_run(parallel, tiny_model_dir, tmp_path):
    from training.train import train

    out = tmp_path / "lm"
    settings = _settings(parallel, tiny_model_dir, out, **{
        "optim.max_steps": 3, "objectives.distill": 0, "objectives.contrastive": 0, "objectives.mlm": 1.0,
        "objectives.tlm": 1.0, "masking.whole_word": True, "data.dev_sets": "[]",
    })
    train(load_config(None, settings), progress=False)
    rows = [r for r in _metrics(out) if r["loss"]]
    assert len(rows) == 3 and all(float(r["mlm"]) > 0 and float(r["tlm"]) > 0 for r in rows)


def test_train_command(parallel, tiny_model_dir, tmp_path):
    out = tmp_path / "cli"
    settings = _settings(parallel, tiny_model_dir, out, **{"optim.max_steps": 4})
    args = ["-q", "train", "--json", "--stop-at-step", "2"] + [a for s in settings for a in ("--set", s)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 2
    r = CliRunner().invoke(cli, [*args[:2], "--resume", *args[5:]])
    assert r.exit_code == 0, r.output
    assert "4/4 steps" in r.stdout and "model:" in r.stdout
    r = CliRunner().invoke(cli, ["-q", "train", "--set", "optim.bogus=1"])
    assert r.exit_code != 0 and "unknown key 'optim.bogus'" in r.output and "Traceback" not in r.output


# --- the shipping rule ---------------------------------------------------------------------------


def _result(value: float, same: float) -> dict:
    row = {"set": "news", "pairs": 10, **dict.fromkeys(("bitext_en_zh", "bitext_zh_en", "bias_top10_en", "bias_top10_zh"), value)}
    return {"model": "m", "sets": [row], "same_language": {"en": {"items": 30, "r1": same, "mrr10": same}, "zh": None}}


def test_shipping_rule_needs_better_on_every_set_and_same_language_kept():
    from training.compare import markdown_table, verdict

    base = _result(0.8, 0.90)
    assert verdict(base, _result(0.9, 0.895)) == []  # better everywhere, same-language within a point
    assert any("bitext_en_zh: 0.800 ≤ base 0.800" in f for f in verdict(base, _result(0.8, 0.9))), "a tie is not better"
    assert any("same-language en" in f for f in verdict(base, _result(0.9, 0.88)))
    assert verdict(base, {**_result(0.9, 0.9), "sets": []}) == ["news: not evaluated"]
    table = markdown_table([("base", base), ("trained", _result(0.9, 0.9))])
    assert "| news | 0.800 / 0.800 | 0.800 / 0.800 | 0.900 / 0.900 |" in table


def test_replacing_the_default_allows_a_point_per_cell_and_nothing_on_same_language():
    from training.compare import replacement_verdict

    default = _result(0.95, 0.90)
    assert replacement_verdict(default, _result(0.94, 0.90)) == []  # one point down per cell is allowed
    assert any("bitext_en_zh: 0.930 < default 0.950" in f for f in replacement_verdict(default, _result(0.93, 0.91)))
    assert replacement_verdict(default, _result(0.96, 0.899)) == ["same-language en MRR@10: 0.899 < default 0.900"]


# --- LoRA ----------------------------------------------------------------------------------------


def test_lora_starts_at_the_base_and_merges_exactly():
    from training.lora import add_lora, lora_patch, merged_state_dict

    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("query", torch.nn.Linear(6, 4))
    model.add_module("other", torch.nn.Linear(4, 4))
    x = torch.randn(3, 6)
    before = model(x)
    assert add_lora(model, rank=2, alpha=4.0, targets=["query"]) == ["query"]
    assert torch.equal(model(x), before), "B starts at zero: the adapted model is the base"
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["query.lora_A", "query.lora_B"]
    with torch.no_grad():
        model.query.lora_B.normal_()
    adapted = model(x)
    plain = torch.nn.Sequential()
    plain.add_module("query", torch.nn.Linear(6, 4))
    plain.add_module("other", torch.nn.Linear(4, 4))
    plain.load_state_dict(merged_state_dict(model))
    assert torch.allclose(plain(x), adapted, atol=1e-5)
    patch = lora_patch(model)
    delta = patch["query.lora_B"] @ patch["query.lora_A"]
    assert torch.allclose(plain.query.weight, model.query.base.weight + delta, atol=1e-6)


def test_a_lora_run_ships_only_adapters_that_rebuild_the_model(parallel, tiny_model_dir, tmp_path):
    from models.modelfolder import apply_patch
    from models.torch_encoder import TorchEncoder
    from training.train import train

    out = tmp_path / "lora"
    settings = _settings(parallel, tiny_model_dir, out, **{"optim.max_steps": 4, "model.lora_rank": 4, "optim.lr": 5e-2})
    train(load_config(None, settings), progress=False)
    patch = load_file(str(out / "model" / "trained.safetensors"))
    assert patch and all(k.endswith((".lora_A", ".lora_B")) for k in patch)
    assert {k.rsplit(".", 2)[-2] for k in patch} == {"query", "value"}
    texts = ["the quick brown fox", "快速的棕色狐狸"]
    trained = TorchEncoder(out / "model").encode(texts, "query")
    assert not torch.allclose(torch.as_tensor(trained), torch.as_tensor(TorchEncoder(tiny_model_dir).encode(texts, "query")))
    rebuilt = apply_patch(tiny_model_dir, out / "model" / "trained.safetensors", tmp_path / "rebuilt", {"name": "rebuilt"})
    assert torch.allclose(torch.as_tensor(TorchEncoder(rebuilt).encode(texts, "query")), torch.as_tensor(trained), atol=2e-3)


def test_a_shallower_student_learns_from_a_named_teacher_and_ships_as_a_patch(parallel, tiny_model_dir, tmp_path):
    """keep_layers cuts the student down; same_text distils each side onto the teacher's own
    vector of that text; the patch rebuilds the shallow model from the full-depth base."""
    from models.modelfolder import apply_patch, patch_info
    from models.torch_encoder import TorchEncoder
    from training.train import train

    out = tmp_path / "student"
    settings = _settings(parallel, tiny_model_dir, out, **{
        "optim.max_steps": 4, "model.keep_layers": [1], "distill.target": "same_text", "distill.teacher": str(tiny_model_dir),
    })
    train(load_config(None, settings), progress=False)
    model = out / "model"
    assert json.loads((model / "config.json").read_text())["num_hidden_layers"] == 1
    assert patch_info(model / "trained.safetensors")["num_hidden_layers"] == 1
    student = TorchEncoder(model)
    assert len(student.model[0].auto_model.encoder.layer) == 1
    rebuilt = apply_patch(tiny_model_dir, model / "trained.safetensors", tmp_path / "rebuilt", {"name": "rebuilt"})
    assert json.loads((rebuilt / "config.json").read_text())["num_hidden_layers"] == 1
    texts = ["the quick brown fox", "快速的棕色狐狸"]
    assert torch.allclose(torch.as_tensor(TorchEncoder(rebuilt).encode(texts)), torch.as_tensor(student.encode(texts)), atol=2e-3)


def test_a_student_trained_further_from_its_shallow_folder_still_ships_as_a_shallow_patch(parallel, tiny_model_dir, tmp_path):
    """cpu-fast-student-long.yaml starts from the 6-layer folder itself: its config already says 6
    layers, but the patch is laid over the full-depth base, so it must still name its depth."""
    from models.modelfolder import apply_patch, patch_info
    from models.torch_encoder import TorchEncoder
    from training.train import train

    first = tmp_path / "first"
    train(load_config(None, _settings(parallel, tiny_model_dir, first, **{"optim.max_steps": 2, "model.keep_layers": [1]})), progress=False)
    further = tmp_path / "further"
    settings = _settings(parallel, tiny_model_dir, further, **{
        "optim.max_steps": 2, "model.base": str(first / "model"), "distill.target": "same_text", "distill.teacher": str(tiny_model_dir),
    })
    train(load_config(None, settings), progress=False)
    assert patch_info(further / "model" / "trained.safetensors")["num_hidden_layers"] == 1
    rebuilt = apply_patch(tiny_model_dir, further / "model" / "trained.safetensors", tmp_path / "rebuilt", {"name": "rebuilt"})
    texts = ["the quick brown fox", "快速的棕色狐狸"]
    expected = TorchEncoder(further / "model").encode(texts)
    assert torch.allclose(torch.as_tensor(TorchEncoder(rebuilt).encode(texts)), torch.as_tensor(expected), atol=2e-3)


def test_keep_layers_and_distill_target_are_checked(parallel, tiny_model_dir, tmp_path):
    from training.train import train

    with pytest.raises(InputError, match=r"model.keep_layers: \[1, 0\] — expected increasing layer numbers from 0 to 1"):
        train(load_config(None, _settings(parallel, tiny_model_dir, tmp_path / "a", **{"model.keep_layers": [1, 0]})), progress=False)
    with pytest.raises(InputError, match="expected a list of int"):
        load_config(None, ["model.keep_layers=[a]"])
    with pytest.raises(InputError, match="distill.target: 'nearest' — expected one of pair_mean, english, same_text"):
        train(load_config(None, _settings(parallel, tiny_model_dir, tmp_path / "b", **{"distill.target": "nearest"})), progress=False)


def test_retrieval_pairs_train_queries_against_their_passages(parallel, tiny_model_dir, tmp_path):
    from training.train import train

    words = list(_WORDS)
    rows = [f"{words[i % len(words)]}\t{' '.join(words[(i + j) % len(words)] for j in range(6))}\n" for i in range(40)]
    (tmp_path / "qp.tsv").write_text("".join(rows), encoding="utf-8")
    out = tmp_path / "qp"
    settings = _settings(parallel, tiny_model_dir, out, **{
        "optim.max_steps": 12, "objectives.retrieval": 1.0, "data.retrieval_pairs": f"[{tmp_path / 'qp.tsv'}]",
        "eval_every": 100,
    })
    summary = train(load_config(None, settings), progress=False)
    assert summary["retrieval_pairs"] == 40
    losses = [float(r["retrieval"]) for r in _metrics(out) if r.get("retrieval")]
    assert len(losses) == 12 and sum(losses[-4:]) < sum(losses[:4]), losses

    no_pairs = _settings(parallel, tiny_model_dir, tmp_path / "none", **{"objectives.retrieval": 1.0})
    with pytest.raises(InputError, match="data.retrieval_pairs"):
        train(load_config(None, no_pairs), progress=False)


def test_help_pages_give_headings_and_keywords_their_sections_in_four_directions():
    from training.page_pairs import dev_page, page_pairs, sections

    def page(title, keyword, heading, texts):
        paras = [f'<p class="paragraph">{t}</p>' for t in texts]
        return (f'<meta itemprop="keywords" content="{keyword}"><div id="DisplayArea">'
                f"<h1>{title}</h1>{paras[0]}<h2>{heading}</h2>{''.join(paras[1:])}</div>")

    en = page("Rotating Tables", "tables, transposing", "Paste Special", ["Rows become columns.", "Choose Edit - Paste &amp; Special."])
    zh = page("旋转表格", "表格, 转置", "选择性粘贴", ["行变为列。", "选择「编辑 - 选择性粘贴」。"])
    keywords, secs = sections(en)
    assert keywords == ["tables, transposing"]
    assert secs == [("Rotating Tables", "Rows become columns."), ("Paste Special", "Choose Edit - Paste & Special.")]
    pairs = page_pairs(en, zh)
    assert ("Rotating Tables", "行变为列。") in pairs and ("旋转表格", "Rows become columns.") in pairs
    assert ("选择性粘贴", "选择「编辑 - 选择性粘贴」。") in pairs and ("表格, 转置", "Rows become columns.") in pairs
    assert page_pairs(en, page("旋转表格", "表格", "粘贴", ["行变为列。"])) == []  # structures differ
    held_out = [dev_page(f"text/page{i}.html") for i in range(400)]
    assert 0.15 < sum(held_out) / 400 < 0.35


def test_a_model_trained_from_a_centered_folder_is_saved_without_that_centering(parallel, tiny_model_dir, tmp_path):
    """`fast` and `default` are centered folders; their means fit their own weights, not the
    trained ones, so the saved model leaves them out (`xlsearch model center` adds its own)."""
    from models.centering import LanguageCentering, is_centered, language_means, write_centered_model
    from models.torch_encoder import TorchEncoder
    from training.train import train

    plain = TorchEncoder(tiny_model_dir)
    centering = LanguageCentering.from_means(plain.tokenizer, language_means(plain, ["the lazy dog"], ["懒狗"]), plain.prompts)
    centered = write_centered_model(tiny_model_dir, tmp_path / "centered", centering)
    out = tmp_path / "run"
    train(load_config(None, _settings(parallel, tiny_model_dir, out, **{"optim.max_steps": 2, "model.base": str(centered)})), progress=False)
    assert is_centered(centered) and not is_centered(out / "model")
    assert len(TorchEncoder(out / "model").encode(["懒狗"], "query")[0]) == plain.dim


def test_the_neighbours_objective_alone_trains_from_the_teachers_vectors(parallel, tiny_model_dir, tmp_path):
    """objectives.neighbours needs the teacher's vectors even with distill at 0, and logs its loss."""
    from training.train import train

    out = tmp_path / "neighbours"
    settings = _settings(parallel, tiny_model_dir, out, **{
        "optim.max_steps": 3, "objectives.distill": 0, "objectives.neighbours": 1.0, "distill.target": "same_text",
        "distill.teacher": str(tiny_model_dir), "optim.lr": 1e-2,
    })
    train(load_config(None, settings), progress=False)
    rows = [r for r in _metrics(out) if r["neighbours"]]
    assert rows and all(float(r["neighbours"]) >= 0.0 and not r["distill"] for r in rows)
    assert list(out.glob("teacher-*.pt")), "the teacher's vectors were computed and cached"
