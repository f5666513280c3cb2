"""What an index records about the model that made its vectors (no torch needed to read it)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelIdentity:
    """What an index records about the model that made its vectors.

    `probe` is the model's embedding of a fixed text. Comparing probes catches a different model
    even when two folders share a name, and tolerates harmless differences (CPU vs GPU maths).
    """

    name: str
    path: str
    dim: int
    probe: tuple[float, ...]

    def same_model(self, other: ModelIdentity) -> bool:
        if self.dim != other.dim:
            return False
        a, b = np.asarray(self.probe), np.asarray(other.probe)
        return float(a @ b) >= 0.99

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "path": self.path, "dim": self.dim, "probe": list(self.probe)})

    @classmethod
    def from_json(cls, text: str) -> ModelIdentity:
        d = json.loads(text)
        return cls(d["name"], d["path"], int(d["dim"]), tuple(d["probe"]))
