"""Decode the bytes of a text file whatever its encoding: BOMs, UTF-16, GBK, Big5, mixtures."""

from __future__ import annotations

import codecs
import re
import unicodedata

from charset_normalizer import from_bytes

# Common hanzi: the 500 most frequent characters of jieba's dictionary plus their traditional
# forms. Text decoded with the right codec is full of them; text decoded with the wrong one
# (GBK bytes read as Big5 or the reverse) is made of rare characters instead.
_COMMON_HANZI = frozenset(
    "一万三上下不与专世业东两並个中为主举么义之也书了争事二于五亚些亞交产京亲人什今从他代令以"
    "们件价任众会传但位住体何作你使來便保信個們候值做備傳像價儿元先光克兒党入內全兩八公共关兵"
    "其具内再军农决况准几出分划则別利别到制則前力办功加务动势動務勢包化北区區十千半华单南即却"
    "卻历原去县参參又及反发取受变口古只叫可台史号司吃各合同名后向听告员周命和品員商問喫單器四"
    "回因团国图國圖團土在地场型城基報場境增士声处备复外多大天太夫头女她好如始委子字学學它安完"
    "官定实家容實对导将將專對導小少尔就展属屬山州工己已市布师帝带師帶常干平年并幹幾广应府度廣"
    "建开式张張強强当形影往很律後得從復德心必快怎思性总息情想意愛感應成我或战戰所手才打技把投"
    "报拉持指据接提據支收改放政教数整數文料断斯新斷方於族无日早时明是時更書最會月有望朝期本术"
    "机权李条来東极构林果校样根格條業極構樣機權次正此步武歷死段每比民气氣水求汉江決沒没河治況"
    "法活派流济海深清游湖源準漢濟火点热無然熱爭爱爲爾片物特王现現理生產用由电界當病發白百的皇"
    "目直相省看真眼着知石研示社神种科积称程種稱積究空立笑第等算管米类精系紀約紅級組結給統經網"
    "線編縣總红约级纪线组经结给统编网美羣群義老考者而职联聯聲職聽股育能自至臺與舉色花英華萬處"
    "號衆行術表被装裏裝西要見規親觀见观规解言計記設許話該認語說調論證議變讓计认让议记许论设证"
    "话该语说调象資質质资走起路身車軍較轉车转较辦農边达过运近还这进远连选這通速造連進遊運過道"
    "達遠選還邊那部都里重量金鐵铁長长門開間關门问间队阳际院陽隊随際隨难集難電需非面革領頭題類"
    "领题風风首馬马體高魚鱼麼黃黄點黨"
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\ue000-\uf8ff]")
_LEGACY_CANDIDATES = ("gb18030", "big5", "cp950", "big5hkscs")
_LINE_BREAKS = re.compile(r"\r\n?")
# Japanese and Korean legacy codecs (Shift-JIS, EUC-JP, EUC-KR) use the byte ranges of
# GB18030 and Big5, so their text also reads as hanzi, rare ones: 대한민국 as 措茄刮惫. Chinese
# text is about 70% common hanzi (no CMRC 2018 or DRCD context of 30 hanzi or more under
# 49%), such misreadings 0-16%: below this share, over enough hanzi to judge (a name of a
# few rare hanzi is Chinese too), the reading is checked against Japanese and Korean ones.
_FOREIGN_BELOW = 0.3
_FOREIGN_MIN_HANZI = 30
_JAPANESE = frozenset(
    {"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004"}
    | {"euc_jisx0213", "iso2022_jp"}
)
_KOREAN = frozenset({"cp949", "euc_kr", "johab", "iso2022_kr"})
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\u3130-\u318f\uac00-\ud7af]")


def decode(data: bytes) -> tuple[str, str]:
    """Decode file bytes, detecting the encoding; line breaks come back as `\\n`.

    Tries, in order: a byte-order mark (UTF-8, UTF-32, UTF-16), UTF-16 without a mark (NUL
    bytes at alternate positions), strict UTF-8, UTF-8 lines mixed with GBK or Big5 lines
    (encoding `utf-8+gb18030`), then GB18030 against Big5, picking the reading made of common
    hanzi (charset-normalizer breaks ties) unless it has so few that the file is Japanese or
    Korean (Shift-JIS, EUC-JP, EUC-KR: the reading charset-normalizer names, if it holds the
    kana or hangul of such text), then anything charset-normalizer trusts.

    Args:
        data: The raw bytes of a file.

    Returns:
        `(text, encoding)`; offsets in the pipeline point into this `text`.

    Raises:
        ValueError: The bytes are binary or in no encoding we can read; the message is the
            reason `LoadError` reports.
    """
    text, encoding = _decode_raw(data)
    # CRLF and CR become LF here, before any offset is taken, so offsets and line numbers all
    # refer to the text we return.
    return _LINE_BREAKS.sub("\n", text), encoding


def _decode_raw(data: bytes) -> tuple[str, str]:
    # UTF-32 first: its little-endian mark starts with UTF-16's.
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return body.decode(encoding.removesuffix("-sig")), encoding
            except UnicodeDecodeError:
                # Notepad marks UTF-8 files; one with GBK or Big5 lines pasted in is read line
                # by line as it would be without the mark.
                mixed = _utf8_mixed_with_legacy(body) if encoding == "utf-8-sig" else None
                if mixed is not None:
                    return mixed[0], mixed[1].replace("utf-8", encoding, 1)
                raise ValueError(f"invalid {encoding} after its byte-order mark") from None
    utf16 = _bomless_utf16(data)
    if utf16 is not None:
        return utf16
    if b"\x00" in data:
        raise ValueError("binary file (NUL bytes)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    mixed = _utf8_mixed_with_legacy(data)
    if mixed is not None:
        return mixed
    legacy = _legacy_chinese(data)
    if legacy is not None:
        if _few_common_hanzi(legacy[0]):
            return _japanese_or_korean(data) or legacy
        return legacy
    best = from_bytes(data).best()
    if best is not None and best.encoding:
        text = str(best)
        if _looks_like_text(text):
            return text, best.encoding
    raise ValueError("cannot detect text encoding")


def _bomless_utf16(data: bytes) -> tuple[str, str] | None:
    # Every ASCII character (newlines, digits, commas) in UTF-16 is a byte and a NUL, so NULs
    # gather on one parity; the other gets only the few hanzi U+xx00. Binary data has NULs
    # everywhere, and whatever slips through is refused by the text check.
    if len(data) < 2 or len(data) % 2:
        return None
    nul_even = data[0::2].count(0)
    nul_odd = data[1::2].count(0)
    if max(nul_even, nul_odd) < 2 or max(nul_even, nul_odd) < 3 * min(nul_even, nul_odd):
        return None
    encoding = "utf-16-le" if nul_odd > nul_even else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return (text, encoding) if _looks_like_text(text) else None


def _legacy_chinese(data: bytes) -> tuple[str, str] | None:
    readings: dict[str, str] = {}
    for encoding in _LEGACY_CANDIDATES:
        # Big5 comes in nested flavours: keep the narrowest one that reads the bytes.
        if encoding != "gb18030" and any(e != "gb18030" for e in readings):
            continue
        try:
            readings[encoding] = data.decode(encoding)
        except UnicodeDecodeError:
            continue
    readings = {e: t for e, t in readings.items() if _looks_like_text(t)}
    if len(readings) <= 1:
        return next(((t, e) for e, t in readings.items()), None)
    scores = {e: _common_hanzi_share(t) for e, t in readings.items()}
    best = max(scores.values())
    tied = [e for e in readings if scores[e] == best]
    if len(tied) > 1:
        # Too little text to tell (often a handful of characters): ask charset-normalizer.
        guess = from_bytes(data, cp_isolation=tied).best()
        if guess is not None and guess.encoding in tied:
            tied = [guess.encoding]
    return readings[tied[0]], tied[0]


def _few_common_hanzi(text: str) -> bool:
    hanzi = len(_CJK.findall(text))
    return hanzi >= _FOREIGN_MIN_HANZI and _common_hanzi_share(text) < _FOREIGN_BELOW


def _japanese_or_korean(data: bytes) -> tuple[str, str] | None:
    """charset-normalizer's reading of `data`, if it is Japanese or Korean text."""
    best = from_bytes(data).best()
    if best is None or best.encoding not in _JAPANESE | _KOREAN:
        return None
    text = str(best)
    hanzi = len(_CJK.findall(text))
    # What a Chinese file read in their codecs lacks: Japanese writes a good share of kana
    # (Chinese bytes give next to none: GBK's lead bytes are half-width katakana in
    # Shift-JIS and kanji in EUC-JP), Korean few hanja (Chinese bytes give about as many
    # hanja as hangul).
    if best.encoding in _KOREAN:
        native = len(_HANGUL.findall(text)) >= 4 * hanzi
    else:
        kana = len(_KANA.findall(text))
        native = kana >= 0.2 * (kana + hanzi)
    return (text, best.encoding) if native and _looks_like_text(text) else None


def _utf8_mixed_with_legacy(data: bytes) -> tuple[str, str] | None:
    """A file pasted together from UTF-8 and GBK/Big5 pages: decode it line by line.

    The lines that are not UTF-8 choose one legacy codec together (a short line alone
    cannot tell GBK from Big5); a line valid in both keeps the reading made of common hanzi.
    """
    lines = data.splitlines(keepends=True)
    readings: list[str | None] = []
    for line in lines:
        try:
            readings.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            readings.append(None)
    foreign = [line for line, text in zip(lines, readings, strict=True) if text is None]
    if not foreign or len(foreign) == sum(not line.isascii() for line in lines):
        return None  # all one encoding: not mixed
    legacy = _legacy_chinese(b"".join(foreign))
    if legacy is None:
        return None
    encoding = legacy[1]
    out: list[str] = []
    for line, text in zip(lines, readings, strict=True):
        if text is None or not line.isascii():
            other = line.decode(encoding, errors="replace")
            if text is None or _common_hanzi_share(other) > _common_hanzi_share(text):
                text = other
        out.append(text)
    decoded = "".join(out)
    return (decoded, f"utf-8+{encoding}") if _looks_like_text(decoded) else None


def _common_hanzi_share(text: str) -> float:
    hanzi = _CJK.findall(text)
    if not hanzi:
        return 0.0
    return sum(ch in _COMMON_HANZI for ch in hanzi) / len(hanzi)


def _looks_like_text(text: str) -> bool:
    # A wrong codec turns bytes into control characters, private-use or unassigned code
    # points; a sample is enough to notice.
    sample = text[:20_000]
    if not sample:
        return True
    odd = sum(
        1
        for ch in sample
        if ch not in "\t\n\r\f" and unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs")
    )
    return odd <= len(sample) // 100
