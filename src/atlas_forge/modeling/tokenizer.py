"""A byte-level BPE tokenizer trained here, wrapped for transformers with the Gemma chat template."""

from __future__ import annotations

from collections.abc import Iterable

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
