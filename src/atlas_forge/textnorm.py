"""Text normalization shared by split, filters and evaluate.

Two strings that a Darija reader sees as "the same sentence" must normalize to the same key: the
benchmark split, deduplication and decontamination all compare these keys. Arabic script is written
with optional diacritics, decorative tatweel and interchangeable letter forms (hamza on alef, final
ya / alef maqsura, ta marbuta / ha), so those are folded; Latin text is left in its case.
"""

from __future__ import annotations

import re
import unicodedata

# harakat, tanwin, shadda, sukun (U+064B-U+0652) and tatweel (U+0640): optional in writing
_DROP = {cp: None for cp in range(0x064B, 0x0653)} | {0x0640: None}
_UNIFY = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ى": "ي", "ة": "ه"})
_SPACE = re.compile(r"\s+")
# the same folds, fast: str.translate with a dict looks every character up in Python, while a regex
# and str.replace scan in C; the result is identical (see tests/test_split.py)
_DROP_RE = re.compile("[\u064B-\u0652\u0640]")
_UNIFY_PAIRS = (("أ", "ا"), ("إ", "ا"), ("آ", "ا"), ("ى", "ي"), ("ة", "ه"))


def normalize_arabic(text: str | None) -> str:
    """NFKC, drop diacritics and tatweel, unify alef/ya/ta-marbuta forms, collapse whitespace."""
    if not text:
        return ""
    # NFKC first: it maps presentation forms (U+FBxx, U+FExx) to the base letters folded below
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = _DROP_RE.sub("", text)
    for old, new in _UNIFY_PAIRS:
        if old in text:
            text = text.replace(old, new)
    # str.split() and re's \s agree on what whitespace is (str.isspace)
    return " ".join(text.split())


def normalize_arabic_reference(text: str | None) -> str:
    """The plain definition normalize_arabic must equal (kept for tests)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_DROP).translate(_UNIFY)
    return _SPACE.sub(" ", text).strip()
