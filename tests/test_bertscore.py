"""BERTScore (evaluate/bertscore.py) on a tiny local BERT built here, against a direct computation.

The model has random weights and a WordPiece vocabulary written in the test, so nothing is
downloaded; the direct computation below re-derives BERTScore from the model's hidden states
(greedy cosine matching, [CLS]/[SEP] weighted 0, F1 averaged), independently of bert-score.
"""

from __future__ import annotations

import pytest

from atlas_forge import config
from atlas_forge.evaluate import bertscore as bs

torch = pytest.importorskip("torch")
pytest.importorskip("bert_score")

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "كان", "واحد", "الراجل", "فالمدينة", "مشا", "للسوق", "شرا", "خبز", "و", "حليب", "الدار",
    "##ات", "##ين", "hello", "world", ".",
]  # fmt: skip
PREDS = ["كان واحد الراجل مشا للسوق", "شرا خبز و حليب .", "الدارات", "hello world"]
REFS = ["كان واحد الراجل فالمدينة", "شرا حليب", "الدار", "world hello ."]
LAYERS = 3


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("tiny_bert")
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # model_max_length: bert-score truncates at it; an unset one (1e30) overflows the tokenizer
    tok = BertTokenizer(str(d / "vocab.txt"), do_lower_case=False, model_max_length=64)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(cfg).eval().save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def direct_bertscore(model_dir: str, preds, refs, num_layers: int) -> float:
    """BERTScore F1 mean x100 from first principles, one sentence at a time (no padding)."""
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).eval()

    def emb(text):
        ids = tok(text.strip(), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = model(ids, output_hidden_states=True).hidden_states[num_layers][0].double()
        return h / h.norm(dim=-1, keepdim=True)

    f1s = []
    for p, r in zip(preds, refs, strict=True):
        hp, hr = emb(p), emb(r)
        sim = hp @ hr.T  # [CLS] and [SEP] take part in the matching but carry no weight
        precision = sim.max(dim=1).values[1:-1].mean()
        recall = sim.max(dim=0).values[1:-1].mean()
        f1s.append(float(2 * precision * recall / (precision + recall)))
    return 100.0 * sum(f1s) / len(f1s)


def test_matches_direct_computation(tiny_bert):
    for layers in (1, LAYERS):
        got = bs.bertscore(PREDS, REFS, tiny_bert, num_layers=layers, batch_size=64)
        assert got == pytest.approx(direct_bertscore(tiny_bert, PREDS, REFS, layers), abs=1e-4)
    # the number of layers is honoured: a different layer gives a different score
    assert bs.bertscore(PREDS, REFS, tiny_bert, 1) != pytest.approx(bs.bertscore(PREDS, REFS, tiny_bert, 2))
    # None: every layer of the model
    assert bs.bertscore(PREDS, REFS, tiny_bert) == pytest.approx(bs.bertscore(PREDS, REFS, tiny_bert, LAYERS))


def test_matches_bert_score_function(tiny_bert):
    from bert_score import score

    _, _, f1 = score(PREDS, REFS, model_type=tiny_bert, num_layers=2, batch_size=64)
    expected = 100.0 * sum(f1.tolist()) / len(PREDS)
    assert bs.bertscore(PREDS, REFS, tiny_bert, 2) == pytest.approx(expected, abs=1e-6)


def test_scale_and_batching(tiny_bert):
    assert bs.bertscore(REFS, REFS, tiny_bert, 2) == pytest.approx(100.0, abs=1e-4)  # 0-100 scale
    one = bs.bertscore(PREDS, REFS, tiny_bert, 2, batch_size=1)
    assert bs.bertscore(PREDS, REFS, tiny_bert, 2, batch_size=3) == pytest.approx(one, abs=1e-4)
    assert 0.0 < one < 100.0
    with pytest.raises(ValueError, match="predictions vs"):
        bs.bertscore(PREDS, REFS[:2], tiny_bert, 2)


def test_off_without_model_and_config(tiny_bert):
    assert bs.from_config(None, PREDS, REFS) == {}
    cfg = config.parse(bs.BertScoreConfig, {"model": tiny_bert, "num_layers": 2}, "t.bertscore")
    out = bs.from_config(cfg, PREDS, REFS)
    assert set(out) == {"bertscore"}
    assert out["bertscore"] == pytest.approx(bs.bertscore(PREDS, REFS, tiny_bert, 2))
    with pytest.raises(ValueError, match="num_layers"):
        config.parse(bs.BertScoreConfig, {"model": tiny_bert, "num_layers": 0}, "t.bertscore")


def test_summarization_task_scores_bertscore_through_the_family(tiny_bert, tmp_path):
    """The task path: `bertscore: {model, num_layers}` on a summarization task adds `bertscore` equal to
    a direct computation on the task's own generations and references; without it, none."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_evaluate import _gen_rows, _write, make_tiny_model

    from atlas_forge import evaluate

    model, tok = make_tiny_model(tmp_path / "lm")
    data = _write(_gen_rows(), tmp_path / "bench.parquet")
    task = {"name": "sum", "family": "darija_summarization", "sources": ["articles"], "max_new_tokens": 6}
    plain, _ = evaluate.evaluate(task, tmp_path / "lm", "m", [data], model=model, tokenizer=tok)
    assert "bertscore" not in plain["scores"]
    task["bertscore"] = {"model": tiny_bert, "num_layers": LAYERS}
    result, samples = evaluate.evaluate(task, tmp_path / "lm", "m", [data], model=model, tokenizer=tok)
    import bert_score

    # bert-score's own function on the task's generations and references (the tiny LM writes bytes the
    # BERT vocabulary lacks, which bert-score scores and a from-scratch mean cannot)
    _, _, f1 = bert_score.score(
        [s["generation"] for s in samples], [s["gold"] for s in samples], model_type=tiny_bert,
        num_layers=LAYERS, batch_size=64,
    )
    assert result["scores"]["bertscore"] == pytest.approx(100.0 * float(f1.mean()), abs=1e-3)
