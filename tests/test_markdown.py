"""Markdown stored as rendered text (indexer/markdown.py): what snippets and pages show."""

import pytest

from indexer.markdown import markdown_to_text


@pytest.mark.parametrize(
    "markdown, text",
    [
        ("# Title *here* #", "Title here"),
        ("## 配置 **网络**", "配置 网络"),
        ("Some **bold**, __strong__, *em* and _it_.", "Some bold, strong, em and it."),
        ("snake_case_name, 2*3*4 and a * b", "snake_case_name, 2*3*4 and a * b"),
        ("run `apt-get *install*` now", "run apt-get *install* now"),
        ("[the manual](https://example.org/a_(b)) and [ref][1]", "the manual and ref"),
        ("![a diagram](img.png) <https://example.org>", "a diagram https://example.org"),
        ("cp <src> <dest>, <b>bold</b><br/>", "cp <src> <dest>, bold"),
        ("> quoted **text**", "quoted text"),
        ("- item\n* [x] done\n  + nested", "• item\n• done\n  • nested"),
        ("| a | b |\n|---|:--:|\n| 1 | 2 |", "a · b\n\n1 · 2"),
        ("\\*literal\\* and \\_under\\_", "*literal* and _under_"),
        ("~~gone~~ away", "gone away"),
        ("[1]: https://example.org/ref", ""),
    ],
)
def test_inline_and_block_markup_become_text(markdown, text):
    assert markdown_to_text(markdown) == text


def test_code_blocks_keep_their_code_and_lose_their_fences():
    md = "Before\n```python\nx = **y** * 2  # not bold\n```\n~~~\n# not a heading\n~~~\nAfter"
    assert markdown_to_text(md) == "Before\nx = **y** * 2  # not bold\n# not a heading\nAfter"


def test_setext_headings_and_rules_lose_their_lines():
    assert markdown_to_text("Heading\n=======\n\ntext\n\n---\n\nmore") == "Heading\n\n\ntext\n\n\n\nmore"


def test_one_line_in_one_line_out():
    md = "# A\n\npara with [link](x)\n- item\n```\ncode\n```\n"
    assert len(markdown_to_text(md).split("\n")) == len(md.split("\n")) - 2  # the two fence lines go
