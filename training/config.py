"""Training configuration: plain dataclasses, loaded from a YAML recipe in `training/recipes/`.

A recipe names only what differs from these defaults. Unknown keys are an error naming the key,
so a typo cannot silently train with a default.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from core.errors import InputError


@dataclass
class DataConfig:
    train_dir: str | None = None  # None → ../shared/data/parallel/train (or $XLSEARCH_TRAIN_DATA)
    files: list[str] = field(default_factory=list)  # stems in train_dir; empty → every *.tsv
    pairs_per_file: int | None = None  # a seeded sample of each file; None → all of it
    extra_pairs: list[str] = field(default_factory=list)  # your own TSV / JSONL pair files
    # more pairs per file from its paragraphs only (English side ≥ long_pair_chars characters)
    long_pairs_per_file: int = 0
    long_pair_chars: int = 300
    # query → passage pairs for objectives.retrieval: "libreoffice-help" (headings and keywords →
    # their sections, training.page_pairs) or TSV files of query<TAB>passage
    retrieval_pairs: list[str] = field(default_factory=list)
    # one mined hard negative per retrieval pair (training.hard_negatives), below this share of
    # the query's score for its own passage
    hard_negatives: bool = False
    hard_negative_ceiling: float = 0.95
    hard_negatives_from: str | None = None  # the model that mines them; None → the model as loaded
    monolingual: list[str] = field(default_factory=list)  # text files or xlsearch.db for MLM; empty → the pairs' sides
    max_tokens: int = 64  # per sentence, prompt included
    # per retrieval passage (None → max_tokens): 256 trains them as the index cuts its chunks —
    # at 64, a 600-character Chinese help section keeps only its first ~90 characters
    passage_max_tokens: int | None = None
    dev_dir: str | None = None  # None → ../shared/data/parallel/dev
    dev_sets: list[str] = field(default_factory=list)  # monitored while training; empty → the train files' dev splits
    dev_pairs: int = 200  # per dev set, for the in-training check


@dataclass
class ModelConfig:
    base: str = "base"  # "base", or a local model folder
    freeze_word_embeddings: bool = True  # 96M of the 118M parameters; they stay as converted
    freeze_layers: int = 0  # also freeze the lowest N transformer layers
    # keep only these transformer layers (0-based, in order), e.g. [0, 2, 4, 7, 9, 11]: a shallower
    # student initialised from the teacher's own layers (DistilBERT's alternate-layer start); empty → all
    keep_layers: list[int] = field(default_factory=list)
    lora_rank: int = 0  # > 0: train LoRA adapters of this rank instead (everything else frozen)
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(default_factory=lambda: ["query", "value"])  # linear layers to adapt


@dataclass
class ObjectiveWeights:
    distill: float = 1.0
    neighbours: float = 0.0  # the teacher's ranking of each text's in-batch neighbours (needs distill's teacher)
    contrastive: float = 0.0
    mlm: float = 0.0
    tlm: float = 0.0
    retrieval: float = 0.0  # in-batch InfoNCE of queries (query prompt) against their passages


@dataclass
class DistillConfig:
    # "pair_mean": both sides regress onto the mean of the teacher's language-centred English and
    # Chinese embeddings — aligned, and each language keeps the other's view of the meaning.
    # "english": onto the teacher's English embedding (Reimers & Gurevych 2020); Chinese then
    # inherits the teacher's weaker English same-language structure.
    # "same_text": each side onto the teacher's embedding of that same text — a copy of the
    # teacher's behaviour (same-language structure included), for a smaller or faster student.
    target: str = "pair_mean"
    teacher: str | None = None  # a model name or folder; None → the student's base as loaded
    neighbour_temperature: float = 0.05  # objectives.neighbours: softmax temperature over similarities


@dataclass
class ContrastiveConfig:
    margin: float = 0.3  # additive margin on the positive (LaBSE)
    scale: float = 20.0
    learnable_scale: bool = False
    mini_batch: int = 32  # gradient caching: forward/backward this many sentences at a time


@dataclass
class MaskingConfig:
    probability: float = 0.15
    whole_word: bool = False  # mask whole jieba words (Chinese) / whole words (English)
    # the MLM/TLM softmax: "full" (all 250,002 pieces) or "corpus" (the pieces the training text
    # uses — exact for these labels, a fraction of the cost)
    vocabulary: str = "full"


@dataclass
class OptimConfig:
    batch_size: int = 32  # pairs per step
    epochs: int = 1
    max_steps: int | None = None  # cap on steps (the schedule is planned for it)
    max_minutes: float | None = None  # stop early, with a checkpoint, after this long
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    name: str = "run"
    out_dir: str = "runs/run"
    seed: int = 0
    device: str = "auto"  # auto → cuda if present, else cpu
    amp: bool = True  # bf16 autocast on GPU; ignored on CPU
    threads: int | None = None  # torch CPU threads; None → torch's default
    log_every: int = 10
    eval_every: int = 200
    checkpoint_every: int = 200
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objectives: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    distill: DistillConfig = field(default_factory=DistillConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # a chain of runs (training.stages): name → the keys that differ from the rest of the recipe;
    # each stage trains from the one before it, in out_dir/<name>
    stages: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict, where: str, source: str) -> Any:
    if not isinstance(values, dict):
        raise InputError(f"{source}: '{where or 'the recipe'}' must be a mapping of keys to values")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            raise InputError(f"{source}: unknown key '{path}' — known keys here: {', '.join(sorted(known))}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path, source)
        else:
            kwargs[key] = _check_type(value, hint, path, source)
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, path: str, source: str) -> Any:
    allowed = set(get_args(hint)) if get_origin(hint) in (Union, UnionType) else {hint}
    if value is None and type(None) in allowed:
        return value
    if any(get_origin(a) is dict for a in allowed):
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise InputError(f"{source}: '{path}' must map names to sections of recipe keys")
        return value
    lists = [a for a in allowed if get_origin(a) is list]
    if lists and isinstance(value, list):
        item = (get_args(lists[0]) or (str,))[0]
        try:
            return [item(v) for v in value]
        except (TypeError, ValueError):
            raise InputError(f"{source}: '{path}' = {value!r} — expected a list of {item.__name__}") from None
    if isinstance(value, str) and float in allowed and str not in allowed:
        try:  # YAML 1.1 reads 3e-4 (no dot) as a string; a learning rate is written that way
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool):
        ok = bool in allowed
    elif isinstance(value, int):
        ok = int in allowed or float in allowed
        value = value if int in allowed else float(value)
    else:
        ok = any(isinstance(value, a) for a in allowed if a in (float, str))
    if not ok:
        names = ", ".join(getattr(a, "__name__", str(a)) for a in allowed)
        raise InputError(f"{source}: '{path}' = {value!r} — expected {names}")
    return value


def _parse_override(text: str) -> tuple[list[str], Any]:
    import yaml

    if "=" not in text:
        raise InputError(f"--set {text}: expected KEY=VALUE, e.g. --set optim.max_steps=20")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def load_config(path: Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A recipe file (or the defaults), then `--set a.b=value` overrides, checked key by key."""
    import yaml

    values: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise InputError(f"{path}: no such recipe — pass a YAML file, e.g. training/recipes/cpu-distill.yaml")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    for text in overrides:
        keys, value = _parse_override(text)
        node = values
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {text}: '{k}' is not a section")
        node[keys[-1]] = value
    cfg = _build(TrainConfig, values, "", source)
    if cfg.masking.vocabulary not in ("full", "corpus"):
        raise InputError(f"{source}: 'masking.vocabulary' = {cfg.masking.vocabulary!r} — expected full or corpus")
    stage_configs(cfg, source)  # a mistake in any stage is reported before anything runs
    return cfg


def stage_configs(cfg: TrainConfig, source: str = "recipe") -> list[TrainConfig]:
    """The runs a recipe makes: itself, or one per stage — the recipe's keys with the stage's laid
    over them, out_dir/<stage>, and (unless the stage names one) the previous stage's model as
    its base."""
    if not cfg.stages:
        return [cfg]
    common = {k: v for k, v in cfg.to_dict().items() if k != "stages"}
    runs, previous = [], None
    for name, keys in cfg.stages.items():
        if "stages" in keys:
            raise InputError(f"{source}: stage '{name}' has stages of its own — stages do not nest")
        values = _merged(copy.deepcopy(common), keys)
        values["out_dir"] = str(Path(cfg.out_dir) / name)
        if previous is not None and "base" not in keys.get("model", {}):
            values["model"]["base"] = str(Path(previous.out_dir) / "model")
        previous = _build(TrainConfig, values, "", f"{source}: stage '{name}'")
        runs.append(previous)
    return runs


def _merged(common: dict, keys: dict) -> dict:
    out = dict(common)
    for key, value in keys.items():
        out[key] = _merged(common[key], value) if isinstance(value, dict) and isinstance(common.get(key), dict) else value
    return out
