"""Markdown as a reader sees it: the text, without the markup.

What is indexed is what snippets, summaries and the document page show, so a Markdown file is
stored as its rendered text: `# Heading` → `Heading`, `**bold**` → `bold`, `[text](url)` →
`text`, `![alt](img)` → `alt`, code spans and blocks keep their code, list items keep a bullet,
table rows become cells separated by " · ", and fences, rules, link definitions and HTML tags
go. Line structure stays (one Markdown line, one text line), so sentences and chunk boundaries
fall where the author put them. A line-by-line converter, not a CommonMark parser: nested
constructs that need a full parse (lists inside block quotes inside lists…) come out readable,
not exactly rendered.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+|$)(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_LINK_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+")
_QUOTE = re.compile(r"^(\s{0,3}>\s?)+")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(\[[ xX]\]\s+)?")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")

_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)|\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^_]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HTML_TAGS = (
    "a|abbr|b|br|center|code|del|details|div|em|font|h[1-6]|hr|i|img|ins|kbd|li|mark|ol|p|pre|q|s|samp|section|small|"
    "span|strike|strong|sub|summary|sup|table|tbody|td|th|thead|tr|tt|u|ul|var"
)
_TAG = re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>|<!--.*?-->", re.I)  # HTML only: `cp <src> <dest>` keeps its words
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_KEPT = "\x00"  # brackets a placeholder (NUL never survives reading: readers drop it)


def markdown_to_text(markdown: str) -> str:
    """The text of a Markdown document, line for line (see the module docstring)."""
    out: list[str] = []
    fence: str | None = None
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
                continue
            out.append(line)  # code stays as written
            continue
        if opening:
            fence = opening.group(1)
            continue
        out.append(_block(line, lines[i - 1] if i else ""))
    return "\n".join(out)


def _block(line: str, previous: str) -> str:
    if _LINK_DEFINITION.match(line) or _TABLE_SEPARATOR.match(line) and "|" in line:
        return ""
    if _SETEXT.match(line) and previous.strip() and not _BULLET.match(previous):
        return ""  # the underline of a heading: the line above is the heading's text
    if _RULE.match(line):
        return ""
    if heading := _HEADING.match(line):
        return _inline(heading.group(1))
    line = _QUOTE.sub("", line)
    if bullet := _BULLET.match(line):
        line = bullet.group(1) + "• " + line[bullet.end() :]
    if line.lstrip().startswith("|") or line.count("|") >= 2 and line.strip().endswith("|"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        line = " · ".join(c for c in cells if c)
    return _inline(line)


def _inline(text: str) -> str:
    kept: list[str] = []  # code spans and escaped characters, out of the other rules' way

    def keep(literal: str) -> str:
        kept.append(literal)
        return f"{_KEPT}{len(kept) - 1}{_KEPT}"

    text = _CODE_SPAN.sub(lambda m: keep(m.group(2).strip() or m.group(2)), text)
    text = _ESCAPE.sub(lambda m: keep(m.group(1)), text)  # \* is a star, not emphasis
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2), text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    for _ in range(2):  # ***both*** and nested emphasis
        text = _STRONG.sub(r"\2", text)
        text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = _STRIKE.sub(r"\1", text)
    return re.sub(f"{_KEPT}(\\d+){_KEPT}", lambda m: kept[int(m.group(1))], text)
