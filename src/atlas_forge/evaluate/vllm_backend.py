"""vLLM as the evaluate phase's optional generation backend (`evaluate.backend: vllm`), as lm-eval
offers it (lm_eval/models/vllm_causallms.py). GPU only; vllm is not a dependency of the project.

What runs on vLLM: greedy generation (the lm-eval families' generate_until tasks and a judged task's
candidate answers), with lm.generate's contract item for item:
- the same token-id prompts (`TokensPrompt(prompt_token_ids=...)`), cut to the context as lm.generate
  cuts them (lm.generation_setup: the last model length - max_new_tokens tokens);
- `SamplingParams(temperature=0, max_tokens=max_new_tokens, stop_token_ids=lm.stop_token_ids(...))`,
  as lm-eval's backend builds them for greedy generate_until;
- the text is made from the returned token ids by lm.finish_text, as the HF paths make it: cut at the
  first stop token, decoded with the task's tokenizer, cut at the first `until` string, stripped. The
  `until` strings are not passed to vLLM as `stop=`: vLLM's stop-string matching runs on its own
  incremental detokenization, and cutting the full text afterwards (as lm.generate_padded does) is what
  makes the outputs equal to lm.generate's.

What does not: log-likelihood tasks (multiple choice, a local judge's verdicts) keep the HF model
(lm-eval's vLLM backend scores them through prompt_logprobs, which is not replicated here), so the
evaluate phase loads both the HF model and vLLM's engine when the backend is vllm (first version).
Sampling is refused (ConfigError at the config edge, ValueError here): vLLM's sampled text differs from
HF's for the same seed, and a judged column's answers must not change with the backend silently. The
answers phase (a baseline's answers, sampled by default) always runs on HF. No resume of finished chunks
(evaluate/resume.py): a vLLM task's generations run as one call.

Parity with the HF engine on greedy outputs is a GPU check (bench/gpu_check.sh, run when vllm is
importable); tests/test_vllm_backend.py checks the request translation and the cutting against a
stand-in package.
"""

from __future__ import annotations

from pathlib import Path

# the newest vllm on PyPI when this was written; the build must match the CUDA torch (README, GPU install)
VLLM_PIN = "vllm==0.33.0"
KEY = "evaluate.backend"


def import_vllm():
    """The vllm module, or an ImportError naming the setting that asked for it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{KEY}: vllm needs the vllm package (GPU install: pip install {VLLM_PIN}); "
                          f"it could not be imported ({e}). Use {KEY}: hf without it.") from e
    return vllm


def _dtype_name(dtype: str, device: str) -> str:
    """vLLM's dtype string for the phase's --dtype: auto is bf16 on the GPU, as lm.resolve_device."""
    if dtype != "auto":
        return dtype
    return "float32" if device == "cpu" else "bfloat16"


class VLLMGenerator:
    """One vllm.LLM per job; called as lm.generate is (greedy only)."""

    def __init__(self, model_dir: str | Path, dtype: str = "auto", device: str = "auto", seed: int = 0,
                 gpu_memory_utilization: float = 0.5, **llm_kwargs):
        vllm = import_vllm()
        from vllm.inputs import TokensPrompt

        self.vllm, self.tokens_prompt = vllm, TokensPrompt
        # the HF model is loaded beside it (log-likelihood tasks): leave it room on the GPU
        self.llm = vllm.LLM(model=str(model_dir), dtype=_dtype_name(dtype, device), seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)
        self.last_params = None  # the SamplingParams of the last call (tests, gpu_check)

    def sampling_params(self, max_new_tokens: int, stops: list[int]):
        """Greedy, as lm-eval's vLLM backend for generate_until (temperature 0); no `stop=`: see above."""
        return self.vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens,
                                        stop_token_ids=list(stops))

    def __call__(self, model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int,
                 desc: str = "generate", until: tuple[str, ...] = (), sampling: dict | None = None
                 ) -> list[str]:
        """lm.generate's outputs for greedy decoding. `model` is the HF model (or anything with its
        `config` and `generation_config`): the stop tokens and the context length come from it, as on
        the HF paths. `batch_size` and `desc` are unused: vLLM schedules the whole set itself."""
        from atlas_forge.evaluate import lm

        if sampling is not None:
            raise ValueError(f"{KEY}: vllm decodes greedily only ({desc} samples: {sampling}); "
                             f"use {KEY}: hf for sampled decoding")
        if not prompts:
            return []
        stops, _pad, cut, _order = lm.generation_setup(model, tokenizer, prompts, max_new_tokens)
        params = self.sampling_params(max_new_tokens, stops)
        self.last_params = params
        requests = [self.tokens_prompt(prompt_token_ids=list(p)) for p in cut]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        if len(outs) != len(cut):
            raise RuntimeError(f"vllm returned {len(outs)} outputs for {len(cut)} prompts")
        until = tuple(until)
        return [lm.finish_text(tokenizer, list(o.outputs[0].token_ids), stops, until) for o in outs]


def load(model_dir: str | Path, dtype: str = "auto", device: str = "auto", **kwargs) -> VLLMGenerator:
    return VLLMGenerator(model_dir, dtype=dtype, device=device, **kwargs)
