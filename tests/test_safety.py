"""Issue 13 item 6, secrets and safety: an API key in the environment never reaches a file the phases
write (logs, outputs, caches, stats, samples, scores, the params they record); weights are written and
read as safetensors only; no remote code. Also: the phases' --help prints no default that disagrees
with params.yaml."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from atlas_forge import cli, io, records
from tests import test_generate as gen
from tests import test_translate as tr
from tests.test_judge import chat_rows

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "atlas_forge"


def _phase(argv: list[str], env: dict, log: Path) -> None:
    """Run `python -m atlas_forge ...` with its stdout+stderr kept in `log` (a file the grep reads)."""
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-m", "atlas_forge", *argv], cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, log.read_text()[-4000:]


def _files_holding(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose bytes hold `needle` as UTF-8, UTF-16 or base64 (a Bearer header
    dumped some other way would still show)."""
    import base64

    forms = [needle.encode(), needle.encode("utf-16-le"), base64.b64encode(needle.encode())[:-4]]
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.suffix == ".parquet":  # compressed pages: read the values too
                import polars as pl

                data += json.dumps(pl.read_parquet(p).rows(), default=str, ensure_ascii=False).encode()
            if any(f in data for f in forms):
                hits.append(str(p.relative_to(root)))
    return hits


# ---- (a) no API key in anything written ------------------------------------------------------------


def test_api_key_never_written_by_translate_generate_or_judge(tmp_path):
    key = f"sk-test-{secrets.token_hex(16)}"
    env = {**os.environ, "OPENAI_API_KEY": key, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    work = tmp_path / "work"
    work.mkdir()
    recorded_params = {}

    # translate, openai backend (the translate tests' stand-in endpoint and rows)
    server = tr.Server()
    try:
        rows = [tr.chat(f"r{i}", tr.ENGLISH[i]) for i in range(4)]
        io.write_table(records.from_rows(rows), work / "chat.parquet", "test")
        params = {"backend": "openai", "cache_dir": str(work / "tcache"), "prompt_version": "v1",
                  "openai": {"base_url": server.url, "model": "test-model", "concurrency": 2,
                             "backoff_s": 0.01}}
        recorded_params["translate"] = params
        _phase(["translate", "--params", json.dumps({"translate": params}),
                "--input", str(work / "chat.parquet"),
                "--out", str(work / "translated.parquet"), "--rejects", str(work / "translated.rej.parquet")],
               env, work / "translate.log")
        assert server.auth and all(a == f"Bearer {key}" for a in server.auth)  # the key was used
    finally:
        server.close()

    # generate, openai backend (the generate tests' endpoint answering every document type)
    table = gen.docs(6)
    io.write_table(table, work / "docs.parquet", "test")
    server = gen.Server(gen.cfg_for(tmp_path), table)
    try:
        params = {"backend": "openai", "seed_caches": [], "cache_dir": str(work / "gcache"),
                  "openai": {"base_url": server.url, "model": "stand-in", "concurrency": 2, "max_retries": 1,
                             "backoff_s": 0.01}}
        recorded_params["generate"] = params
        _phase(["generate", "--params", json.dumps({"generate": params}),
                "--input", str(work / "docs.parquet"),
                "--out", str(work / "gen.parquet"), "--rejects", str(work / "gen.rej.parquet"),
                "--stats", str(work / "gen.json")], env, work / "generate.log")
        assert server.auth and all(a == f"Bearer {key}" for a in server.auth)
    finally:
        server.close()

    # evaluate, judge family with the openai backend (api_key_env left at its default, OPENAI_API_KEY)
    from tests.test_evaluate import make_tiny_model

    make_tiny_model(tmp_path / "model", lines=120)
    server = gen.FakeChatServer(lambda prompt, n: (200, {}, "a"))
    try:
        task = {"name": "alpaca_judge", "family": "judge", "sources": ["sample_alpaca"], "max_new_tokens": 4,
                "judge": {"backend": "openai", "base_url": server.url, "model": "judge-model",
                          "concurrency": 2, "max_retries": 0, "timeout_s": 10}}
        recorded_params["evaluate"] = task
        records.from_rows(chat_rows(3)).write_parquet(work / "alpaca.parquet")
        _phase(["evaluate", "--params", json.dumps({"evaluate": {"task": task, "batch_size": 4}}),
                "--model", str(tmp_path / "model"), "--model-name",
                "base", "--data", str(work / "alpaca.parquet"), "--threads", "1",
                "--out", str(work / "judge.json"), "--samples", str(work / "judge.samples.jsonl")],
               env, work / "evaluate.log")
        assert len(server.prompts) == 6 and all(a == f"Bearer {key}" for a in server.auth)
    finally:
        server.close()

    # the params the phases were given, as a dvc.lock records them (params section per stage)
    io.write_text(yaml.safe_dump({"stages": {k: {"params": v} for k, v in recorded_params.items()}}),
                  work / "dvc.lock")
    result = json.loads((work / "judge.json").read_text())
    assert result["settings"]["judge_backend"] == "openai"
    written = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    for must in ("translate.log", "translated.parquet", "gen.parquet", "gen.json", "judge.json",
                 "judge.samples.jsonl", "evaluate.log", "dvc.lock"):
        assert must in written, written
    assert any(p.startswith("tcache") for p in written) and any(p.startswith("gcache") for p in written)
    assert _files_holding(tmp_path, key) == []
    # the logs say the key is set, by its variable's name only
    assert "OPENAI_API_KEY" in (work / "translate.log").read_text()


def test_the_pipeline_params_hold_no_key(repo_root):
    """params.yaml and the paper configs name the key's variable, never a key."""
    texts = [repo_root / "params.yaml", *sorted((repo_root / "configs").glob("*.yaml"))]
    for p in texts:
        text = p.read_text()
        assert not re.search(r"\bsk-[A-Za-z0-9_-]{16,}", text), p
        assert not re.search(r"(?im)^\s*api_key\s*:", text), p  # only api_key_env (a variable's name)


# ---- (b) safetensors only ------------------------------------------------------------------------

PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def test_default_build_writes_safetensors_only(default_build):
    for out in ("models/base", "models/sft/adapter", "models/sft/merged"):
        d = default_build / out
        assert list(d.glob("*.safetensors")), out
        pickles = [str(p.relative_to(d)) for pat in PICKLES for p in d.rglob(pat)]
        assert pickles == [], (out, pickles)


def test_no_unsafe_load_in_src():
    """No torch.load / pickle / allow_pickle=True anywhere in the package; a pretrained fetch reads
    safetensors only."""
    bad = []
    for p in sorted(SRC.rglob("*.py")):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"torch\.load\(|\bpickle\b|cPickle|joblib\.load|allow_pickle\s*=\s*True"
                         r"|weights_only\s*=\s*False|use_safetensors\s*=\s*False", code):
                bad.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert bad == []
    fetch = _function_source(SRC / "modeling" / "base_model.py", "fetch_pretrained")
    assert "use_safetensors=True" in fetch


# ---- (c) no remote code ----------------------------------------------------------------------------


def _function_source(path: Path, name: str) -> str:
    import ast

    text = path.read_text()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    raise AssertionError(f"{name} not in {path}")


def test_trust_remote_code_is_off():
    for p in sorted(SRC.rglob("*.py")):
        text = p.read_text()
        values = re.findall(r"trust_remote_code\s*=\s*([^,)\s]+)", text)
        assert all(v == "False" for v in values), (p, values)  # never True, never a variable
    # the weights (base_model) and the tokenizer (its own phase) are each fetched with remote code off
    fetch = _function_source(SRC / "modeling" / "base_model.py", "fetch_pretrained")
    fetch += _function_source(SRC / "modeling" / "tokenizer.py", "fetch_tokenizer")
    calls = re.findall(r"\.from_pretrained\((.*?)\)", fetch, flags=re.S)
    assert len(calls) == 2 and all("trust_remote_code=False" in c for c in calls), calls
    # nothing in the params can turn it on: no such key in params.yaml or the configs
    for p in [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]:
        assert "trust_remote_code" not in p.read_text(), p


# ---- --help prints no default that disagrees with params.yaml ------------------------------------

# flags whose value is a params.yaml key (the rule passes that key's value)
FLAG_KEYS: dict = {}  # every value comes through --params (one route)


def _help(phase: str) -> str:
    done = subprocess.run([sys.executable, "-m", "atlas_forge", phase, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("phase", ["sft", "base_model", "instruct", "mixture", "evaluate", "translate",
                                   "generate", "split", "filter", "report"])
def test_help_documents_no_default_that_disagrees_with_params(phase):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    text = " ".join(_help(phase).split())
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "phase").choices[phase]
    flat = {}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(params, "")
    # a printed default ("default: X", "default X", "(X by default)") must be the params.yaml value of
    # the key the help names next to it, or name none
    for m in re.finditer(r"default[:=]?\s+([^\s,;)]+)|\(([^()]+) by default\)", text, flags=re.I):
        value = (m.group(1) or m.group(2)).strip("'\".")
        near = text[max(0, m.start() - 80): m.end() + 80]
        for key in re.findall(r"\b([a-z_]+\.[a-z_.]+)\b", near):
            if key in flat:
                assert str(flat[key]) == value, (phase, key, flat[key], m.group(0))
    for action in sub._actions:
        for flag in action.option_strings:
            if (phase, flag) in FLAG_KEYS:
                section, key = FLAG_KEYS[(phase, flag)]
                assert action.default == params[section][key], (flag, action.default, params[section][key])
            # a params key named in a flag's help: its parser default is that key's value, or is not printed
            for key in re.findall(r"\b([a-z_]+\.[a-z_]+)\b", action.help or ""):
                if key in flat and action.default not in (None, [], flat[key]):
                    assert str(action.default) not in (action.help or ""), (flag, key)
                    assert "%(default)" not in (action.help or ""), (flag, key)
    # no formatter that prints every default (stale dataclass or argparse values would show)
    assert "(default:" not in text
