"""int8 for a transformer on a CPU: which Linear layers, which weight scales, and smoothing.

torch's dynamic quantisation alone (one scale per weight matrix, every Linear) moved the trained
default's vectors to a mean cosine of .88 against fp32 (worst .76) and cost up to 3.8 points of
dev bitext and 5 of same-language MRR. Three changes, each measured with
benchmarks/quantisation.py (cosine to fp32 on 300 demo chunks, mean / worst):

1. one scale per output channel of each weight: .94 / .84, same speed;
2. the down-projections (in_features > out_features: the feed-forward output, whose input is the
   post-GELU intermediate with a few huge channels) stay fp32: .989 / .972, a third of the
   Linear work given back;
3. SmoothQuant (Xiao et al. 2023) on the rest: each input channel j is divided by
   s_j = max|x_j|^α / max|W_:j|^(1-α) (α = 0.5) and the weight's column multiplied by it, which
   moves activation outliers into the weights, where per-channel scales absorb them: .997 / .994
   (Linears that read the same tensor, a layer's query, key and value, share one s and one division).

The activation maxima come from `CALIBRATION_FILE`: ~40 English and Chinese sentences shipped
with the package, run once through the fp32 model when an int8 encoder is built (one forward pass
over short sentences), so the same model always gets the same int8 weights — an index never mixes vectors of
two calibrations. On the default, calibrating on the demo chunks themselves gave the same
cosines as these sentences. BERT-style encoders (e5 among them) are post-LayerNorm, so the division cannot be folded into
a LayerNorm (its output also feeds the residual): `SmoothedLinear` does it, one elementwise
multiply before the int8 matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .int8_recipe import ALPHA, CALIBRATION_FILE, calibration_texts, smoothing_scale  # noqa: F401 — shared with ONNX

RECIPE = "smoothquant-0.5-shared-qkv/per-channel/down-fp32"  # part of an int8 encoder's fingerprint


class SharedInput:
    """The x / s that Linears reading the same tensor (a layer's query, key and value) share:
    computed by the first of them, handed to the others, then dropped, so each input is divided
    once and no activation outlives its batch. (x, x / s, readers left) is swapped in as one
    tuple, so concurrent batches from several threads never read each other's."""

    def __init__(self, inv_scale: torch.Tensor, readers: int):
        self.inv_scale = inv_scale
        self.readers = readers
        self.last: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def divided(self, x: torch.Tensor) -> torch.Tensor:
        last = self.last
        if last is not None and last[0] is x:
            self.last = (x, last[1], last[2] - 1) if last[2] > 1 else None
            return last[1]
        y = x * self.inv_scale
        self.last = (x, y, self.readers - 1) if self.readers > 1 else None
        return y


class SmoothedLinear(torch.nn.Module):
    """x / s, then a Linear whose weight columns were multiplied by s: the same function."""

    def __init__(self, linear: torch.nn.Module, shared: SharedInput):
        super().__init__()
        self.linear = linear
        self.shared = shared
        self.register_buffer("inv_scale", shared.inv_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.shared.divided(x))


def quantised_linears(model: torch.nn.Module) -> list[str]:
    """Names of the nn.Linear layers int8 quantises: all but the down-projections."""
    return [
        name
        for name, layer in model.named_modules()
        if type(layer) is torch.nn.Linear and layer.in_features <= layer.out_features
    ]


def input_maxima(model: torch.nn.Module, names: Sequence[str], run: Callable[[], object]) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    """max |x| per input channel of each named Linear while `run()` pushes text through `model`,
    and the Linears grouped by the tensor they read (the same object at every call)."""
    maxima: dict[str, torch.Tensor] = {}
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def record(name: str):
        def hook(_module, args):
            x = args[0].detach()
            inputs[name].append(args[0])
            seen = x.abs().reshape(-1, x.shape[-1]).amax(dim=0).float()
            maxima[name] = torch.maximum(maxima[name], seen) if name in maxima else seen

        return hook

    hooks = [model.get_submodule(name).register_forward_pre_hook(record(name)) for name in names]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    groups: list[list[str]] = []
    for name in names:  # inputs held alive above, so `is` cannot match a recycled object
        group = next((g for g in groups if _same_objects(inputs[g[0]], inputs[name])), None)
        if group:
            group.append(name)
        else:
            groups.append([name])
    return maxima, groups


def _same_objects(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) > 0 and all(x is y for x, y in zip(a, b, strict=True))


def smooth(model: torch.nn.Module, maxima: dict[str, torch.Tensor], groups: list[list[str]], alpha: float = ALPHA) -> None:
    """Wrap each calibrated Linear in a SmoothedLinear (in place); a group shares one s, from the
    largest weight of each input channel over the group (SmoothQuant's rule for q/k/v)."""
    for group in groups:
        linears = [model.get_submodule(name) for name in group]
        weight_max = torch.stack([lin.weight.detach().abs().amax(dim=0) for lin in linears]).amax(dim=0)
        scale = torch.from_numpy(smoothing_scale(maxima[group[0]].numpy(), weight_max.numpy(), alpha))
        shared = SharedInput(1.0 / scale, len(group))
        for name, linear in zip(group, linears, strict=True):
            linear.weight.data *= scale
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, SmoothedLinear(linear, shared))


def quantise(model: torch.nn.Module, run_calibration: Callable[[], object]) -> list[str]:
    """Smooth, then quantise to int8 (per-channel weights, dynamic activations) in place; returns
    the names of the quantised Linears. `run_calibration` runs the whole fp32 encoder on
    `calibration_texts()` (the caller owns tokenisation and pooling)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = quantised_linears(model)
    smooth(model, *input_maxima(model, names, run_calibration))
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_(tensor|channel)", category=UserWarning)
        spec = {f"{name}.linear": per_channel_dynamic_qconfig for name in names}
        quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    return names
