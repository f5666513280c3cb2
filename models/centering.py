"""Language centering: remove each language's mean embedding, a cheap fix for language bias.

Multilingual encoders place all text of one language slightly to one side of the space
(Libovický et al. 2020, "On the language neutrality of pre-trained multilingual
representations"), so in a mixed pool a same-language sentence often outscores the right answer
in the other language. Subtracting the mean embedding of the text's language — computed once
from parallel training text, separately for query and passage prompts — and re-normalising
removes much of that offset.

It ships as a small sentence-transformers module placed after the model's Normalize and followed
by another Normalize, so `SentenceTransformer(path).encode` applies it too. The module decides a
text's language from its token ids alone (Han characters against Latin letters, with a Han
character weighing four letters, like `core.language`) and its mode from the prompt tokens.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .language_offsets import CONFIG_NAME, KINDS, LANGS, WEIGHTS_NAME, language_and_kind
from .modelfolder import derived_folder, read_marker, rewrite, write_marker

log = logging.getLogger(__name__)


def _char_counts(piece: str) -> tuple[int, int]:
    han = sum(1 for c in piece if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\uf900" <= c <= "\ufaff")
    latin = sum(1 for c in piece if c.isascii() and c.isalpha())
    return han, latin


class LanguageCentering(torch.nn.Module):
    def __init__(self, means: np.ndarray, prompt_ids: dict[str, list[int]], han: np.ndarray, latin: np.ndarray):
        super().__init__()
        # means[lang, kind] for lang in (en, zh, other) and kind in (query, passage); "other"
        # gets the average of the two, so it stays comparable with both.
        self.register_buffer("means", torch.as_tensor(np.asarray(means, np.float32)))
        self.register_buffer("han", torch.as_tensor(np.ascontiguousarray(han, np.int16)))
        self.register_buffer("latin", torch.as_tensor(np.ascontiguousarray(latin, np.int16)))
        self.prompt_ids = {k: list(v) for k, v in prompt_ids.items()}
        self._han, self._latin = np.asarray(han, np.int16), np.asarray(latin, np.int16)  # numpy copies for the rule

    @classmethod
    def from_means(cls, tokenizer, means: dict[tuple[str, str], np.ndarray], prompts: dict[str, str]) -> LanguageCentering:
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        counts = np.array([_char_counts(p or "") for p in vocab], np.int16)
        counts[tokenizer.all_special_ids] = 0  # "</s>" is not a Latin letter
        table = np.stack([[means[(lang, kind)] for kind in KINDS] for lang in LANGS])
        table = np.concatenate([table, table.mean(axis=0, keepdims=True)])
        prompt_ids = {k: tokenizer(prompts[k].strip(), add_special_tokens=False)["input_ids"] if prompts.get(k) else [] for k in KINDS}
        return cls(table, prompt_ids, counts[:, 0], counts[:, 1])

    def forward(self, features: dict) -> dict:
        ids, mask = features["input_ids"], features["attention_mask"]
        emb = features["sentence_embedding"]
        lang, kind = language_and_kind(ids.cpu().numpy(), mask.cpu().numpy(), self._han, self._latin, self.prompt_ids)
        rows = self.means[torch.from_numpy(lang).to(self.means.device), torch.from_numpy(kind).to(self.means.device)]
        features["sentence_embedding"] = emb - rows.to(emb.dtype)
        return features

    def save(self, output_path: str, *args, **kwargs) -> None:
        from safetensors.torch import save_file

        os.makedirs(output_path, exist_ok=True)
        with open(os.path.join(output_path, CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump({"prompt_ids": self.prompt_ids, "langs": [*LANGS, "other"], "kinds": list(KINDS)}, f)
        save_file({"means": self.means, "han": self.han, "latin": self.latin}, os.path.join(output_path, WEIGHTS_NAME))

    @staticmethod
    def load(input_path: str, *args, subfolder: str = "", **kwargs) -> LanguageCentering:
        """Old-style `load(dir)` and sentence-transformers 5+'s `load(root, subfolder=...)`."""
        from safetensors.torch import load_file

        input_path = os.path.join(input_path, subfolder)
        with open(os.path.join(input_path, CONFIG_NAME), encoding="utf-8") as f:
            config = json.load(f)
        t = load_file(os.path.join(input_path, WEIGHTS_NAME))
        return LanguageCentering(t["means"].numpy(), config["prompt_ids"], t["han"].numpy(), t["latin"].numpy())


def sample_training_text(train_dir: Path, per_file: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """English and Chinese sides of `per_file` random pairs from each training TSV."""
    from core.pairs import read_pairs

    rng = random.Random(seed)
    en, zh = [], []
    for path in sorted(Path(train_dir).glob("*.tsv")):
        pairs = read_pairs(path)
        for e, z in rng.sample(pairs, min(per_file, len(pairs))):
            en.append(e)
            zh.append(z)
    return en, zh


def language_means(encoder, en: list[str], zh: list[str]) -> dict[tuple[str, str], np.ndarray]:
    """Mean normalised embedding per (language, mode), from an uncentered encoder."""
    return {(lang, kind): encoder.encode(texts, kind).mean(axis=0) for lang, texts in (("en", en), ("zh", zh)) for kind in KINDS}


def save_means(path: Path, means: dict[tuple[str, str], np.ndarray], provenance: str) -> None:
    """The four mean vectors (a few KB) — all a model needs to be centered again later."""
    np.savez(path, provenance=np.array(provenance), **{f"{lang}_{kind}": v.astype(np.float32) for (lang, kind), v in means.items()})


def load_means(path: Path) -> dict[tuple[str, str], np.ndarray]:
    with np.load(path) as npz:
        return {(lang, kind): npz[f"{lang}_{kind}"] for lang in LANGS for kind in KINDS}


CENTERING_TYPE = "models.centering.LanguageCentering"


def _modules(folder: Path) -> list[dict]:
    path = Path(folder) / "modules.json"
    return json.loads(path.read_text()) if path.exists() else []


def is_centered(folder: Path) -> bool:
    """Does this sentence-transformers folder already apply a LanguageCentering module?"""
    return any(m["type"] == CENTERING_TYPE for m in _modules(folder))


def drop_centering(folder: Path) -> bool:
    """Remove the centering (and the Normalize after it) from a folder being built, in place.

    Means belong to the weights they were computed with: a model trained from a centered folder
    (`fast`, `default`) would otherwise carry its base's means, silently wrong for its own
    weights. True when something was removed."""
    folder = Path(folder)
    modules = _modules(folder)
    at = next((i for i, m in enumerate(modules) if m["type"] == CENTERING_TYPE), None)
    if at is None:
        return False
    end = at + 2 if at + 1 < len(modules) and modules[at + 1]["type"].endswith("Normalize") else at + 1
    for m in modules[at:end]:
        shutil.rmtree(folder / m["path"], ignore_errors=True)
    kept = modules[:at] + modules[end:]
    rewrite(folder / "modules.json", json.dumps([m | {"idx": i, "name": str(i)} for i, m in enumerate(kept)], indent=2))
    return True


def write_centered_model(base: Path, dest: Path, centering: LanguageCentering, provenance: dict | None = None) -> Path:
    """A model folder = the base's files (hard-linked, not copied, where possible) + centering.

    modules.json gains [..., Normalize, LanguageCentering, Normalize].
    """
    with derived_folder(base, dest) as tmp:
        modules = json.loads((tmp / "modules.json").read_text())
        if not modules[-1]["type"].endswith("Normalize"):
            raise ValueError(f"{base}: expected the last module to be Normalize")
        n = len(modules)
        centering.save(str(tmp / f"{n}_LanguageCentering"))
        (tmp / f"{n + 1}_Normalize").mkdir(exist_ok=True)
        modules += [
            {"idx": n, "name": str(n), "path": f"{n}_LanguageCentering", "type": "models.centering.LanguageCentering"},
            {"idx": n + 1, "name": str(n + 1), "path": f"{n + 1}_Normalize", "type": modules[-1]["type"]},
        ]
        rewrite(tmp / "modules.json", json.dumps(modules, indent=2))
        info = read_marker(tmp)
        info["name"] = f"{info['name']} + language centering"
        info["dim"] = int(centering.means.shape[-1])
        info["centering"] = {"base": str(base), **(provenance or {})}
        write_marker(tmp, info)
    return Path(dest)
