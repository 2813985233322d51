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


def _every_row_encoded(df: pl.DataFrame, tok, max_length: int) -> dict[str, str]:
    """The straightforward check: every row encoded in full, one by one, as sft encodes it."""
    out = {}
    for rid, msgs, meta in zip(df["id"], df["messages"].to_list(), df["meta"], strict=True):
        if not any(m["role"] == "assistant" for m in msgs or []):
            out[rid] = "mixture: no assistant turn to train on"
            continue
        fmt = json.loads(meta or "{}").get("format") or "chat"
        if not any(encode_row(tok, msgs, max_length, fmt=fmt)[1]):
            out[rid] = f"mixture: truncated, no assistant token within sft.max_length {max_length}"
    return out


def test_fast_truncation_check_decides_as_encoding_every_row(tokenizer):
    """drop_untrainable skips tokenizing rows short in bytes and batches the rest: it must reject
    exactly the rows (and reasons) that encoding every row one by one rejects, at every length."""
    from atlas_forge.encoding import tok_encode, tok_encode_batch

    tok = _load(tokenizer)
    rng = __import__("random").Random(5)
    words = ["كلام", "واش", "مزيان", "hello", "words", "الدارجة", "1234", "؟", "!"]

    def text(n):
        return " ".join(rng.choice(words) for _ in range(n))

    rows = []
    for i in range(120):
        kind = i % 6
        if kind == 0:  # one short or long turn
            msgs = _chat(text(rng.randint(1, 80)), text(rng.randint(1, 30)))
        elif kind == 1:  # two turns
            msgs = [*_chat(text(rng.randint(1, 40)), text(3)), *_chat(text(rng.randint(1, 40)), text(2))]
        elif kind == 2:  # an empty assistant turn: encoded in full
            msgs = _chat(text(rng.randint(1, 30)), "")
        elif kind == 3:  # no assistant turn
            msgs = [{"role": "user", "content": text(4)}]
        else:  # plain format, the context sometimes ending in whitespace
            context = text(rng.randint(1, 70)) + rng.choice(["", " ", "\n"])
            msgs = _chat(context, rng.choice(["A", "B", "إيجابي"]))
        meta = {"format": "plain"} if kind >= 4 else {}
        rows.append(records.make_record("s", f"r{i}", "chat", msgs, "ary_Arab", meta))
    df = records.from_rows(rows)
    decided = set()
    for max_length in (8, 24, 48, 96, 200, 4096):
        kept, rejected = mixture.drop_untrainable(df, tok, max_length)
        reasons = dict(zip(rejected["id"], rejected["reason"], strict=True))
        assert reasons == _every_row_encoded(df, tok, max_length), max_length
        assert kept.height + rejected.height == df.height
        decided.add(rejected.height)
    assert len(decided) > 3  # the lengths cut some rows and not others
    texts = [tok.bos_token + "واش", "واش كاين", "", "hello 12"]
    for add_bos in (True, False):
        assert tok_encode_batch(tok, texts, add_bos) == [tok_encode(tok, t, add_bos) for t in texts]
