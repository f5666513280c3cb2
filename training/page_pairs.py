"""Query → passage pairs from a help collection that exists in both languages.

Sentence pairs teach the model that a sentence and its translation mean the same; they do not
teach it that a short heading is *answered by* the section under it — what a search for a page
needs (issue 18: a page whose answer is its title). Help pages give such pairs for free: every
heading (h1–h3) and every index keyword a page declares is a query, and the text under that
heading (the page's opening, for a keyword) its passage. As the pages exist in English and
Chinese, aligned by path, each pair comes in four directions: en→en, zh→zh, en→zh, zh→en.

Source: LibreOffice's help (Debian libreoffice-help-en-us + libreoffice-help-zh-cn, MPL-2.0 —
the pages `libreoffice_help.tsv` in shared/data was aligned from). A quarter of the pages, by
path hash (`dev_page`), is held out for benchmarks/page_retrieval.py and never yields a pair.

    python -m training.page_pairs OUT.tsv   # query<TAB>passage; a recipe names "libreoffice-help"
"""

from __future__ import annotations

import hashlib
import html
import random
import re
import sys
from pathlib import Path

LIBREOFFICE_HELP = Path("/usr/share/libreoffice/help")
PASSAGE_CHARS = 600  # about one chunk of text, as the index stores it
_BLOCK = re.compile(r"<(h[1-3]|p)\b[^>]*>(.*?)</\1>", re.S | re.I)
_KEYWORD = re.compile(r'<meta itemprop="keywords" content="([^"]+)"')
_TAG = re.compile(r"<[^>]+>")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def dev_page(relative_path: str) -> bool:
    """Pages held out for tuning and evaluating page retrieval — never for training."""
    return int(hashlib.sha1(relative_path.encode()).hexdigest(), 16) % 4 == 0


def _clean(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def sections(page: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A help page's index keywords and its (heading, text under it) sections, in order."""
    body = page[page.find("DisplayArea") :]
    keywords = [_clean(k) for k in _KEYWORD.findall(page)]
    out: list[tuple[str, str]] = []
    for tag, inner in _BLOCK.findall(body):
        text = _clean(inner)
        if not text:
            continue
        if tag.lower() != "p":
            out.append((text, ""))
        elif out and len(out[-1][1]) < PASSAGE_CHARS:
            heading, passage = out[-1]
            out[-1] = (heading, (passage + " " + text).strip()[:PASSAGE_CHARS])
    return keywords, [(h, p) for h, p in out if p and len(h) <= 120]


def page_pairs(en_page: str, zh_page: str) -> list[tuple[str, str]]:
    """(query, passage) pairs of one page in its two languages; sections align by position when
    both have the same number of them (a translation keeps the page's structure)."""
    en_kw, en_sec = sections(en_page)
    zh_kw, zh_sec = sections(zh_page)
    if not en_sec or not zh_sec or len(en_sec) != len(zh_sec) or not _HAN.search(" ".join(p for _, p in zh_sec)):
        return []
    pairs = []
    for (en_q, en_p), (zh_q, zh_p) in zip(en_sec, zh_sec):
        pairs += [(en_q, en_p), (zh_q, zh_p), (en_q, zh_p), (zh_q, en_p)]
    opening_en, opening_zh = en_sec[0][1], zh_sec[0][1]
    for kw in en_kw[:4]:
        pairs += [(kw, opening_en), (kw, opening_zh)]
    for kw in zh_kw[:4]:
        if _HAN.search(kw):
            pairs += [(kw, opening_zh), (kw, opening_en)]
    return pairs


def libreoffice_pairs(root: Path = LIBREOFFICE_HELP, seed: int = 0, dev: bool = False) -> list[tuple[str, str]]:
    """Every training page's pairs, shuffled (seeded) so a batch mixes pages; `dev`: the held-out
    pages' pairs instead, for checking (benchmarks/section_retrieval.py), never for training."""
    if not (root / "zh-CN").is_dir():
        from core.errors import InputError

        raise InputError(f"{root}: no LibreOffice help in both languages — apt-get install libreoffice-help-en-us libreoffice-help-zh-cn")
    pairs = []
    for en_path in sorted((root / "en-US").rglob("*.html")):
        rel = str(en_path.relative_to(root / "en-US"))
        zh_path = root / "zh-CN" / rel
        if dev_page(rel) != dev or not zh_path.exists():
            continue
        pairs += page_pairs(en_path.read_text(encoding="utf-8", errors="replace"), zh_path.read_text(encoding="utf-8", errors="replace"))
    pairs = list(dict.fromkeys(pairs))
    # a heading many pages share ("Options", "Example") answers none of them: an in-batch
    # negative would then be a right answer. One page's passage in two languages is two.
    passages: dict[str, set[str]] = {}
    for query, passage in pairs:
        passages.setdefault(query, set()).add(passage)
    pairs = [(q, p) for q, p in pairs if len(passages[q]) <= 2]
    random.Random(seed).shuffle(pairs)
    return pairs


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "page-pairs.tsv")
    pairs = libreoffice_pairs()
    with out.open("w", encoding="utf-8") as f:
        for query, passage in pairs:
            f.write(f"{query}\t{passage}\n")
    print(f"{len(pairs)} query→passage pairs written to {out}")


if __name__ == "__main__":
    main()
