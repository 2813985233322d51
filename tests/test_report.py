"""report phase: scores.json, Table-2 style markdown with deltas, plot, errors."""

from __future__ import annotations

import json

from atlas_forge import cli, io


def _result(tmp_path, model, task, family, scores, main):
    p = tmp_path / "results" / model / f"{task}.json"
    io.write_json(
        {
            "task": task,
            "family": family,
            "model": model,
            "scores": scores,
            "main_metric": main,
            "n": 10,
            "settings": {},
            "harness": "atlas-forge 0.1.0",
        },
        p,
    )
    return str(p)


def test_report_outputs(tmp_path):
    paths = [
        _result(tmp_path, "base", "mcq", "mcq_letters", {"acc": 0.25}, "acc"),
        _result(tmp_path, "sft", "mcq", "mcq_letters", {"acc": 0.5}, "acc"),
        _result(
            tmp_path, "base", "translation", "generation", {"bleu": 1.0, "ter": 90.0, "chrf": 10.0}, "bleu"
        ),
        _result(
            tmp_path, "sft", "translation", "generation", {"bleu": 3.5, "ter": 80.0, "chrf": 12.0}, "bleu"
        ),
    ]
    out = {
        k: tmp_path / v for k, v in (("scores", "scores.json"), ("report", "report.md"), ("plot", "s.png"))
    }
    rc = cli.main(
        [
            "report",
            "--params",
            json.dumps({"baseline": "base", "candidate": "sft"}),
            "--results",
            *paths,
            "--scores",
            str(out["scores"]),
            "--report",
            str(out["report"]),
            "--plot",
            str(out["plot"]),
        ]
    )
    assert rc == 0
    scores = io.read_json(out["scores"])
    assert scores["sft"]["mcq"]["acc"] == 0.5 and scores["base"]["translation"]["ter"] == 90.0
    md = out["report"].read_text(encoding="utf-8")
    assert "| task | metric | base | sft | Δ |" in md
    assert "| mcq (mcq_letters) | **acc** | 25.00 | 50.00 | +25.00 ▲ |" in md
    assert "|  | ter | 90.00 | 80.00 | -10.00 ▲ |" in md  # lower TER is better
    assert "| translation (generation) | **bleu** | 1.00 | 3.50 | +2.50 ▲ |" in md
    assert out["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_missing_candidate(tmp_path, capsys):
    p = _result(tmp_path, "base", "mcq", "mcq_letters", {"acc": 0.25}, "acc")
    rc = cli.main(
        [
            "report",
            "--params",
            json.dumps({"baseline": "base", "candidate": "sft"}),
            "--results",
            p,
            "--scores",
            str(tmp_path / "a.json"),
            "--report",
            str(tmp_path / "b.md"),
            "--plot",
            str(tmp_path / "c.png"),
        ]
    )
    assert rc == 2
    assert "no results for model 'sft'" in capsys.readouterr().err
