"""report phase: scores.json, the Table 2 layout with the paper's rows, other tasks, plot, errors.

Expected paper cells are read from the data file itself (data/paper/atlas_chat_table2.yaml); the
run's expected cells follow from the scores written here (fractions shown x100, 0-100 metrics as is).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from atlas_forge import cli, io, report

PAPER = "data/paper/atlas_chat_table2.yaml"
# the column ids the evaluate phase may set (task config key `column`)
CONTRACT_COLUMNS = [
    "darijammlu", "darijahellaswag", "belebele_ary", "alpaca_eval", "sentiment", "translation",
    "transliteration", "summarization",
]  # fmt: skip


@pytest.fixture
def paper_path(repo_root):
    return str(repo_root / PAPER)


def _result(tmp_path, model, task, family, scores, main, column=None, shots=0, **settings):
    p = tmp_path / "results" / model / f"{task}.json"
    r = {
        "task": task,
        "family": family,
        "model": model,
        "scores": scores,
        "main_metric": main,
        "n": 10,
        "settings": {"num_fewshot": shots, **settings},
        "harness": "atlas-forge 0.1.0",
    }
    if column:
        r["column"] = column
    io.write_json(r, p)
    return str(p)


def _run(tmp_path, paths, params):
    names = (("scores", "scores.json"), ("report", "report.md"), ("plot", "s.png"))
    out = {k: tmp_path / v for k, v in names}
    rc = cli.main(
        ["report", "--params", json.dumps({"report": params}), "--results", *paths,
         "--scores", str(out["scores"]),
         "--report", str(out["report"]), "--plot", str(out["plot"])]
    )  # fmt: skip
    return rc, out


def _table(md: str, first_header: str) -> dict[str, dict[str, str]]:
    """The markdown table whose header starts with `first_header`: {row label: {column: cell}}."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows, header


def _run_results(tmp_path):
    paths = []
    for model, acc in (("base", 0.25), ("sft", 0.5)):
        paths += [
            _result(tmp_path, model, "mmlu0", "mcq_letters", {"acc": acc, "acc/history": 0.1}, "acc",
                    "darijammlu", 0),
            _result(tmp_path, model, "mmlu3", "mcq_letters", {"acc": acc + 0.1}, "acc", "darijammlu", 3),
            _result(tmp_path, model, "doda", "generation",
                    {"bleu": 1.0 + 10 * acc, "chrf": 10.0, "ter": 100.0 - 40 * acc, "bleu/ary->eng": 2.0},
                    "bleu", "translation"),
            _result(tmp_path, model, "alpaca", "judge",
                    {"win_rate": None, "n_judged": 0, "n_flipped": 4}, "win_rate", "alpaca_eval"),
            _result(tmp_path, model, "mcq", "mcq_letters", {"acc": acc}, "acc"),
        ]  # fmt: skip
    return paths


def test_report_table2_layout_and_paper_rows(tmp_path, paper_path):
    params = {"baseline": "base", "candidate": "sft", "paper": paper_path}
    rc, out = _run(tmp_path, _run_results(tmp_path), params)
    assert rc == 0
    scores = io.read_json(out["scores"])
    assert scores["sft"]["mmlu0"]["acc"] == 0.5 and scores["base"]["doda"]["ter"] == 90.0
    assert scores["sft"]["alpaca"]["win_rate"] is None  # null, not 0
    md = out["report"].read_text(encoding="utf-8")
    rows, header = _table(md, "model")
    paper = yaml.safe_load(open(paper_path, encoding="utf-8"))

    # columns in the paper's order; shots of one column as sub-columns
    col_labels = [c["label"] for c in paper["columns"]]
    firsts = [next(i for i, h in enumerate(header) if h.startswith(lab)) for lab in col_labels]
    assert firsts == sorted(firsts)
    assert header.index("DarijaMMLU 0-shot") < header.index("DarijaMMLU 3-shot")
    assert "Translation (DODa-10K) TER" in header  # the run's metric beside the paper's three
    assert not any("/" in h for h in header)  # per-subset and per-direction scores stay out

    # run rows: fractions x100, 0-100 metrics as stored, TER lower is better, null win rate "–"
    base, sft, delta = rows["base"], rows["sft"], rows["Δ (sft − base)"]
    assert (base["DarijaMMLU 0-shot"], sft["DarijaMMLU 0-shot"], delta["DarijaMMLU 0-shot"]) == (
        "25.00", "50.00", "+25.00 ▲")  # fmt: skip
    assert sft["DarijaMMLU 3-shot"] == "60.00"
    assert (base["Translation (DODa-10K) BLEU"], sft["Translation (DODa-10K) BLEU"]) == ("3.50", "6.00")
    assert delta["Translation (DODa-10K) TER"] == "-10.00 ▲"
    assert delta["Translation (DODa-10K) chrF"] == "+0.00"
    assert base["DarijaAlpacaEval"] == sft["DarijaAlpacaEval"] == delta["DarijaAlpacaEval"] == "–"
    assert base["Sentiment"] == "–"  # not run here

    # paper rows: every figure of the data file, in percent as printed, † for the model card's
    marks = {key: "†" * i for i, key in enumerate(paper["sources"])}
    source = {c["id"]: c["source"] for c in paper["columns"]}
    checked = 0
    subs = report.layout(*report.collect(_run_results(tmp_path)), paper, report.ReportConfig())
    for model in ("Atlas-Chat-2B", "Atlas-Chat-9B", "gemma-2-2b-it", "gemma-2-9b-it"):
        row = rows[f"paper: {model}"]
        for sub in subs:
            v = paper["models"][model].get(sub.column, {}).get(sub.shot, {}).get(sub.paper_metric)
            v = v if sub.paper else None
            want = "–" if v is None else f"{v:.2f}{marks[source[sub.column]]}"
            assert row[sub.label] == want, (model, sub.label)
            checked += v is not None
    assert checked >= 4 * 16  # Table 2's 16 figures per model at least
    assert rows["paper: Atlas-Chat-2B"]["Translation (DODa-10K) TER"] == "–"  # not in the paper
    assert "arXiv:2409.17912v2" in md and "Table 2" in md

    # per-subset scores of the Table 2 tasks, in their own table (first after the paper's sources)
    section = md.split("## Per subset", 1)[1].split("## Other tasks", 1)[0]
    subsets, _ = _table(section, "task")
    assert subsets["mmlu0 (mcq_letters)"] == {
        "task": "mmlu0 (mcq_letters)", "metric": "acc/history", "base": "10.00", "sft": "10.00", "Δ": "+0.00"}
    assert subsets["doda (generation)"]["metric"] == "bleu/ary->eng"
    assert "mcq (mcq_letters)" not in subsets and "mmlu3 (mcq_letters)" not in subsets

    # tasks without a column: the other-tasks table
    other, _ = _table(md.split("## Other tasks", 1)[1], "task")
    assert other["mcq (mcq_letters)"]["base"] == "25.00" and other["mcq (mcq_letters)"]["Δ"] == "+25.00 ▲"
    assert "mmlu0 (mcq_letters)" not in other
    assert out["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_paper_data_file(paper_path):
    paper = report.load_paper(paper_path)  # validates every figure's column, shot and metric
    ids = [c["id"] for c in paper["columns"]]
    assert set(ids) <= set(CONTRACT_COLUMNS) and ids[:3] == ["darijammlu", "darijahellaswag", "belebele_ary"]
    for src in paper["sources"].values():
        assert src["cite"] and src["url"] and src["read_from"]
    for model in ("Atlas-Chat-2B", "Atlas-Chat-9B", "gemma-2-2b-it", "gemma-2-9b-it"):
        figures = paper["models"][model]
        for c in paper["columns"]:
            for shot in c["shots"]:
                for metric in c["metrics"]:
                    v = figures[c["id"]][shot][metric]
                    assert v is None or 0.0 <= v <= 100.0, (model, c["id"], shot, metric)


def test_load_paper_rejects_unknown_keys(tmp_path, paper_path):
    good = yaml.safe_load(open(paper_path, encoding="utf-8"))
    for mutate, msg in (
        (lambda d: d["models"]["Atlas-Chat-2B"]["darijammlu"][0].update(accuracy=1.0), "unknown metric"),
        (lambda d: d["models"]["Atlas-Chat-2B"].update(mmlu={0: {"acc": 1.0}}), "unknown column"),
        (lambda d: d["models"]["Atlas-Chat-2B"]["darijammlu"].update({5: {"acc": 1.0}}), "shot 5"),
        (lambda d: d["models"]["Atlas-Chat-2B"]["sentiment"][0].update(acc="74"), "not a number"),
    ):
        bad = yaml.safe_load(yaml.safe_dump(good))
        mutate(bad)
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump(bad), encoding="utf-8")
        with pytest.raises(ValueError, match=msg):
            report.load_paper(p)


def test_shared_column_and_run_only_column(tmp_path, paper_path):
    paths = []
    for model in ("base", "sft"):
        paths += [
            _result(tmp_path, model, "tr_doda", "generation", {"bleu": 5.0, "chrf": 20.0}, "bleu",
                    "translation"),
            _result(tmp_path, model, "tr_flores", "generation", {"bleu": 7.0, "chrf": 30.0}, "bleu",
                    "translation"),
            _result(tmp_path, model, "extra", "mcq_letters", {"acc": 0.3}, "acc", "my_column"),
            _result(tmp_path, model, "judge", "judge", {"win_rate": 0.4, "n_judged": 5}, "win_rate",
                    "alpaca_eval"),
        ]  # fmt: skip
    rc, out = _run(tmp_path, paths, {"paper": paper_path})
    assert rc == 0
    rows, header = _table(out["report"].read_text(encoding="utf-8"), "model")
    # two tasks in one column and shot: each its own sub-columns; the paper's figures their own
    assert rows["sft"]["Translation (DODa-10K) [tr_flores] BLEU"] == "7.00"
    assert rows["sft"]["Translation (DODa-10K) [tr_doda] BLEU"] == "5.00"
    assert rows["paper: Atlas-Chat-9B"]["Translation (DODa-10K) [tr_doda] BLEU"] == "–"
    paper = report.load_paper(paper_path)
    assert rows["paper: Atlas-Chat-9B"]["Translation (DODa-10K) [paper] BLEU"] == (
        f"{paper['models']['Atlas-Chat-9B']['translation'][0]['bleu']:.2f}"
    )
    # a column the paper does not have comes after the paper's, labelled as not one of Table 2's
    own = "my_column (not in Table 2)"
    assert header[-1] == own and rows["base"][own] == "30.00"
    assert rows["base"]["DarijaAlpacaEval"] == "40.00"  # a win rate is a fraction: shown in percent


def test_report_without_paper_rows(tmp_path):
    # report.paper "" leaves the paper out (without the key: params.yaml's one default, the paper file)
    rc, out = _run(tmp_path, _run_results(tmp_path), {"baseline": "base", "candidate": "sft", "paper": ""})
    assert rc == 0
    md = out["report"].read_text(encoding="utf-8")
    rows, _ = _table(md, "model")
    assert set(rows) == {"base", "sft", "Δ (sft − base)"} and "paper:" not in md
    assert rows["sft"]["darijammlu 0-shot"] == "50.00"  # labels and order come with the paper file


def test_report_missing_candidate(tmp_path, capsys):
    p = _result(tmp_path, "base", "mcq", "mcq_letters", {"acc": 0.25}, "acc")
    rc, _ = _run(tmp_path, [p], {"baseline": "base", "candidate": "sft"})
    assert rc == 2
    assert "no results for model 'sft'" in capsys.readouterr().err


def test_metric_registry_decides_labels_directions_scales_and_main(paper_path):
    from atlas_forge import metric_registry as reg

    # every metric of the paper's data file has its entry (a typo there would show as a raw name)
    paper = report.load_paper(paper_path)
    named = {m for c in paper["columns"] for m in c["metrics"]}
    assert named <= set(reg.METRICS), named - set(reg.METRICS)
    # per-direction and per-subset names are their base metric's; unknown ones are shown as stored
    assert reg.metric("chrf/dr_en").label == "chrF" and reg.metric("acc/mac").scale == 100.0
    assert reg.metric("n_items") == reg.Metric("n_items", "n_items")
    # the report's cells follow the registry: TER going up is worse, accuracy is shown in percent
    assert report._delta("ter", 10.0, 12.0) == "+2.00 ▼" and report._delta("chrf", 10.0, 12.0) == "+2.00 ▲"
    assert report._display("acc/mac", 0.5) == "50.00" and report._display("bleu", 0.5) == "0.50"
    assert reg.main_metric("darijahellaswag", "multiple_choice", {}) == "acc_norm"
    assert reg.main_metric("darijammlu", "multiple_choice", {}) == "acc"
    assert reg.main_metric("darija_summarization", "generate_until", {"rougeL": 1.0}) == "rougeL"
    assert reg.main_metric("judge", "", {}) == "win_rate"


def test_hellaswag_column_is_normalised_accuracy(paper_path, tmp_path):
    """Table 2's DarijaHellaSwag figures are acc_norm (the model card's metric, its figures equal
    Table 2's): the paper's figures sit beside the run's acc_norm, the family's main metric."""
    from atlas_forge import metric_registry

    paper = report.load_paper(paper_path)
    column = next(c for c in paper["columns"] if c["id"] == "darijahellaswag")
    assert column["metrics"] == [metric_registry.main_metric("darijahellaswag", "multiple_choice", {})]
    assert all(set(by_metric) == {"acc_norm"} for figures in paper["models"].values()
               for by_metric in figures.get("darijahellaswag", {}).values())
    info = {"hs": report.TaskInfo(main="acc_norm", family="darijahellaswag", column="darijahellaswag")}
    scores = {m: {"hs": {"acc": 0.3, "acc_norm": 0.4}} for m in ("base", "sft")}
    subs = [s for s in report.layout(scores, info, paper, report.ReportConfig())
            if s.column == "darijahellaswag" and s.shot == 0]
    assert [(s.metric, s.task, s.paper) for s in subs] == [("acc_norm", "hs", True), ("acc", "hs", False)]


def _summarization(tmp_path, tokenizer, judge=True):
    """A summarization task scored with `tokenizer` (ROUGE of the harness's tokenizer beside ours when
    it is `arabic`) and, in the same column, the summarization judge."""
    paths = []
    for model, x in (("base", 1.0), ("sft", 2.0)):
        scores = {"chrf": 30.0 * x, "bertscore": 40.0 * x, "rouge1/dr": 1.0}
        rouge = ("rouge1", "rouge2", "rougeL", "rougeLsum")
        scores |= {m: 10.0 * x + i for i, m in enumerate(rouge)}
        if tokenizer == "arabic":
            scores |= {f"{m}_harness": 0.5 * x + i for i, m in enumerate(rouge)}
        paths.append(_result(tmp_path, model, "summ", "darija_summarization", scores, "rougeL",
                             "summarization", rouge_tokenizer=tokenizer))
        if judge:
            judged = {"win_rate": 0.25 * x, "n_judged": 4}
            paths.append(_result(tmp_path, model, "summ_judge", "judge", judged, "win_rate", "summarization"))
    return paths


def test_rouge_rows_name_their_tokenizer_and_paper_sits_like_for_like(tmp_path, paper_path):
    """Ours (`arabic`): both tokenizers' ROUGE shown, each labelled; the paper's ROUGE figures (the
    harness's tokenizer, the column's `rouge_tokenizer`) under the run's harness-tokenizer figures."""
    paper = report.load_paper(paper_path)
    summ = next(c for c in paper["columns"] if c["id"] == "summarization")
    assert summ["rouge_tokenizer"] == "harness"
    rc, out = _run(tmp_path, _summarization(tmp_path, "arabic"), {"paper": paper_path})
    assert rc == 0
    md = out["report"].read_text(encoding="utf-8")
    rows, header = _table(md, "model")
    figures = paper["models"]["Atlas-Chat-9B"]["summarization"][0]
    col = "Summarization (MArSum)"
    for metric, label in (("rouge1", "ROUGE-1"), ("rougeL", "ROUGE-L")):
        harness, ours = f"{col} {label} (harness tokenizer)", f"{col} {label} (arabic tokenizer)"
        assert rows["paper: Atlas-Chat-9B"][harness] == f"{figures[metric]:.2f}"
        assert rows["paper: Atlas-Chat-9B"][ours] == "–"  # not what the paper measured
    assert rows["sft"][f"{col} ROUGE-1 (harness tokenizer)"] == "1.00"
    assert rows["sft"][f"{col} ROUGE-1 (arabic tokenizer)"] == "20.00"
    assert rows["sft"][f"{col} ROUGE-Lsum (arabic tokenizer)"] == "23.00"
    assert rows["sft"][f"{col} ROUGE-Lsum (harness tokenizer)"] == "4.00"
    # every ROUGE header names its tokenizer; the judge's win rate shares the column with the paper's
    assert all("tokenizer)" in h for h in header if "ROUGE" in h)
    assert rows["sft"][f"{col} win rate"] == "50.00"
    assert rows["paper: Atlas-Chat-9B"][f"{col} win rate"] == f"{figures['win_rate']:.2f}"
    assert rows["sft"][f"{col} chrF"] == "60.00" and rows["paper: Atlas-Chat-9B"][f"{col} chrF"] == "32.07"
    assert "ROUGE tokenizer `arabic`" in md and "ROUGE tokenizers: `harness`" in md
    subsets, _ = _table(md.split("## Per subset", 1)[1], "task")
    assert "summ (darija_summarization; ROUGE tokenizer arabic)" in subsets


def test_rouge_of_the_harness_tokenizer_sits_beside_the_paper(tmp_path, paper_path):
    rc, out = _run(tmp_path, _summarization(tmp_path, "harness", judge=False), {"paper": paper_path})
    assert rc == 0
    md = out["report"].read_text(encoding="utf-8")
    rows, header = _table(md, "model")
    col = "Summarization (MArSum)"
    assert rows["sft"][f"{col} ROUGE-1 (harness tokenizer)"] == "20.00"
    assert rows["paper: Atlas-Chat-9B"][f"{col} ROUGE-1 (harness tokenizer)"] == "9.50"
    assert not any("arabic" in h for h in header)
    assert rows["sft"][f"{col} win rate"] == "–"  # the judge not run: the paper's figure alone
    assert "ROUGE tokenizer `harness`" in md


# --- comparison with significance, seed groups -------------------------------------------------------
REFS = ["the cat sat on the mat", "a dog ran in the park today", "it is raining hard again",
        "we like green tea a lot", "my brother works in the city", "open the window please"] * 2
WORSE = ["the cat sat on a mat", "dog ran park", "it rains", "we like tea", "brother city", "window"] * 2


def _samples(tmp_path, model, task, rows):
    p = tmp_path / "results" / model / f"{task}.samples.jsonl"
    io.write_jsonl(rows, p)
    return str(p)


def _mcq(tmp_path, model, n_right, n=40):
    rows = [{"id": f"q{i}", "source": "mmlu", "gold": 0, "pred": 0 if i < n_right else 1,
             "pred_norm": 0 if i < n_right else 1, "correct": i < n_right} for i in range(n)]
    # stored in another order than the reference's: pairing is by id, not by line
    rows = rows[::-1] if model != "base" else rows
    acc = n_right / n
    return [_result(tmp_path, model, "mcq", "mcq_letters", {"acc": acc, "acc/mmlu": acc}, "acc"),
            _samples(tmp_path, model, "mcq", rows)]


def _gen(tmp_path, model, hyps):
    import sacrebleu

    scores = {"bleu": sacrebleu.corpus_bleu(hyps, [REFS]).score,
              "chrf": sacrebleu.corpus_chrf(hyps, [REFS]).score,
              "ter": sacrebleu.corpus_ter(hyps, [REFS]).score}
    # one id, two directions: the item key is id + source + direction
    rows = [{"id": f"t{i // 2}", "source": "doda", "direction": ("en_dr", "dr_en")[i % 2], "generation": h,
             "gold": r} for i, (h, r) in enumerate(zip(hyps, REFS, strict=True))]
    return [_result(tmp_path, model, "gen", "translation", scores, "chrf"),
            _samples(tmp_path, model, "gen", rows)]


def _summ(tmp_path, model, hyps):
    from rouge_score import rouge_scorer

    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pairs = list(zip(hyps, REFS, strict=True))
    rouge_l = 100 * float(np.mean([sc.score(r, h)["rougeL"].fmeasure for h, r in pairs]))
    rows = [{"id": f"s{i}", "source": "news", "generation": h, "gold": r} for i, (h, r) in enumerate(pairs)]
    return [_result(tmp_path, model, "summ", "summarization", {"rougeL": rouge_l}, "rougeL",
                    rouge_tokenizer="harness"),
            _samples(tmp_path, model, "summ", rows)]


def _judge(tmp_path, model, outcomes):
    judged = [o for o in outcomes if o in ("win", "loss")]
    win = sum(o == "win" for o in judged) / len(judged) if judged else None
    rows = [{"id": f"a{i}", "source": "alpaca", "outcome": o} for i, o in enumerate(outcomes)]
    return [_result(tmp_path, model, "alpaca", "judge", {"win_rate": win, "n_judged": float(len(judged))},
                    "win_rate"),
            _samples(tmp_path, model, "alpaca", rows)]


def _three_models(tmp_path):
    outcomes = {"base": ["loss"] * 14 + ["flipped"] * 2 + ["win"] * 4,
                "sft": ["win"] * 16 + ["unparseable"] + ["win"] * 3,
                "lora": ["loss"] * 14 + ["flipped"] * 2 + ["win"] * 4}
    paths = []
    for model, right, hyps in (("base", 10, WORSE), ("sft", 30, REFS), ("lora", 10, WORSE)):
        paths += _mcq(tmp_path, model, right) + _gen(tmp_path, model, hyps) + _summ(tmp_path, model, hyps)
        paths += _judge(tmp_path, model, outcomes[model])
    for k, right in enumerate((12, 14, 17), start=1):
        paths += _mcq(tmp_path, f"lora_seed{k}", right)
    return paths


def _run_with_samples(tmp_path, paths, params):
    results = [p for p in paths if p.endswith(".json")]
    samples = [p for p in paths if p.endswith(".samples.jsonl")]
    names = (("scores", "scores.json"), ("report", "report.md"), ("plot", "s.png"))
    out = {k: tmp_path / v for k, v in names}
    rc = cli.main(["report", "--params", json.dumps({"report": params}), "--results", *results,
                   "--samples", *samples, "--scores", str(out["scores"]), "--report", str(out["report"]),
                   "--plot", str(out["plot"])])
    return rc, out


def test_significance_end_to_end_three_models_and_a_seed_group(tmp_path):
    from scipy import stats as sps

    seeds = ["lora_seed1", "lora_seed2", "lora_seed3"]
    params = {"baseline": "base", "candidate": "sft", "paper": "", "resamples": 500, "seed": 3,
              "seed_groups": {"lora": seeds}}
    rc, out = _run_with_samples(tmp_path, _three_models(tmp_path), params)
    assert rc == 0
    scores = io.read_json(out["scores"])
    assert scores["sft"]["mcq"]["acc"] == 0.75  # the models' keys as before
    sig = scores["significance"]
    assert (sig["reference"], sig["alpha"], sig["correction"]) == ("base", 0.05, "holm")
    assert (sig["resamples"], sig["seed"]) == (500, 3)
    # the seed models score mcq only: they are in mcq's table, not in the others'
    mcq = sig["tasks"]["mcq"]["acc"]
    assert set(mcq) == {"base", "sft", "lora", *seeds}
    assert set(sig["tasks"]["gen"]["chrf"]) == {"base", "sft", "lora"}

    # accuracy: lm-eval's stderr, the exact McNemar p (20 items only sft gets right) = scipy's binomtest
    base = mcq["base"]
    assert base["score"] == 0.25 and base["n"] == 40
    assert base["stderr"] == pytest.approx(np.std([1] * 10 + [0] * 30, ddof=1) / np.sqrt(40))
    assert base["ci_low"] == pytest.approx(0.25 - sps.norm.ppf(0.975) * base["stderr"])
    assert "diff" not in base  # the reference is not compared with itself
    sft = mcq["sft"]
    assert sft["diff"] == pytest.approx(0.5) and sft["test"] == "McNemar (exact)"
    assert (sft["discordant_reference"], sft["discordant_other"]) == (0, 20)
    assert sft["p"] == pytest.approx(sps.binomtest(0, 20, 0.5).pvalue)
    assert sft["diff_ci_low"] > 0 and sft["significant"] is True
    assert sft["p_adjusted"] >= sft["p"]
    assert mcq["lora"]["diff"] == 0 and mcq["lora"]["p"] == 1.0 and mcq["lora"]["significant"] is False

    # corpus metrics: copying the references is significantly better (TER lower), an equal system is not
    gen = sig["tasks"]["gen"]
    bleu = {m: scores[m]["gen"]["bleu"] for m in ("base", "sft")}
    assert gen["bleu"]["sft"]["diff"] == pytest.approx(bleu["sft"] - bleu["base"])
    assert gen["chrf"]["sft"]["significant"] and gen["ter"]["sft"]["significant"]
    assert gen["ter"]["sft"]["diff"] < 0
    assert gen["chrf"]["base"]["stderr_method"] == "bootstrap" and gen["chrf"]["base"]["stderr"] > 0
    assert gen["chrf"]["lora"]["p"] == 1.0 and not gen["chrf"]["lora"]["significant"]
    # ROUGE per item and the judge's win rate: paired bootstrap
    assert sig["tasks"]["summ"]["rougeL"]["sft"]["test"] == "paired bootstrap"
    assert sig["tasks"]["summ"]["rougeL"]["sft"]["significant"]
    judge = sig["tasks"]["alpaca"]["win_rate"]
    assert judge["base"]["n"] == 18 and judge["sft"]["n"] == 19
    assert judge["sft"]["n_paired"] == 17  # judged for both (base's flipped, sft's unparseable left out)
    assert judge["sft"]["significant"] and not judge["lora"]["significant"]

    # Holm over each model's tests: sft has acc, bleu, chrf, ter, rougeL, win_rate
    sft_cells = [c["sft"] for t in sig["tasks"].values() for c in t.values()]
    assert len(sft_cells) == 6
    assert sorted(c["p_adjusted"] for c in sft_cells) == pytest.approx(
        sorted(__import__("atlas_forge.stats").stats.holm([c["p"] for c in sft_cells])))

    # seeds: mean ± sd across the group's models, checked against numpy
    accs = [12 / 40, 14 / 40, 17 / 40]
    cell = scores["seed_groups"]["lora"]["mcq"]["acc"]
    assert cell["mean"] == pytest.approx(np.mean(accs)) and cell["sd"] == pytest.approx(np.std(accs, ddof=1))
    assert cell["n_seeds"] == 3

    md = out["report"].read_text(encoding="utf-8")
    assert "## Comparison with significance" in md and "p < 0.05, two-sided" in md and "Holm" in md
    rows = [line for line in md.splitlines() if line.startswith("| mcq | **acc** |")]
    assert rows and "25.00 ± 6.93" in rows[0] and "reference" in rows[0]
    sft_row = next(line for line in md.splitlines() if line.startswith("|  |  | sft |") and "McNemar" in line)
    assert "+50.00" in sft_row and "0/20 discordant" in sft_row and sft_row.rstrip().endswith("✓ |")
    seed_row = next(line for line in md.splitlines() if line.startswith("| lora (lora_seed1"))
    assert f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs, ddof=1):.2f}" in seed_row


def test_significance_needs_the_same_items(tmp_path, capsys):
    paths = _mcq(tmp_path, "base", 10) + _mcq(tmp_path, "sft", 10, n=39)
    rc, _ = _run_with_samples(tmp_path, paths, {"baseline": "base", "candidate": "sft", "paper": ""})
    assert rc == 2
    err = capsys.readouterr().err
    assert "do not score the same items" in err and "base" in err and "sft" in err


def test_significance_checks_samples_against_the_score(tmp_path, capsys):
    paths = _mcq(tmp_path, "base", 10) + _mcq(tmp_path, "sft", 12)
    r = io.read_json(paths[2])
    r["scores"]["acc"] = 0.5  # not what its samples say (12 / 40)
    io.write_json(r, paths[2])
    rc, _ = _run_with_samples(tmp_path, paths, {"baseline": "base", "candidate": "sft", "paper": ""})
    assert rc == 2
    assert "the samples are not the items behind the score" in capsys.readouterr().err


def test_significance_without_samples_is_left_out(tmp_path):
    rc, out = _run(tmp_path, _run_results(tmp_path), {"baseline": "base", "candidate": "sft", "paper": ""})
    assert rc == 0
    assert io.read_json(out["scores"])["significance"]["tasks"] == {}
    assert "## Comparison with significance" not in out["report"].read_text(encoding="utf-8")


def test_rouge_per_item_names_its_tokenizer_and_means_to_evaluates_score():
    from atlas_forge.evaluate import metrics

    rows = [{"generation": "السلام عليكم صاحبي", "gold": "السلام عليكم"},
            {"generation": "واش نتا", "gold": "لا"}]
    info = report.TaskInfo(main="rougeL", family="summarization", rouge_tokenizer="arabic")
    ours = report._per_item("rouge", "rouge1", rows, info)
    harness = report._per_item("rouge", "rouge1_harness", rows, info)
    assert ours[0] > 0 and harness == [0.0, 0.0]  # the harness tokenizer keeps only [a-z0-9]
    preds, refs = [r["generation"] for r in rows], [r["gold"] for r in rows]
    assert np.mean(ours) == pytest.approx(metrics.rouge(preds, refs, tokenizer="arabic")["rouge1"])
    assert report._kind("rouge1_harness") == "rouge" and report._kind("bertscore") is None

def _baseline_results(tmp_path):
    """A sentiment task over three sets (sft above the majority class on myc, at it on mac, below on
    msac) and a translation task (sft beats copying the source overall, not on en_dr)."""
    maj = {"majority": 0.55, "chance": 0.4, "majority/mac": 0.6, "chance/mac": 1 / 3,
           "majority/myc": 0.5, "chance/myc": 0.5, "majority/msac": 0.55, "chance/msac": 0.5}
    copy = {"copy_source_chrf": 5.0, "copy_source_chrf/dr_en": 4.0, "copy_source_chrf/en_dr": 6.0,
            "copy_source_bleu": 1.0, "copy_source_ter": 99.0}
    paths = []
    for model, acc in (("base", {"mac": 0.3, "myc": 0.45, "msac": 0.5, "": 0.4}),
                       ("sft", {"mac": 0.6, "myc": 0.7, "msac": 0.52, "": 0.6})):
        sent = {"acc": acc[""], **{f"acc/{s}": v for s, v in acc.items() if s}, **maj}
        paths.append(_result(tmp_path, model, "sentiment", "darija_sentiment", sent, "acc", "sentiment"))
        chrf = {"base": (3.0, 2.0, 4.0), "sft": (7.0, 9.0, 5.0)}[model]
        gen = {"chrf": chrf[0], "chrf/dr_en": chrf[1], "chrf/en_dr": chrf[2], "bleu": 2.0, "ter": 90.0}
        paths.append(_result(tmp_path, model, "translation", "darija_translation", {**gen, **copy}, "chrf",
                             "translation"))
    return paths


def test_report_shows_trivial_baselines_and_flags_scores_that_do_not_beat_them(tmp_path, paper_path):
    rc, out = _run(tmp_path, _baseline_results(tmp_path), {"baseline": "base", "candidate": "sft",
                                                           "paper": paper_path})
    assert rc == 0
    md = out["report"].read_text(encoding="utf-8")
    # the baselines stay in scores.json (per result) and out of the Table 2 columns and the subsets
    assert io.read_json(out["scores"])["sft"]["sentiment"]["majority/mac"] == 0.6
    _, header = _table(md, "model")
    assert not any("majority" in h or "chance" in h or "copy" in h for h in header), header
    per_subset = md.split("## Per subset", 1)[1].split("## Trivial baselines", 1)[0]
    assert "majority" not in per_subset and "copy_source" not in per_subset

    section = md.split("## Trivial baselines", 1)[1]
    lines = section.splitlines()

    def cells(task):
        rows = [line for line in lines if line.startswith(f"| {task} |")]
        return {r[1]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in rows)}

    mc = cells("sentiment")
    assert lines.count("| task | set | metric | majority class | uniform chance | base | sft |") == 1
    assert mc["all"] == ["sentiment", "all", "acc", "55.00", "40.00", "40.00 ≤ majority", "60.00"]
    assert mc["mac"] == ["sentiment", "mac", "acc/mac", "60.00", "33.33", "30.00 ≤ majority",
                         "60.00 ≤ majority"]  # equal to the majority class: does not beat it
    assert mc["myc"][5:] == ["45.00 ≤ majority", "70.00"]  # beats: no flag
    assert mc["msac"][5:] == ["50.00 ≤ majority", "52.00 ≤ majority"]
    gen = cells("translation")
    assert gen["all"] == ["translation", "all", "chrF", "5.00", "3.00 ≤ copy source", "7.00"]
    assert gen["en_dr"][4:] == ["4.00 ≤ copy source", "5.00 ≤ copy source"]
    assert gen["dr_en"][4:] == ["2.00 ≤ copy source", "9.00"]

    # the text says per set whether the candidate beats the majority class, and names a gain that does not
    verdict = next(line for line in lines if line.startswith("- `sentiment`: "))
    assert "all sets: yes, 60.00 % > majority 55.00 %" in verdict
    assert "myc: yes, 70.00 % > majority 50.00 %" in verdict
    assert ("mac: **no**, 60.00 % ≤ majority 60.00 %, a gain of +30.00 over `base` that does not beat it"
            in verdict)
    assert "msac: **no**, 52.00 % ≤ majority 55.00 %, a gain of +2.00" in verdict
    assert "translation" not in "".join(line for line in lines if line.startswith("- "))


def test_report_without_baselines_has_no_baseline_section(tmp_path):
    rc, out = _run(tmp_path, _run_results(tmp_path), {"baseline": "base", "candidate": "sft", "paper": ""})
    assert rc == 0 and "## Trivial baselines" not in out["report"].read_text(encoding="utf-8")


def test_metric_registry_knows_the_baselines():
    from atlas_forge import metric_registry as reg

    assert reg.metric("majority/mac").scale == 100.0 and reg.metric("chance").label == "uniform chance"
    assert reg.metric("copy_source_chrf/dr_en").label == "copy source chrF"
    assert reg.metric("copy_source_ter").higher_is_better is False
    assert reg.metric("copy_source_bleu").scale == 1.0
    assert all(reg.is_baseline(k) for k in ("majority", "chance/mac", "copy_source_rougeL_harness/x"))
    assert not any(reg.is_baseline(k) for k in ("acc", "acc/mac", "chrf/dr_en", "rougeL"))
