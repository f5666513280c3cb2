"""What kind of file this is: a known suffix decides; any other file is plain text when its first
block reads as text (README, LICENSE, notes.1, app.conf — much of what people want searched has
no extension), as git and ripgrep decide. Known binary suffixes are never read to find out.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from core.errors import FileSkipped

from .encoding import decode_bytes

FILE_TYPES = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".pdf": "pdf",
}
# Never text: named on the command line they are refused by type, in a folder walk passed over
# unread (sniffing a photo collection would cost a read per photo to learn nothing).
BINARY_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .webp .tif .tiff .heic .psd .xcf "
    ".zip .gz .tgz .bz2 .xz .zst .lz .lzma .7z .rar .tar .jar .war .whl .egg .deb .rpm .apk .dmg .iso .img "
    ".doc .docx .xls .xlsx .ppt .pptx .odt .ods .odp .odg .epub .mobi .djvu "
    ".mp3 .m4a .aac .wav .flac .ogg .opus .mp4 .m4v .avi .mkv .mov .webm .wmv "
    ".exe .dll .so .dylib .o .a .lib .class .pyc .pyo .bin .wasm "
    ".ttf .otf .woff .woff2 .eot .sqlite .sqlite3 .db .npy .npz .pt .pth .safetensors .onnx .faiss .parquet .pickle .pkl".split()
)
SNIFF_BYTES = 8192  # the first block: what tells text from binary, all a folder walk reads to decide
BINARY = "binary file (not text)"
_WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)  # text whose NUL bytes are no sign of binary


def file_type(path: Path) -> str | None:
    """The type its suffix names, or None: then only the content can tell (`detect_type`)."""
    return FILE_TYPES.get(path.suffix.lower())


def binary_suffix(path: Path) -> bool:
    return path.suffix.lower() in BINARY_SUFFIXES


def unsupported_reason(path: Path) -> str:
    return f"unsupported file type '{path.suffix}' (supported: {', '.join(sorted(FILE_TYPES))}, or any text file)"


def detect_type(path: Path, data: bytes) -> str:
    """The file's type from its suffix, else "text" when the start of `data` reads as text.

    `data` may be the whole file or only its first SNIFF_BYTES + 1 bytes: only those are looked at,
    so a folder walk can decide without reading big files. Raises FileSkipped saying why not.
    """
    kind = file_type(path)
    if kind:
        return kind
    if binary_suffix(path):
        raise FileSkipped(unsupported_reason(path))
    check_text(data[:SNIFF_BYTES], cut=len(data) > SNIFF_BYTES)
    return "text"


def check_text(block: bytes, cut: bool = False) -> None:
    """Raise FileSkipped unless `block` is text by decode_bytes's rules.

    A NUL byte means binary, as for git and grep, unless a UTF-16/32 byte-order mark explains it.
    A block `cut` from a longer file may end inside a character, so up to three bytes at its
    end are allowed not to decode.
    """
    if b"\x00" in block and not block.startswith(_WIDE_BOMS):
        raise FileSkipped(BINARY)
    try:
        decode_bytes(block)
    except FileSkipped:
        if not (cut and any(_decodes(block[:-n]) for n in (1, 2, 3))):
            raise


def _decodes(block: bytes) -> bool:
    try:
        decode_bytes(block)
    except FileSkipped:
        return False
    return True
