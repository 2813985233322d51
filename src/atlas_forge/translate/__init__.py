"""The translate phase (paper App. B): English chat data -> Darija chats.

Pre-filters (subset, empty, pattern, English langid) -> look every message up in the caches ->
translate what is missing with the backend, caching as results land -> keyword replacements ->
Arabic-script langid post-filter. A sample is kept only when every message is translated: English
or placeholder text never reaches the output.
"""

from __future__ import annotations

import logging
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


@dataclass(frozen=True)
class PrefilterConfig:
    drop_subsets: list[str] = field(default_factory=lambda: ["science"])
    drop_patterns: list[str] = field(default_factory=lambda: ["translate ", " translation "])  # paper App. B
    lid_min_english: float = 0.8
    # what language ID reads: the user turns (paper App. B) or the whole sample; the bundled lid.176.ftz
    # is unsure on one short question, the whole chat gives it enough text
    lid_text: Literal["user", "all"] = "all"


@dataclass(frozen=True)
class PostfilterConfig:
    lid_min_arabic: float = 0.8
    keyword_replacements: dict[str, str] = field(default_factory=dict)
    # lid.176 has no Darija label; "ar" is where Darija in Arabic script lands
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
    prompt_version: str = "atlas-chat-appB-v1"
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
    drop_subsets = {s.casefold() for s in cfg.drop_subsets}
    if isinstance(subset, str) and subset.casefold() in drop_subsets:
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


def replace_keywords(text: str, replacements: dict[str, str]) -> str:
    # longest first: a short keyword must not eat part of a longer one
    for old in sorted(replacements, key=lambda k: (-len(k), k)):
        text = text.replace(old, replacements[old])
    return text


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
            groups, group_rows, claimed = [], [], set()
            for i, row in enumerate(rows):
                if i in reasons or i in errors:
                    continue
                missing = [t for t in dict.fromkeys(m["content"] for m in row["messages"])
                           if t not in translations and t not in claimed]
                if missing:
                    claimed.update(missing)
                    groups.append(missing)
                    group_rows.append(i)
            if not groups or backend.kind == "cache":
                break
            log.info("%d samples after pre-filters; %d strings cached, %d to translate in %d requests (%s)",
                     len(rows) - n_pre, len(translations), len(claimed), len(groups), backend.kind)
            requested |= claimed
            n_requests += len(groups)
            bar.total = n_requests
            for g, outs, error in backend.translate(groups):
                if outs is None:
                    errors[group_rows[g]] = error or f"untranslated: {backend.kind} failed"
                else:
                    cache.put_many([{"key": key(src), "backend": backend.key_backend,
                                     "model": backend.key_model, "prompt_version": cfg.prompt_version,
                                     "source": src, "target": tgt}
                                    for src, tgt in zip(groups[g], outs, strict=True)])
                    translations.update(zip(groups[g], outs, strict=True))
                bar.update(1)

    kept_rows, missing = [], 0
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
             "reasons": dict(sorted(by_reason.items()))}
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
