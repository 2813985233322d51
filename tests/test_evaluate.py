"""evaluate phase: lm-eval splitting rules, scorer paths, families, batch invariance, CLI outputs.

Tiny Gemma 2 models are built here (byte-level BPE + random weights); `make_tiny_model` is reused
by test_lm_eval_parity.py and bench/eval_throughput.py.
"""

from __future__ import annotations

import json
import random

import pytest

from atlas_forge import records

WORDS = (
    "سلام كيداير لاباس بخير شكرا بزاف واش فين شنو علاش الدار المدرسة الخدمة الماكلة الطوموبيل "
    "المغرب كازا الرباط مراكش طنجة فاس مزيان خايب ناضي كبير صغير جديد قديم اليوم غدا البارح "
    "هادا هادي ديال ديالي ديالك على مع من في حتى ولا ماشي"
).split()
ENGLISH = "hello how are you fine thanks very much where what why house school work food car".split()
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def synthetic_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        if i % 3 == 0:
            words += [rng.choice(ENGLISH) for _ in range(3)]
        lines.append(" ".join(words))
        lines.append(
            "\n".join(f"{L}. {rng.choice(WORDS)}" for L in "ABCD") + "\nالجواب: " + rng.choice("ABCD")
        )
    return lines


def make_tiny_model(
    path,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    vocab: int = 600,
    lines: int = 300,
    seed: int = 0,
):
    """Build and save a tiny Gemma 2 + byte-level BPE tokenizer; returns (model, tokenizer)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import Gemma2Config, Gemma2ForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(synthetic_lines(lines, seed), trainer)
    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    cfg = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=1,
        head_dim=hidden // heads,
        max_position_embeddings=1024,
        sliding_window=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=[tok.eos_token_id, eot],
        attn_implementation="eager",
    )
    model = Gemma2ForCausalLM(cfg)
    with torch.no_grad():  # break the initial symmetry a bit more so choices get distinct scores
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.generation_config.eos_token_id = [tok.eos_token_id, eot]
    model.eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok


def mcq_rows(n: int, seed: int = 1, source: str = "sample_mcq") -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))) + f" {i}؟"
        choices = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(4)]
        rows.append(
            records.make_record(
                source,
                str(i),
                "mcq",
                [{"role": "user", "content": q}],
                "ary_Arab",
                {"choices": choices, "answer": rng.randrange(4), "subject": "الثقافة"},
            )
        )
    return rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_model")
    model, tok = make_tiny_model(path)
    return path, model, tok


# --- lm-eval rules ------------------------------------------------------------------------------
def test_split_whitespace_moves_trailing_space():
    from atlas_forge.evaluate.loglik import split_whitespace

    assert split_whitespace("سؤال:  ", "A") == ("سؤال:", "  A")
    assert split_whitespace("سؤال:", " A") == ("سؤال:", " A")


def test_acc_norm_divides_by_choice_chars():
    from atlas_forge.evaluate.metrics import choice_preds

    # raw loglik prefers choice 0; per character, the long choice 1 wins
    assert choice_preds([-2.0, -3.0], ["ab", "abcdefgh"]) == (0, 1)


def test_encode_pair_adds_one_bos_and_splits_at_context(tiny):
    from atlas_forge.evaluate.loglik import LoglikScorer

    _, model, tok = tiny
    s = LoglikScorer(model, tok)
    enc = s.encode_pair("سلام كيداير", " لاباس")
    assert enc.ctx[0] == tok.bos_token_id and enc.ctx.count(tok.bos_token_id) == 1
    assert enc.ctx + enc.cont == tok.encode("سلام كيداير لاباس")


def _reference_loglik(model, ids: list[int], n_ctx: int) -> float:
    import torch

    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return float(sum(lp[i - 1, ids[i]] for i in range(n_ctx, len(ids))))


def test_scorer_paths_match_plain_forward(tiny):
    """Letter rows (one position per context) and packed endings equal one unbatched forward over ctx+cont."""
    from atlas_forge.evaluate.loglik import LoglikScorer, Request

    _, model, tok = tiny
    groups = [
        [Request("سلام كيداير واش", " " + c) for c in ("A", "B", "مزيان بزاف", "خايب")],
        [Request("فين الدار ديالك", " " + c) for c in ("المغرب كازا الرباط", "C", "طنجة")],
        [Request("هادا سؤال\nالجواب:", " " + c) for c in "ABCD"],
    ]
    for bs in (1, 3):
        got = LoglikScorer(model, tok, batch_size=bs).score_groups(groups)
        for group, res in zip(groups, got, strict=True):
            for req, (ll, _) in zip(group, res, strict=True):
                enc = LoglikScorer(model, tok).encode_pair(req.context, req.continuation)
                assert ll == pytest.approx(
                    _reference_loglik(model, enc.ctx + enc.cont, len(enc.ctx)), abs=1e-4
                )


def test_scorer_computes_logits_only_where_a_score_is_read(tiny):
    """At Gemma 2's 256,000 words a batch's full logits are the largest tensor of the evaluation: the
    LM head runs only on the positions whose next token is scored."""
    from atlas_forge.evaluate.loglik import LoglikScorer, Request

    _, model, tok = tiny
    widths, kept = [], []
    hooks = [model.register_forward_pre_hook(lambda m, a, kw: widths.append(kw["input_ids"].shape[1]),
                                             with_kwargs=True),
             model.get_output_embeddings().register_forward_hook(lambda m, i, o: kept.append(o.shape[1]))]
    try:
        letters = [[Request("هادا سؤال طويل شوية\nالجواب:", " " + c) for c in "ABCD"]]
        LoglikScorer(model, tok, batch_size=4).score_groups(letters)
        assert kept == [1] * len(widths) and min(widths) > 4  # one position: the letter's
        widths.clear(), kept.clear()
        endings = [[Request("فين الدار ديالك", " " + c) for c in ("المغرب كازا الرباط", "طنجة")]]
        LoglikScorer(model, tok, batch_size=2).score_groups(endings)
        assert kept and all(k < w for k, w in zip(kept, widths, strict=True))
    finally:
        for h in hooks:
            h.remove()


def test_scorer_prefix_tree_rows_match_plain_forward(tiny):
    """Prefix-tree rows (one few-shot prefix for several items, one context for all its endings) equal
    one plain forward per request, also when rows reach past a sliding window (Gemma 2's local layers,
    whose mask the scorer builds in positions)."""
    import copy

    from atlas_forge.evaluate.loglik import LoglikScorer, Request

    _, model, tok = tiny
    shots = "سؤال: فين الدار ديالك؟ الجواب: كازا\n" * 3
    groups = [
        [Request(shots + q, " " + c) for c in ("مزيان بزاف", "خايب", "لاباس عليك")]
        for q in ("واش نتا مزيان", "كيداير اليوم", "شنو سميتك")
    ]
    for window in (None, 8):
        m = copy.deepcopy(model)
        if window:
            m.config.sliding_window = window
        for bs in (1, 4):
            scorer = LoglikScorer(m, tok, batch_size=bs)
            rows = []
            batches = scorer._batches
            scorer._batches = lambda r, batches=batches, rows=rows: rows.extend(r) or batches(r)
            got = scorer.score_groups(groups)
            assert len(rows) < 3 and not all(r.chain for r in rows)  # shared prefixes, packed
            for group, res in zip(groups, got, strict=True):
                for req, (ll, _) in zip(group, res, strict=True):
                    enc = scorer.encode_pair(req.context, req.continuation)
                    ref = _reference_loglik(m, enc.ctx + enc.cont, len(enc.ctx))
                    assert ll == pytest.approx(ref, abs=1e-4)


# --- families -------------------------------------------------------------------------------------
def _write(rows, path):
    from atlas_forge import io

    io.write_table(records.from_rows(rows), path, "test")
    return str(path)


def test_darijammlu_fewshot_from_dev_and_outputs(tiny, tmp_path):
    from atlas_forge import evaluate

    path, model, tok = tiny
    data = _write(mcq_rows(12), tmp_path / "bench.parquet")
    dev = _write(mcq_rows(4, seed=9, source="dev"), tmp_path / "dev.parquet")
    task = {
        "name": "mcq",
        "family": "darijammlu",
        "sources": ["sample_mcq"],
        "fewshot_sources": ["dev"],
        "num_fewshot": 2,
        "max_items": 8,
    }
    result, samples = evaluate.evaluate(
        task, path, "base", [data], batch_size=4, model=model, tokenizer=tok, fewshot_data=[dev]
    )
    assert result["n"] == 8 and len(samples) == 8
    assert 0.0 <= result["scores"]["acc"] <= 1.0
    assert result["settings"]["num_fewshot"] == 2 and result["settings"]["apply_chat_template"] is False
    # dataset order (file, line), the first 8 documents, as lm-eval --limit
    assert [s["id"] for s in samples] == [r["id"] for r in mcq_rows(12)][:8]
    p = samples[0]["prompt"]
    first_dev = json.loads(mcq_rows(4, seed=9, source="dev")[0]["meta"])
    # shots are the dev split's first two documents (sampler first_n), each answered by its letter
    assert p.startswith("هادا سؤال متعدد الخيارات (مع الجواب ديالو) على الثقافة\n\n")
    assert f"A. {first_dev['choices'][0]}" in p
    assert p.count("الجواب:") == 3 and "\nالجواب: " + "ABCD"[first_dev["answer"]] + "\n\n" in p
    assert p.endswith("\nD. " + json.loads(mcq_rows(12)[0]["meta"])["choices"][3] + "\nالجواب:")
    assert len(result["model_sha256"]) == 64 and len(result["data_sha256"]) == 64
    assert result["harness"].startswith("atlas-forge ")
    with pytest.raises(ValueError, match="fewshot_sources"):
        evaluate.evaluate({**task, "fewshot_sources": []}, path, "base", [data], model=model, tokenizer=tok)


def test_sentiment_letters_and_size_weighted_group(tiny, tmp_path):
    from atlas_forge import evaluate

    path, model, tok = tiny
    rng = random.Random(3)
    rows = []
    for src, n, labels in (
        ("s1", 4, ["positive", "negative", "neutral"]),
        ("s2", 2, ["positive", "negative"]),
    ):
        for i in range(n):
            rows.append(
                records.make_record(
                    src,
                    str(i),
                    "sentiment",
                    [{"role": "user", "content": " ".join(rng.choices(WORDS, k=5))}],
                    "ary_Arab",
                    {"label": rng.choice(labels), "labels": labels},
                )
            )
    d1 = _write([r for r in rows if r["source"] == "s1"], tmp_path / "s1.parquet")
    d2 = _write([r for r in rows if r["source"] == "s2"], tmp_path / "s2.parquet")
    result, samples = evaluate.evaluate(
        {"name": "sent", "family": "darija_sentiment", "sources": ["s1", "s2"]},
        path,
        "base",
        [d1, d2],
        model=model,
        tokenizer=tok,
    )
    sc = result["scores"]
    assert sc["acc"] == pytest.approx((4 * sc["acc/s1"] + 2 * sc["acc/s2"]) / 6)
    # the harness's letters: A = negative, B = positive, C = neutral, plus its instruction line
    assert (
        "A. سلبي\nB. ايجابي\nC. ماكينش إحساس\nThe answer should be strictly one letter"
        in samples[0]["prompt"]
    )
    assert [len(s["choices"]) for s in samples] == [3] * 4 + [2] * 2
    # the trivial baselines, per source, from the scored items' gold labels
    for src, n_choices in (("s1", 3), ("s2", 2)):
        golds = [s["gold"] for s in samples if s["source"] == src]
        assert sc[f"majority/{src}"] == max(golds.count(g) for g in set(golds)) / len(golds)
        assert sc[f"chance/{src}"] == pytest.approx(1 / n_choices)
    assert sc["chance"] == pytest.approx((4 / 3 + 2 / 2) / 6)
    assert result["main_metric"] == "acc"


def _sentiment_docs(labels_by_source: dict[str, tuple[list[str], list[str]]]):
    from atlas_forge import benchmarks
    from atlas_forge.evaluate import families

    return [
        families.Doc(benchmarks.sentiment_doc(f"جملة {i}", label, offered), f"{src}-{i}", src, "")
        for src, (offered, labels) in labels_by_source.items()
        for i, label in enumerate(labels)
    ]


def test_majority_and_chance_on_a_hand_made_set():
    """Majority class: each source's top gold-label share (overall, each source by its own majority
    label, size-weighted); chance: the mean of 1/len(choices). Neither needs a model."""
    from atlas_forge.evaluate import families
    from atlas_forge.evaluate.task_config import TaskConfig

    three, two = ["positive", "negative", "neutral"], ["positive", "negative"]
    docs = _sentiment_docs({
        "mac": (three, ["negative", "negative", "positive", "neutral"]),  # top label 2 of 4
        "myc": (two, ["positive", "positive", "positive", "negative", "positive"]),  # 4 of 5
    })
    cfg = TaskConfig(name="sent", family="darija_sentiment", sources=["mac", "myc"])
    got = families.multiple_choice_baselines(cfg, docs)
    assert got == {
        "majority": 6 / 9, "chance": pytest.approx((4 / 3 + 5 / 2) / 9),
        "majority/mac": 0.5, "chance/mac": pytest.approx(1 / 3),
        "majority/myc": 0.8, "chance/myc": 0.5,
    }
    # one constant label over both sets (negative: 3 of 9, positive: 5 of 9) would score less
    assert got["majority"] > 5 / 9
    # one source: no per-source keys; a task's few-shot setting or model plays no part
    one = families.multiple_choice_baselines(
        TaskConfig(name="s", family="darija_sentiment", sources=["mac"]), docs[:4])
    assert one == {"majority": 0.5, "chance": pytest.approx(1 / 3)}


def test_copy_source_is_sacrebleu_of_the_source_texts(tmp_path):
    """copy_source_<metric>: the task's metrics with the source text as the output, overall and per
    direction, equal to sacrebleu's on the texts themselves."""
    import sacrebleu

    from atlas_forge import benchmarks
    from atlas_forge.evaluate import families
    from atlas_forge.evaluate.task_config import TaskConfig

    rng = random.Random(7)
    rows = []
    for i in range(6):  # names and numbers that the two sides share: copying the source scores above 0
        shared = f"Ahmed {rng.randint(10, 99)} Casa"
        texts = {"ary_Arab": " ".join(rng.choices(WORDS, k=4)) + " " + shared,
                 "eng_Latn": shared + " " + " ".join(rng.choices(ENGLISH, k=rng.randint(2, 6)))}
        rows.append(records.make_record("pairs", str(i), "translation",
                                        [{"role": "user", "content": texts["ary_Arab"]}], "ary_Arab",
                                        {"texts": texts}))
    texts = [json.loads(r["meta"])["texts"] for r in rows]
    cfg = TaskConfig(name="gen", family="darija_translation", sources=["pairs"])
    docs = families.task_docs(cfg, families.sorted_rows(records.from_rows(rows), ["pairs"]))
    refs = [d.doc["messages"][1]["content"] for d in docs]
    got = families.copy_source_baselines(cfg, docs, refs)
    src = {"dr_en": [t["ary_Arab"] for t in texts], "en_dr": [t["eng_Latn"] for t in texts]}
    ref = {"dr_en": [t["eng_Latn"] for t in texts], "en_dr": [t["ary_Arab"] for t in texts]}
    assert [benchmarks.source_text(d.doc) for d in docs if d.doc["direction"] == "dr_en"] == src["dr_en"]
    for d in ("dr_en", "en_dr"):
        assert got[f"copy_source_chrf/{d}"] == pytest.approx(sacrebleu.corpus_chrf(src[d], [ref[d]]).score)
        assert got[f"copy_source_bleu/{d}"] == pytest.approx(
            sacrebleu.corpus_bleu(src[d], [ref[d]], tokenize="13a").score)
    order = [d.doc["direction"] for d in docs]
    all_src = [src[d][i // 2] for i, d in enumerate(order)]
    all_ref = [ref[d][i // 2] for i, d in enumerate(order)]
    assert got["copy_source_chrf"] == pytest.approx(sacrebleu.corpus_chrf(all_src, [all_ref]).score)
    assert {"copy_source_ter", "copy_source_ter/en_dr"} <= set(got)
    assert 0 < got["copy_source_chrf/en_dr"] != got["copy_source_chrf/dr_en"] > 0
    assert got["copy_source_bleu"] > 0
    # a Hub document of another wording: the text after the instruction line
    hub = benchmarks.generation_doc("ترجم هادشي:\nsalam labas", "سلام لاباس", "ar_dr")
    assert benchmarks.source_text(hub) == "salam labas"


def _gen_rows():
    rng = random.Random(5)
    rows = []
    for i in range(5):
        ary = " ".join(rng.choices(WORDS, k=rng.randint(2, 9)))
        rows.append(
            records.make_record(
                "pairs",
                str(i),
                "translation",
                [{"role": "user", "content": ary}],
                "ary_Arab",
                {
                    "texts": {
                        "ary_Arab": ary,
                        "eng_Latn": " ".join(rng.choices(ENGLISH, k=4)),
                        "ary_Latn": " ".join(rng.choices(ENGLISH, k=3)),
                    }
                },
            )
        )
    for i in range(3):
        art = " ".join(rng.choices(WORDS, k=20))
        rows.append(
            records.make_record(
                "articles",
                str(i),
                "summarization",
                [
                    {"role": "user", "content": art},
                    {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=3))},
                ],
                "ary_Arab",
            )
        )
    return rows


def test_generation_batch_invariant_and_metrics(tiny, tmp_path):
    from atlas_forge import evaluate

    path, model, tok = tiny
    data = _write(_gen_rows(), tmp_path / "bench.parquet")
    task = {"name": "gen", "family": "darija_translation", "sources": ["pairs"], "max_new_tokens": 8}
    r1, s1 = evaluate.evaluate(task, path, "base", [data], batch_size=1, model=model, tokenizer=tok)
    r4, s4 = evaluate.evaluate(task, path, "base", [data], batch_size=4, model=model, tokenizer=tok)
    assert [s["generation"] for s in s1] == [s["generation"] for s in s4]
    assert r1["scores"] == r4["scores"]
    assert len(s1) == 5 * 2  # dr_en and en_dr per pair (the harness's DODa directions)
    for k in ("bleu", "chrf", "ter", "bleu/dr_en", "chrf/en_dr"):
        assert k in r1["scores"], k
    dr_en = next(x for x in s1 if x["direction"] == "dr_en")
    assert dr_en["prompt"].startswith("ترجم من الدارجة للإنجليزية:\n")
    assert r1["settings"]["apply_chat_template"] is True
    # the copy-the-source baseline beside the scores; the main metric is still the model's chrF
    assert {"copy_source_chrf", "copy_source_bleu/dr_en", "copy_source_ter/en_dr"} <= set(r1["scores"])
    assert r1["main_metric"] == "chrf"

    tl = {
        "name": "tl",
        "family": "darija_transliteration",
        "sources": ["pairs"],
        "max_new_tokens": 4,
        "directions": ["ar_dr"],
        "max_items": 2,
    }
    r, s = evaluate.evaluate(tl, path, "base", [data], model=model, tokenizer=tok)
    assert {x["direction"] for x in s} == {"ar_dr"} and len(s) == 2

    sm = {
        "name": "sum",
        "family": "darija_summarization",
        "sources": ["articles"],
        "max_new_tokens": 4,
        "rouge_tokenizer": "arabic",
    }
    r, s = evaluate.evaluate(sm, path, "base", [data], model=model, tokenizer=tok)
    assert {"rouge1", "rouge2", "rougeL", "rougeLsum", "chrf"} <= set(r["scores"]) and len(s) == 3
    # ours (arabic) and the harness tokenizer's ROUGE beside it; the result records the tokenizer
    assert {"rouge1_harness", "rouge2_harness", "rougeL_harness", "rougeLsum_harness"} <= set(r["scores"])
    assert r["settings"]["rouge_tokenizer"] == "arabic" and r["main_metric"] == "rougeL"
    assert s[0]["prompt"].startswith("لخص هاد المقطع في ٣٠ كلمة:\n")
    # copying the article as its summary: ROUGE (ours and the harness tokenizer's) of the articles themselves
    from atlas_forge.evaluate.metrics import rouge

    articles = [(row["messages"][0]["content"], row["messages"][1]["content"]) for row in _gen_rows()[5:]]
    copied = rouge([a for a, _ in articles], [g for _, g in articles], tokenizer="arabic")
    assert r["scores"]["copy_source_rougeL"] == pytest.approx(copied["rougeL"]) and copied["rougeL"] > 0
    assert "copy_source_rougeL_harness" in r["scores"] and r["main_metric"] == "rougeL"


def test_rouge_keeps_arabic():
    from atlas_forge.evaluate.metrics import rouge

    assert rouge(["سلام كيداير"], ["سلام كيداير"], tokenizer="arabic")["rouge1"] == pytest.approx(100.0)
    assert rouge(["سلام"], ["بخير"], tokenizer="arabic")["rouge1"] == 0.0
    # the harness's tokenizer (rouge_score's default) keeps only [a-z0-9]: Arabic scores 0.0 there
    assert rouge(["سلام كيداير"], ["سلام كيداير"])["rouge1"] == 0.0
    assert rouge(["salam labas"], ["salam labas"])["rougeLsum"] == pytest.approx(100.0)


def test_rouge_of_both_tokenizers_and_metric_keys():
    """A task scored with `rouge_tokenizer: arabic` reports the harness tokenizer's ROUGE too, under
    rouge*_harness (what the paper's figures are); with `harness`, once. metric_keys names what is scored."""
    from atlas_forge.evaluate import families
    from atlas_forge.evaluate.metrics import rouge
    from atlas_forge.evaluate.task_config import TaskConfig

    preds, refs = ["سلام كيداير salam", "بخير 2"], ["سلام كيداير labas", "بخير 2"]
    ours = TaskConfig(name="s", family="darija_summarization", sources=["x"], rouge_tokenizer="arabic")
    got = families._generation_scores(ours, preds, refs)
    harness, arabic = rouge(preds, refs, tokenizer="harness"), rouge(preds, refs, tokenizer="arabic")
    assert {k: got[k] for k in arabic} == arabic
    assert {k: got[f"{k}_harness"] for k in harness} == harness
    assert got["rouge1"] > got["rouge1_harness"] > 0.0  # Arabic words count only with ours
    stock = TaskConfig(name="s", family="darija_summarization", sources=["x"])  # the harness's tokenizer
    plain = families._generation_scores(stock, preds, refs)
    assert plain["rouge1"] == got["rouge1_harness"] and not any(k.endswith("_harness") for k in plain)
    translation = TaskConfig(name="t", family="darija_translation", sources=["x"])
    for cfg, scores in ((ours, got), (stock, plain),
                        (translation, families._generation_scores(translation, preds, refs))):
        assert set(families.metric_keys(cfg)) == set(scores), cfg.name


def test_cli_writes_results(tiny, tmp_path):
    from atlas_forge import cli, io

    path, _, _ = tiny
    data = _write(mcq_rows(5), tmp_path / "bench.parquet")
    out, samples = tmp_path / "r" / "mcq.json", tmp_path / "r" / "mcq.samples.jsonl"
    one = {"name": "mcq", "family": "darijammlu", "sources": ["sample_mcq"]}
    task = json.dumps({"evaluate": {"task": one, "batch_size": 2}})
    rc = cli.main(
        [
            "evaluate",
            "--params",
            task,
            "--model",
            str(path),
            "--model-name",
            "base",
            "--data",
            data,
            "--out",
            str(out),
            "--samples",
            str(samples),
        ]
    )
    assert rc == 0
    res = io.read_json(out)
    assert res["task"] == "mcq" and res["model"] == "base" and res["n"] == 5
    lines = io.read_jsonl(samples)
    assert {"id", "prompt", "choices", "logliks", "gold", "pred", "correct"} <= set(lines[0])
    bad = json.dumps({"evaluate": {"task": {**one, "family": "mcq_letterz"}}})
    assert (
        cli.main(
            [
                "evaluate",
                "--params",
                bad,
                "--model",
                str(path),
                "--model-name",
                "base",
                "--data",
                data,
                "--out",
                str(out),
                "--samples",
                str(samples),
            ]
        )
        == 2
    )
