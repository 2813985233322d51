"""Translation backends. Each takes groups of English strings (one group per chat sample) and yields
(group index, translations or None, error) as groups finish, so the caller can cache work as it lands.

- cache:   offline; translates nothing (the caller already looked everything up).
- openai:  any OpenAI-compatible /v1/chat/completions endpoint (chat_client.ChatClient and its
           fan_out), with the paper's prompt (App. B).
- seq2seq: a local Hugging Face seq2seq model (e.g. NLLB-200), greedy, batched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

from atlas_forge.chat_client import MalformedResponse, OpenAIConfig, fan_out, make_client

log = logging.getLogger(__name__)

Result = tuple[int, list[str] | None, str | None]

PROMPT = (
    "Translate the following texts from English into Moroccan Arabic (Darija), written in Arabic script, "
    "as a Moroccan would naturally say them. Keep the meaning, the formatting (lists, line breaks, "
    "Markdown), code, numbers and names unchanged. The texts are given as a JSON list of strings. Answer "
    "with only a JSON list of strings of the same length and in the same order, one translation per "
    "text, and nothing else.\n\n[[Original]]\n{original}\n\n[[Translation]]\n"
)


@dataclass(frozen=True)
class Seq2SeqConfig:
    model: str = ""
    src_lang: str = "eng_Latn"
    tgt_lang: str = "ary_Arab"
    batch_size: int = 8
    max_new_tokens: int = 256
    # threads are not a param (how a job runs): translate's --threads flag, fed by the workflow profile


class MalformedAnswer(ValueError):
    pass


def parse_answer(text: str, n: int) -> list[str]:
    """The model's answer as a list of n non-empty strings, else MalformedAnswer saying why."""
    text = text.strip()
    if text.startswith("[[Translation]]"):
        text = text[len("[[Translation]]"):].strip()
    if text.startswith("```") and text.endswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise MalformedAnswer("answer is not JSON") from None
    if not isinstance(value, list):
        raise MalformedAnswer(f"answer is a JSON {type(value).__name__}, not a list")
    if len(value) != n:
        raise MalformedAnswer(f"answer has {len(value)} items, expected {n}")
    if not all(isinstance(v, str) for v in value):
        raise MalformedAnswer("answer list holds non-strings")
    if not all(v.strip() for v in value):
        raise MalformedAnswer("answer list holds empty strings")
    return value


class CacheBackend:
    kind = "cache"

    def __init__(self, replay_backend: str, replay_model: str):
        # the cache key names who made the translation; "cache" replays that backend's work offline
        self.key_backend, self.key_model = replay_backend, replay_model
        self.model = f"{replay_backend}:{replay_model}" if replay_model else "seed"

    def translate(self, groups: list[list[str]]) -> Iterator[Result]:
        yield from ()


class OpenAIBackend:
    kind = "openai"

    def __init__(self, cfg: OpenAIConfig):
        if not cfg.model:
            raise ValueError("translate.openai.model: empty; name the model the endpoint serves")
        self.cfg = cfg
        self.key_backend, self.key_model, self.model = "openai", cfg.model, cfg.model
        self.client = make_client(cfg, "openai")
        self.url = self.client.url
        log.info("openai backend: %s model %s, concurrency %d, API key from $%s: %s", self.url, cfg.model,
                 cfg.concurrency, cfg.api_key_env, "set" if self.client.has_key else "not set")

    def translate(self, groups: list[list[str]]) -> Iterator[Result]:
        prompts = [PROMPT.format(original=json.dumps(g, ensure_ascii=False, indent=0)) for g in groups]
        results = fan_out(self.client, prompts, self.cfg.concurrency,
                          parse=lambda i, content: parse_answer(content, len(groups[i])),
                          catch=(MalformedAnswer, MalformedResponse, RuntimeError))
        with closing(results):
            for i, outs, e in results:
                if e is None:
                    yield i, outs, None
                elif isinstance(e, (MalformedAnswer, MalformedResponse)):
                    yield i, None, f"malformed: {e}"
                else:  # ChatError (a RuntimeError): non-retryable status or retries exhausted
                    yield i, None, f"untranslated: openai failed ({e})"


class Seq2SeqBackend:
    kind = "seq2seq"

    def __init__(self, cfg: Seq2SeqConfig, threads: int = 1):
        if not cfg.model:
            raise ValueError("translate.seq2seq.model: empty; give a local model path or Hub id")
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        torch.set_num_threads(max(1, threads))
        self.cfg = cfg
        self.key_backend, self.key_model, self.model = "seq2seq", cfg.model, cfg.model
        self.tok = AutoTokenizer.from_pretrained(cfg.model)
        if hasattr(self.tok, "src_lang"):
            self.tok.src_lang = cfg.src_lang
        self.net = AutoModelForSeq2SeqLM.from_pretrained(cfg.model).eval()
        # NLLB-style tokenizers carry language codes as tokens; the decoder must start with the target's
        vocab = self.tok.get_vocab()
        self.forced_bos = vocab.get(cfg.tgt_lang)
        log.info("seq2seq backend: %s, forced BOS %s", cfg.model,
                 f"{cfg.tgt_lang}={self.forced_bos}" if self.forced_bos is not None else "none")

    def _generate(self, texts: list[str]) -> list[str]:
        import torch

        enc = self.tok(texts, return_tensors="pt", padding=True, truncation=True)
        kwargs = {"max_new_tokens": self.cfg.max_new_tokens, "do_sample": False, "num_beams": 1}
        if self.forced_bos is not None:
            kwargs["forced_bos_token_id"] = self.forced_bos
        with torch.inference_mode():
            out = self.net.generate(**enc, **kwargs)
        return [t.strip() for t in self.tok.batch_decode(out, skip_special_tokens=True)]

    def translate(self, groups: list[list[str]]) -> Iterator[Result]:
        flat = [(i, t) for i, g in enumerate(groups) for t in g]
        done: dict[int, list[str]] = {i: [] for i in range(len(groups))}
        bs = self.cfg.batch_size
        for start in range(0, len(flat), bs):
            batch = flat[start:start + bs]
            for (i, _), out in zip(batch, self._generate([t for _, t in batch]), strict=True):
                done[i].append(out)
            finished = {i for i, _ in batch if len(done[i]) == len(groups[i])}
            for i in sorted(finished):
                outs = done.pop(i)
                if all(outs):
                    yield i, outs, None
                else:
                    yield i, None, "untranslated: seq2seq produced an empty translation"
        for i in sorted(done):  # empty groups
            if not groups[i]:
                yield i, [], None
