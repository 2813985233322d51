"""The translate phase (paper §6, App. B.3): English chat data -> Darija chats.

Pre-filters (subset, empty, pattern, English langid) -> look every message up in the caches ->
translate what is missing with the backend, caching as results land -> keyword replacements ->
Arabic-script langid post-filter. A sample is kept only when every message is translated: English
or placeholder text never reaches the output. Every dropped sample is a reject row with its reason,
and `stats["reasons"]` counts them.

The paper's recipe (App. B.3) and ours, step by step (docs/translation.md has the full comparison):
- B.3.1 pre-filters, as printed: the Science subset out; samples with an empty message out; samples
  holding "translate " or " translation " out; samples whose fastText top-1 language is not English,
  or English below 0.80, out. Ours: the pattern match ignores case; whitespace-only counts as empty;
  a subset also matches its dotted sub-subsets ("science.scifact" under "science"); language ID reads
  the whole sample by default (lid_text) with fastText's lid.176 (the paper: facebook/
  fasttext-language-identification, k=2, top-1 read).
- B.3.2 translation: the Fig. 3 prompt verbatim (backends.FIG3_PROMPT); the model is the endpoint's
  (the paper: Claude 3.5 Sonnet on Amazon Bedrock), 25 concurrent requests as the paper's "often 25".
  Ours: the cache, one request per sample for its not-yet-translated messages, malformed answers
  rejected (the paper's "cleaning the errors" is not described).
- B.3.3 post-processing, as printed: the English keywords left untranslated ("Input", "Output",
  "Response", "Answer", "Instructions", "Hypothesis", "Additional Context") replaced by Darija
  equivalents; samples whose fastText top-1 is not Arabic, or Arabic below 0.80, out. The paper's
  Darija equivalents are not legible in our copy (lost in its PDF-to-text), so keyword_replacements
  is empty by default (ours to fill) and stats["keywords_left"] counts the kept samples still holding
  each keyword. Ours: keywords match whole words, case-sensitive, longest first, in one pass.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from atlas_forge import records
from atlas_forge.chat_client import OpenAIConfig, ReplayConfig
from atlas_forge.phase import PATH, Phase
from atlas_forge.translate.backends import Seq2SeqConfig
from atlas_forge.translate.cache import TranslationCache, cache_key

log = logging.getLogger(__name__)
PHASE = "translate"


# App. B.3.3, verbatim: 'Some keywords such as "Input", "Output", "Response", "Answer", "Instructions",
# "Hypothesis" and "Additional Context" were not translated. We replaced these keywords with their Darija
# equivalents:' The Darija equivalents that follow the colon in the paper are missing from our PDF-to-text
# copy (arXiv v2): they are not reproduced here, and not guessed.
PAPER_KEYWORDS = ("Input", "Output", "Response", "Answer", "Instructions", "Hypothesis", "Additional Context")


@dataclass(frozen=True)
class PrefilterConfig:
    drop_subsets: list[str] = field(default_factory=lambda: ["science"])  # App. B.3.1: the Science subset
    drop_patterns: list[str] = field(default_factory=lambda: ["translate ", " translation "])  # App. B.3.1
    lid_min_english: float = 0.8  # App. B.3.1: top-1 English with confidence >= 80%
    # what language ID reads: the user turns or the whole sample (the paper: "each input text"); ours: the
    # bundled lid.176.ftz is unsure on one short question, the whole chat gives it enough text
    lid_text: Literal["user", "all"] = "all"


@dataclass(frozen=True)
class PostfilterConfig:
    lid_min_arabic: float = 0.8  # App. B.3.3: top-1 Arabic with confidence >= 80%
    # App. B.3.3's keyword fix: English keyword -> Darija; empty by default (see PAPER_KEYWORDS)
    keyword_replacements: dict[str, str] = field(default_factory=dict)
    # English keywords counted in the kept samples after the replacements (stats["keywords_left"]): the
    # paper's list, so a run shows what its keyword_replacements leave untranslated; drops nothing
    report_keywords: list[str] = field(default_factory=lambda: list(PAPER_KEYWORDS))
    # lid.176 has no Darija label; "ar" is where Darija in Arabic script lands (the paper: "Darija is
    # recognized as Arabic due to its use of Arabic script")
    lid_labels: list[str] = field(default_factory=lambda: ["ar"])


@dataclass(frozen=True)
class TranslateConfig:
    backend: Literal["cache", "openai", "seq2seq"] = "cache"
    # the embedded default's bundled translations (params.yaml holds the same, the only default)
    seed_caches: list[str] = field(
        default_factory=lambda: ["data/raw/sample/translations.jsonl",
                                 "data/raw/sample/alpaca_translations.jsonl"]
    )
    cache_dir: str = "data/cache"
    # part of every cache key: a changed prompt must change it. atlas-chat-fig3-v1: the paper's Fig. 3
    # prompt; atlas-chat-appB-v1 was our earlier prompt (cached translations under it are not reused)
    prompt_version: str = "atlas-chat-fig3-v1"
    require_complete: bool = False
    prefilter: PrefilterConfig = field(default_factory=PrefilterConfig)
    postfilter: PostfilterConfig = field(default_factory=PostfilterConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    seq2seq: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)


def make_backend(cfg: TranslateConfig, threads: int = 1):
    from atlas_forge.translate import backends

    if cfg.backend == "openai":
        return backends.OpenAIBackend(cfg.openai)
    if cfg.backend == "seq2seq":
        return backends.Seq2SeqBackend(cfg.seq2seq, threads=threads)
    return backends.CacheBackend(cfg.replay.backend, cfg.replay.model)


def prefilter_reason(row: dict, cfg: PrefilterConfig) -> str | None:
    """Why a sample is dropped before translation (paper App. B), or None to keep it."""
    from atlas_forge.language import top1

    meta = records.load_meta(row["meta"])
    subset = meta.get("subset")
    if isinstance(subset, str):
        low = subset.casefold()
        # ours: "science" also matches "science.scifact" etc. (how TÜLU's dataset column names its parts)
        if any(low == s.casefold() or low.startswith(s.casefold() + ".") for s in cfg.drop_subsets):
            return f"prefilter: subset {subset}"
    msgs = row["messages"] or []
    if not msgs or any(not (m["content"] or "").strip() for m in msgs):
        return "prefilter: empty message"
    for m in msgs:
        low = m["content"].casefold()
        for pattern in cfg.drop_patterns:
            if pattern.casefold() in low:
                return f"prefilter: pattern '{pattern}'"
    label, prob = top1(" ".join(m["content"] for m in msgs if cfg.lid_text == "all" or m["role"] == "user"))
    if label != "en" or prob < cfg.lid_min_english:
        return f"prefilter: langid not English (top-1 {label or 'none'} p={prob:.2f})"
    return None


def postfilter_reason(texts: list[str], cfg: PostfilterConfig) -> str | None:
    from atlas_forge.language import top1

    label, prob = top1(" ".join(texts))
    if label not in cfg.lid_labels or prob < cfg.lid_min_arabic:
        return f"postfilter: langid not Arabic script (top-1 {label or 'none'} p={prob:.2f})"
    return None


def _keyword_pattern(keywords) -> re.Pattern | None:
    # whole words only (ours): "Input" must not touch "Inputs" or "InputStream" in kept code; longest
    # first, so "Additional Context" wins over a shorter keyword inside it
    if not keywords:
        return None
    alternatives = "|".join(re.escape(k) for k in sorted(keywords, key=lambda k: (-len(k), k)))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def replace_keywords(text: str, replacements: dict[str, str]) -> str:
    """App. B.3.3's keyword fix: each English keyword, as a whole word, replaced by its Darija equivalent,
    in one pass (a replacement is never replaced again)."""
    pattern = _keyword_pattern(replacements)
    return pattern.sub(lambda m: replacements[m.group(0)], text) if pattern else text


def keywords_left(texts: list[str], keywords: list[str]) -> set[str]:
    """The keywords still present (whole words) in a translated sample."""
    pattern = _keyword_pattern(keywords)
    return {m.group(0) for t in texts for m in pattern.finditer(t)} if pattern else set()


def translate_table(
    df: pl.DataFrame, cfg: TranslateConfig, backend, cache: TranslationCache
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    from tqdm import tqdm

    rows = list(df.iter_rows(named=True))
    reasons: dict[int, str] = {}
    for i, row in enumerate(rows):
        reason = prefilter_reason(row, cfg.prefilter)
        if reason:
            reasons[i] = reason
    n_pre = len(reasons)

    def key(text: str) -> str:
        return cache_key(backend.key_backend, backend.key_model, cfg.prompt_version, text)

    translations: dict[str, str] = {}
    for i, row in enumerate(rows):
        if i not in reasons:
            for m in row["messages"]:
                hit = cache.get(key(m["content"]), m["content"])
                if hit is not None:
                    translations[m["content"]] = hit
    cached = len(translations)

    # each missing string is asked for once, in the first sample that has it, with that sample's context;
    # a string whose sample failed is asked again with the next sample that needs it (next round)
    errors: dict[int, str] = {}
    requested: set[str] = set()
    n_requests = 0
    with tqdm(desc=f"translate ({backend.kind})", unit="sample") as bar:
        while True:
            groups, group_roles, group_rows, claimed = [], [], [], set()
            for i, row in enumerate(rows):
                if i in reasons or i in errors:
                    continue
                role_of = {}
                for m in row["messages"]:
                    role_of.setdefault(m["content"], m["role"])
                missing = [t for t in role_of if t not in translations and t not in claimed]
                if missing:
                    claimed.update(missing)
                    groups.append(missing)
                    group_roles.append([role_of[t] for t in missing])
                    group_rows.append(i)
            if not groups or backend.kind == "cache":
                break
            log.info("%d samples after pre-filters; %d strings cached, %d to translate in %d requests (%s)",
                     len(rows) - n_pre, len(translations), len(claimed), len(groups), backend.kind)
            requested |= claimed
            n_requests += len(groups)
            bar.total = n_requests
            for g, outs, error in backend.translate(groups, group_roles):
                if outs is None:
                    errors[group_rows[g]] = error or f"untranslated: {backend.kind} failed"
                else:
                    cache.put_many([{"key": key(src), "backend": backend.key_backend,
                                     "model": backend.key_model, "prompt_version": cfg.prompt_version,
                                     "source": src, "target": tgt}
                                    for src, tgt in zip(groups[g], outs, strict=True)])
                    translations.update(zip(groups[g], outs, strict=True))
                bar.update(1)

    kept_rows, missing, left = [], 0, Counter()
    for i, row in enumerate(rows):
        if i in reasons:
            continue
        untranslated = [m["content"] for m in row["messages"] if m["content"] not in translations]
        if untranslated:
            missing += 1
            reasons[i] = errors.get(i) or f"untranslated: {backend.kind} had no translation"
            continue
        msgs = [{"role": m["role"],
                 "content": replace_keywords(translations[m["content"]], cfg.postfilter.keyword_replacements)}
                for m in row["messages"]]
        reason = postfilter_reason([m["content"] for m in msgs], cfg.postfilter)
        if reason:
            reasons[i] = reason
            continue
        left.update(keywords_left([m["content"] for m in msgs], cfg.postfilter.report_keywords))
        meta = {**records.load_meta(row["meta"]), "translated_from": row["lang"] or "eng_Latn",
                "backend": backend.kind, "model": backend.model}
        kept_rows.append({**row, "task": "chat", "lang": "ary_Arab", "messages": msgs,
                          "meta": records.dump_meta(meta)})
    if missing and cfg.require_complete:
        raise ValueError(f"translate.require_complete: {missing} sample(s) have untranslated messages "
                         f"with backend {backend.kind}; the cache keeps what was translated")

    kept = records.from_rows(kept_rows)
    bad = sorted(reasons)
    mask = pl.Series([i in reasons for i in range(df.height)], dtype=pl.Boolean)
    rejected = records.reject(df.filter(mask), "", PHASE).with_columns(
        pl.Series("reason", [reasons[i] for i in bad], dtype=pl.String))
    if kept.height + rejected.height != df.height:
        raise RuntimeError(f"translate: {df.height} rows in, {kept.height} kept + {rejected.height} rejected")
    by_reason = Counter(r.split(" (")[0] for r in reasons.values())
    stats = {"rows_in": df.height, "rows_out": kept.height, "rows_rejected": rejected.height,
             "strings_cached": cached, "strings_requested": len(requested), "requests": n_requests,
             "reasons": dict(sorted(by_reason.items())), "keywords_left": dict(sorted(left.items()))}
    return kept, rejected, stats


CONTRACT = Phase(
    name="translate",
    module=__name__,
    help="translate English chat data into Darija (pre-filters, backend, cache, post-filters)",
    config=TranslateConfig,
    args=(("--input", {"required": True, **PATH}), ("--out", {"required": True, **PATH}),
          ("--rejects", {"required": True, **PATH}),
          ("--threads", {"type": int, "default": 1, "help": "torch threads of the seq2seq backend"})),
)


def run_cli(args, job) -> None:
    import json

    from atlas_forge import io

    cfg = job.config
    df = io.read_table(args.input, PHASE)
    cache = TranslationCache(cfg.cache_dir, cfg.seed_caches)
    kept, rejected, stats = translate_table(df, cfg, make_backend(cfg, threads=args.threads), cache)
    io.write_table(kept, args.out, PHASE)
    io.write_table(rejected, args.rejects, PHASE, rejects=True)
    log.info("stats %s", json.dumps(stats, ensure_ascii=False, sort_keys=True))
