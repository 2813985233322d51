"""Phase `base_model`: build the tiny default (Gemma 2 + short continued pre-training, on the tokenizer
phase's tokenizer) or fetch a pretrained model (Hugging Face id or local path, pinned revision), and
save it to --out.

Output folder: safetensors weights, the tokenizer folder's files (with the chat template),
`base_model.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atlas_forge import config, io
from atlas_forge.modeling import TOKENIZER_INFO, TokenizerParams, atomic_dir, files_sha256, tokenizer_files
from atlas_forge.modeling.chat_template import BOS, END_OF_TURN, EOS, PAD
from atlas_forge.modeling.texts import documents, load_texts, parallel_documents  # noqa: F401 (its API)
from atlas_forge.phase import PATH, PATHS, Phase

log = logging.getLogger(__name__)
PHASE = "base_model"
SHARD_SIZE = "5GB"


@dataclass(frozen=True)
class ModelParams:
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 512
    sliding_window: int = 256
    # Gemma 2 scales attention logits by query_pre_attn_scalar**-0.5. Its config default, 256, is
    # Gemma-2-2B's head_dim; on the tiny model's 32-wide heads it keeps attention ~3x flatter than
    # 1/sqrt(head_dim). 0: head_dim (not measured on its own: bench/results/corpora_run/README.md
    # has it only together with parallel_texts). Default: Gemma 2's.
    query_pre_attn_scalar: int = 256


@dataclass(frozen=True)
class PretrainParams:
    steps: int = 100
    batch_size: int = 16
    max_length: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    # ours: a row that carries one sentence in several scripts/languages (meta.texts: DODa, NLLB Seed)
    # becomes one document with all of them, one per line, as bilingual pages are in web corpora;
    # false: only its message text. Train rows only (base_model reads the split's train tables).
    parallel_texts: bool = False
    # ours: with parallel_texts, each such document appears this many times in the pre-training stream
    # (the tokenizer sees it once). Measured: the tiny model starts writing the Arabic-script version
    # of a Latin-script line word by word only after ~20k blocks of such documents
    parallel_repeat: int = 1
    # ours: with parallel_texts, this many more steps on the bilingual documents alone once pre-training
    # is done, at a constant parallel_learning_rate (measured: 800 such steps after 1,200 mixed ones and
    # the base writes a Latin line's Arabic-script version word by word)
    parallel_steps: int = 0
    parallel_learning_rate: float = 2e-3


@dataclass(frozen=True)
class BaseModelParams:
    kind: Literal["tiny", "pretrained"] = "tiny"
    name_or_path: str = ""
    revision: str = ""
    seed: int = 1234
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    model: ModelParams = field(default_factory=ModelParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    # threads are not a param (how a job runs): the --threads flag, fed by the workflow profile

    def validate(self, section: str) -> None:
        if self.kind == "pretrained" and not self.name_or_path:
            raise config.ConfigError(f"{section}.name_or_path: required when kind is 'pretrained'")
        if self.pretrain.parallel_steps < 0:
            raise config.ConfigError(f"{section}.pretrain.parallel_steps: must be >= 0")
        if self.pretrain.parallel_repeat < 1:
            raise config.ConfigError(f"{section}.pretrain.parallel_repeat: must be >= 1")
        if self.model.num_attention_heads % self.model.num_key_value_heads:
            raise config.ConfigError(
                f"{section}.model.num_key_value_heads: must divide num_attention_heads"
            )


def build_tiny_model(params: BaseModelParams, tokenizer):
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, GenerationConfig

    m = params.model
    ids = tokenizer.convert_tokens_to_ids
    cfg = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_key_value_heads,
        head_dim=m.head_dim,
        max_position_embeddings=m.max_position_embeddings,
        sliding_window=m.sliding_window,
        query_pre_attn_scalar=m.query_pre_attn_scalar or m.head_dim,
        pad_token_id=ids(PAD),
        bos_token_id=ids(BOS),
        eos_token_id=[ids(EOS), ids(END_OF_TURN)],
        attn_implementation="eager",
        tie_word_embeddings=True,
    )
    torch.manual_seed(params.seed)
    model = Gemma2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=ids(BOS), eos_token_id=[ids(EOS), ids(END_OF_TURN)], pad_token_id=ids(PAD)
    )
    return model


def pack_blocks(texts: list[str], tokenizer, max_length: int) -> list[list[int]]:
    """Tokenize `<bos> text <eos>` per text, concatenate, cut into blocks of max_length."""
    bos, eos = tokenizer.convert_tokens_to_ids([BOS, EOS])
    stream: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend([bos, *enc, eos])
    blocks = [stream[i : i + max_length] for i in range(0, len(stream) - max_length + 1, max_length)]
    if not blocks and stream:
        blocks = [stream]
    return blocks


def pretrain(model, tokenizer, texts: list[str], params: BaseModelParams) -> dict[str, Any]:
    """A short continued pre-training: plain causal-LM loop, AdamW, warmup + cosine, seeded batches."""
    import torch

    p = params.pretrain
    if p.steps <= 0 or not texts:
        return {"steps": 0, "loss_start": None, "loss_end": None, "tokens": 0}
    opt = torch.optim.AdamW(model.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay)

    def lr_at(step: int) -> float:
        if step < p.warmup_steps:
            return (step + 1) / p.warmup_steps
        progress = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    return _train(model, pack_blocks(texts, tokenizer, p.max_length), p.steps, p.batch_size, opt, sched,
                  params.seed, "pretrain")


def pretrain_parallel(model, tokenizer, docs: list[str], params: BaseModelParams) -> dict[str, Any]:
    """The bilingual phase after pre-training: parallel_steps on the bilingual documents alone, at the
    constant parallel_learning_rate, with a fresh optimizer."""
    import torch

    p = params.pretrain
    if p.parallel_steps <= 0 or not docs:
        return {"steps": 0, "loss_start": None, "loss_end": None, "tokens": 0}
    opt = torch.optim.AdamW(model.parameters(), lr=p.parallel_learning_rate, weight_decay=p.weight_decay)
    return _train(model, pack_blocks(docs, tokenizer, p.max_length), p.parallel_steps, p.batch_size, opt,
                  None, params.seed + 1, "bilingual")


def _train(model, blocks: list[list[int]], steps: int, batch_size: int, opt, sched, seed: int, label: str):
    import torch

    data = torch.tensor(blocks, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses: list[float] = []
    tokens = 0
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(len(data), (min(batch_size, len(data)),), generator=gen)
        batch = data[idx]
        out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        tokens += batch.numel()
        if step % 25 == 0 or step == steps - 1:
            log.info("%s step %d/%d loss %.4f", label, step + 1, steps, losses[-1])
    model.eval()
    window = max(1, min(10, len(losses) // 5))
    return {
        "steps": steps,
        "blocks": len(data),
        "tokens": tokens,
        "loss_start": sum(losses[:window]) / window,
        "loss_end": sum(losses[-window:]) / window,
        "loss_first_step": losses[0],
        "loss_last_step": losses[-1],
        "runtime_s": round(time.perf_counter() - t0, 2),
    }


def _tokenizer_info(tokenizer_dir: str | Path) -> dict[str, Any]:
    return io.read_json(Path(tokenizer_dir) / TOKENIZER_INFO)


def _save_with_tokenizer(model, tokenizer_dir: str | Path, tmp: Path) -> None:
    """The model's weights and the tokenizer folder's own files, copied as they are (the tokenizer
    phase wrote them): every phase reads the same tokenizer bytes. Shards of at most 5 GB, as the Hub
    ships Gemma 2 (transformers 5's default is 50 GB): sft's merge streams one shard at a time
    (modeling/merge.py), so the shard size bounds its memory. The tiny default stays one file."""
    model.save_pretrained(tmp, max_shard_size=SHARD_SIZE)
    for f in tokenizer_files(tokenizer_dir):
        shutil.copyfile(f, tmp / f.name)


def build_tiny(params: BaseModelParams, text_paths: list[str], tokenizer_dir: str | Path,
               out: str | Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    # one read of the tables: the bilingual documents are the flagged ones among the texts
    docs = list(documents(text_paths, params.pretrain.parallel_texts))
    texts = [text for text, _ in docs]
    bilingual = [text for text, parallel in docs if parallel]
    if not texts:
        raise ValueError(f"no text to train the tiny model on in {text_paths or '(no --text tables)'}")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_tiny_model(params, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("Gemma 2 with %d parameters, vocabulary %d", n_params, len(tokenizer))
    stats = pretrain(model, tokenizer, texts + bilingual * (params.pretrain.parallel_repeat - 1), params)
    if bilingual and params.pretrain.parallel_steps > 0:
        stats["bilingual_phase"] = pretrain_parallel(model, tokenizer, bilingual, params)
    with atomic_dir(out) as tmp:
        _save_with_tokenizer(model, tokenizer_dir, Path(tmp))
        info = {
            "kind": "tiny",
            "name_or_path": f"atlas-forge/tiny-gemma2-{n_params}",
            "revision": "",
            "params": dataclasses.asdict(params),
            "parameters": n_params,
            "vocab_size": len(tokenizer),
            "pretrain": stats,
            "pretrain_loss_start": stats["loss_start"],
            "pretrain_loss_end": stats["loss_end"],
            "texts": len(texts),
            "text_sha256": files_sha256(text_paths),
            "text_files": list(text_paths),
        }
        io.write_json(info, Path(tmp) / "base_model.json")
    return info


def fetch_pretrained(params: BaseModelParams, tokenizer_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Load a Hugging Face id or local folder (pinned revision, no remote code) and save it to `out`
    with the tokenizer phase's tokenizer (the same id and revision's, with our chat template)."""
    from transformers import AutoModelForCausalLM

    revision = params.revision or None
    model = AutoModelForCausalLM.from_pretrained(
        params.name_or_path, revision=revision, trust_remote_code=False, dtype="auto",
        attn_implementation="eager", use_safetensors=True,  # never unpickle a downloaded *.bin
    )
    tok_info = _tokenizer_info(tokenizer_dir)
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_dir(out) as tmp:
        _save_with_tokenizer(model, tokenizer_dir, Path(tmp))
        info = {
            "kind": "pretrained",
            "name_or_path": params.name_or_path,
            "revision": params.revision,
            "params": dataclasses.asdict(params),
            "parameters": n_params,
            "vocab_size": tok_info["vocab_size"],
            "chat_template": tok_info["chat_template"],
            "pretrain_loss_start": None,
            "pretrain_loss_end": None,
            "text_sha256": None,
        }
        io.write_json(info, Path(tmp) / "base_model.json")
    return info


def run(params: BaseModelParams, text_paths: list[str], tokenizer_dir: str | Path, out: str | Path,
        threads: int = 1) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    if params.kind == "tiny":
        info = build_tiny(params, text_paths, tokenizer_dir, out)
    else:
        info = fetch_pretrained(params, tokenizer_dir, out)
    log.info("base model (%s, %d parameters) saved to %s in %.1f s", params.kind, info["parameters"], out,
             time.perf_counter() - t0)
    return info


CONTRACT = Phase(
    name="base_model",
    module=__name__,
    help="build (tiny default: Gemma 2 pre-trained here) or fetch (Hugging Face id/path) the base model",
    config=BaseModelParams,
    args=(("--text", {"help": "canonical tables whose text pre-trains the tiny model", **PATHS}),
          ("--tokenizer", {"required": True, "help": "the tokenizer phase's folder", **PATH}),
          ("--out", {"required": True, **PATH}), ("--threads", {"type": int, "default": 1})),
)


def run_cli(args: argparse.Namespace, job) -> None:
    run(job.config, list(args.text), args.tokenizer, args.out, threads=args.threads)
