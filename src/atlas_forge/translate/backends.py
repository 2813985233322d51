"""Translation backends. Each takes groups of English strings (one group per chat sample) and yields
(group index, translations or None, error) as groups finish, so the caller can cache work as it lands.

- cache:   offline; translates nothing (the caller already looked everything up).
- openai:  any OpenAI-compatible /v1/chat/completions endpoint (chat_client.ChatClient and its
           fan_out), with the paper's translation prompt (Fig. 3, App. B.3.2) verbatim.
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

# The paper's translation prompt, Fig. 3 ("The prompt given to Claude 3.5 Sonnet for translation", App.
# B.3.2 of arXiv 2409.17912v2), word for word, the paper's spelling kept ("culturaly", "Morrocans"). Our
# copy of the paper is PDF text: there the listing shows a space before each comma and after 'content
# (`'content ' field`, `translation , only`); we read those as the listing font's spacing, not the prompt's
# (the same text extraction puts them into Fig. 2's TÜLU sample too, whose dataset text has none). The
# paper also "altered this prompt slightly as needed for each subset" without printing the variants: one
# prompt here for every subset.
FIG3_PROMPT = (
    "Translate the 'content' field in the paragraph after [Source Text] to Moroccan dialect "
    "(Darija - Arabic alphabet) while following these guidelines:\n"
    "- Keep the format of the original text (list of json).\n"
    "- If a word is usually not used in Arabic, use its French equivalent.\n"
    "- Do not include any introduction or explanation after the translation, only the translation.\n"
    "- If there is a given context, example or question translate it as well.\n"
    "- Whenever you come across code contexts or technical words, keep them in English.\n"
    "- Whenever you come across literature, or example or question, translate it to Moroccan.\n"
    "- If the text is culturaly not accepted for Morrocans, change it to a more acceptable one.\n"
    "- Do not answer the request in the source text.\n"
    "- Write first the original text after the tag [[Original]] and then the translation after the tag "
    "[[Translation]].\n"
    "\n"
    "[Source Text]"
)


def build_prompt(texts: list[str], roles: list[str] | None = None) -> str:
    """Fig. 3's prompt followed by the source: the sample's messages as a JSON list of {"role", "content"}
    objects, TÜLU's "messages" format (the paper's Fig. 2), which is the "list of json" whose 'content'
    fields Fig. 3 asks to translate. Ours, where the paper is silent: the source goes on the line after
    the figure's closing "[Source Text]" tag, indented JSON, and the list holds only the sample's
    messages that are not translated yet (cache hits and strings already asked for in this round are
    left out, so a long shared answer is paid for once)."""
    roles = roles or ["user"] * len(texts)
    source = [{"role": r, "content": t} for r, t in zip(roles, texts, strict=True)]
    return FIG3_PROMPT + "\n" + json.dumps(source, ensure_ascii=False, indent=2)


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
    """The model's answer as a list of n non-empty strings, else MalformedAnswer saying why.

    Fig. 3 asks for "the original text after the tag [[Original]] and then the translation after the tag
    [[Translation]]", the translation in the source's format (a JSON list of messages): what follows the
    first [[Translation]] tag is read, and each item's 'content' is its translation. Ours: an answer with
    no tags is read whole, a ```json fence around the list is removed, items may also be bare strings,
    and the list must have the source's length (order is the source's). The paper's "cleaning the errors"
    (App. B.3.3) is not described; here a malformed answer rejects its sample with the reason."""
    text = text.strip()
    if "[[Translation]]" in text:
        text = text.split("[[Translation]]", 1)[1].strip()
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
    out = [v.get("content") if isinstance(v, dict) else v for v in value]
    if not all(isinstance(v, str) for v in out):
        raise MalformedAnswer("answer list holds items that are neither strings nor {'content': string}")
    if not all(v.strip() for v in out):
        raise MalformedAnswer("answer list holds empty translations")
    return out


class CacheBackend:
    kind = "cache"

    def __init__(self, replay_backend: str, replay_model: str):
        # the cache key names who made the translation; "cache" replays that backend's work offline
        self.key_backend, self.key_model = replay_backend, replay_model
        self.model = f"{replay_backend}:{replay_model}" if replay_model else "seed"

    def translate(self, groups: list[list[str]], roles: list[list[str]] | None = None) -> Iterator[Result]:
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

    def translate(self, groups: list[list[str]], roles: list[list[str]] | None = None) -> Iterator[Result]:
        prompts = [build_prompt(g, roles[i] if roles else None) for i, g in enumerate(groups)]
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

    def translate(self, groups: list[list[str]], roles: list[list[str]] | None = None) -> Iterator[Result]:
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
