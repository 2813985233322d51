"""judge family: pairwise win rate against references, openai judge (scripted local endpoint) and
local log-likelihood judge (tiny Gemma 2); the shared ChatClient's retries; the bundled sample."""

from __future__ import annotations

import json
import logging
import shutil
import time

import pytest

from atlas_forge import cli, io, records
from atlas_forge.chat_client import ChatClient, ChatError
from atlas_forge.evaluate import CONTRACT, evaluate, run_cli
from atlas_forge.evaluate.judge import parse_verdict, score_pairs
from tests.test_evaluate import WORDS, make_tiny_model

SECRET = "sk-judge-test-not-a-real-key-42"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_judge") / "model"
    model, tok = make_tiny_model(path, lines=120)
    return path, model, tok


def chat_rows(n: int, source: str = "sample_alpaca") -> list[dict]:
    rows = []
    for i in range(n):
        user = f"{WORDS[i]} {WORDS[i + 1]} {WORDS[i + 2]} سؤال {i}؟"
        ref = f"الجواب المرجعي {i}: {WORDS[(3 * i) % len(WORDS)]} {WORDS[(5 * i + 1) % len(WORDS)]} مزيان."
        rows.append(
            records.make_record(
                source, f"a{i}", "chat",
                [{"role": "user", "content": user}, {"role": "assistant", "content": ref}],
                "ary_Arab", {"translated_from": "eng_Latn"},
            )
        )
    return rows


def write_rows(tmp_path, rows) -> str:
    path = tmp_path / "translated.parquet"
    records.from_rows(rows).write_parquet(path)
    return str(path)


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    instruction = prompt.split("# Instruction\n")[1].split("\n\n# Answer (a)\n")[0]
    a = prompt.split("# Answer (a)\n")[1].split("\n\n# Answer (b)\n")[0]
    b = prompt.split("# Answer (b)\n")[1].split("\n\nWhich answer is better")[0]
    return instruction, a, b


def test_parse_verdict_is_strict():
    for ok, want in [("a", "a"), (" B ", "b"), ("(a)", "a"), ("b.", "b"), ("(B).", "b")]:
        assert parse_verdict(ok) == want
    for bad in ["", "ab", "Answer: a", "a or b", "I prefer (a)", "c", "a\nbecause it is longer", None]:
        assert parse_verdict(bad) is None


def test_openai_judge_scripted_verdicts(tmp_path, tiny, make_server, monkeypatch, caplog):
    model_dir, model, tok = tiny
    rows = chat_rows(9)
    refs = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    users = [r["messages"][0]["content"] for r in rows]
    # per item (in the order of `rows`): how the scripted judge behaves
    plan = dict(zip(users, ["win", "win", "loss", "loss", "win_paren", "flip", "garbage", "half", "http400"],
                    strict=True))

    def respond(prompt, n):
        instruction, a, b = parse_prompt(prompt)
        ref_letter = "a" if a == refs[instruction] else "b"
        model_letter = "b" if ref_letter == "a" else "a"
        how = plan[instruction]
        if how == "win":
            return 200, {}, model_letter
        if how == "win_paren":
            return 200, {}, f"({model_letter.upper()})"
        if how == "loss":
            return 200, {}, ref_letter + "."
        if how == "flip":
            return 200, {}, "a"  # always the first position
        if how == "garbage":
            return 200, {}, "Both answers are fine."
        if how == "half":  # one clean verdict, one chatty one: the pair is not scored
            return 200, {}, model_letter if ref_letter == "b" else f"Answer: {model_letter}"
        return 400, {}, ""

    server = make_server(respond)
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    task = {"name": "alpaca_judge", "family": "judge", "sources": ["sample_alpaca"], "max_new_tokens": 8,
            "judge": {"backend": "openai", "base_url": server.url, "model": "judge-model", "concurrency": 3,
                      "max_retries": 0, "timeout_s": 10, "api_key_env": "JUDGE_KEY"}}
    with caplog.at_level(logging.DEBUG):
        result, samples = evaluate(task, model_dir, "base", [write_rows(tmp_path, rows)], batch_size=4,
                                   model=model, tokenizer=tok)
    assert SECRET not in caplog.text
    assert len(server.prompts) == 18 and all(a == f"Bearer {SECRET}" for a in server.auth)
    s = result["scores"]
    assert s["n_judged"] == 5 and s["win_rate"] == pytest.approx(3 / 5)
    assert s["n_flipped"] == 1 and s["n_unparseable"] == 3 and s["n_errors"] == 2
    assert result["main_metric"] == "win_rate" and result["family"] == "judge" and result["n"] == 9
    settings = result["settings"]
    assert settings["judge_backend"] == "openai" and settings["judge_model"] == "judge-model"
    by_prompt = {smp["prompt"]: smp for smp in samples}
    want = {"win": "win", "win_paren": "win", "loss": "loss", "flip": "flipped", "garbage": "unparseable",
            "half": "unparseable", "http400": "unparseable"}
    for user, how in plan.items():
        smp = by_prompt[user]
        assert smp["outcome"] == want[how]
        assert smp["reference"] == refs[user] and isinstance(smp["generation"], str)
        assert [v["order"] for v in smp["verdicts"]] == ["model_first", "reference_first"]
    flip = by_prompt[users[5]]["verdicts"]
    assert [v["letter"] for v in flip] == ["a", "a"] and [v["winner"] for v in flip] == ["model", "reference"]
    assert all(v["error"] == "HTTP 400" for v in by_prompt[users[8]]["verdicts"])


def test_openai_judge_all_requests_failing_fails_the_task(tmp_path, tiny, make_server):
    model_dir, model, tok = tiny
    server = make_server(lambda prompt, n: (401, {}, ""))
    task = {"name": "j", "family": "judge", "sources": ["sample_alpaca"], "max_new_tokens": 4,
            "judge": {"backend": "openai", "base_url": server.url, "model": "m", "max_retries": 0}}
    with pytest.raises(RuntimeError, match="every request failed"):
        evaluate(task, model_dir, "base", [write_rows(tmp_path, chat_rows(2))], model=model, tokenizer=tok)


def test_local_judge_end_to_end(tmp_path, tiny):
    model_dir, model, tok = tiny
    judge_dir = tmp_path / "judge_model"
    shutil.copytree(model_dir, judge_dir)  # another directory: loaded by the judge itself
    data = write_rows(tmp_path, chat_rows(6))
    task = {"name": "alpaca_judge", "family": "judge", "sources": ["sample_alpaca"], "max_new_tokens": 6,
            "judge": {"backend": "local", "model": str(judge_dir)}}
    # through the CLI's own parser, so the test follows its flags and their defaults
    args = cli.build_parser().parse_args([
        "evaluate", "--params", json.dumps({"evaluate": {"task": task, "batch_size": 4}}),
        "--model", str(model_dir), "--model-name", "base", "--data", data, "--threads", "1",
        "--out", str(tmp_path / "r.json"), "--samples", str(tmp_path / "r.samples.jsonl"),
    ])
    run_cli(args, CONTRACT.parse(args.params))
    result = json.loads((tmp_path / "r.json").read_text())
    samples = io.read_jsonl(tmp_path / "r.samples.jsonl")
    s = result["scores"]
    assert s["n_unparseable"] == 0 and s["n_errors"] == 0
    assert s["n_judged"] + s["n_flipped"] == 6 == len(samples)
    wins = sum(smp["outcome"] == "win" for smp in samples)
    assert s["win_rate"] == (pytest.approx(wins / s["n_judged"]) if s["n_judged"] else None)
    assert result["settings"]["judge_backend"] == "local"
    assert result["settings"]["judge_model_sha256"] == result["model_sha256"]  # same weights, copied
    for smp in samples:
        for v in smp["verdicts"]:
            lls = v["logliks"]
            assert len(lls) == 2 and v["letter"] == ("a" if lls[0] >= lls[1] else "b")
    # the same judge reused in-process (judge.model is the evaluated model's directory): same verdicts
    task2 = {**task, "judge": {"backend": "local", "model": str(model_dir)}}
    result2, samples2 = evaluate(task2, model_dir, "base", [data], batch_size=2, model=model, tokenizer=tok)
    assert result2["scores"] == pytest.approx(s)
    assert [smp["outcome"] for smp in samples2] == [smp["outcome"] for smp in samples]


def test_score_pairs_counts():
    items = [{"row": {"id": str(i), "source": "s"}, "prompt": "q", "reference": "r", "generation": "g"}
             for i in range(4)]
    v = [{"letter": x} for x in ["a", "b", "b", "a", "a", "a", None, "a"]]
    scores, samples = score_pairs(items, v)
    assert [smp["outcome"] for smp in samples] == ["win", "loss", "flipped", "unparseable"]
    assert scores == {"win_rate": 0.5, "n_judged": 2, "n_flipped": 1, "n_unparseable": 1, "n_errors": 0}
    # nothing judged (every pair flipped or unparseable): win_rate is null, not a 0% win rate
    scores, _ = score_pairs(items[:2], [{"letter": x} for x in ["a", "a", None, "b"]])
    assert scores["win_rate"] is None and scores["n_judged"] == 0
    assert scores["n_flipped"] == 1 and scores["n_unparseable"] == 1


def test_chat_client_retries_429_then_5xx(make_server, monkeypatch):
    plan = {1: (429, {"Retry-After": "0.05"}, ""), 2: (503, {}, ""), 3: (429, {"Retry-After": "100"}, "")}
    server = make_server(lambda prompt, n: plan.get(n, (200, {}, "b")))
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    client = ChatClient(server.url, "m", timeout_s=5, max_retries=3, backoff_s=0.01, max_backoff_s=0.2,
                        api_key_env="JUDGE_KEY")
    t0 = time.perf_counter()
    assert client.complete([{"role": "user", "content": "hi"}]) == "b"
    assert time.perf_counter() - t0 < 5  # Retry-After: 100 is capped by max_backoff_s
    assert len(server.prompts) == 4 and server.auth == [f"Bearer {SECRET}"] * 4


def test_chat_client_gives_up_and_does_not_retry_4xx(make_server):
    server = make_server(lambda prompt, n: (429, {}, ""))
    client = ChatClient(server.url, "m", max_retries=2, backoff_s=0.01, api_key_env="NO_SUCH_KEY_ENV")
    with pytest.raises(ChatError, match=r"^HTTP 429 after 3 attempts$"):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(server.prompts) == 3 and server.auth == [None] * 3
    server2 = make_server(lambda prompt, n: (400, {}, ""))
    client2 = ChatClient(server2.url, "m", max_retries=5, backoff_s=0.01)
    with pytest.raises(ChatError, match=r"^HTTP 400$"):
        client2.complete([{"role": "user", "content": "x"}])
    assert len(server2.prompts) == 1


def test_bundled_alpaca_sample_has_exact_translations(repo_root):
    lines = (repo_root / "data/raw/sample/alpaca_eval_sample.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines]
    seed_file = repo_root / "data/raw/sample/alpaca_translations.jsonl"
    seeds = [json.loads(line) for line in seed_file.read_text(encoding="utf-8").splitlines()]
    table = {s["source"]: s["target"] for s in seeds}
    assert len(items) == 12 and len({it["id"] for it in items}) == 12
    for it in items:
        assert it["dataset"] == "sample" and [m["role"] for m in it["messages"]] == ["user", "assistant"]
        for m in it["messages"]:
            assert table.get(m["content"], "").strip(), m["content"]
