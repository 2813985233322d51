"""Exact resume (issue 13 item 1): a phase killed with SIGKILL and run again ends with what an
uninterrupted run gives, and keeps the work it had finished.

Each test runs the phase's real CLI in a subprocess, kills it (SIGKILL, no chance to clean up) once
it has made some progress, runs the same command again, and compares with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_modeling import SFT, sft_paths

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def kill_when(cmd: list[str], ready, log: Path, timeout: float = 240) -> None:
    """Start `cmd`, SIGKILL it as soon as ready() holds; the run must still be going then."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# --- sft -----------------------------------------------------------------------------------------

# 3 epochs of 10 steps: a resume lands inside a later epoch (its shuffle must be the same one);
# group_by_length (the params.yaml sampling); dropout draws from the RNG; save_steps not a multiple
# of logging_steps, so a checkpoint holds loss not yet logged
RESUME_SFT = {**SFT, "epochs": 3, "max_steps": -1, "per_device_batch_size": 4, "save_steps": 4,
              "save_total_limit": 2, "logging_steps": 3, "train_sampling": "group_by_length",
              "lora": {**SFT["lora"], "dropout": 0.1}}


def sft_cmd(base, data, paths: dict[str, str]) -> list[str]:
    cmd = [sys.executable, "-m", "atlas_forge", "sft", "--params", json.dumps({"sft": RESUME_SFT}),
           "--base", str(base), "--train", data["train"], "--test", data["test"], "--threads", "1"]
    for k, v in paths.items():
        cmd += [f"--{k}", v]
    return cmd


def checkpoint_steps(ckpts: Path) -> list[int]:
    return sorted(int(c.name.split("-")[1]) for c in ckpts.glob("checkpoint-*")
                  if (c / "trainer_state.json").exists())


@pytest.mark.slow
def test_sft_killed_twice_resumes_to_the_same_adapter(tiny_base, data, tmp_path):
    ref, cut = sft_paths(tmp_path / "ref"), sft_paths(tmp_path / "cut")
    run = subprocess.run(sft_cmd(tiny_base, data, ref), capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    cmd, ckpts = sft_cmd(tiny_base, data, cut), Path(cut["checkpoints"])
    # first kill inside epoch 1 (after checkpoint-12), the second inside epoch 2 (after checkpoint-24)
    kill_when(cmd, lambda: any(s >= 12 for s in checkpoint_steps(ckpts)), tmp_path / "kill1.log")
    assert not Path(cut["adapter"]).exists() and not Path(cut["metrics"]).exists()
    kill_when(cmd, lambda: any(s >= 24 for s in checkpoint_steps(ckpts)), tmp_path / "kill2.log")
    assert "resuming from checkpoint" in (tmp_path / "kill2.log").read_text()
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    a, b = (json.loads(Path(p["metrics"]).read_text()) for p in (ref, cut))
    assert a["resumed_from"] is None and b["resumed_from"] and int(b["resumed_from"].split("-")[1]) >= 24
    assert b["steps"] == a["steps"] == 30 and b["steps_this_run"] < 30
    # the same batches: the same tokens, the same weights, byte for byte
    assert b["tokens"] == a["tokens"]
    for name in ("adapter_model.safetensors",):
        assert (Path(cut["adapter"]) / name).read_bytes() == (Path(ref["adapter"]) / name).read_bytes()
    assert (Path(cut["merged"]) / "model.safetensors").read_bytes() == (
        Path(ref["merged"]) / "model.safetensors").read_bytes()
    # train_loss over the whole run, and the same loss curve
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-6)
    for key in ("train_loss_last", "eval_loss_base", "eval_loss_sft"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert Path(cut["loss"]).read_text() == Path(ref["loss"]).read_text()


# --- evaluate ------------------------------------------------------------------------------------

def translation_rows(n: int) -> list[dict]:
    """Pairs in the shape of the split's bench rows (as tests/test_evaluate.py builds them)."""
    import random

    from atlas_forge import records

    from .test_evaluate import ENGLISH, WORDS

    rng = random.Random(11)
    rows = []
    for i in range(n):
        ary = " ".join(rng.choices(WORDS, k=rng.randint(2, 9)))
        texts = {"ary_Arab": ary, "eng_Latn": " ".join(rng.choices(ENGLISH, k=4)),
                 "ary_Latn": " ".join(rng.choices(ENGLISH, k=3))}
        rows.append(records.make_record("pairs", str(i), "translation", [{"role": "user", "content": ary}],
                                        "ary_Arab", {"texts": texts}))
    return rows


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory):
    from atlas_forge import io, records

    from .test_evaluate import make_tiny_model, mcq_rows

    d = tmp_path_factory.mktemp("eval")
    make_tiny_model(d / "model")
    io.write_table(records.from_rows(translation_rows(40)), d / "pairs.parquet", "test")
    io.write_table(records.from_rows(mcq_rows(300)), d / "mcq.parquet", "test")
    return d


TASKS = {
    # generation: 80 documents (both DODa directions), 20 engine chunks of 4 (2 batches of 2 each)
    "generation": ({"name": "tr", "family": "darija_translation", "sources": ["pairs"], "max_new_tokens": 24},
                   "pairs.parquet"),
    # log-likelihood: 300 questions x 4 choices
    "loglik": ({"name": "mcq", "family": "darijammlu", "sources": ["sample_mcq"]}, "mcq.parquet"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TASKS))
def test_evaluate_killed_keeps_finished_batches_and_ends_identical(eval_inputs, tmp_path, kind):
    task, table = TASKS[kind]

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "atlas_forge", "evaluate",
                "--params", json.dumps({"evaluate": {"task": task, "batch_size": 2}}),
                "--model", str(eval_inputs / "model"), "--model-name", "base",
                "--data", str(eval_inputs / table),
                "--device", "cpu", "--out", str(out / "t.json"),
                "--samples", str(out / "t.samples.jsonl"), "--threads", "1"]

    ref, cut = tmp_path / "ref", tmp_path / "cut"
    run = subprocess.run(cmd(ref), capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    total = int(re.search(r"evaluation work: 0 batches reused, (\d+) computed", run.stderr).group(1))
    assert total >= 20
    assert not (ref / "t.partial.jsonl").exists()  # removed once the outputs are written

    partial = cut / "t.partial.jsonl"
    kill_when(cmd(cut), lambda: partial.exists() and partial.read_text().count("\n") > total // 3,
              tmp_path / "kill.log")
    assert not (cut / "t.json").exists()
    kept = partial.read_text().count("\n") - 1  # header line
    run = subprocess.run(cmd(cut), capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    reused, computed = map(int, re.search(r"evaluation work: (\d+) batches reused, (\d+) computed",
                                          run.stderr).groups())
    # the finished batches were kept (a line cut short by the kill is not one), only the rest was done
    assert kept - 1 <= reused <= kept and reused >= total // 3 and reused + computed == total
    assert not partial.exists()

    assert (cut / "t.samples.jsonl").read_bytes() == (ref / "t.samples.jsonl").read_bytes()
    a, b = (json.loads((d / "t.json").read_text()) for d in (ref, cut))
    a.pop("items_per_s"), b.pop("items_per_s")  # wall-clock speed
    assert a == b


def test_evaluate_work_of_another_run_is_not_reused(tmp_path):
    """A partial file written under another fingerprint (other model, data, code) starts over."""
    from atlas_forge.evaluate import resume

    path = tmp_path / "t.partial.jsonl"
    with resume.keep_work(path, {"model": "a"}):
        assert resume.cached("k", None, [1], lambda: [0.5, True]) == [0.5, True]
    with resume.keep_work(path, {"model": "a"}) as w:
        assert resume.cached("k", None, [1], lambda: pytest.fail("recomputed")) == [0.5, True]
        assert (w.reused, w.computed) == (1, 0)
    with open(path, "a") as fh:
        fh.write('{"key": "torn')  # a kill in the middle of a line
    with resume.keep_work(path, {"model": "b"}) as w:
        assert resume.cached("k", None, [1], lambda: [0.25, False]) == [0.25, False]
        assert (w.reused, w.computed) == (0, 1)
    assert resume.cached("k", None, [1], lambda: "no cache outside the block") == "no cache outside the block"
