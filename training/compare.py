"""Compare `xlsearch eval --json` results against a baseline, and apply the shipping rule.

    python -m training.compare base.json candidate.json [more.json ...] [--markdown]

The rule a trained model must pass to become the default: against the base, better on every dev
set's bitext accuracy (both directions) and language-bias top-10 (both query languages), and no
more than one point lost on the same-language check (MRR@10, each language). The table is what
the model card shows; the verdict is computed, not written by hand.

`--replace` applies the rule for a model that would replace the shipped default instead (the first
file is then the default's results): no more than one point lost on any dev set cell, and nothing
lost on the same-language check.

    python -m training.compare docs/eval/default.json candidate.json --replace
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BETTER_ON = ("bitext_en_zh", "bitext_zh_en", "bias_top10_en", "bias_top10_zh")
SAME_LANGUAGE_TOLERANCE = 0.01


def verdict(base: dict, candidate: dict) -> list[str]:
    """Every way the candidate fails the shipping rule against the base (empty: it passes)."""
    failures = []
    base_sets = {row["set"]: row for row in base["sets"]}
    for row in candidate["sets"]:
        ref = base_sets.get(row["set"])
        if ref is None:
            failures.append(f"{row['set']}: not in the baseline's results")
            continue
        failures += [f"{row['set']} {key}: {row[key]:.3f} ≤ base {ref[key]:.3f}" for key in BETTER_ON if row[key] <= ref[key]]
    missing = base_sets.keys() - {row["set"] for row in candidate["sets"]}
    failures += [f"{name}: not evaluated" for name in sorted(missing)]
    for lang, ref in base["same_language"].items():
        got = candidate["same_language"].get(lang)
        if ref and got and got["mrr10"] < ref["mrr10"] - SAME_LANGUAGE_TOLERANCE:
            failures.append(f"same-language {lang} MRR@10: {got['mrr10']:.3f} < base {ref['mrr10']:.3f} − {SAME_LANGUAGE_TOLERANCE}")
    return failures


def replacement_verdict(current: dict, candidate: dict, tolerance: float = SAME_LANGUAGE_TOLERANCE) -> list[str]:
    """Every way the candidate fails to replace the current default (empty: it may): each
    bitext/bias cell at most `tolerance` below the default's, same-language MRR@10 not below it."""
    failures = []
    current_sets = {row["set"]: row for row in current["sets"]}
    for row in candidate["sets"]:
        ref = current_sets.get(row["set"])
        if ref is None:
            failures.append(f"{row['set']}: not in the default's results")
            continue
        failures += [f"{row['set']} {key}: {row[key]:.3f} < default {ref[key]:.3f} − {tolerance}"
                     for key in BETTER_ON if row[key] < ref[key] - tolerance - 1e-9]
    failures += [f"{name}: not evaluated" for name in sorted(current_sets.keys() - {row["set"] for row in candidate["sets"]})]
    for lang, ref in current["same_language"].items():
        got = candidate["same_language"].get(lang)
        if ref and got and got["mrr10"] < ref["mrr10"]:
            failures.append(f"same-language {lang} MRR@10: {got['mrr10']:.3f} < default {ref['mrr10']:.3f}")
    return failures


def markdown_table(results: list[tuple[str, dict]]) -> str:
    """One row per dev set; per model, bitext en→zh / zh→en and bias@10 en-q / zh-q."""
    head = "| dev set | " + " | ".join(f"{label}: bitext en→zh / zh→en | {label}: bias@10 en-q / zh-q" for label, _ in results) + " |"
    lines = [head, "|---" * (1 + 2 * len(results)) + "|"]
    names = [row["set"] for row in results[0][1]["sets"]]
    by_model = [{row["set"]: row for row in r["sets"]} for _, r in results]
    for name in names:
        cells = []
        for rows in by_model:
            row = rows.get(name)
            bitext = f"{row['bitext_en_zh']:.3f} / {row['bitext_zh_en']:.3f}" if row else "–"
            bias = f"{row['bias_top10_en']:.3f} / {row['bias_top10_zh']:.3f}" if row else "–"
            cells += [bitext, bias]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for lang in ("en", "zh"):
        cells = []
        for _, r in results:
            m = r["same_language"].get(lang)
            cells += [f"MRR@10 {m['mrr10']:.3f}" if m else "–", f"R@1 {m['r1']:.3f}" if m else "–"]
        lines.append(f"| same-language {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="eval JSON of the baseline (e.g. --model base)")
    parser.add_argument("candidates", type=Path, nargs="+", help="eval JSON of each model to compare")
    parser.add_argument("--labels", default=None, help="comma-separated column labels (default: file stems)")
    parser.add_argument("--replace", action="store_true", help="the first file is the shipped default's: may a candidate replace it?")
    args = parser.parse_args(argv)
    paths = [args.base, *args.candidates]
    labels = args.labels.split(",") if args.labels else [p.stem for p in paths]
    results = [(label, json.loads(p.read_text(encoding="utf-8"))) for label, p in zip(labels, paths)]
    print(markdown_table(results))
    print()
    rule, passes = (replacement_verdict, "may replace") if args.replace else (verdict, "passes the shipping rule against")
    for label, result in results[1:]:
        failures = rule(results[0][1], result)
        print(f"{label}: " + (f"{passes} {labels[0]}" if not failures else "fails: " + "; ".join(failures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
