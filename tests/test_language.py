import pytest

from core.language import detect_language


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Layers are like transparent sheets.", "en"),
        ("图层就像一叠透明的纸。", "zh"),
        ("圖層就像一疊透明的紙。", "zh"),
        ("使用 GIMP 的图层对话框管理 layers", "zh"),  # Chinese prose with Latin names stays Chinese
        ("The word 你好 means hello in Chinese", "en"),
        ("pip install xlsearch", "en"),
        ("ＡＢＣ full-width letters", "en"),
        ("これは日本語の文章です", "other"),
        ("Это русский текст", "other"),
        ("12345 67.89 — !!", "other"),
        ("", "other"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang
