from pathlib import Path

import pytest

from core.errors import FileSkipped
from indexer.readers import read_file


def read(name: str, data: bytes | str, **kw):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return read_file(Path(name), data, **kw)


def test_markdown_title_is_first_heading():
    [doc] = read("notes.md", "intro line\n\n## 图层 Layers\n\nbody")
    assert doc.title == "图层 Layers" and "body" in doc.text and doc.key == ""


def test_markdown_is_stored_as_the_text_a_reader_sees():
    [doc] = read("notes.md", "# The **apt** tool\n\nRun `apt-get update` (see [the manual](https://x.org)).\n\n- one\n- two\n")
    assert doc.title == "The apt tool"
    assert doc.text == "The apt tool\n\nRun apt-get update (see the manual).\n\n• one\n• two"


def test_text_normalises_newlines():
    [doc] = read("a.txt", "first\r\nsecond  \r\nthird")
    assert doc.text == "first\nsecond\nthird" and doc.title == "first"


def test_html_drops_scripts_and_keeps_blocks_and_title():
    html = (
        "<html><head><title>Layer &amp; Masks</title><style>p{}</style></head><body>"
        "<script>alert('x')</script><h1>Heading</h1><p>Para   one.</p><ul><li>item a</li><li>item b</li></ul>"
        "<table><tr><td>c1</td><td>c2</td></tr></table><pre>code\n  indented</pre></body></html>"
    )
    [doc] = read("page.html", html)
    assert doc.title == "Layer & Masks"
    assert "alert" not in doc.text and "p{}" not in doc.text
    assert "Para one." in doc.text and "item a\nitem b" in doc.text and "c1 c2" in doc.text
    assert "code\n  indented" in doc.text


def test_html_with_declared_gbk_charset():
    html = '<html><head><meta charset="gbk"><title>图层</title></head><body><p>图层对话框</p></body></html>'
    [doc] = read("zh.htm", html.encode("gbk"))
    assert doc.title == "图层" and "图层对话框" in doc.text


def test_jsonl_rows_are_documents_keyed_by_id_field():
    data = '{"id": "a1", "text": "first row", "title": "T1"}\n\n{"id": "a2", "text": "第二行"}\n'
    docs = read("rows.jsonl", data, id_field="id")
    assert [(d.key, d.title, d.text) for d in docs] == [("a1", "T1", "first row"), ("a2", "第二行", "第二行")]
    assert [d.key for d in read("rows.jsonl", data)] == ["line 1", "line 3"]


@pytest.mark.parametrize(
    "data, kw, message",
    [
        ('{"text": "ok"}\n{"text": broken}\n', {}, r"line 2: invalid JSON"),
        ('["not", "an", "object"]\n', {}, r"line 1: expected a JSON object"),
        ('{"body": "x"}\n', {}, r"line 1: no field 'text' \(fields: body\) — pass --text-field NAME"),
        ('{"text": 5}\n', {}, r"line 1: field 'text' is int"),
        ('{"text": "a"}\n', {"id_field": "id"}, r"line 1: no value for --id-field 'id'"),
        ('{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n', {"id_field": "id"}, r"appears twice"),
    ],
)
def test_jsonl_errors_name_the_line(data, kw, message):
    with pytest.raises(FileSkipped, match=message):
        read("rows.jsonl", data, **kw)


def test_csv_rows_with_text_field_and_sniffed_delimiter():
    docs = read("t.csv", "id;body\n1;hello there\n2;你好\n", text_field="body", id_field="id")
    assert [(d.key, d.text) for d in docs] == [("1", "hello there"), ("2", "你好")]
    docs = read("t.csv", 'title,text\n"A, quoted",multi\n', text_field="text")
    assert docs[0].title == "A, quoted"


@pytest.mark.parametrize(
    "data, kw, message",
    [
        ("a,b\n1,2\n", {}, r"line 1: no column 'text' \(columns: a, b\)"),
        ("id,text\n1,ok\n2,too,many\n", {}, r"line 3: expected 2 fields, found 3"),
        ("id,text\n1,ok\n2\n", {}, r"line 3: expected 2 fields, found 1"),
        ('id,text\n1,"unterminated\n', {}, r"malformed CSV"),
        ("text\nx\n", {"id_field": "id"}, r"no column 'id' for --id-field"),
    ],
)
def test_csv_errors_name_the_line(data, kw, message):
    with pytest.raises(FileSkipped, match=message):
        read("t.csv", data, **kw)


@pytest.mark.parametrize("name, data", [("e.txt", ""), ("e.md", "\n\n  \n"), ("e.jsonl", '{"text": ""}\n')])
def test_empty_inputs_are_skipped(name, data):
    with pytest.raises(FileSkipped, match="empty"):
        read(name, data)


def test_unsupported_type_is_skipped():
    with pytest.raises(FileSkipped, match=r"unsupported file type '.docx'"):
        read("report.docx", "x")


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, built by hand (no PDF writer needed)."""
    stream = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_is_extracted_when_pypdf_is_installed():
    pytest.importorskip("pypdf")
    [doc] = read("manual.pdf", _minimal_pdf("Layers are transparent sheets"))
    assert doc.text == "Layers are transparent sheets" and doc.title == "Layers are transparent sheets"
    with pytest.raises(FileSkipped, match="cannot read PDF"):
        read("broken.pdf", b"%PDF-1.4\nnot really")


def test_pdf_without_the_extra_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pypdf(name, *args, **kwargs):
        if name == "pypdf":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pypdf)
    with pytest.raises(FileSkipped, match=r"pip install 'xlsearch\[pdf\]'"):
        read("manual.pdf", _minimal_pdf("x"))
