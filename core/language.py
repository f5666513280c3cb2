"""Which language a chunk is in: en, zh or other — by script, which is all this needs.

A Chinese technical text is full of Latin names (GIMP, Python, `git commit`), so counting
characters would call it English. We weigh a Han character as about four Latin letters (roughly
a word against a word). Latin-script text counts as English: the product is about en/zh
collections, and "other" is for other scripts (kana, hangul, Cyrillic, Arabic…) or no letters.
"""

from __future__ import annotations

LANGS = ("en", "zh", "other")


def detect_language(text: str) -> str:
    han = latin = kana = other = 0
    for ch in text:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
            han += 1
        elif ch.isascii():
            latin += ch.isalpha()
        elif 0x3040 <= o <= 0x30FF:
            kana += 1
        elif 0x00C0 <= o <= 0x024F or 0xFF21 <= o <= 0xFF5A:  # accented and full-width Latin
            latin += 1
        elif ch.isalpha():
            other += 1
    if kana > 0.2 * (han + kana) and kana >= 2:
        return "other"  # Japanese: kana among the Han characters
    han_weight, latin_weight = han, latin / 4
    if han_weight == 0 and latin_weight == 0:
        return "other"
    if other > han + latin:
        return "other"
    return "zh" if han_weight >= latin_weight else "en"
