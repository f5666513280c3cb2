"""The training loop, readable top to bottom: `xlsearch train --config training/recipes/<recipe>.yaml`.

setup (model, data, teacher vectors, objectives, optimiser) → optional resume → steps → model folder.
Each step backpropagates the sentence-level objectives in one (gradient-cached) pass and each
token-level objective in its own, then takes one optimiser step. Everything a resumed run needs —
trained tensors, optimiser, schedule, RNG states, step — is in `checkpoint.pt`; the batch order is
a pure function of the seed, so a resumed run continues exactly where the first stopped.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.errors import InputError
from core.pairs import default_dev_dir, default_train_dir, read_pairs
from models.loading import resolve_model_path

from .config import TrainConfig
from .data import batch_plan, read_monolingual, retrieval_pairs, training_pairs
from .evaluate import PairVectors, evaluate_pairs
from .hard_negatives import mine, with_negatives
from .masked import corpus_pieces, mlm_loss, tlm_loss
from .objectives import Distillation, GradientCache, MarginInfoNCE, MaskedLM, NeighbourDistillation, pair_targets
from .student import Student

log = logging.getLogger(__name__)

METRICS = ["step", "epoch", "elapsed_s", "lr", "loss", "distill", "neighbours", "contrastive", "mlm", "tlm", "retrieval", "dev_bitext", "dev_bias10"]


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or continue) a recipe; returns a summary. `stop_at` pauses after that step with a
    checkpoint — a run split across sessions ends as one run would. `optim.max_minutes` ends the
    run early (the model is saved) so a recipe keeps its time promise on a slower machine; it
    counts the whole run — loading, teacher vectors and dev checks included."""
    began = time.monotonic()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else contextlib.nullcontext()
    weights = {k: v for k, v in vars(cfg.objectives).items() if v}
    if not weights:
        raise InputError("objectives: every weight is 0 — give distill, neighbours, contrastive, retrieval, mlm or tlm a weight")
    uses_teacher = bool({"distill", "neighbours"} & weights.keys())  # both read the teacher's vectors

    # --- model ------------------------------------------------------------------------------
    base = resolve_model_path(cfg.model.base)
    # a teacher other than the base is loaded before the student is cut down (keep_layers)
    teacher_model = None
    if cfg.distill.teacher and uses_teacher:
        teacher_model = Student(resolve_model_path(cfg.distill.teacher), cfg.data.max_tokens).to(device)
    student = Student(base, cfg.data.max_tokens, cfg.model.keep_layers).to(device)
    if cfg.model.lora_rank:
        student.add_lora(cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.lora_targets)
    else:
        student.freeze(cfg.model.freeze_word_embeddings, cfg.model.freeze_layers)
    tok = student.tokenizer

    # --- data -------------------------------------------------------------------------------
    train_dir = Path(cfg.data.train_dir) if cfg.data.train_dir else default_train_dir()
    pairs = training_pairs(train_dir, cfg.data.files, cfg.data.pairs_per_file, cfg.data.extra_pairs, cfg.seed,
                           cfg.data.long_pairs_per_file, cfg.data.long_pair_chars)
    if len(pairs) < cfg.optim.batch_size:
        raise InputError(f"{train_dir}: {len(pairs)} training pairs, fewer than one batch of {cfg.optim.batch_size}")
    kinds = ["query" if i % 2 == 0 else "passage" for i in range(len(pairs))]  # both e5 modes get trained
    lengths = [len(a) + len(b) for a, b in zip(tok([e for e, _ in pairs])["input_ids"], tok([z for _, z in pairs])["input_ids"])]
    steps_per_epoch = len(pairs) // cfg.optim.batch_size
    total_steps = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.max_steps:
        total_steps = min(total_steps, cfg.optim.max_steps)
    retrieval = retrieval_pairs(cfg.data.retrieval_pairs, cfg.seed) if "retrieval" in weights else []
    if retrieval and cfg.data.hard_negatives:  # mined before any step, by the model as loaded unless named
        miner = Student(resolve_model_path(cfg.data.hard_negatives_from), cfg.data.max_tokens).to(device) if cfg.data.hard_negatives_from else student
        retrieval = with_negatives(retrieval, mine(miner, retrieval, out, cfg.data.hard_negative_ceiling, seed=cfg.seed,
                                                   passage_tokens=cfg.data.passage_max_tokens))
        del miner
    monolingual = read_monolingual(cfg.data.monolingual) if "mlm" in weights and cfg.data.monolingual else [t for p in pairs for t in p]
    dev = _dev_sets(cfg, train_dir)
    log.info("%d training pairs, %d steps of %d pairs, %d dev sets, device %s", len(pairs), total_steps, cfg.optim.batch_size, len(dev), device)

    # The teacher is the model as loaded, run once over the training pairs before any step.
    teacher = _distill_targets(cfg.distill.target, teacher_model or student, pairs, kinds, out) if uses_teacher else None
    del teacher_model  # its vectors are all a run needs of it

    # --- objectives and optimiser --------------------------------------------------------------
    distill = Distillation()
    neighbours = NeighbourDistillation(cfg.distill.neighbour_temperature)
    contrastive = MarginInfoNCE(cfg.contrastive.margin, cfg.contrastive.scale, cfg.contrastive.learnable_scale).to(device)
    query_passage = MarginInfoNCE(cfg.contrastive.margin, cfg.contrastive.scale)
    lm_head = None
    if {"mlm", "tlm"} & weights.keys():
        pieces = corpus_pieces(tok, monolingual + [t for p in pairs for t in p], cfg.data.max_tokens) if cfg.masking.vocabulary == "corpus" else None
        if pieces is not None:
            log.info("MLM/TLM softmax over the %d pieces the training text uses (of %d)", len(pieces), len(tok))
        lm_head = MaskedLM(student.model.embeddings.word_embeddings, pieces=pieces).to(device)
    cache = GradientCache(student.embed, cfg.contrastive.mini_batch)
    params = {id(p): p for m in (student, contrastive, lm_head) if m is not None for p in m.parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(list(params.values()), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    warmup = max(1, min(cfg.optim.warmup_steps, total_steps // 10 or 1))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    mask_rng = torch.Generator().manual_seed(cfg.seed)

    start, elapsed_before = 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if resume:
        if not ckpt_path.exists():
            raise InputError(f"{ckpt_path}: no checkpoint to resume — run without --resume first")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["plan"] != _plan_key(cfg):
            raise InputError(f"{ckpt_path}: made by a different recipe (data, batch size, steps or seed changed) — resume with the same recipe")
        student.model.load_state_dict(ckpt["trained"], strict=False)
        contrastive.load_state_dict(ckpt["contrastive"])
        if lm_head is not None and ckpt.get("lm_head"):
            lm_head.load_state_dict(ckpt["lm_head"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        mask_rng.set_state(ckpt["rng"]["mask"])
        random.setstate(ckpt["rng"]["python"])
        start, elapsed_before = ckpt["step"], ckpt["elapsed_s"]
        log.info("resuming %s at step %d of %d", out, start, total_steps)
    elif ckpt_path.exists():
        raise InputError(f"{out} already holds a run — pass --resume to continue it, or choose another out_dir")

    def save_checkpoint(step: int, elapsed: float) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({
            "step": step, "elapsed_s": elapsed, "plan": _plan_key(cfg), "config": cfg.to_dict(),
            "trained": student.trained_tensors(), "contrastive": contrastive.state_dict(),
            "lm_head": lm_head.state_dict() if lm_head is not None else None,
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "mask": mask_rng.get_state(), "python": random.getstate()},
        }, tmp)
        os.replace(tmp, ckpt_path)

    metrics = _MetricsLog(out / "metrics.csv", keep_through=start if resume else None)
    plans: dict[int, list[list[int]]] = {}
    bar = tqdm(total=total_steps, initial=start, desc="train", unit="step", disable=not progress)
    step = start
    stopped_early = False
    if dev and not resume:  # where the untrained model stands, for the plot
        metrics.write({"step": 0, "epoch": 0, "elapsed_s": 0.0, "lr": 0.0, **_dev_check(student, dev)})

    # --- steps ------------------------------------------------------------------------------
    while step < total_steps:
        epoch = step // steps_per_epoch
        if epoch not in plans:
            plans = {epoch: batch_plan(lengths, cfg.optim.batch_size, cfg.seed + epoch)}
        idx = plans[epoch][step % steps_per_epoch]
        en, zh, kind = [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], [kinds[i] for i in idx]
        student.train()
        losses: dict[str, float] = {}
        with amp:
            if {"distill", "neighbours", "contrastive"} & weights.keys():
                target = teacher[idx].to(device) if teacher is not None else None

                def sentence_loss(e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
                    parts = {}
                    if "distill" in weights:
                        parts["distill"] = distill(e.float(), z.float(), target)
                    if "neighbours" in weights:
                        parts["neighbours"] = neighbours(e.float(), z.float(), target)
                    if "contrastive" in weights:
                        parts["contrastive"] = contrastive(e.float(), z.float())
                    losses.update({k: float(v.detach()) for k, v in parts.items()})
                    return sum(weights[k] * v for k, v in parts.items())

                cache.step([student.tokenize(en, kind), student.tokenize(zh, kind)], sentence_loss)
            if "retrieval" in weights:  # the step's slice of the (shuffled) query → passage pairs
                batch = [retrieval[(step * cfg.optim.batch_size + i) % len(retrieval)] for i in range(cfg.optim.batch_size)]
                room = cfg.data.passage_max_tokens
                texts = [student.tokenize([b[0] for b in batch], "query"), student.tokenize([b[1] for b in batch], "passage", room)]
                if cfg.data.hard_negatives:  # (query, passage, hard negative): the negatives join the query's row
                    texts.append(student.tokenize([b[2] for b in batch], "passage", room))
                loss = cache.step(texts, lambda q, p, *hard: weights["retrieval"] * query_passage(q.float(), p.float(), *(h.float() for h in hard)))
                losses["retrieval"] = float(loss) / weights["retrieval"]
            if "mlm" in weights:
                texts = random.sample(monolingual, min(len(monolingual), cfg.optim.batch_size))
                loss = mlm_loss(student, lm_head, texts, cfg.data.max_tokens, cfg.masking.probability, cfg.masking.whole_word, mask_rng)
                (weights["mlm"] * loss).backward()
                losses["mlm"] = float(loss.detach())
            if "tlm" in weights:
                loss = tlm_loss(student, lm_head, en, zh, cfg.data.max_tokens, cfg.masking.probability, mask_rng)
                (weights["tlm"] * loss).backward()
                losses["tlm"] = float(loss.detach())
        torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.optim.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        elapsed = elapsed_before + time.monotonic() - began
        total_loss = sum(weights[k] * v for k, v in losses.items())
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss:.4f}")
        row = {"step": step, "epoch": epoch, "elapsed_s": round(elapsed, 1), "lr": schedule.get_last_lr()[0], "loss": total_loss, **losses}
        if dev and (step % cfg.eval_every == 0 or step == total_steps):
            row.update(_dev_check(student, dev))
            log.info("step %d: dev bitext %.4f, dev bias@10 %.4f", step, row["dev_bitext"], row["dev_bias10"])
        if step % cfg.log_every == 0 or "dev_bitext" in row or step == total_steps:
            metrics.write(row)
        out_of_time = cfg.optim.max_minutes is not None and elapsed > cfg.optim.max_minutes * 60
        if step % cfg.checkpoint_every == 0 or step == total_steps or out_of_time or step == stop_at:
            save_checkpoint(step, elapsed)
        if out_of_time and step < total_steps:  # the time budget ends the run; the model is saved
            log.warning("time budget of %s minutes reached at step %d of %d", cfg.optim.max_minutes, step, total_steps)
            break
        if step == stop_at and step < total_steps:
            log.info("stopped at step %d of %d after %.0f s; --resume continues", step, total_steps, elapsed)
            stopped_early = True
            break
    bar.close()
    metrics.close()
    _plot(out / "metrics.csv", out / "metrics.png")
    summary = {"out_dir": str(out), "steps": step, "total_steps": total_steps, "elapsed_s": round(elapsed_before + time.monotonic() - began, 1),
               "pairs": len(pairs), "retrieval_pairs": len(retrieval), "device": str(device), "finished": not stopped_early}
    if not stopped_early:
        info = {"name": f"{cfg.name} (trained from {base.name})", "recipe": cfg.to_dict(), **{k: summary[k] for k in ("steps", "elapsed_s", "pairs", "device")}}
        summary["model"] = str(student.save(out / "model", info))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _plan_key(cfg: TrainConfig) -> str:
    """What fixes the batch order and schedule; a resume must agree on it."""
    d = cfg.to_dict()
    key = {k: d[k] for k in ("seed", "model", "data", "objectives")} | {"optim": {k: d["optim"][k] for k in ("batch_size", "epochs", "max_steps")}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


DISTILL_TARGETS = ("pair_mean", "english", "same_text")


def _distill_targets(target: str, teacher: Student, pairs: list[tuple[str, str]], kinds: list[str], out: Path) -> torch.Tensor:
    if target not in DISTILL_TARGETS:
        raise InputError(f"distill.target: '{target}' — expected one of {', '.join(DISTILL_TARGETS)}")
    teacher_en = _teacher_vectors(teacher, [e for e, _ in pairs], kinds, out)
    if target == "english":
        return teacher_en
    teacher_zh = _teacher_vectors(teacher, [z for _, z in pairs], kinds, out)
    if target == "same_text":
        return torch.stack([teacher_en, teacher_zh], dim=1)
    return pair_targets(teacher_en, teacher_zh, kinds)


def _teacher_vectors(student: Student, texts: list[str], kinds: list[str], out: Path) -> torch.Tensor:
    """The teacher's embeddings of one side of the pairs (the untrained model's unless the recipe
    names a teacher), cached in the run folder."""
    text = json.dumps([[t, k] for t, k in zip(texts, kinds)], ensure_ascii=False) + f"|{student.max_tokens}|{student.folder}"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = out / f"teacher-{key}.pt"
    if path.exists():
        return torch.load(path)
    log.info("teacher: embedding %d sentences once", len(texts))
    vectors = student.encode(texts, kinds)
    torch.save(vectors, path)
    return vectors


def _dev_sets(cfg: TrainConfig, train_dir: Path) -> dict[str, list[tuple[str, str]]]:
    dev_dir = Path(cfg.data.dev_dir) if cfg.data.dev_dir else default_dev_dir()
    names = cfg.data.dev_sets or cfg.data.files or sorted(p.stem for p in train_dir.glob("*.tsv"))
    return {n: read_pairs(dev_dir / f"{n}.tsv", cfg.data.dev_pairs) for n in names if (dev_dir / f"{n}.tsv").exists()}


def _dev_check(student: Student, dev: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
    """Mean bitext accuracy and mean language-bias top-10 over the monitored dev sets."""
    bitext, bias = [], []
    for pairs in dev.values():
        en, zh = [e for e, _ in pairs], [z for _, z in pairs]
        vecs = PairVectors(*(student.encode(t, k).cpu().numpy() for t, k in ((en, "query"), (en, "passage"), (zh, "query"), (zh, "passage"))))
        report = evaluate_pairs("dev", vecs)
        bitext += [report.bitext_en_zh, report.bitext_zh_en]
        bias += [report.bias_top10_en, report.bias_top10_zh]
    return {"dev_bitext": float(np.mean(bitext)), "dev_bias10": float(np.mean(bias))}


class _MetricsLog:
    def __init__(self, path: Path, keep_through: int | None = None):
        """A resumed run passes its checkpoint's step and keeps the rows up to it: a run killed
        after its last checkpoint wrote rows that the resumed run writes again."""
        kept = []
        if keep_through is not None and path.exists():
            with path.open(newline="") as f:
                kept = [row for row in csv.DictReader(f) if row.get("step", "").isdigit() and int(row["step"]) <= keep_through]
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=METRICS, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(kept)

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _plot(csv_path: Path, png_path: Path) -> None:
    """Loss per objective and the dev checks against steps; skipped (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed, so no %s (pip install 'xlsearch[train]')", png_path.name)
        return
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "distill", "neighbours", "contrastive", "mlm", "tlm", "retrieval"):
        points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if points:
            ax_loss.plot(*zip(*points), label=key)
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss")
    ax_loss.legend()
    for key, label in (("dev_bitext", "dev bitext accuracy"), ("dev_bias10", "dev language-bias top-10")):
        points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if points:
            ax_dev.plot(*zip(*points), marker="o", label=label)
    ax_dev.set(xlabel="step", title="dev checks (higher is better)")
    ax_dev.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
