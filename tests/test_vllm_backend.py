"""evaluate.backend: vllm (evaluate/vllm_backend.py): the setting, the error without vllm, and the
adapter's request translation and output cutting, against a stand-in `vllm` package that this test
writes into tmp_path (as a local HTTP server stands in for a remote API): its LLM.generate decodes
greedily with the tiny HF model, honouring max_tokens and stop_token_ids as vLLM does, and returns
objects shaped like vLLM's RequestOutput / CompletionOutput.

Not covered here: real vLLM's parity with the HF engine on greedy outputs. That is a GPU check
(bench/gpu_check.sh: the vllm_parity step, run only where vllm is importable), not run by this file.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from atlas_forge import config

from .test_evaluate import _gen_rows, _write, make_tiny_model

STANDIN = textwrap.dedent('''
    """A stand-in for vllm's offline API, for tests: greedy decoding on the HF model in `model`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    CALLS = []  # (LLM kwargs, prompts, SamplingParams) per generate call


    class SamplingParams:
        def __init__(self, temperature=1.0, max_tokens=16, stop_token_ids=None, **kw):
            self.temperature, self.max_tokens = temperature, max_tokens
            self.stop_token_ids, self.kw = list(stop_token_ids or []), kw


    class CompletionOutput:
        def __init__(self, token_ids, text):
            self.index, self.token_ids, self.text = 0, token_ids, text


    class RequestOutput:
        def __init__(self, prompt_token_ids, outputs):
            self.prompt_token_ids, self.outputs = prompt_token_ids, outputs


    class LLM:
        def __init__(self, model, dtype="auto", seed=0, **kw):
            self.kwargs = {"model": model, "dtype": dtype, "seed": seed, **kw}
            self.tok = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model, attn_implementation="eager").eval()

        def generate(self, prompts, sampling_params, use_tqdm=True):
            assert sampling_params.temperature == 0, "the stand-in decodes greedily only"
            CALLS.append((self.kwargs, prompts, sampling_params))
            outs = []
            for p in prompts:
                ids = list(p["prompt_token_ids"])
                new = []
                with torch.no_grad():
                    while len(new) < sampling_params.max_tokens:
                        logits = self.model(torch.tensor([ids + new])).logits[0, -1]
                        new.append(int(logits.argmax()))
                        if new[-1] in sampling_params.stop_token_ids:
                            break  # vLLM keeps the stop token in token_ids, not in text
                text = self.tok.decode([t for t in new if t not in sampling_params.stop_token_ids],
                                       skip_special_tokens=True)
                outs.append(RequestOutput(ids, [CompletionOutput(new, text)]))
            return outs
''')
INPUTS = 'from typing import TypedDict\n\n\nclass TokensPrompt(TypedDict):\n    prompt_token_ids: list\n'


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_model")
    model, tok = make_tiny_model(path, lines=100)
    return path, model, tok


@pytest.fixture
def no_vllm_module():
    """Whatever a test imported as vllm is forgotten after it (the stand-in must not leak)."""
    yield
    for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
        del sys.modules[name]


@pytest.fixture
def standin(tmp_path, monkeypatch, no_vllm_module):
    pkg = tmp_path / "standin" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(STANDIN)
    (pkg / "inputs.py").write_text(INPUTS)
    monkeypatch.syspath_prepend(str(pkg.parent))
    importlib.invalidate_caches()
    import vllm

    assert vllm.__file__.startswith(str(tmp_path))
    return vllm


def _job(**evaluate):
    from atlas_forge.evaluate import CONTRACT

    task = {"name": "gen", "family": "darija_translation", "sources": ["pairs"]}
    return CONTRACT.parse({"evaluate": {"task": task, **evaluate}})


def test_backend_setting_is_validated():
    assert _job().config.backend == "hf"
    assert _job(backend="vllm").config.backend == "vllm"
    with pytest.raises(config.ConfigError, match=r"evaluate\.backend: 'tgi' is not one of 'hf', 'vllm'"):
        _job(backend="tgi")
    # a judged task that samples its answers: refused with vllm (greedy only), fine with hf
    from atlas_forge.evaluate import CONTRACT

    judged = {"name": "j", "family": "judge", "sources": ["a"], "decoding": {"sample": True},
              "judge": {"backend": "local", "model": "models/base"}}
    CONTRACT.parse({"evaluate": {"task": judged, "backend": "hf"}})
    with pytest.raises(config.ConfigError, match=r"evaluate\.backend: vllm decodes greedily only"):
        CONTRACT.parse({"evaluate": {"task": judged, "backend": "vllm"}})


def test_view_passes_backend_only_when_set():
    from atlas_forge.evaluate import CONTRACT

    params = {"evaluate": {"batch_size": 4, "tasks": [{"name": "gen"}]}}
    assert "backend" not in CONTRACT.params(params, task="gen")["evaluate"]  # existing builds: unchanged
    params["evaluate"]["backend"] = "hf"
    assert "backend" not in CONTRACT.params(params, task="gen")["evaluate"]
    params["evaluate"]["backend"] = "vllm"
    assert CONTRACT.params(params, task="gen")["evaluate"]["backend"] == "vllm"


def test_vllm_absent_fails_naming_the_key(tiny, tmp_path, no_vllm_module):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here: the parity check is bench/gpu_check.sh")
    from atlas_forge import evaluate
    from atlas_forge.evaluate import vllm_backend

    path, model, tok = tiny
    with pytest.raises(ImportError, match=r"evaluate\.backend: vllm needs the vllm package \(GPU install: "):
        vllm_backend.load(path)
    data = _write(_gen_rows(), tmp_path / "bench.parquet")
    task = {"name": "gen", "family": "darija_translation", "sources": ["pairs"], "max_new_tokens": 4}
    with pytest.raises(ImportError, match=r"evaluate\.backend: vllm needs the vllm package"):
        evaluate.evaluate(task, path, "base", [data], model=model, tokenizer=tok, backend="vllm")


def test_adapter_matches_lm_generate(tiny, standin):
    from atlas_forge.evaluate import lm, vllm_backend

    path, model, tok = tiny
    texts = ["سلام كيداير", "واش نتا بخير اليوم", "المدرسة ديالي فين", "hello how are you", "شكرا بزاف"]
    prompts = [lm.encode_chat(tok, t) for t in texts]
    gen = vllm_backend.load(path, dtype="float32", device="cpu")
    assert gen.llm.kwargs["model"] == str(path) and gen.llm.kwargs["dtype"] == "float32"
    plain = lm.generate(model, tok, prompts, 10, 2)
    assert gen(model, tok, prompts, 10, 2) == plain
    # `until` strings: cut on the full text afterwards, exactly as lm.generate cuts
    cut_at = next(t for t in plain if len(t) > 3)
    until = (cut_at[2:4], "\n\n")
    want = lm.generate(model, tok, prompts, 10, 2, until=until)
    assert want != plain
    assert gen(model, tok, prompts, 10, 2, until=until) == want
    # the request: the same token ids as the HF path, greedy, max_tokens and the stop tokens
    kwargs, sent, params = standin.CALLS[-1]
    assert [p["prompt_token_ids"] for p in sent] == prompts
    assert params.temperature == 0 and params.max_tokens == 10
    assert params.stop_token_ids == lm.stop_token_ids(tok, model) and len(params.stop_token_ids) >= 2
    assert not params.kw  # no `stop=` strings handed to vLLM
    with pytest.raises(ValueError, match=r"evaluate\.backend: vllm decodes greedily only"):
        gen(model, tok, prompts, 4, 2, sampling={"seed": 1, "temperature": 0.7, "top_p": None, "top_k": None})


def test_evaluate_phase_generates_on_the_backend(tiny, tmp_path, standin):
    """A generation task with backend vllm: the generations come from the (stand-in) vLLM and equal the
    HF run's; the result records the backend."""
    from atlas_forge import evaluate

    path, model, tok = tiny
    data = _write(_gen_rows(), tmp_path / "bench.parquet")
    task = {"name": "gen", "family": "darija_translation", "sources": ["pairs"], "max_new_tokens": 6,
            "max_items": 4}
    r_hf, s_hf = evaluate.evaluate(task, path, "base", [data], batch_size=2, model=model, tokenizer=tok)
    before = len(standin.CALLS)
    r_v, s_v = evaluate.evaluate(task, path, "base", [data], batch_size=2, model=model, tokenizer=tok,
                                 backend="vllm")
    assert len(standin.CALLS) == before + 1
    assert [s["generation"] for s in s_v] == [s["generation"] for s in s_hf]
    assert r_v["scores"] == r_hf["scores"]
    assert r_v["settings"]["backend"] == "vllm" and "backend" not in r_hf["settings"]
