"""Phase `tokenizer`: the tokenizer every later phase shares, as its own target (models/tokenizer).

Tiny default: a byte-level BPE trained here on the pre-training text, wrapped for transformers with
the Gemma chat template. Pretrained: the Hub id or local folder's tokenizer (pinned revision), with
our chat template on Gemma-format vocabularies. Data phases (mixture's truncation check, generate's
story segments) read this folder, never the model's, so data never waits for pre-training; base_model
copies it into the model folder.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from atlas_forge import io
from atlas_forge.config import ConfigError
from atlas_forge.modeling import TOKENIZER_INFO, TokenizerParams, atomic_dir, files_sha256
from atlas_forge.modeling.chat_template import (
    BOS,
    CHAT_TEMPLATE,
    END_OF_TURN,
    EOS,
    PAD,
    SPECIAL_TOKENS,
    START_OF_TURN,
    UNK,
)
from atlas_forge.modeling.texts import documents
from atlas_forge.phase import PATH, PATHS, Phase

log = logging.getLogger(__name__)


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a byte-level BPE on `texts` and return a PreTrainedTokenizerFast.

    No post-processor: the chat template emits the one BOS, and plain `tokenizer(text)` adds nothing
    (callers that score raw text prepend `<bos>` themselves, e.g. lm-eval `add_bos_token=True`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[START_OF_TURN, END_OF_TURN],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


@dataclass(frozen=True)
class PretrainText:
    # base_model.pretrain.parallel_texts: the tokenizer reads the documents pre-training reads
    parallel_texts: bool = False


@dataclass(frozen=True)
class TokenizerConfig:
    """The keys of the base_model section that decide the tokenizer, and only those: a change to the
    model or to pre-training must not rebuild the tokenizer, nor the data built with it."""

    kind: Literal["tiny", "pretrained"] = "tiny"
    name_or_path: str = ""
    revision: str = ""
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    pretrain: PretrainText = field(default_factory=PretrainText)

    def validate(self, section: str) -> None:
        if self.kind == "pretrained" and not self.name_or_path:
            raise ConfigError(f"{section}.name_or_path: required when kind is 'pretrained'")


CONTRACT = Phase(
    name="tokenizer",
    module=__name__,
    help="train (tiny default) or fetch (Hugging Face id/path) the tokenizer every later phase shares",
    config=TokenizerConfig,
    section="base_model",
    keys=("kind", "name_or_path", "revision", "tokenizer", "pretrain.parallel_texts"),
    args=(("--text", {"help": "canonical tables whose text trains the tiny tokenizer", **PATHS}),
          ("--out", {"required": True, **PATH})),
)


def fetch_tokenizer(cfg: TokenizerConfig):
    """The pretrained model's tokenizer; Gemma-format vocabularies get our template (same text, plus
    the generation markers sft's assistant-only loss needs)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path, revision=cfg.revision or None,
                                              trust_remote_code=False)
    vocab = tokenizer.get_vocab()
    template = "kept"
    if START_OF_TURN in vocab and END_OF_TURN in vocab:
        tokenizer.chat_template = CHAT_TEMPLATE
        template = "atlas-forge gemma (with generation markers)"
    return tokenizer, template


def build(cfg: TokenizerConfig, text_paths: list[str], out: str | Path) -> dict:
    t0 = time.perf_counter()
    if cfg.kind == "tiny":
        texts = [text for text, _ in documents(text_paths, cfg.pretrain.parallel_texts)]
        if not texts:
            raise ValueError(f"no text to train the tiny tokenizer on in {text_paths or '(no --text)'}")
        log.info("training a %d-token BPE on %d texts", cfg.tokenizer.vocab_size, len(texts))
        tokenizer = train_tokenizer(texts, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
        info = {"kind": "tiny", "texts": len(texts), "text_sha256": files_sha256(text_paths),
                "text_files": list(text_paths), "chat_template": "atlas-forge gemma"}
    else:
        tokenizer, template = fetch_tokenizer(cfg)
        info = {"kind": "pretrained", "name_or_path": cfg.name_or_path, "revision": cfg.revision,
                "chat_template": template}
    info["vocab_size"] = len(tokenizer)
    with atomic_dir(out) as tmp:
        tokenizer.save_pretrained(tmp)
        io.write_json(info, Path(tmp) / TOKENIZER_INFO)
    log.info("tokenizer (%s, vocabulary %d) saved to %s in %.1f s", cfg.kind, len(tokenizer), out,
             time.perf_counter() - t0)
    return info


def run_cli(args: argparse.Namespace, job) -> None:
    build(job.config, list(args.text), args.out)

