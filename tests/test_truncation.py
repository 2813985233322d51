"""Rows that train on nothing (issue 11, item 2): encode_row renders as TRL does; mixture rejects
rows whose assistant tokens sft.max_length cuts entirely, with a reason and a count per source."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from atlas_forge import mixture, records
from atlas_forge.cli import main
from atlas_forge.encoding import encode_row
from atlas_forge.instruct import shorten
from atlas_forge.io import write_table


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from atlas_forge.modeling.tokenizer import train_tokenizer

    texts = [f"جملة رقم {i} فيها شي كلام بالدارجة و words in English {i}" for i in range(300)]
    tok = train_tokenizer(texts, vocab_size=400, min_frequency=2)
    folder = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(folder)
    return folder


def _load(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _chat(user: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def test_encode_row_equals_trl_tokenization(tokenizer):
    from trl.data_utils import _tokenize

    tok = _load(tokenizer)
    msgs = [*_chat("سلام، كيداير؟", "لاباس الحمد لله"), *_chat("شنو سميتك؟", "سميتي أطلس")]
    ref = _tokenize(tok, msgs, return_assistant_tokens_mask=True)
    ids, mask = encode_row(tok, msgs, None)
    assert ids == list(ref["input_ids"]) and mask == list(ref["assistant_masks"])
    assert sum(mask) > 0
    cut_ids, cut_mask = encode_row(tok, msgs, 5)
    assert cut_ids == ids[:5] and cut_mask == mask[:5]
    with pytest.raises(ValueError, match="row format"):
        encode_row(tok, msgs, 5, fmt="html")


def test_untrainable_rows_are_rejected_with_reason(tokenizer):
    tok = _load(tokenizer)
    long_prompt = " ".join(["كلام"] * 400)
    rows = records.from_rows(
        [
            records.make_record("s", "ok", "summarization", _chat("مقال قصير", "عنوان"), "ary_Arab"),
            records.make_record("s", "long", "summarization", _chat(long_prompt, "عنوان"), "ary_Arab"),
            records.make_record("s", "noanswer", "chat", [{"role": "user", "content": "سؤال"}], "ary_Arab"),
        ]
    )
    kept, rejected = mixture.drop_untrainable(rows, tok, 64)
    assert kept["id"].to_list() == [rows["id"][0]]
    reasons = dict(zip(rejected["id"], rejected["reason"], strict=True))
    assert reasons[rows["id"][1]] == "mixture: truncated, no assistant token within sft.max_length 64"
    assert reasons[rows["id"][2]] == "mixture: no assistant turn to train on"
    assert set(rejected["phase"]) == {"mixture"}
    # the same long row fits a larger max_length
    kept2, _ = mixture.drop_untrainable(rows[:2], tok, 4096)
    assert kept2.height == 2
    # a plain-format row (meta.format, scored as a continuation) is checked in its own format
    plain = records.from_rows(
        [
            records.make_record("s", f"p{i}", "sentiment", _chat(text, "A"), "ary_Arab", {"format": "plain"})
            for i, text in enumerate(["تعليق قصير\nالجواب:", long_prompt])
        ]
    )
    kept3, rej3 = mixture.drop_untrainable(plain, _load(tokenizer), 64)
    assert kept3["id"].to_list() == [plain["id"][0]] and rej3["id"].to_list() == [plain["id"][1]]


def test_card_counts_truncation_rejects_per_source(tokenizer, tmp_path: Path):
    long_prompt = " ".join(["كلام"] * 400)
    a = records.from_rows(
        [
            records.make_record(
                "a",
                str(i),
                "summarization",
                _chat(long_prompt if i < 3 else f"مقال {i}", "عنوان"),
                "ary_Arab",
            )
            for i in range(10)
        ]
    )
    b = records.from_rows(
        [records.make_record("b", str(i), "chat", _chat(f"سؤال {i}", "جواب"), "ary_Arab") for i in range(5)]
    )
    write_table(a, tmp_path / "a.parquet", "test")
    write_table(b, tmp_path / "b.parquet", "test")
    d = tmp_path / "out"
    rc = main(
        [
            "mixture",
            "--params",
            json.dumps({"mixture": {"seed": 1, "test_fraction": 0.2}, "sft": {"max_length": 64}}),
            "--inputs",
            str(tmp_path / "a.parquet"),
            str(tmp_path / "b.parquet"),
            "--train",
            str(d / "train.parquet"),
            "--test",
            str(d / "test.parquet"),
            "--card-json",
            str(d / "card.json"),
            "--card-md",
            str(d / "card.md"),
            "--tokenizer",
            str(tokenizer),
            "--mixture-rejects",
            str(d / "rej.parquet"),
        ]
    )
    assert rc == 0
    card = json.loads((d / "card.json").read_text())
    assert card["truncation"]["rejected"] == {"a": 3, "b": 0}
    assert card["truncation"]["max_length"] == 64 and card["truncation"]["checked"] == 15
    assert card["rejects"]["mixture"]["a"] == {
        "mixture: truncated, no assistant token within sft.max_length 64": 3
    }
    assert card["sources"]["b"]["rejected"] == {"mixture": 0}
    assert card["splits"]["train"]["rows"] + card["splits"]["test"]["rows"] == 12
    assert pl.read_parquet(d / "rej.parquet").height == 3
    md = (d / "card.md").read_text()
    assert "## Rows that train on nothing (sft.max_length 64" in md and "| a | 3 |" in md


def test_shorten_keeps_first_words():
    text = "واحد  جوج\nتلاتة ربعة خمسة"
    assert shorten(text, 0) == text and shorten(text, 10) == text
    assert shorten(text, 3) == "واحد  جوج\nتلاتة"
