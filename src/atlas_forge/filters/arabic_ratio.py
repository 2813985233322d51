"""Share of Arabic-script letters among all letters in the assistant turns of Arabic-script targets.

Applies only where the answer should be in Arabic script: the target of meta.direction when present
(a translation into English or Latin-script Darija is legitimately non-Arabic), else the row's lang.
"""

from __future__ import annotations

import re

import polars as pl

from atlas_forge import records
from atlas_forge.filters import split


def target_lang(row: dict) -> str:
    return _target(row["meta"], row["lang"])


def _target(meta: str | None, lang: str | None) -> str:
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


def step(df: pl.DataFrame, cfg, ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    bad = {}
    cols = (df[c].to_list() for c in ("messages", "meta", "lang"))
    for i, (msgs, meta, lang) in enumerate(zip(*cols, strict=True)):
        if not _target(meta, lang).endswith("_Arab"):
            continue
        for text in (m["content"] or "" for m in msgs or [] if m["role"] == "assistant"):
            ratio, n_letters = arabic_ratio(text)
            if n_letters >= cfg.arabic_ratio_min_letters and ratio < cfg.min_arabic_ratio:
                bad[i] = f"arabic_ratio: below {cfg.min_arabic_ratio} ({ratio:.2f})"
                break
    return split(df, bad)
