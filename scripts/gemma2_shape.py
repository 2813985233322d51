"""Write a Gemma-2-shaped model folder in the Hub's layout, with seeded random weights, so the paper
configs' path (base_model kind: pretrained -> sft -> merge -> evaluate) runs at the real shape with
nothing downloaded. The folder reads as `google/gemma-2-2b-it` would:

- `config.json`: Gemma-2-{2b,9b,27b}'s published architecture (modeling/gemma2_configs.py),
  `generation_config.json` with its end tokens (<eos> and <end_of_turn>);
- weights: a Gemma2ForCausalLM initialised by transformers from `--seed` in `--dtype` (bfloat16: the
  Hub's 2B is two shards, 4.99 GB + 0.24 GB, i.e. 2 bytes per parameter), written as safetensors
  shards of at most `--max-shard-size` (5GB, which gives the Hub's 2-shard split) with their index;
- a tokenizer of the config's vocabulary size (256,000) with Gemma 2's special tokens at Gemma 2's ids:
  <pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4, <2mass> 5, [@BOS@] 6, <unused0..98> 7..105,
  <start_of_turn> 106, <end_of_turn> 107. Gemma's own SentencePiece model cannot be fetched, so the
  words are ours: a byte-level BPE trained here (tokenizers) on the bundled Darija sample text, its
  tokens placed after id 107, and the rest of the 256,000 ids filled with `<unused{n}>` entries that no
  merge produces (as Gemma reserves unused ids). Like Gemma's, it adds <bos> to plain text (its
  post-processor), so `add_bos_token` behaves as the harness expects.

    python scripts/gemma2_shape.py --out models/hub/gemma-2-2b-it-shape          # the 2B, 5.2 GB
    python scripts/gemma2_shape.py --out /tmp/small --set num_hidden_layers=2 --set hidden_size=64 \\
        --set intermediate_size=128 --set vocab_size=4096 --max-shard-size 2MB    # what the test builds

Peak memory is one copy of the weights (5.2 GB in bf16 for the 2B) plus one shard while it is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from atlas_forge.modeling.chat_template import (  # noqa: E402
    BOS,
    CHAT_TEMPLATE,
    END_OF_TURN,
    EOS,
    PAD,
    START_OF_TURN,
    UNK,
)
from atlas_forge.modeling.gemma2_configs import GEMMA2, param_count  # noqa: E402

# Gemma 2's reserved ids (google/gemma-2-2b-it tokenizer): the specials, then 99 unused, then the turns
GEMMA_SPECIALS = [PAD, EOS, BOS, UNK, "<mask>", "<2mass>", "[@BOS@]",
                  *(f"<unused{i}>" for i in range(99)), START_OF_TURN, END_OF_TURN]
BPE_WORDS = 8000  # ours: enough merges for Darija text to tokenise like a real vocabulary would
DEFAULT_TEXT = [ROOT / "data/raw/sample/raw.txt"]


def hub_config(size: str, overrides: dict, dtype: str = "bfloat16") -> dict:
    cfg = {**GEMMA2[size], **overrides}
    return {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "torch_dtype": dtype,
            "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02,
            "hidden_act": cfg["hidden_activation"], "use_cache": True, "cache_implementation": "hybrid",
            **cfg}


def read_texts(paths: list[Path]) -> list[str]:
    texts = []
    for path in paths:
        texts += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"no text in {[str(p) for p in paths]} to train the tokenizer's words on")
    return texts


def gemma_vocab_tokenizer(texts: list[str], vocab_size: int, bpe_words: int = BPE_WORDS):
    """A PreTrainedTokenizerFast with `vocab_size` ids, Gemma 2's specials at Gemma 2's ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(GEMMA_SPECIALS) + 256:
        raise ValueError(f"vocab_size {vocab_size}: needs room for Gemma's {len(GEMMA_SPECIALS)} "
                         "reserved ids and the 256 byte tokens")
    trained = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=min(bpe_words, vocab_size - len(GEMMA_SPECIALS)),
                                  min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    trained.train_from_iterator(texts, trainer=trainer)
    model = json.loads(trained.to_str())["model"]
    vocab = {tok: i for i, tok in enumerate(GEMMA_SPECIALS)}
    for tok, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(tok, len(vocab))
    filler = 99
    while len(vocab) < vocab_size:
        vocab.setdefault(f"<unused{filler}>", len(vocab))
        filler += 1
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(GEMMA_SPECIALS)  # already in the vocabulary: their ids stay Gemma's
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                       special_tokens=[(BOS, vocab[BOS])])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                      unk_token=UNK, extra_special_tokens=[START_OF_TURN, END_OF_TURN],
                                      padding_side="left", clean_up_tokenization_spaces=False)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def write_shape_model(out: Path, size: str = "2b", seed: int = 1234, overrides: dict | None = None,
                      max_shard_size: str = "5GB", texts: list[str] | None = None,
                      dtype: str = "bfloat16") -> dict:
    import torch
    from transformers import AutoModelForCausalLM, Gemma2Config, GenerationConfig

    cfg = hub_config(size, overrides or {}, dtype)
    tokenizer = gemma_vocab_tokenizer(texts or read_texts(DEFAULT_TEXT), cfg["vocab_size"])
    if len(tokenizer) != cfg["vocab_size"]:
        raise AssertionError(f"tokenizer has {len(tokenizer)} ids, the config {cfg['vocab_size']}")
    torch.manual_seed(seed)
    config = Gemma2Config(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype),
                                             attn_implementation="eager")
    model.generation_config = GenerationConfig(bos_token_id=2, pad_token_id=0, eos_token_id=[1, 107],
                                               cache_implementation="hybrid")
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    model.save_pretrained(tmp, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(tmp)
    n = sum(p.numel() for p in model.parameters())
    info = {"size": size, "seed": seed, "dtype": dtype, "parameters": n,
            "formula_parameters": param_count(cfg),
            "vocab_size": len(tokenizer), "overrides": overrides or {},
            "shards": sorted(p.name for p in tmp.glob("*.safetensors")),
            "bytes": sum(p.stat().st_size for p in tmp.glob("*.safetensors"))}
    (tmp / "shape_model.json").write_text(json.dumps(info, indent=2) + "\n")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return info


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"--set {item}: expected KEY=VALUE")
        out[key] = json.loads(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the model folder to write (replaced)")
    ap.add_argument("--size", choices=sorted(GEMMA2), default="2b")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (JSON value), e.g. num_hidden_layers=2: a reduced shape")
    ap.add_argument("--max-shard-size", default="5GB")
    ap.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    ap.add_argument("--text", type=Path, nargs="+", default=DEFAULT_TEXT,
                    help="text files whose lines train the tokenizer's words (default: the bundled sample)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = write_shape_model(args.out, args.size, args.seed, parse_overrides(args.set), args.max_shard_size,
                             read_texts(args.text), args.dtype)
    print(json.dumps({**info, "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
