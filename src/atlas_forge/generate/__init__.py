"""The generate phase: raw Darija documents and posts -> LLM-generated Darija instruction rows
(paper §5.1 MW-QA, §5.2 MSM-MG); also story segmentation (story.py, §5.3) and identity rows
(identity.py, App. C.1), the other sets of Table 1 the pipeline builds from raw text.

Per document (an ingested row of a `generate_docs` source; the source's task, `document` or `post`,
picks the type mix):
1. type: a hash of (seed, document id) drawn against the mix's shares, so each document's type
   never moves when other documents are added (an added document asks only for itself);
2. the cache answers (key: backend, model, type, prompt version, document text), else the backend:
   `cache` (offline: seed caches and replayed work only; the rest are "not generated" rejects, as in
   translate) or `openai` (chat_client's ChatClient and fan_out, as translate: same concurrency,
   retries, key from env);
3. the answer is checked for structure and script (checks.py); a failure is a reject with its reason.
   Answers that pass are cached as they land. Answers that fail are cached only when the run got at
   least one right answer: an endpoint or model that answers everything wrongly leaves nothing behind
   and stops the phase with an error once `all_wrong_min_requests` requests failed;
4. checked answers become items that go through the same 80/10/10 zero-shot / few-shot / multi-turn
   assembly as the native sets (assemble.py, built on instruct's), then filter and mixture.

rows in = documents with an item + documents rejected, checked in code. The stats file (--stats)
feeds the mixture card's per-set counts.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from atlas_forge import io, records
from atlas_forge.chat_client import MalformedResponse, OpenAIConfig, ReplayConfig, fan_out, make_client
from atlas_forge.config import ConfigError
from atlas_forge.conversations import Shots, Sides
from atlas_forge.generate import checks, prompts
from atlas_forge.generate.cache import GenerationCache, cache_key
from atlas_forge.generate.prompts import cut_document  # noqa: F401 (its API)
from atlas_forge.phase import PATH, Phase, by_id, entries

log = logging.getLogger(__name__)
PHASE = "generate"

# Relative weights, equal here: the paper (§5.1, §5.2) names the types; the per-type shares of its
# 30,555 MW-QA and 11,808 MSM-MG rows are not given in what we have of it, so equal weights are our
# choice (marked so in params.yaml); an overlay sets the published proportions when known.
DEFAULT_TYPES = {
    "document": dict.fromkeys(prompts.DOCUMENT_TYPES, 1.0),
    "post": dict.fromkeys(prompts.POST_TYPES, 1.0),
}
DEFAULT_VERSIONS = {t: ("a5-v1" if t in prompts.DOCUMENT_TYPES else "a6-v1") for t in prompts.FIELDS}


@dataclass(frozen=True)
class StoryConfig:
    # tokens of the base model's tokenizer per segment (paper App. A.7: about 2,048; the default's tiny
    # model trains on 256 tokens, so 160 here, ours)
    segment_tokens: int = 160
    # where a segment is cut into prompt and continuation, as a share of its tokens (ours: the middle),
    # moved to the nearest line break when there is one
    prompt_fraction: float = 0.5
    min_segment_tokens: int = 16  # a shorter tail is not a segment (counted in the stats); ours


@dataclass(frozen=True)
class GenerateConfig:
    seed: int = 1234
    backend: Literal["cache", "openai"] = "cache"
    # the embedded default's bundled generations (params.yaml holds the same, the only default)
    seed_caches: list[str] = field(default_factory=lambda: ["data/raw/sample/generations.jsonl"])
    cache_dir: str = "data/cache"
    # source task -> {type: relative weight}; a document's type is drawn with these weights
    types: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TYPES.items()}
    )
    prompt_versions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_VERSIONS))
    n_choices: int = 4
    min_arabic_ratio: float = 0.5
    max_document_chars: int = 6000  # a longer document is cut (at a line break) before it is sent; ours
    all_wrong_min_requests: int = 5
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    shots: Shots = field(default_factory=lambda: Shots(0.8, 0.1, 0.1))  # paper §3, as instruct
    few_shot_k: int = 2
    multi_turn_max: int = 3
    story: StoryConfig = field(default_factory=StoryConfig)
    identity_repeat: int = 10  # App. C.1: 13 pairs, each repeated 10 times (130 rows)
    sides: Sides | None = None  # set by rules/generate.smk from the mixture section, never in params

    def validate(self, section: str) -> None:
        for task, mix in self.types.items():
            unknown = [t for t in mix if t not in prompts.FIELDS]
            if unknown:
                raise ConfigError(
                    f"{section}.types.{task}.{unknown[0]}: unknown type (known: {', '.join(prompts.FIELDS)})"
                )
            if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
                raise ConfigError(f"{section}.types.{task}: weights must be >= 0, at least one > 0")
            for t in mix:
                version = self.prompt_versions.get(t)
                if (t, version) not in prompts.PROMPTS:
                    raise ConfigError(
                        f"{section}.prompt_versions.{t}: no prompt {version!r} in "
                        "atlas_forge/generate/prompts.py"
                    )
        s = self.shots
        if min(s.zero, s.few, s.multi) < 0 or abs(s.zero + s.few + s.multi - 1.0) > 1e-6:
            raise ConfigError(f"{section}.shots: zero + few + multi must be 1 and each >= 0")
        if not 2 <= self.n_choices <= len(prompts.LETTERS):
            raise ConfigError(f"{section}.n_choices: must be in 2..{len(prompts.LETTERS)}")
        if self.identity_repeat < 1:
            raise ConfigError(f"{section}.identity_repeat: must be >= 1")
        st = self.story
        if st.segment_tokens < 8 or not 0 < st.prompt_fraction < 1 or st.min_segment_tokens < 2:
            raise ConfigError(
                f"{section}.story: need segment_tokens >= 8, 0 < prompt_fraction < 1, min_segment_tokens >= 2"
            )


def pick_type(cfg: GenerateConfig, task: str, doc_id: str) -> str:
    """The document's type: its hash against the cumulative weights (stable per document: adding
    documents never moves another's type, so its cached generation stays valid)."""
    mix = cfg.types.get(task)
    if not mix:
        raise ValueError(
            f"generate: no type mix for source task {task!r} (generate.types has "
            f"{sorted(cfg.types)}); row {doc_id}"
        )
    digest = hashlib.blake2b(f"{cfg.seed}\x1ftype\x1f{doc_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64 * sum(mix.values())
    acc = 0.0
    for kind, share in mix.items():  # params order
        acc += share
        if u < acc:
            return kind
    return [k for k, v in mix.items() if v > 0][-1]  # u rounding past the last boundary


class Backend:
    """The openai backend: one request per document, `concurrency` in flight (chat_client's fan_out)."""

    kind = "openai"

    def __init__(self, cfg: OpenAIConfig):
        if not cfg.model:
            raise ValueError("generate.openai.model: empty; name the model the endpoint serves")
        self.cfg = cfg
        self.key_backend, self.key_model, self.model = "openai", cfg.model, cfg.model
        self.client = make_client(cfg, "generate")
        self.url = self.client.url
        log.info(
            "generate: %s model %s, concurrency %d, API key from $%s: %s",
            self.url,
            cfg.model,
            cfg.concurrency,
            cfg.api_key_env,
            "set" if self.client.has_key else "not set",
        )

    def run(self, requests: list[str]):
        """Yield (index, content or None, error) as answers land."""
        results = fan_out(self.client, requests, self.cfg.concurrency)
        with closing(results):
            for i, content, e in results:
                if e is None:
                    yield i, content, None
                elif isinstance(e, MalformedResponse):
                    yield i, None, f"generate: malformed response ({e})"
                else:  # ChatError: non-retryable status, or retries exhausted
                    yield i, None, f"generate: endpoint failed ({e})"


class CacheBackend:
    kind = "cache"

    def __init__(self, replay: ReplayConfig):
        # the key names who made the generation; "cache" replays that backend's work offline
        self.key_backend, self.key_model = replay.backend, replay.model
        self.model = f"{replay.backend}:{replay.model}" if replay.model else "seed"

    def run(self, requests: list[str]):
        yield from ()


def make_backend(cfg: GenerateConfig):
    return Backend(cfg.openai) if cfg.backend == "openai" else CacheBackend(cfg.replay)


class AllWrong(ValueError):
    """Every request of the run failed: most likely a wrong endpoint, model or prompt."""


def generate_answers(df: pl.DataFrame, cfg: GenerateConfig, backend, cache: GenerationCache):
    """(answers {row index: (type, Answer)}, reasons {row index: reason}, stats)."""
    from tqdm import tqdm

    rows = df.select("id", "task", "messages").rows()
    todo: list[tuple[int, str, str, str, str]] = []  # (row, type, version, document, key)
    answers: dict[int, tuple[str, checks.Answer]] = {}
    reasons: dict[int, str] = {}
    n_cached = 0

    def judge(i: int, kind: str, doc: str, content: str) -> str | None:
        try:
            answers[i] = (kind, checks.check(content, kind, doc, cfg.n_choices, cfg.min_arabic_ratio))
            return None
        except checks.Invalid as e:
            reasons[i] = str(e)
            return str(e)

    for i, (rid, task, msgs) in enumerate(rows):
        doc = cut_document((msgs[0]["content"] if msgs else "") or "", cfg.max_document_chars)
        if not doc.strip():
            reasons[i] = "generate: empty document"
            continue
        kind = pick_type(cfg, task, rid)
        version = cfg.prompt_versions[kind]
        key = cache_key(backend.key_backend, backend.key_model, kind, version, doc)
        hit = cache.get(key, kind, version, doc)
        if hit is None:
            todo.append((i, kind, version, doc, key))
        elif "failed" in hit:
            n_cached += 1
            reasons[i] = hit["failed"]
        else:
            n_cached += 1
            judge(i, kind, doc, hit["response"])

    requests = [prompts.prompt(kind, version, doc, cfg.n_choices) for _, kind, version, doc, _ in todo]
    if todo and backend.kind == "cache":
        for i, *_ in todo:
            reasons[i] = f"generate: not generated ({backend.kind} backend has no generation)"
    n_ok = n_failed = 0
    failed_entries: list[dict] = []
    first_errors: list[str] = []
    if requests and backend.kind != "cache":
        log.info(
            "generate: %d documents, %d answered by the cache, %d to ask", len(rows), n_cached, len(requests)
        )
        with tqdm(total=len(requests), desc="generate", unit="doc") as bar:
            for j, content, error in backend.run(requests):
                i, kind, version, doc, key = todo[j]
                entry = {
                    "key": key,
                    "backend": backend.key_backend,
                    "model": backend.key_model,
                    "type": kind,
                    "prompt_version": version,
                    "document": doc,
                }
                if content is not None:
                    error = judge(i, kind, doc, content)
                    if error is None:
                        n_ok += 1
                        cache.put_many([{**entry, "response": content}])
                    else:
                        # a wrong answer would come back the same at temperature 0: remembered, but
                        # only once the run proves the endpoint can answer right (below)
                        failed_entries.append({**entry, "failed": error, "response": content})
                else:
                    reasons[i] = error or "generate: endpoint failed"
                if error is not None:
                    n_failed += 1
                    if len(first_errors) < 3:
                        first_errors.append(error)
                    if n_ok == 0 and n_failed >= cfg.all_wrong_min_requests:
                        raise AllWrong(
                            f"generate: the first {n_failed} answers from {getattr(backend, 'url', '?')} "
                            f"(model {backend.model}) all failed, e.g. {'; '.join(first_errors)}; "
                            "nothing was cached: check generate.openai (base_url, model) and the prompts"
                        )
                bar.update(1)
        if n_ok:
            cache.put_many(failed_entries)
    stats = {
        "rows_in": len(rows),
        "cached": n_cached,
        "requests": len(requests) if backend.kind != "cache" else 0,
        "answers_ok": n_ok,
        "answers_failed": n_failed,
        "types": dict(sorted(Counter(k for k, _ in answers.values()).items())),
    }
    return answers, reasons, stats


def generate_table(df: pl.DataFrame, cfg: GenerateConfig, backend, cache: GenerationCache):
    """Pure core (given backend and cache): (rows, rejects, stats)."""
    from atlas_forge.generate.assemble import assemble

    answers, reasons, stats = generate_answers(df, cfg, backend, cache)
    if set(answers) & set(reasons) or len(answers) + len(reasons) != df.height:
        raise RuntimeError(
            f"generate: {df.height} documents, {len(answers)} answered + {len(reasons)} rejected"
        )
    table, counts = assemble(df, answers, cfg, backend.model)
    bad = sorted(reasons)
    mask = pl.Series([i in reasons for i in range(df.height)], dtype=pl.Boolean)
    rejected = records.reject(df.filter(mask), "", PHASE).with_columns(
        pl.Series("reason", [reasons[i] for i in bad], dtype=pl.String)
    )
    by_reason = Counter(r.split(" (")[0] for r in reasons.values())
    stats |= {
        "generated": len(answers),
        "rejected": len(reasons),
        "rows_out": table.height,
        "reasons": dict(sorted(by_reason.items())),
        **counts,
    }
    return table, rejected, stats


def _generate_sources(params) -> list[dict]:
    return [s for s in entries(params, "ingest", "sources", "extra_sources")
            if s["role"] in ("generate_docs", "story", "identity")]


def _view(params, source: str, **_) -> dict:
    by_id(_generate_sources(params), source)  # a source the phase builds
    return params["generate"]


CONTRACT = Phase(
    name="generate",
    module=__name__,
    help="documents/posts -> LLM-generated Darija rows (cache, checks, 80/10/10 assembly); stories -> "
    "completions; identity pairs -> repeated rows",
    config=GenerateConfig,
    # the mixture's train/test draw: few-shot examples and multi-turn partners come from one side
    reads=("mixture.seed", "mixture.test_fraction"),
    into=(("mixture.seed", "sides.seed"), ("mixture.test_fraction", "sides.test_fraction")),
    view=_view,
    jobs=lambda params: [{"source": s["id"]} for s in _generate_sources(params)],
    args=(("--role", {"choices": ["generate_docs", "story", "identity"], "default": "generate_docs",
                      "help": "the source's role: which set to build"}),
          ("--input", {"required": True, **PATH}), ("--out", {"required": True, **PATH}),
          ("--rejects", {"required": True, **PATH}),
          ("--stats", {"help": "counts for the mixture card (JSON)", **PATH}),
          ("--tokenizer", {"help": "story: the tokenizer folder whose tokens measure segments", **PATH})),
)


def run_cli(args: argparse.Namespace, job) -> None:
    import json

    cfg = job.config
    df = io.read_table(args.input, PHASE)
    if args.role == "story":
        from atlas_forge.generate.story import segment_table

        if not args.tokenizer:
            raise ValueError("generate --role story: --tokenizer (the tokenizer folder) is required")
        table, rejected, stats = segment_table(df, cfg.story, args.tokenizer)
    elif args.role == "identity":
        from atlas_forge.generate.identity import repeat_table

        table, rejected, stats = repeat_table(df, cfg.identity_repeat)
    else:
        cache = GenerationCache(cfg.cache_dir, cfg.seed_caches)
        table, rejected, stats = generate_table(df, cfg, make_backend(cfg), cache)
    from pathlib import Path

    stats = {"set": args.role, "source": Path(args.input).stem, **stats}
    io.write_table(table, args.out, PHASE)
    io.write_table(rejected, args.rejects, PHASE, rejects=True)
    if args.stats:
        io.write_json(stats, args.stats)
    log.info("stats %s", json.dumps(stats, ensure_ascii=False, sort_keys=True))
