"""Table 2's two judged columns as the paper measures them (§9, App. C.3 and C.5), through the real code
path: the answers phase makes a baseline's answers (sampled, seeded) from an instruction-only set, the
evaluated model samples its own, and an OpenAI-compatible judge at a local stand-in server compares
them with the paper's Fig. 6 prompt (DarijaAlpacaEval) or the model's summaries with the references
with Fig. 7 (summarization). Three stand-in judges: one that always names position A, one that is
consistent, one whose verdicts are malformed."""

from __future__ import annotations

import json

import pytest

from atlas_forge import cli, config, io, records
from atlas_forge.evaluate import answers as answers_phase
from atlas_forge.evaluate import evaluate
from atlas_forge.evaluate.judge import FIG6, FIG7, OURS, parse_verdict, passage_of
from atlas_forge.evaluate.task_config import TaskConfig
from tests.test_evaluate import WORDS, make_tiny_model

N = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_judged") / "model"
    model, tok = make_tiny_model(path, lines=120)
    return path, model, tok


def instruction_rows(n: int) -> list[dict]:
    """DarijaAlpacaEval as released: instructions only, no reference answers."""
    return [
        records.make_record("darija_alpacaeval", f"q{i}", "chat",
                            [{"role": "user", "content": f"{WORDS[i]} {WORDS[i + 3]} علاش؟ {i}"}],
                            "ary_Arab", {})
        for i in range(n)
    ]


def summary_rows(n: int) -> list[dict]:
    return [
        records.make_record("darijabench_marsum", f"s{i}", "summarization",
                            [{"role": "user", "content": f"مقال {i}: " + " ".join(WORDS[i : i + 12])},
                             {"role": "assistant", "content": f"عنوان {i} {WORDS[i + 1]}"}], "ary_Arab", {})
        for i in range(n)
    ]


def write(tmp_path, rows, name) -> str:
    path = tmp_path / f"{name}.parquet"
    records.from_rows(rows).write_parquet(path)
    return str(path)


def fields(prompt: str, spec) -> tuple[str, str, str]:
    """(context, answer A, answer B) back out of a paper prompt, by the template's own delimiters."""
    context_field, fa, fb = spec.fields
    head, rest = spec.template.split("{" + context_field + "}")
    mid, tail = rest.split("{" + fa + "}")
    mid2, end = tail.split("{" + fb + "}")
    assert prompt.startswith(head) and prompt.endswith(end)
    body = prompt[len(head) : len(prompt) - len(end)]
    context, body = body.split(mid, 1)
    a, b = body.split(mid2, 1)
    return context, a, b


def alpaca_task(server_url: str, **extra) -> dict:
    return {
        "name": "darija_alpacaeval", "family": "judge", "column": "alpaca_eval",
        "sources": ["darija_alpacaeval"],
        "max_new_tokens": 8, "decoding": {"sample": True, "seed": 7},
        "judge": {"backend": "openai", "model": "stand-in", "base_url": server_url,
                  "prompt": "atlas-chat-fig6",
                  "max_retries": 0, "timeout_s": 10, "concurrency": 2},
        "opponent": "baseline",
        "baseline": {"model": "", "max_new_tokens": 8, "decoding": {"sample": True, "seed": 11}},
        **extra,
    }


def make_answers(tmp_path, task: dict, model_dir, data: str) -> str:
    """The answers phase through its CLI (the route a Snakemake job takes)."""
    out, card = tmp_path / "answers.jsonl", tmp_path / "answers.json"
    args = cli.build_parser().parse_args([
        "answers", "--params", json.dumps({"evaluate": {"task": task, "batch_size": 3}}),
        "--data", data, "--out", str(out), "--card", str(card), "--threads", "1",
    ])
    answers_phase.run_cli(args, answers_phase.CONTRACT.parse(args.params))
    return str(out)


def test_paper_verdicts_parse_strictly():
    for spec in (FIG6, FIG7):
        for ok, want in [("A", "a"), (" b ", "b"), ("[A]", "a"), ("**B**", "b"), ("(A).", "a"),
                         ("Better Answer: A", "a"), ("Better Summary: [B]", "b"),
                         ("**Better Answer:** B", "b")]:
            assert parse_verdict(ok, spec) == want, ok
        for bad in ["", "AB", "A or B", "I prefer A", "C", "A\nbecause", "Better Answer: C", None]:
            assert parse_verdict(bad, spec) is None, bad
    assert parse_verdict("Better Answer: A", OURS) is None  # ours asks for the bare letter


def test_the_paper_prompts_are_the_figures():
    assert "cultural appropriateness and relevance of two answers written in Moroccan Darija" in FIG6.template
    assert "Cultural Appropriateness and Relevance" in FIG6.template and "Fluency" in FIG6.template
    assert "### Output format: Better Answer: [A or B]" in FIG6.template
    assert "**Wordness**" in FIG7.template and "**Conciseness**" in FIG7.template
    assert "A summary should not be chosen if it is written in MSA." in FIG7.template
    assert passage_of("لخص هاد المقطع:\nالنص كامل") == "النص كامل"
    assert passage_of("نص بلا تعليمة") == "نص بلا تعليمة"


@pytest.mark.parametrize("judge_kind", ["always_a", "consistent", "malformed"])
def test_alpaca_eval_against_baseline_answers(tmp_path, tiny, make_server, judge_kind):
    model_dir, model, tok = tiny
    baseline_dir = tmp_path / "baseline"  # another folder: the answers phase loads it itself
    make_tiny_model(baseline_dir, lines=60)
    data = write(tmp_path, instruction_rows(N), "alpaca")
    prefer_model = {f"{WORDS[i]} {WORDS[i + 3]} علاش؟ {i}": i % 3 != 0 for i in range(N)}  # 4 wins, 2 losses
    seen = {}

    def respond(prompt, n):
        instruction, a, b = fields(prompt, FIG6)
        seen.setdefault(instruction, []).append((a, b))
        if judge_kind == "always_a":
            return 200, {}, "A"
        if judge_kind == "malformed":
            return 200, {}, "Both answers are culturally fine."
        baseline_answer = answers[instruction]
        model_is_a = a != baseline_answer
        pick_a = model_is_a == prefer_model[instruction]
        return 200, {}, ("Better Answer: A" if pick_a else "B") if n % 2 else ("A" if pick_a else "**B**")

    server = make_server(respond)
    task = alpaca_task(server.url)
    task["baseline"]["model"] = str(baseline_dir)
    path = make_answers(tmp_path, task, baseline_dir, data)
    rows = io.read_jsonl(path)
    card = json.loads((tmp_path / "answers.json").read_text())
    # two tiny models may sample the same short text; the consistent judge tells the sides apart by text
    io.write_jsonl([{**r, "answer": f"{r['answer']} [baseline {i}]"} for i, r in enumerate(rows)], path)
    answers = {r["prompt"]: r["answer"] for r in io.read_jsonl(path)}
    assert len(rows) == N and card["n"] == N and card["baseline"] == str(baseline_dir)
    assert card["decoding"] == {"sample": True, "seed": 11, "temperature": None, "top_p": None, "top_k": None}
    assert card["model_sha256"] and card["prompt_template"] == "chat template"

    result, samples = evaluate(task, model_dir, "sft", [data], batch_size=3, model=model, tokenizer=tok,
                               answers=path)
    s = result["scores"]
    assert len(server.prompts) == 2 * N and len(seen) == N
    for instruction, ((a1, b1), (a2, b2)) in seen.items():  # each pair twice, the positions swapped
        assert (a1, b1) == (b2, a2) and answers[instruction] in (a1, b1)
    if judge_kind == "always_a":
        assert s == {"win_rate": None, "n_judged": 0, "n_flipped": N, "n_unparseable": 0, "n_errors": 0}
    elif judge_kind == "malformed":
        assert s == {"win_rate": None, "n_judged": 0, "n_flipped": 0, "n_unparseable": N, "n_errors": 0}
    else:
        assert s["n_judged"] == N and s["n_flipped"] == 0 and s["n_unparseable"] == 0
        assert s["win_rate"] == pytest.approx(4 / 6)
        assert [smp["outcome"] for smp in samples] == ["loss", "win", "win", "loss", "win", "win"]
    for smp in samples:
        assert smp["baseline"] == answers[smp["prompt"]] and smp["reference"] is None
        assert [v["order"] for v in smp["verdicts"]] == ["model_first", "baseline_first"]
    settings = result["settings"]
    assert settings["judge_prompt"] == "atlas-chat-fig6" and settings["opponent"] == "baseline"
    assert settings["decoding"]["sample"] is True and settings["decoding"]["seed"] == 7
    assert settings["baseline_model"] == str(baseline_dir) and len(settings["baseline_answers_sha256"]) == 64


def test_answers_are_seeded_and_an_instruction_only_set_needs_a_baseline(tmp_path, tiny):
    model_dir, model, tok = tiny
    data = write(tmp_path, instruction_rows(4), "alpaca")
    task = alpaca_task("http://127.0.0.1:9/v1")
    task["baseline"]["model"] = str(model_dir)
    first, _ = answers_phase.answer(task, [data], batch_size=2, model=model, tokenizer=tok)
    again, _ = answers_phase.answer(task, [data], batch_size=2, model=model, tokenizer=tok)
    assert [r["answer"] for r in first] == [r["answer"] for r in again]
    reseeded = {**task, "baseline": {**task["baseline"], "decoding": {"sample": True, "seed": 12}}}
    other, _ = answers_phase.answer(reseeded, [data], batch_size=2, model=model, tokenizer=tok)
    assert [r["answer"] for r in other] != [r["answer"] for r in first]
    greedy = {**task, "baseline": {**task["baseline"], "decoding": {"sample": False}}}
    g1, _ = answers_phase.answer(greedy, [data], batch_size=2, model=model, tokenizer=tok)
    g2, _ = answers_phase.answer({**greedy, "baseline": {**greedy["baseline"], "decoding": {"seed": 99}}},
                                 [data], batch_size=2, model=model, tokenizer=tok)
    assert [r["answer"] for r in g1] == [r["answer"] for r in g2]  # greedy ignores the seed
    # no reference answers and no baseline: a clear error, not a judge run against nothing
    by_reference = {k: v for k, v in task.items() if k not in ("opponent", "baseline")}
    with pytest.raises(ValueError, match="no reference answer .*opponent: baseline"):
        evaluate(by_reference, model_dir, "base", [data], model=model, tokenizer=tok)
    with pytest.raises(ValueError, match="no --answers file"):
        evaluate(task, model_dir, "base", [data], model=model, tokenizer=tok)
    # answers made for other prompts are refused
    stale = tmp_path / "stale.jsonl"
    io.write_jsonl([{**r, "prompt": r["prompt"] + "!"} for r in first], stale)
    with pytest.raises(ValueError, match="another prompt"):
        evaluate(task, model_dir, "base", [data], model=model, tokenizer=tok, answers=str(stale))


@pytest.mark.parametrize("judge_kind", ["always_a", "consistent", "malformed"])
def test_summarization_judge_against_references(tmp_path, tiny, make_server, judge_kind):
    model_dir, model, tok = tiny
    rows = summary_rows(N)
    titles = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    data = write(tmp_path, rows, "marsum")
    passages = []

    def respond(prompt, n):
        passage, a, b = fields(prompt, FIG7)
        passages.append(passage)
        if judge_kind == "always_a":
            return 200, {}, "Better Summary: A"
        if judge_kind == "malformed":
            return 200, {}, "Summary A is in MSA, summary B too."
        reference = next(t for p, t in titles.items() if p.endswith(passage))
        return 200, {}, "A" if a == reference else "B"  # always the reference: every pair a loss

    server = make_server(respond)
    task = {"name": "darijabench_summarization_judge", "family": "judge", "column": "summarization",
            "sources": ["darijabench_marsum"], "judged": "summarization", "max_new_tokens": 8,
            "decoding": {"sample": True, "seed": 3},
            "judge": {"backend": "openai", "model": "stand-in", "base_url": server.url,
                      "prompt": "atlas-chat-fig7", "max_retries": 0, "timeout_s": 10}}
    result, samples = evaluate(task, model_dir, "sft", [data], batch_size=3, model=model, tokenizer=tok)
    s = result["scores"]
    # Fig. 7's {passage} is the article alone; the model was asked with the harness's 30-word prompt
    assert sorted(set(passages)) == sorted(titles) and len(passages) == 2 * N
    assert all("في ٣٠ كلمة" in smp["prompt"] for smp in samples)
    assert {smp["reference"] for smp in samples} == set(titles.values())
    if judge_kind == "always_a":
        assert s["n_flipped"] == N and s["win_rate"] is None
    elif judge_kind == "malformed":
        assert s["n_unparseable"] == N and s["win_rate"] is None
    else:
        assert s["n_judged"] == N and s["win_rate"] == 0.0
        assert all(smp["outcome"] == "loss" for smp in samples)
    assert result["main_metric"] == "win_rate" and result["column"] == "summarization"
    assert result["settings"]["judged"] == "summarization" and result["settings"]["opponent"] == "reference"


def test_judged_task_config_errors_name_the_key():
    base = {"name": "t", "family": "judge", "sources": ["s"], "judge": {"backend": "openai", "model": "m"}}
    with pytest.raises(ValueError, match=r"tasks\[t\].baseline: set it exactly when opponent is baseline"):
        config.parse(TaskConfig, {**base, "opponent": "baseline"}, "evaluate.tasks[t]")
    with pytest.raises(ValueError, match=r"\.judge\.prompt: 'fig6' is not one of"):
        config.parse(TaskConfig, {**base, "judge": {**base["judge"], "prompt": "fig6"}}, "evaluate.tasks[t]")
    with pytest.raises(ValueError, match=r"\.decoding: only the judge family reads it"):
        config.parse(TaskConfig, {"name": "t", "family": "darija_summarization", "sources": ["s"],
                                  "decoding": {"sample": True}}, "evaluate.tasks[t]")
    with pytest.raises(ValueError, match=r"\.baseline\.prompt_template: must contain \{instruction\}"):
        config.parse(TaskConfig, {**base, "opponent": "baseline",
                                  "baseline": {"model": "m", "prompt_template": "no slot"}},
                     "evaluate.tasks[t]")
    with pytest.raises(ValueError, match=r"\.decoding\.temperature: must be > 0"):
        config.parse(TaskConfig, {**base, "decoding": {"sample": True, "temperature": 0}},
                     "evaluate.tasks[t]")


def test_baseline_answers_from_an_endpoint(tmp_path, make_server):
    """A baseline that runs elsewhere (Jais-13B-Chat's code lives in its repository, and remote code never
    runs here): its answers come from an OpenAI-compatible endpoint, one user turn per instruction."""
    data = write(tmp_path, instruction_rows(4), "alpaca")
    server = make_server(lambda prompt, n: (200, {}, f"جواب على: {prompt}"))
    task = alpaca_task("http://127.0.0.1:9/v1")
    task["baseline"] = {"backend": "openai", "model": "jais-stand-in", "base_url": server.url,
                        "decoding": {"sample": True}, "concurrency": 2}
    rows, card = answers_phase.answer(task, [data])
    assert [r["answer"] for r in rows] == [f"جواب على: {r['prompt']}" for r in rows]
    assert sorted(server.prompts) == sorted(r["prompt"] for r in rows)
    assert card["backend"] == "openai" and card["base_url"] == server.url and card["model_sha256"] is None
    broken = make_server(lambda prompt, n: (400, {}, ""))
    task["baseline"] = {**task["baseline"], "base_url": broken.url}
    with pytest.raises(RuntimeError, match="4 of 4 baseline answers failed"):
        answers_phase.answer(task, [data])
