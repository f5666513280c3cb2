"""Weight-space blending of a trained model with its base (WiSE-FT, Wortsman et al. 2022).

    python -m training.blend runs/cpu-distill/model --alpha 0.5 --out runs/cpu-distill/blend-0.5

θ = θ_base + α·(θ_trained − θ_base) for every trained tensor. Fine-tuning for cross-lingual
alignment costs some of the base's within-language ranking; blending keeps most of the gain
and gives much of that back. α is chosen on dev data (never test sets). The output is a full
model folder whose `trained.safetensors` is the blended patch, ready to ship.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from models.loading import resolve_model_path
from models.modelfolder import apply_patch, read_marker, save_patch, weights_dir


def blend(trained: Path, alpha: float, out: Path) -> Path:
    trained = Path(trained)
    info = read_marker(trained)
    base = resolve_model_path(info["training"]["recipe"]["model"]["base"])  # the model training started from
    with safe_open(str(trained / "trained.safetensors"), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("xlsearch", "{}"))
    patch = load_file(str(trained / "trained.safetensors"))
    start = load_file(str(weights_dir(base) / "model.safetensors"))
    blended = {k: start[k].float() + alpha * (v.float() - start[k].float()) for k, v in patch.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "blend": {"alpha": alpha, "of": str(trained), "with": str(base)}}
    save_patch(blended, out / "blended.safetensors", meta)
    name = f"{meta.get('name', trained.name)} (blend α={alpha})"
    folder = apply_patch(base, out / "blended.safetensors", out / "model", {"name": name, "blend": meta["blend"]})
    (out / "blended.safetensors").rename(folder / "trained.safetensors")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trained", type=Path, help="a model folder written by xlsearch train (…/model)")
    parser.add_argument("--alpha", type=float, required=True, help="0 = the base, 1 = the trained model")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(blend(args.trained, args.alpha, args.out))


if __name__ == "__main__":
    main()
