"""What PyTorch's int8 (models/int8.py) and ONNX Runtime's (models/onnx_int8.py) share: the
calibration sentences and SmoothQuant's scale — no torch here, so the ONNX side imports it freely."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CALIBRATION_FILE = Path(__file__).parent / "data" / "int8-calibration.txt"
ALPHA = 0.5  # SmoothQuant's migration strength: 0 = all on activations, 1 = all on weights


def calibration_texts() -> list[str]:
    lines = CALIBRATION_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def smoothing_scale(input_max: np.ndarray, weight_max: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """s_j = max|x_j|^α / max|W_j|^(1-α) per input channel j (Xiao et al. 2023), floored as on torch."""
    return np.maximum(np.maximum(input_max, 1e-5) ** alpha / np.maximum(weight_max, 1e-5) ** (1 - alpha), 1e-5).astype(np.float32)
