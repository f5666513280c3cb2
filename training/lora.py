"""LoRA adapters (Hu et al. 2021), the alternative to full fine-tuning: a few hundred KB to train
and ship instead of tens of MB.

Each targeted linear layer keeps its weight W frozen and learns a low-rank update:
y = xWᵀ + b + (α/r)·x Aᵀ Bᵀ, with B starting at zero so training starts from the base model.
`merged_state_dict` folds the update back into W, giving an ordinary model folder; `lora_patch`
gives the adapter alone (B pre-scaled, so applying it is just W += B·A), which
`models.modelfolder.apply_patch` lays over the base at load time.

Written here rather than taken from peft: forty lines, and no extra dependency on the search path.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises weights
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    def delta(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scale


def add_lora(model: nn.Module, rank: int, alpha: float, targets: list[str]) -> list[str]:
    """Freeze `model` and wrap every nn.Linear whose attribute name is in `targets` (e.g. BERT's
    "query", "value"); returns the wrapped modules' names. Only the adapters train."""
    model.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, rank, alpha))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError(f"no linear layers named {targets} to adapt")
    return wrapped


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every adapter folded into its layer, under the base's names."""
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            for key in ("lora_A", "lora_B", "base.weight", "base.bias"):
                state.pop(f"{name}.{key}", None)
            state[f"{name}.weight"] = module.base.weight + module.delta()
            if module.base.bias is not None:
                state[f"{name}.bias"] = module.base.bias
    return state


def lora_patch(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters alone, B pre-scaled: applying one is W += B·A."""
    patch = {}
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            patch[f"{name}.lora_A"] = module.lora_A.detach()
            patch[f"{name}.lora_B"] = (module.lora_B * module.scale).detach()
    return patch
