"""The LM interface the tasks call: generation over a Hugging Face causal LM with lm-eval's HF
backend's outputs (`generate_until`; greedy decoding runs on engine.py, sampling on model.generate);
log-likelihoods are loglik.LoglikScorer (`loglikelihood`). The families (families.py) and the judge
(judge.py) both call these, never the model directly.
"""

from __future__ import annotations

from pathlib import Path

from atlas_forge.encoding import tok_encode
from atlas_forge.evaluate import resume


def resolve_device(device: str = "auto", dtype: str = "auto"):
    """(torch device, torch dtype): the GPU when present, bf16 there (as the paper's runs), fp32 on CPU."""
    import torch

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = getattr(torch, dtype)
    return dev, dt


def load_model(model_dir: str | Path, device: str = "auto", dtype: str = "auto", add_bos: bool = True,
               revision: str | None = None):
    """Model and tokenizer loaded as lm-eval's HF backend loads them: the tokenizer gets
    `add_bos_token` (lm-eval passes it to AutoTokenizer.from_pretrained), so whether BOS is added follows
    the tokenizer's own rule for the model (e.g. Gemma's post-processor), not a guess of ours.
    `revision`: a Hub model's commit (a judged column's baseline model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev, dt = resolve_device(device, dtype)
    hub = {"revision": revision} if revision else {}
    tokenizer = AutoTokenizer.from_pretrained(model_dir, add_bos_token=add_bos, **hub)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dt, attn_implementation="eager", **hub)
    return model.to(dev).eval(), tokenizer


def encode_chat(tokenizer, instruction: str, prompt_template: str | None = None) -> list[int]:
    """The instruction as one user turn of the model's chat template; `prompt_template` (a text with
    `{instruction}`) instead, for a model whose tokenizer has no chat template (Jais-13B-Chat)."""
    if prompt_template is not None:
        return encode_prompt(tokenizer, prompt_template.format(instruction=instruction))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
    )
    return encode_prompt(tokenizer, text)


def encode_prompt(tokenizer, text: str) -> list[int]:
    """lm-eval's rule: no special tokens when the text already starts with BOS, else the tokenizer's
    own (loaded with add_bos_token as the harness loads it)."""
    return tok_encode(tokenizer, text, add_bos=True)


def stop_token_ids(tokenizer, model) -> list[int]:
    ids = []
    for tok in ("<end_of_turn>", tokenizer.eos_token):
        if tok is not None:
            tid = tokenizer.convert_tokens_to_ids(tok)
            if tid is not None and tid != tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
    cfg_eos = getattr(model.generation_config, "eos_token_id", None)
    for tid in cfg_eos if isinstance(cfg_eos, list) else [cfg_eos]:
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids


def model_max_length(model, tokenizer) -> int:
    """lm-eval's resolve_max_length: the config's positions, then the tokenizer's, then 2048."""
    for cfg in (getattr(model.config, "text_config", None), model.config):
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            v = getattr(cfg, attr, None) if cfg is not None else None
            if v:
                return int(v)
    m = getattr(tokenizer, "model_max_length", None)
    return int(m) if m and m < 10**9 else 2048


# Items per resumable unit of the engine: a chunk of the length-sorted prompts runs as one engine run
# (its slots refill within it) and is kept whole by resume.cached, so a rerun forms the same chunks.
ENGINE_CHUNK_BATCHES = 2


def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generate",
    until: tuple[str, ...] = (),
    sampling: dict | None = None,
) -> list[str]:
    """Greedy decoding (or sampling), with lm-eval's HF backend's outputs.

    As the harness: the context keeps its last (model length - max_new_tokens) tokens, generation
    stops at the model's end tokens, the text is cut at the first stop string, then stripped.

    Greedy (`sampling` None) runs on the engine (evaluate/engine.py: continuous batching over
    `batch_size` slots, the shared prompt prefix encoded once, rows leaving at a stop token or once an
    `until` string settles their text), whose outputs are the padded path's item for item. The prompts,
    sorted longest first, go in chunks of ENGINE_CHUNK_BATCHES * batch_size; each chunk is one engine run
    and one resumable unit (resume.cached). A model the engine does not support (another architecture,
    non-eager attention, logits processors in its generation_config) takes the padded path. One
    difference by design: a sequence longer than Gemma 2's sliding window sees, at any batch size, the
    window a batch of one sees (lm-eval at batch size 1); HF's left-padded batches count the padding
    inside the window, so the padded path's output there can depend on the batch.

    `sampling` ({seed, temperature, top_p, top_k}; None values: the model's generation_config) samples
    instead, always on the padded path (generate_padded: model.generate per batch), as the paper decodes
    its judged columns ("the default sampling-based decoding"). Each batch reseeds torch with seed + its
    first position, so a rerun, or a resumed run, draws the same text for the same batch size (the
    batches follow prompt length, so another batch size draws other text).
    """
    from atlas_forge.evaluate import engine

    if sampling is not None or not engine.supports(model):
        return generate_padded(model, tokenizer, prompts, max_new_tokens, batch_size, desc, until, sampling)
    return generate_engine(model, tokenizer, prompts, max_new_tokens, batch_size, desc, until)


def generation_setup(model, tokenizer, prompts, max_new_tokens):
    """(stop token ids, pad id, prompts cut to the context, their order: longest first)."""
    stops = stop_token_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    keep = max(1, model_max_length(model, tokenizer) - max_new_tokens)
    prompts = [p[-keep:] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return stops, pad, prompts, order


def finish_text(tokenizer, new: list[int], stops, until) -> str:
    """The harness's text of generated tokens: cut at the first stop token, decoded, cut at the first
    stop string, stripped."""
    cut = next((j for j, t in enumerate(new) if t in stops), len(new))
    text = tokenizer.decode(new[:cut], skip_special_tokens=True)
    for term in until:
        text = text.split(term)[0]
    return text.strip()


def generate_engine(model, tokenizer, prompts, max_new_tokens, batch_size, desc="generate", until=(),
                    stats: dict | None = None) -> list[str]:
    """Greedy generation on evaluate/engine.py, chunk by chunk (see generate). `stats`: the engine's
    counters (forwards, row steps, prefilled tokens), summed over the chunks."""
    from tqdm import tqdm

    from atlas_forge.evaluate import engine

    stops, pad, prompts, order = generation_setup(model, tokenizer, prompts, max_new_tokens)
    until = tuple(until)
    finished = None
    if until:
        def finished(toks):
            return engine.until_settled(engine.settled_text(tokenizer, toks), until)

    outputs: list[str] = [""] * len(prompts)
    chunk = max(1, batch_size) * ENGINE_CHUNK_BATCHES
    run = engine.Engine(model, max_new_tokens, batch_size, stops, pad, finished)
    plen = engine.shared_prefix_len(prompts)  # of the whole set: its cache serves every chunk
    bar = tqdm(total=len(prompts), desc=desc, unit="item", mininterval=1.0)
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]

        def one_chunk(idx=idx):
            toks = run.run([prompts[i] for i in idx], plen)
            return [finish_text(tokenizer, t, stops, until) for t in toks]

        # the chunk, its batch size and prefix length make the key: a rerun forms the same chunks
        key = {"engine": 1, "prompts": [prompts[i] for i in idx], "batch_size": batch_size,
               "prefix_len": plen, "max_new_tokens": max_new_tokens, "stops": stops, "pad": pad,
               "until": list(until)}
        for i, text in zip(idx, resume.cached("generate", model, key, one_chunk), strict=True):
            outputs[i] = text
        bar.update(len(idx))
    bar.close()
    if stats is not None:
        stats.update(run.stats)
    return outputs


def generate_padded(
    model,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generate",
    until: tuple[str, ...] = (),
    sampling: dict | None = None,
) -> list[str]:
    """lm-eval's HF backend: longest prompts first, left-padded batches with a correct attention mask,
    `model.generate` per batch (each batch runs until its longest row stops), then the text cut. The
    sampling path, and the reference the engine's greedy outputs are checked against."""
    import torch
    from tqdm import tqdm

    stops, pad, prompts, order = generation_setup(model, tokenizer, prompts, max_new_tokens)
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    bar = tqdm(total=len(prompts), desc=desc, unit="item", mininterval=1.0)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for k, i in enumerate(idx):
            p = prompts[i]
            ids[k, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[k, width - len(p) :] = 1

        def one_batch(idx=idx, ids=ids, mask=mask, width=width, start=start):
            if sampling is None:
                decoding = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            else:
                torch.manual_seed(int(sampling["seed"]) + start)
                decoding = {"do_sample": True, **{k: sampling[k] for k in ("temperature", "top_p", "top_k")
                                                   if sampling.get(k) is not None}}
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stops,
                    pad_token_id=pad,
                    **decoding,
                )
            return [finish_text(tokenizer, out[k, width:].tolist(), stops, until) for k in range(len(idx))]

        # an interrupted evaluation's finished batches are reused as they are (evaluate/resume.py)
        batch = {"prompts": [prompts[i] for i in idx], "max_new_tokens": max_new_tokens, "stops": stops,
                 "pad": pad, "until": list(until)}
        if sampling is not None:  # only then: a greedy batch keeps the key it had before sampling existed
            batch["sampling"] = {**sampling, "start": start}
        for i, text in zip(idx, resume.cached("generate", model, batch, one_batch), strict=True):
            outputs[i] = text
        bar.update(len(idx))
    bar.close()
    return outputs
