"""Rebuild the bilingual demo corpus from Debian's `debian-reference-en` / `-zh-cn` packages.

    python demo/build_corpus.py [--debs DIR] [--out demo/corpus] [--seed 13]

Each chapter of the Debian Reference (HTML) is cut into its sections (h2/h3 headings, which
carry the same anchor ids in both languages); sections are paired by id. With a fixed seed,
40 % of the paired sections are kept only in English, 40 % only in Chinese and 20 % in both, so
most topics can be found from the other language only by crossing languages. Output is one
Markdown-ish text file per section: `# title`, a blank line, the text. Deterministic: the
same packages and seed give byte-identical files.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.language import detect_language  # noqa: E402
from indexer.readers import read_file  # noqa: E402

log = logging.getLogger("build_corpus")

PACKAGES = {"en": "debian-reference-en", "zh": "debian-reference-zh-cn"}
SUFFIX = {"en": ".en.html", "zh": ".zh-cn.html"}
HEADING = re.compile(r'<h([23]) class="title"><a id="([^"]+)"')
NAV = re.compile(r'(?s)<div class="(?:navheader|navfooter|toc|list-of-tables)">.*?</div>\s*(?=<div|</body>)')
MIN_CHARS = 200


def fetch_debs(dest: Path) -> None:
    subprocess.run(["apt-get", "download", *PACKAGES.values()], cwd=dest, check=True)


def extract(debs: Path, work: Path) -> dict[str, Path]:
    roots = {}
    for lang, package in PACKAGES.items():
        [deb] = sorted(debs.glob(f"{package}_*.deb"))
        root = work / lang
        root.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        roots[lang] = root / "usr" / "share" / "debian-reference"
        log.info("%s: %s", lang, deb.name)
    return roots


def sections(chapter: Path) -> dict[str, tuple[str, str]]:
    """Anchor id → (title, text) for each h2/h3 section of one chapter file."""
    html = NAV.sub("", chapter.read_text(encoding="utf-8"))
    marks = list(HEADING.finditer(html))
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(html)
        fragment = "<div>" + html[m.start() : end]
        [doc] = read_file(Path("section.html"), fragment.encode("utf-8"))
        title, _, body = doc.text.partition("\n")
        out[m.group(2)] = (" ".join(title.split()), body.strip())
    return out


def build(roots: dict[str, Path], out: Path, seed: int) -> dict[str, int]:
    pages: dict[str, dict[str, tuple[str, str]]] = {"en": {}, "zh": {}}
    for lang, root in roots.items():
        for chapter in sorted(root.glob(f"*{SUFFIX[lang]}")):
            stem = chapter.name[: -len(SUFFIX[lang])]
            if stem == "index":
                continue
            for anchor, page in sections(chapter).items():
                pages[lang][f"{stem}-{anchor.strip('_')}"] = page
    paired = sorted(
        key for key in pages["en"].keys() & pages["zh"].keys()
        if len(pages["en"][key][1]) >= MIN_CHARS and len(pages["zh"][key][1]) >= MIN_CHARS // 2
        and detect_language(pages["zh"][key][1]) == "zh"
    )
    rng = random.Random(seed)
    rng.shuffle(paired)
    n_en, n_zh = int(0.4 * len(paired)), int(0.4 * len(paired))
    keep = {"en": paired[:n_en] + paired[n_en + n_zh :], "zh": paired[n_en:]}
    if out.exists():
        shutil.rmtree(out)
    for lang, keys in keep.items():
        (out / lang).mkdir(parents=True)
        for key in sorted(keys):
            title, body = pages[lang][key]
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", key)[:80]
            (out / lang / f"{name}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return {"paired": len(paired), "en_only": n_en, "zh_only": n_zh, "both": len(paired) - n_en - n_zh}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debs", type=Path, help="folder with the two .deb files (default: apt-get download them)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "corpus")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        debs = args.debs
        if debs is None:
            debs = work / "debs"
            debs.mkdir()
            fetch_debs(debs)
        counts = build(extract(debs, work / "x"), args.out, args.seed)
    size = sum(p.stat().st_size for p in args.out.rglob("*.md"))
    log.info("%s; %.2f MB of text in %s", counts, size / 1e6, args.out)


if __name__ == "__main__":
    main()
