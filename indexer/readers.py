"""Read one file into documents: plain text, Markdown, HTML, JSON lines, CSV, PDF.

The type comes from `filetypes` (a known suffix, else text when the content reads as text).
A file is one document, except JSONL and CSV where each row is one (keyed by `--id-field` or
its line number). Every problem is a `FileSkipped` whose message names the line and what to do;
the file is then left out whole, so an index never holds half a file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from core.errors import FileSkipped
from core.jsonlines import json_objects

from .encoding import decode_bytes
from .filetypes import detect_type
from .markdown import markdown_to_text

_TITLE_CHARS = 120


@dataclass
class ParsedDocument:
    key: str
    title: str
    text: str


def read_file(path: Path, data: bytes, text_field: str = "text", id_field: str | None = None) -> list[ParsedDocument]:
    kind = detect_type(path, data)
    reader = {"text": _read_text, "markdown": _read_markdown, "html": _read_html, "pdf": _read_pdf}.get(kind)
    if reader:
        docs = [reader(path, data)]
    elif kind == "jsonl":
        docs = _read_jsonl(data, text_field, id_field)
    else:
        docs = _read_csv(data, text_field, id_field)
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise FileSkipped("no text to index (the file is empty or holds only whitespace)")
    return docs


def _first_line(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:_TITLE_CHARS]
    return fallback


def _read_text(path: Path, data: bytes) -> ParsedDocument:
    text = _tidy(decode_bytes(data))
    return ParsedDocument("", _first_line(text, path.stem), text)


def _read_markdown(path: Path, data: bytes) -> ParsedDocument:
    """Stored as rendered text (indexer.markdown): snippets, summaries and pages show no markup."""
    source = _tidy(decode_bytes(data))
    text = _tidy(markdown_to_text(source))
    heading = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", source, re.M)
    title = markdown_to_text(heading.group(1)).strip() if heading else ""
    return ParsedDocument("", title[:_TITLE_CHARS] or _first_line(text, path.stem), text)


def _tidy(text: str) -> str:
    """Normalise newlines and drop trailing spaces; offsets are taken on this text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


# -- HTML -----------------------------------------------------------------------------------

_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article", "header",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "figure", "figcaption", "main",
}
_SKIP = {"script", "style", "noscript", "template", "svg", "head"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.h1: list[str] = []
        self._skip = 0
        self._in_title = self._in_h1 = self._in_pre = False

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag == "h1":
            self._in_h1 = True
        if tag == "pre":
            self._in_pre = True
        if tag in ("td", "th") and self.parts and not self.parts[-1][-1:].isspace():
            self.parts.append(" ")
        if tag in _BLOCK:
            self._break(1 if tag in ("br", "li", "tr", "dt", "dd") else 2)

    def handle_endtag(self, tag):
        if tag in _SKIP and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag == "h1":
            self._in_h1 = False
        if tag == "pre":
            self._in_pre = False
        if tag in _BLOCK:
            self._break(1 if tag in ("li", "tr", "dt", "dd") else 2)

    def _break(self, newlines: int) -> None:
        """End the current line/paragraph without stacking up blank lines."""
        tail = "".join(self.parts[-3:])
        have = len(tail) - len(tail.rstrip("\n"))
        if self.parts and newlines > have:
            self.parts.append("\n" * (newlines - have))

    def handle_data(self, data):
        if self._in_title:
            self.title.append(data)
        if self._skip:
            return
        if self._in_h1:
            self.h1.append(data)
        if not self._in_pre:
            data = re.sub(r"\s+", " ", data)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = data.lstrip()
        self.parts.append(data)


def _read_html(path: Path, data: bytes) -> ParsedDocument:
    declared = re.search(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", data[:2048], re.I)
    html = decode_bytes(data, declared.group(1).decode() if declared else None)
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t]+\n", "\n", "".join(parser.parts))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    title = " ".join("".join(parser.title).split()) or " ".join("".join(parser.h1).split())
    return ParsedDocument("", (title or _first_line(text, path.stem))[:_TITLE_CHARS], text)


# -- rows -----------------------------------------------------------------------------------


def _row_document(row: dict, where: str, line: int, text_field: str, id_field: str | None) -> ParsedDocument | None:
    if text_field not in row:
        fields = ", ".join(str(k) for k in row) or "none"
        raise FileSkipped(f"{where} {line}: no field '{text_field}' (fields: {fields}) — pass --text-field NAME")
    text = row[text_field]
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise FileSkipped(f"{where} {line}: field '{text_field}' is {type(text).__name__}, not text")
    if id_field is not None:
        if row.get(id_field) in (None, ""):
            raise FileSkipped(f"{where} {line}: no value for --id-field '{id_field}'")
        key = str(row[id_field])
    else:
        key = f"{where} {line}"
    title = row.get("title") if isinstance(row.get("title"), str) and row.get("title") else None
    text = _tidy(text)
    return ParsedDocument(key, (title or _first_line(text, key))[:_TITLE_CHARS], text)


def _read_jsonl(data: bytes, text_field: str, id_field: str | None) -> list[ParsedDocument]:
    docs = []
    for n, row in json_objects(decode_bytes(data).splitlines(), "", f'like {{"{text_field}": "..."}}', FileSkipped):
        doc = _row_document(row, "line", n, text_field, id_field)
        if doc:
            docs.append(doc)
    return _unique_keys(docs)


def _read_csv(data: bytes, text_field: str, id_field: str | None) -> list[ParsedDocument]:
    text = decode_bytes(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect, strict=True)
    docs = []
    try:
        header = reader.fieldnames or []
        if text_field not in header:
            raise FileSkipped(f"line 1: no column '{text_field}' (columns: {', '.join(header) or 'none'}) — pass --text-field NAME")
        if id_field is not None and id_field not in header:
            raise FileSkipped(f"line 1: no column '{id_field}' for --id-field (columns: {', '.join(header)})")
        for row in reader:
            line = reader.line_num
            if None in row or None in row.values():
                found = len(header) + len(row.get(None) or []) - sum(v is None for v in row.values())
                raise FileSkipped(f"line {line}: expected {len(header)} fields, found {found}")
            doc = _row_document(row, "line", line, text_field, id_field)
            if doc:
                docs.append(doc)
    except csv.Error as exc:
        # DictReader.line_num is the last line of the last good row: the bad record starts after it
        raise FileSkipped(f"line {reader.line_num + 1}: malformed CSV ({exc}) — check the quotes on that line") from None
    return _unique_keys(docs)


def _unique_keys(docs: list[ParsedDocument]) -> list[ParsedDocument]:
    seen: set[str] = set()
    for doc in docs:
        if doc.key in seen:
            raise FileSkipped(f"--id-field value '{doc.key}' appears twice — ids must be unique within a file")
        seen.add(doc.key)
    return docs


# -- PDF ------------------------------------------------------------------------------------


def _read_pdf(path: Path, data: bytes) -> ParsedDocument:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise FileSkipped("PDF support is not installed — pip install 'xlsearch[pdf]'") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types for damaged files
        raise FileSkipped(f"cannot read PDF ({exc})") from None
    text = _tidy("\n\n".join(pages))
    title = (reader.metadata.title if reader.metadata and reader.metadata.title else None) or _first_line(text, path.stem)
    return ParsedDocument("", title[:_TITLE_CHARS], text)
