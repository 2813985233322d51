import os

import polars as pl
import pytest

from atlas_forge import records
from atlas_forge.config import ConfigError, parse
from atlas_forge.filters import FilterConfig, run_steps

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT = {"steps": ["empty", "length", "arabic_ratio", "length_ratio", "exact_dedup", "near_dedup",
                     "decontaminate"],
           "min_chars": 2, "max_chars": 200, "min_arabic_ratio": 0.5, "max_length_ratio": 4.0,
           "near_dedup": {"threshold": 0.8, "num_perm": 64, "ngram": 5}, "decontaminate": {"ngram": 8}}


def cfg(**over):
    return parse(FilterConfig, {**DEFAULT, **over}, "filter")


def rec(key, user, answer=None, task="chat", lang="ary_Arab", source="s", **meta):
    msgs = [{"role": "user", "content": user}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return records.make_record(source, key, task, msgs, lang, meta)


def table(*rows):
    return records.from_rows(list(rows))


def run(step, rows, bench=None, **over):
    df = table(*rows)
    kept, rejected, report = run_steps(df, [step], cfg(**over), bench)
    assert kept.height + rejected.height == df.height
    assert report["rows_in"] == df.height == report["rows_out"] + report["rows_rejected"]
    assert set(rejected["phase"]) <= {"filter"}
    records.validate(rejected, "rejects", "filter", rejects=True)
    return kept, rejected, report


def ids(df):
    return sorted(df["id"])


def test_empty():
    good, bad = rec("a", "سلام", "مرحبا"), rec("b", "سلام", "   ")
    kept, rejected, _ = run("empty", [good, bad])
    assert ids(kept) == [good["id"]]
    assert rejected["reason"].to_list() == ["empty: empty message"]


def test_length():
    ok, short, long = rec("a", "سلام عليكم", "مرحبا بيك"), rec("b", "سلام", "x"), rec("c", "سلام", "ب" * 300)
    kept, rejected, report = run("length", [ok, short, long])
    assert ids(kept) == [ok["id"]]
    reasons = dict(zip(rejected["id"], rejected["reason"], strict=True))
    assert reasons[short["id"]].startswith("length: message shorter than 2 chars")
    assert reasons[long["id"]].startswith("length: message longer than 200 chars")
    assert report["steps"][0]["reasons"] == {"length: message longer than 200 chars": 1,
                                             "length: message shorter than 2 chars": 1}


def test_arabic_ratio_only_on_arabic_targets():
    latin_answer = rec("a", "واش نتا مزيان؟", "I am fine thank you")
    arabic_answer = rec("b", "How are you?", "أنا مزيان الحمد لله", task="translation",
                        direction="eng_Latn->ary_Arab")
    to_english = rec("c", "ترجم: أنا مزيان", "I am fine", task="translation", direction="ary_Arab->eng_Latn")
    to_latin = rec("d", "كتب بالحروف اللاتينية: أنا مزيان", "ana mzyan", task="transliteration",
                   direction="ary_Arab->ary_Latn")
    wrong = rec("e", "Translate: I am fine", "ana mzyan bzaf", task="translation", lang="eng_Latn",
                direction="eng_Latn->ary_Arab")
    label = rec("f", "شنو الإحساس ديال هاد الجملة؟", "A", task="sentiment")
    kept, rejected, _ = run("arabic_ratio", [latin_answer, arabic_answer, to_english, to_latin, wrong, label])
    assert ids(rejected) == sorted([latin_answer["id"], wrong["id"]])
    assert all(r.startswith("arabic_ratio: below 0.5") for r in rejected["reason"])


def test_length_ratio():
    src = "I like to eat couscous with my family on Friday"
    ok = rec("a", f"Translate: {src}", "كنبغي ناكل الكسكس مع العائلة ديالي نهار الجمعة", task="translation",
             direction="eng_Latn->ary_Arab", texts={"eng_Latn": src})
    too_short = rec("b", f"Translate: {src}", "كسكس", task="translation", direction="eng_Latn->ary_Arab",
                    texts={"eng_Latn": src})
    runaway = rec("c", "ترجم: سلام", "hello " * 30, task="translation", direction="ary_Arab->eng_Latn")
    chat = rec("d", "سلام", "مرحبا " * 30)  # not a translation: long answers are fine
    kept, rejected, _ = run("length_ratio", [ok, too_short, runaway, chat])
    assert ids(kept) == sorted([ok["id"], chat["id"]])
    assert ids(rejected) == sorted([too_short["id"], runaway["id"]])
    assert all(r.startswith("length_ratio: answer/source outside [1/4, 4]") for r in rejected["reason"])


def test_exact_dedup_normalizes_and_keeps_smallest_id():
    a = rec("a", "إِلَى الدَّار", "مرحبا")
    b = rec("b", "الى  الدار", "مرحبا")  # same after diacritics, alef and whitespace folding
    c = rec("c", "الى الدار", "مرحبا بيك")
    first, dup = sorted([a, b], key=lambda r: r["id"])
    for order in ([a, b, c], [c, b, a]):
        kept, rejected, _ = run("exact_dedup", order)
        assert ids(kept) == sorted([first["id"], c["id"]])
        assert rejected["reason"].to_list() == [f"exact_dedup: duplicate (of {first['id']})"]


def test_near_dedup_deterministic():
    text = "كنبغي نمشي للبحر مع صحابي نهار السبت باش نعومو ونلعبو الكرة فالرملة"
    a = rec("a", text, "واخا نمشيو مع بعض")
    b = rec("b", text + "!", "واخا نمشيو مع بعض")
    c = rec("c", "شنو هي أحسن طريقة باش نطيب الطاجين بالدجاج والزيتون؟", "خاصك البصلة والتوابل")
    first = min(a["id"], b["id"])
    results = []
    for order in ([a, b, c], [c, b, a]):
        kept, rejected, _ = run("near_dedup", order)
        assert ids(kept) == sorted([first, c["id"]])
        assert rejected["reason"].to_list() == [f"near_dedup: near duplicate (of {first})"]
        results.append(kept.sort("id"))
    assert results[0].equals(results[1])


def test_decontaminate_removes_row_quoting_bench_sentence():
    bench_sentence = "الطقس اليوم زوين بزاف وكنفكر نخرج نتمشى فالجردة مع الدراري"
    bench = table(
        rec("x", bench_sentence, "positive", task="sentiment", source="bench"),
        rec("y", "Translate", "ترجمة", task="translation", source="bench",
            texts={"eng_Latn": "The children play football in the street every evening after school"}),
        rec("z", "شنو عاصمة المغرب؟", "الرباط", task="mcq", source="bench",
            choices=["الرباط", "مدينة فاس العاصمة العلمية", "مراكش"]),
    )
    quoting = rec("a", f"قال ليا صاحبي: {bench_sentence}", "مزيان")
    quoting_english = rec("b", "Translate: the children play football in the street every evening", "x y z")
    short_whole = rec("c", "شنو هي مدينة فاس العاصمة العلمية؟", "واخا")  # 4-word bench choice, matched whole
    clean = rec("d", "الطقس اليوم خايب", "positive")  # shares only short words and the label
    kept, rejected, report = run("decontaminate", [quoting, quoting_english, short_whole, clean], bench=bench)
    assert ids(kept) == [clean["id"]]
    assert ids(rejected) == sorted([quoting["id"], quoting_english["id"], short_whole["id"]])
    assert report["steps"][0]["reasons"] == {"decontaminate: shares text with a benchmark item": 3}


def _random_texts(rng, vocab, count, max_words):
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, max_words))) for _ in range(count)]


@pytest.mark.parametrize("ngram,min_words", [(8, 3), (4, 2), (3, 3)])
def test_decontamination_index_matches_reference_sets(tmp_path, ngram, min_words):
    """The shared, vectorized index finds exactly the gram the plain set-based version finds first."""
    import random

    from atlas_forge.filters import decontaminate as d

    rng = random.Random(ngram * 100 + min_words)
    # a small vocabulary with Arabic letter variants, so normalization and repeats matter
    vocab = ["الما", "الماء", "أتاي", "اتاي", "زوين", "بزاف", "the", "The", "sea", "دار", "مدرسة", "مدرسه",
             "x"]
    bench_texts = _random_texts(rng, vocab, 60, 12)
    bench = table(*[rec(f"b{i}", t, "ok", source="bench") for i, t in enumerate(bench_texts)])
    queries = _random_texts(rng, vocab, 600, 15)
    # plant bench text pieces in some queries: whole short texts, n-grams, and a text inside a query
    for i in range(0, 600, 3):
        src = rng.choice(bench_texts).split()
        lo = rng.randint(0, max(0, len(src) - 1))
        piece = src[lo:lo + rng.randint(1, ngram + 2)]
        queries[i] = " ".join(queries[i].split()[:3] + piece + queries[i].split()[3:6])
    ref_index = d.bench_index(bench, ngram, min_words)
    expected = [d.contaminated(q, ref_index, ngram, min_words) for q in queries]
    index = d.build_index(bench, ngram, min_words)
    d.save_index(index, str(tmp_path / "index.npz"))
    loaded = d.load_index(str(tmp_path / "index.npz"))
    assert loaded.vocab == index.vocab and loaded.exact == index.exact
    got = d.first_matches([d.words(q) for q in queries], loaded)
    assert got == expected
    assert 50 < sum(e is not None for e in expected) < 590  # both outcomes are exercised


def test_filter_with_prebuilt_index_equals_filter_with_bench(tmp_path):
    from atlas_forge.filters import decontaminate as d

    bench = table(rec("x", "الطقس اليوم زوين بزاف وكنفكر نخرج نتمشى فالجردة مع الدراري", "positive",
                      source="bench"),
                  rec("y", "واش كاين شي حل؟", "الرباط", source="bench"))
    rows = [rec("a", "قال ليا: الطقس اليوم زوين بزاف وكنفكر نخرج نتمشى فالجردة", "مزيان"),
            rec("b", "واش كاين شي حل؟", "لا"), rec("c", "سلام", "سلام")]
    c = cfg(steps=["decontaminate"])
    expected = run_steps(table(*rows), ["decontaminate"], c, bench)
    d.save_index(d.build_index(bench, 8, 3), str(tmp_path / "i.npz"))
    got = run_steps(table(*rows), ["decontaminate"], c, None, d.load_index(str(tmp_path / "i.npz")))
    assert got[0].equals(expected[0]) and got[1].equals(expected[1]) and got[2] == expected[2]
    assert expected[1]["reason"].to_list() == [
        "decontaminate: shares text with a benchmark item (الطقس اليوم زوين بزاف وكنفكر نخرج نتمشي فالجرده)",
        "decontaminate: equals a benchmark item (واش كاين شي حل؟)"]
    with pytest.raises(ValueError, match="ngram=8"):
        run_steps(table(*rows), ["decontaminate"], cfg(steps=["decontaminate"], decontaminate={"ngram": 5}),
                  None, d.load_index(str(tmp_path / "i.npz")))


def test_decontaminate_without_bench_keeps_everything():
    kept, rejected, _ = run("decontaminate", [rec("a", "سلام عليكم", "مرحبا")])
    assert kept.height == 1 and rejected.height == 0


def test_langid_step_uses_target():
    darija = rec("a", "واش نتا مزيان؟", "أنا مزيان الحمد لله، شكرا بزاف على السؤال ديالك")
    english_as_darija = rec("b", "واش نتا مزيان؟", "I am very well, thank you so much for asking me")
    to_english = rec("c", "ترجم للإنجليزية: أنا مزيان", "I am very well, thank you for asking",
                     task="translation", direction="ary_Arab->eng_Latn")
    kept, rejected, _ = run("langid", [darija, english_as_darija, to_english])
    assert ids(kept) == sorted([darija["id"], to_english["id"]])
    assert rejected["reason"][0].startswith("langid: not ary_Arab (top-1 en")


def test_all_default_steps_and_report():
    rows = [rec("a", "سلام عليكم", "مرحبا بيك"), rec("b", "سلام عليكم", "مرحبا بيك"), rec("c", "سلام", "")]
    df = table(*rows)
    kept, rejected, report = run_steps(df, DEFAULT["steps"], cfg(), records.empty())
    assert kept.height == 1 and rejected.height == 2
    assert [s["step"] for s in report["steps"]] == DEFAULT["steps"]
    assert [(s["in"], s["kept"], s["dropped"]) for s in report["steps"][:2]] == [(3, 2, 1), (2, 2, 0)]
    for s in report["steps"]:
        assert s["in"] == s["kept"] + s["dropped"]


def test_config_rejects_unknown_step():
    with pytest.raises(ConfigError, match="unknown step 'typo'"):
        cfg(steps=["typo"])


def test_cli(tmp_path, monkeypatch):
    import json

    from atlas_forge import io
    from atlas_forge.cli import main

    rows = [rec("a", "سلام عليكم", "مرحبا بيك"), rec("b", "سلام عليكم", "مرحبا بيك")]
    io.write_table(table(*rows), tmp_path / "in.parquet", "test")
    io.write_table(table(rec("x", "جملة ما عندها علاقة", "لا")), tmp_path / "bench.parquet", "test")
    argv = ["filter", "--params", json.dumps({"filter": DEFAULT}), "--input", str(tmp_path / "in.parquet"),
            "--bench", str(tmp_path / "bench.parquet"), "--out", str(tmp_path / "out.parquet"),
            "--rejects", str(tmp_path / "rej.parquet")]
    assert main(argv) == 0
    out, rej = pl.read_parquet(tmp_path / "out.parquet"), pl.read_parquet(tmp_path / "rej.parquet")
    assert out.height == 1 and rej.height == 1
    first = (tmp_path / "out.parquet").read_bytes()
    assert main(argv) == 0
    assert (tmp_path / "out.parquet").read_bytes() == first


def test_near_dedup_signatures_and_bands_equal_datasketch():
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from atlas_forge.filters import near_dedup

    texts = ["", "abc", "abcde", "abcdef", "ﻻ ab  c", "ترجم ليا هاد الجملة للدارجة:\nthe cat sat on the mat",
             "السلام عليكم، كيداير؟ " * 5, "x" * 40]
    for n, perm, seed in ((5, 64, 1), (7, 32, 3), (2, 16, 0)):
        sig = near_dedup.signatures(texts, n, perm, seed)
        for text, row in zip(texts, sig, strict=True):
            m = MinHash(num_perm=perm, seed=seed)
            m.update_batch([s.encode() for s in near_dedup.shingles(text, n)])
            assert np.array_equal(m.hashvalues, row), (text, n)
    for threshold in (0.5, 0.8, 0.85, 0.9):
        for perm in (32, 64, 128):
            expected = list(MinHashLSH(threshold=threshold, num_perm=perm).hashranges)
            assert near_dedup.lsh_bands(threshold, perm) == expected


def test_near_dedup_chunked_and_unpackable_signatures_equal_datasketch(monkeypatch):
    """Many small chunks (shingles shared across chunks, rows at chunk edges), emoji (4-byte UTF-8),
    and an alphabet too large to pack n code points into 64 bits: still datasketch's signatures."""
    import numpy as np
    from datasketch import MinHash

    from atlas_forge.filters import near_dedup

    base = ["السلام عليكم، كيداير؟ 😀 ça va", "abc", "the cat sat on the mat", "ﻻ ab  c", "x" * 30]
    texts = [f"{t} {i % 7}" for i in range(60) for t in base[i % len(base):][:1]] + ["", "ab"]
    monkeypatch.setattr(near_dedup, "_CHUNK_CHARS", 64)
    monkeypatch.setattr(near_dedup, "_BLOCK", 16)
    wide = texts + ["".join(chr(0x4E00 + i) for i in range(k, k + 40)) for k in range(0, 20000, 40)]
    for batch, n in ((texts, 5), (wide, 5), (texts, 13)):
        sig = near_dedup.signatures(batch, n, 32, 1)
        for text, row in zip(batch, sig, strict=True):
            m = MinHash(num_perm=32, seed=1)
            m.update_batch([s.encode() for s in near_dedup.shingles(text, n)])
            assert np.array_equal(m.hashvalues, row), (text, n)


def test_near_duplicates_equal_datasketch_lsh_loop():
    """Same greedy result as the plain datasketch loop (MinHash per row, LSH query then insert), with
    rows alone in every band, near-duplicate clusters and a repeated id."""
    import random

    from datasketch import MinHash, MinHashLSH

    from atlas_forge.filters import NearDedupConfig, near_dedup

    rng = random.Random(5)
    words = ["الما", "الخبز", "الدار", "البحر", "أتاي", "صاحبي", "السوق", "زوين", "بزاف", "كبير", "صغير"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) for _ in range(300)]
    for i in range(0, 300, 4):  # near-duplicates: one word appended or changed
        texts[i + 1] = texts[i] + " " + rng.choice(words)
    ids = [f"r{rng.randrange(10**6):06d}" for _ in texts]
    ids[7] = ids[3]
    nd = NearDedupConfig(threshold=0.7, num_perm=64, ngram=5, seed=1)
    lsh, kept, expected = MinHashLSH(threshold=nd.threshold, num_perm=nd.num_perm), {}, {}
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        m = MinHash(num_perm=nd.num_perm, seed=nd.seed)
        m.update_batch([s.encode() for s in near_dedup.shingles(texts[i], nd.ngram)])
        matches = sorted(k for k in lsh.query(m) if kept[k].jaccard(m) >= nd.threshold)
        if matches:
            expected[i] = matches[0]
        elif ids[i] in kept:
            expected[i] = ids[i]
        else:
            lsh.insert(ids[i], m)
            kept[ids[i]] = m
    got = near_dedup.near_duplicates(ids, texts, nd)
    assert got == expected
    assert 30 < len(expected) < 200
