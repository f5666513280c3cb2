"""Turn a file's bytes into text, whatever encoding a bilingual collection throws at us.

Order matters: a BOM is certain; UTF-16 without a BOM shows as NUL bytes in every other
position; strict UTF-8 almost never decodes text that is not UTF-8. The hard case is GB18030/GBK
versus Big5: each decodes most of the other's bytes without error, into nonsense. We decode with
both and keep the one whose Chinese characters are mostly common ones; on short texts this beats
statistical detectors, which confuse these encodings with each other and with Korean.
"""

from __future__ import annotations

import codecs

from core.errors import FileSkipped

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# About 600 of the most frequent Chinese characters, simplified and traditional forms. In a
# correct decoding most Han characters are among them; in a wrong one, almost none are.
_COMMON_HAN = set(
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她"
    "里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从"
    "动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等"
    "几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山"
    "五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更"
    "反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度"
    "统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近"
    "留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令"
    "黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯"
    "专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴具存选择图层文件编辑窗口工具颜色图像设置使用命令选项"
    "這個們來國說為時過學對裡後麼沒發還動兩長現樣將實點話兒從與進經開見問機給幾業間電門東車體別處總師書"
    "員論嗎讓認當應變聯權傳帶條遠隊運達辦區轉輕識極語龍場聽氣關無頭愛該難報歲萬張紅雲會產號選邊樂寫錢黨"
    "結壞興專華記題圖層檔案編輯視窗工具顏色圖像設定使用命令選項擇"
)
_CANDIDATES = ("gb18030", "big5")


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode `data` or raise FileSkipped saying why it is not text we can read.

    `declared` (an HTML meta charset, say) is tried after strict UTF-8 and not trusted: bytes
    that are valid UTF-8 are UTF-8 whatever a page claims (a lying latin-1 or GBK declaration
    would turn them into nonsense), and a declaration that does not decode cleanly is ignored.
    """
    if not data.strip(b" \t\r\n\x00"):
        raise FileSkipped("empty file")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise FileSkipped(
                    f"starts with a {encoding.upper()} byte-order mark but is not valid {encoding.upper()} "
                    f"({exc.reason} at byte {exc.start})"
                ) from None
    utf16 = _utf16_without_bom(data)
    if utf16:
        try:
            return data.decode(utf16)
        except UnicodeDecodeError:
            pass
    if _looks_binary(data):
        raise FileSkipped("binary file (not text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
    if declared:
        try:
            return data.decode(_normalise_label(declared))
        except (UnicodeDecodeError, LookupError):
            pass
    decoded = []
    for encoding in _CANDIDATES:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        decoded.append((_common_han_share(text), encoding, text))
    if not decoded:
        raise FileSkipped(
            f"cannot decode: line {bad_line} is not UTF-8, and the file is not UTF-16, GB18030 or Big5 either "
            "(mixed encodings?) — convert it to UTF-8 and re-run"
        )
    return max(decoded)[2]


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 of mostly ASCII text has a NUL in every other byte; pick the side it is on."""
    sample = data[:4096]
    if len(sample) < 4 or len(sample) % 2:
        return None
    even = sample[0::2].count(0) / (len(sample) / 2)
    odd = sample[1::2].count(0) / (len(sample) / 2)
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls / len(sample) > 0.05


def _common_han_share(text: str) -> float:
    han = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if not han:
        return 0.0
    return sum(c in _COMMON_HAN for c in han) / len(han)


def _normalise_label(label: str) -> str:
    label = label.strip().lower()
    return {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "big5-hkscs": "big5hkscs"}.get(label, label)
