import codecs

import pytest

from core.errors import FileSkipped
from indexer.encoding import decode_bytes

ZH_SIMPLIFIED = "搜索引擎按照与查询的相关性对文档进行排序。安装软件包，然后索引文件夹。"
ZH_TRADITIONAL = "圖層和遮罩是影像編輯的基本工具，請先選擇一個圖層。"
SHORT_SIMPLIFIED = "这是一个简短的测试"
SHORT_TRADITIONAL = "這是一個簡短的測試"
MIXED = "GIMP 的图层对话框 (Layers dialog) 显示所有图层。"


@pytest.mark.parametrize("text", [ZH_SIMPLIFIED, ZH_TRADITIONAL, MIXED, "plain ASCII", "emoji 🙂 ok"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_unicode_encodings_with_and_without_bom(text, encoding):
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be") and not text.isascii():
        # Without a BOM, UTF-16 of mostly-Han text has no NUL pattern; only the BOM forms are promised.
        data = (codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE) + data
    assert decode_bytes(data) == text


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_mostly_ascii(encoding):
    text = "README for the 图层 tool\nLine two.\n"
    assert decode_bytes(text.encode(encoding)) == text


@pytest.mark.parametrize("text", [ZH_SIMPLIFIED, SHORT_SIMPLIFIED, MIXED])
def test_gb18030(text):
    assert decode_bytes(text.encode("gb18030")) == text
    assert decode_bytes(text.encode("gbk")) == text


@pytest.mark.parametrize("text", [ZH_TRADITIONAL, SHORT_TRADITIONAL])
def test_big5(text):
    assert decode_bytes(text.encode("big5")) == text


def test_declared_encoding_is_used_when_it_decodes_and_ignored_when_wrong():
    assert decode_bytes(ZH_SIMPLIFIED.encode("gb18030"), declared="gb2312") == ZH_SIMPLIFIED
    # declared UTF-8 but really GBK: the declaration fails to decode and detection takes over
    assert decode_bytes(ZH_SIMPLIFIED.encode("gb18030"), declared="utf-8") == ZH_SIMPLIFIED


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"  \n\t\n", "empty file"),
        (bytes(range(256)) * 8, "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "binary"),
        (codecs.BOM_UTF8 + b"ok \xff\xfe broken", "not valid UTF-8"),
    ],
)
def test_unreadable_bytes_are_skipped_with_a_reason(data, reason):
    with pytest.raises(FileSkipped, match=reason):
        decode_bytes(data)
