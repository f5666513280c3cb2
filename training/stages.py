"""A recipe of several stages, run as one command: each stage is an ordinary run in
out_dir/<stage>, trained from the model the stage before it saved.

Why stages: continued pretraining (MLM + TLM) and the contrastive stage after it want different
objectives, data and learning rates, and each must be inspectable and resumable on its own — a
finished stage is never run again, and `--resume` continues the stage that was interrupted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .config import TrainConfig, stage_configs
from .train import train

log = logging.getLogger(__name__)


def _finished(stage: TrainConfig) -> dict | None:
    path = Path(stage.out_dir) / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else None
    return summary if summary and summary.get("finished") and Path(summary.get("model", "")).is_dir() else None


def train_recipe(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run a recipe's stages in order (a recipe without stages is one run). With `resume`,
    finished stages are skipped and an interrupted one continues; `stop_at` counts steps within
    the stage that is running. The summary is the last stage's, with every stage's listed."""
    stages = stage_configs(cfg)
    if len(stages) == 1:
        return train(stages[0], resume=resume, progress=progress, stop_at=stop_at)
    summaries = []
    for name, stage in zip(cfg.stages, stages):
        done = _finished(stage) if resume else None
        if done:
            log.info("stage %s: finished earlier (%s)", name, done["model"])
            summary = done
        else:
            log.info("stage %s: from %s into %s", name, stage.model.base, stage.out_dir)
            summary = train(stage, resume=resume and (Path(stage.out_dir) / "checkpoint.pt").exists(), progress=progress, stop_at=stop_at)
        summaries.append({"stage": name, **summary})
        if not summary["finished"]:
            break
    last = summaries[-1]
    return {**{k: v for k, v in last.items() if k != "stage"}, "steps": sum(s["steps"] for s in summaries),
            "total_steps": sum(s["total_steps"] for s in summaries), "elapsed_s": round(sum(s["elapsed_s"] for s in summaries), 1),
            "stages": summaries}
