"""The encoder under training: a transformers model, its tokenizer, e5 prompts and mean pooling.

It embeds exactly as the sentence-transformers folder it came from does (prompt + text, mean over
all tokens, L2-normalised), so what training optimises is what search uses. Saving writes a
complete model folder (the base's files hard-linked, new weights) and, separately, the trained
tensors alone: a small patch that `models.modelfolder.apply_patch` lays over the base, the
form in which a trained model can ship.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

from core.errors import InputError
from models.centering import drop_centering
from models.modelfolder import WEIGHTS, derived_folder, read_marker, rewrite, save_patch, weights_dir, write_marker

log = logging.getLogger(__name__)


class Student(torch.nn.Module):
    def __init__(self, folder: Path, max_tokens: int = 64, keep_layers: list[int] | None = None):
        super().__init__()
        self.folder = Path(folder)
        hf = weights_dir(self.folder)
        with safe_open(str(hf / WEIGHTS), "pt") as f:  # keep the folder's layout: pooler or not
            has_pooler = any(k.startswith("pooler.") for k in f.keys())
        transformers.logging.set_verbosity_error()
        self.model = AutoModel.from_pretrained(hf, add_pooling_layer=has_pooler)
        if has_pooler:  # e5 pools by mean; the CLS pooler is dead weight, never trained
            self.model.pooler.requires_grad_(False)
        self.tokenizer = AutoTokenizer.from_pretrained(hf)
        st_config = self.folder / "config_sentence_transformers.json"
        prompts = json.loads(st_config.read_text()).get("prompts", {}) if st_config.exists() else {}
        self.prompts = {"query": prompts.get("query", ""), "passage": prompts.get("passage", "")}
        self.max_tokens = max_tokens
        self.lora = False
        if keep_layers:
            self.keep_layers(keep_layers)

    def keep_layers(self, keep: list[int]) -> None:
        """Drop every transformer layer but `keep`: a shallower student that starts from the
        teacher's own layers (Sanh et al. 2019 take every other one) learns far faster than one
        started from scratch, and each layer dropped is 1/12 of e5-small's compute per token."""
        layers = self.model.encoder.layer
        if sorted(set(keep)) != list(keep) or keep[0] < 0 or keep[-1] >= len(layers):
            raise InputError(f"model.keep_layers: {keep} — expected increasing layer numbers from 0 to {len(layers) - 1}")
        self.model.encoder.layer = torch.nn.ModuleList(layers[i] for i in keep)
        self.model.config.num_hidden_layers = len(keep)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def freeze(self, word_embeddings: bool, layers: int) -> None:
        """Word embeddings are 80 % of e5-small's weights and cover 250k pieces a small run never
        sees; freezing them keeps the vocabulary's geometry and makes steps several times cheaper."""
        self.model.embeddings.word_embeddings.weight.requires_grad_(not word_embeddings)
        for layer in self.model.encoder.layer[:layers]:
            layer.requires_grad_(False)

    def add_lora(self, rank: int, alpha: float, targets: list[str]) -> None:
        """Train low-rank adapters instead of the weights themselves (training/lora.py)."""
        from .lora import add_lora

        add_lora(self.model, rank, alpha, targets)
        self.lora = True

    def tokenize(self, texts: list[str], kind: str | list[str] | None = None, max_tokens: int | None = None, **kwargs) -> dict[str, torch.Tensor]:
        kinds = kind if isinstance(kind, list) else [kind] * len(texts)
        texts = [self.prompts.get(k, "") + t if k else t for k, t in zip(kinds, texts)]
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_tokens or self.max_tokens, return_tensors="pt", **kwargs)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.hidden(batch["input_ids"], batch["attention_mask"])
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str], kind: str | list[str], batch_size: int = 128, max_tokens: int | None = None) -> torch.Tensor:
        """Inference embeddings (dropout off), in length-sorted batches, in input order."""
        was_training = self.training
        self.eval()
        kinds = kind if isinstance(kind, list) else [kind] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self.embed(self.tokenize([texts[i] for i in idx], [kinds[i] for i in idx], max_tokens)).float().cpu()
        self.train(was_training)
        return out

    def trained_tensors(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.model.named_parameters() if p.requires_grad}

    def save(self, dest: Path, info: dict) -> Path:
        """A complete model folder: the base's files (hard-linked) with this model's weights, plus
        `trained.safetensors` (fp16, trained tensors only) for shipping as a patch."""
        with derived_folder(self.folder, dest) as tmp:
            if drop_centering(tmp):
                log.info("%s: the base's language centering is left out (its means fit the base's weights); "
                         "add this model's own with `xlsearch model center --model %s`", dest, dest)
            weights = weights_dir(tmp) / WEIGHTS
            weights.unlink()
            state, patch = self.model.state_dict(), self.trained_tensors()
            if self.lora:  # an ordinary model folder, adapters folded in; the adapters alone ship
                from .lora import lora_patch, merged_state_dict

                state, patch = merged_state_dict(self.model), lora_patch(self.model)
            save_file({k: v.detach().float().cpu().contiguous() for k, v in state.items()}, str(weights))
            layers = self.model.config.num_hidden_layers
            config = weights_dir(tmp) / "config.json"
            if json.loads(config.read_text()).get("num_hidden_layers") != layers:
                rewrite(config, self.model.config.to_json_string())
            # always named: a student trained further from an already shallow folder ("fast") has
            # the right config here, but its patch is laid over the 12-layer base, whose other
            # layers apply_patch must drop
            info = info | {"num_hidden_layers": layers}
            save_patch(patch, tmp / "trained.safetensors", info)
            write_marker(tmp, read_marker(tmp) | {"name": info.get("name", Path(dest).name), "training": info})
        return Path(dest)
