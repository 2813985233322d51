import json
import logging
import os
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

from atlas_forge import io, records
from atlas_forge.config import parse
from atlas_forge.translate import TranslateConfig, make_backend, translate_table
from atlas_forge.translate.backends import MalformedAnswer, parse_answer
from atlas_forge.translate.cache import FILENAME, TranslationCache, cache_key
from tests.fake_openai import FakeChatServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SECRET = "sk-test-not-a-real-key-123456"

ENGLISH = [
    "Please tell me how to make mint tea at home.",
    "What are the best places to visit in Marrakech during the summer?",
    "Can you explain why the sky looks blue during the day?",
    "Give me three ideas for a healthy breakfast before going to work in the morning.",
    "How do I write a polite email to my teacher about a late homework?",
    "What should I pack for a weekend trip to the mountains?",
]
DARIJA = [
    "كيفاش نقدر نوجد كاس ديال أتاي بالنعناع مزيان فالدار؟",
    "شنو هوما أحسن البلايص اللي نقدر نزور فمراكش فالصيف؟",
    "واش تقدر تشرح ليا علاش السما كتبان زرقا فالنهار؟",
    "عطيني تلاتة ديال الأفكار على فطور صحي قبل الخدمة.",
    "كيفاش نكتب إيميل مؤدب للأستاذ ديالي على الواجب اللي تعطل؟",
    "شنو خاصني نوجد لسفر ديال نهاية السيمانة للجبل؟",
]
ANSWER_EN = "I would be happy to help you with that, here is a simple answer for you."
ANSWER_ARY = "بكل فرح غادي نعاونك فهادشي، ها جواب ساهل ليك."
TO_DARIJA = dict(zip(ENGLISH + [ANSWER_EN], DARIJA + [ANSWER_ARY], strict=True))


def chat(key, user, answer=ANSWER_EN, subset=None):
    return records.make_record("chat_en", key, "chat", [{"role": "user", "content": user},
                                                         {"role": "assistant", "content": answer}],
                               "eng_Latn", {"subset": subset, "file": "x.jsonl", "line": 1})


class Server(FakeChatServer):
    """A translation endpoint answering as the paper's Fig. 3 prompt asks: [[Original]], then
    [[Translation]] and the source's JSON list of messages with each 'content' translated. `behave(texts,
    n)` may override the answer for request n (its texts are the 'content' fields of the JSON list after
    the prompt's [Source Text] tag)."""

    def __init__(self):
        self.requests, self.sources, self.behave = [], [], None
        super().__init__(self._answer)

    def record(self, prompt):
        super().record(prompt)
        self.sources.append(self._source(prompt))
        self.requests.append(self._texts(prompt))

    @staticmethod
    def _source(prompt):
        return json.loads(prompt.split("[Source Text]\n", 1)[1])

    @classmethod
    def _texts(cls, prompt):
        return [m["content"] for m in cls._source(prompt)]

    @classmethod
    def paper_answer(cls, prompt, translate):
        source = cls._source(prompt)
        out = [{**m, "content": translate(m["content"])} for m in source]
        return (f"[[Original]]\n{json.dumps(source, ensure_ascii=False)}\n\n"
                f"[[Translation]]\n{json.dumps(out, ensure_ascii=False, indent=2)}")

    def _answer(self, prompt, n):
        texts = self._texts(prompt)
        out = self.behave(texts, n) if self.behave else None
        if out is None:
            return 200, {}, self.paper_answer(prompt, lambda t: TO_DARIJA.get(t, "هادي جملة بالدارجة"))
        if out[0] == "sleep":  # slow, then right
            return "sleep", out[1], self.paper_answer(prompt, TO_DARIJA.__getitem__)
        return out

    def texts(self):
        return sorted(t for req in self.requests for t in req)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def config(tmp_path, backend="openai", url="http://127.0.0.1:9/v1", **over):
    data = {
        "backend": backend, "seed_caches": [], "cache_dir": str(tmp_path / "cache"),
        "prompt_version": "v1", "require_complete": False,
        "prefilter": {"drop_subsets": ["science"], "drop_patterns": ["translate ", " translation "],
                      "lid_min_english": 0.8},
        "postfilter": {"lid_min_arabic": 0.8, "keyword_replacements": {}},
        "openai": {"base_url": url, "model": "test-model", "concurrency": 4, "timeout_s": 5,
                   "max_retries": 3, "backoff_s": 0.01},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return parse(TranslateConfig, data, "translate")


def run(cfg):
    cache = TranslationCache(cfg.cache_dir, cfg.seed_caches)
    return lambda df: translate_table(df, cfg, make_backend(cfg), cache)


def check_counts(df, kept, rejected):
    assert kept.height + rejected.height == df.height
    records.validate(kept, "kept", "translate")
    records.validate(rejected, "rejected", "translate", rejects=True)


def test_openai_prefilters_translation_and_cache(tmp_path, server, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    rows = [chat("ok1", ENGLISH[0]), chat("ok2", ENGLISH[1]),
            chat("sci", ENGLISH[2], subset="Science"),
            chat("pat", "Please translate this sentence into French for my homework."),
            chat("fr", "Comment est-ce que je peux préparer un bon thé à la menthe à la maison ?"),
            chat("empty", ENGLISH[3], answer="  ")]
    df = records.from_rows(rows)
    cfg = config(tmp_path, url=server.url)
    with caplog.at_level(logging.DEBUG):
        kept, rejected, stats = run(cfg)(df)
    check_counts(df, kept, rejected)
    assert SECRET not in caplog.text
    assert server.auth and all(a == f"Bearer {SECRET}" for a in server.auth)
    assert sorted(kept["id"]) == sorted([rows[0]["id"], rows[1]["id"]])
    reasons = dict(zip(rejected["id"], rejected["reason"], strict=True))
    assert reasons[rows[2]["id"]] == "prefilter: subset Science"
    assert reasons[rows[3]["id"]] == "prefilter: pattern 'translate '"
    assert reasons[rows[4]["id"]].startswith("prefilter: langid not English (top-1 fr")
    assert reasons[rows[5]["id"]] == "prefilter: empty message"
    # the shared answer is asked for once
    assert server.texts() == sorted([ENGLISH[0], ENGLISH[1], ANSWER_EN])
    out = {r["id"]: r for r in kept.iter_rows(named=True)}[rows[0]["id"]]
    assert [m["content"] for m in out["messages"]] == [DARIJA[0], ANSWER_ARY]
    assert out["task"] == "chat" and out["lang"] == "ary_Arab"
    meta = records.load_meta(out["meta"])
    assert meta["translated_from"] == "eng_Latn" and meta["backend"] == "openai"
    assert meta["model"] == "test-model" and meta["file"] == "x.jsonl"
    assert stats["reasons"]["prefilter: subset Science"] == 1
    assert all(records.load_meta(m)["subset"] is None for m in kept["meta"])

    # rerun: everything comes from the cache, byte-identical output
    n = len(server.requests)
    kept2, rejected2, stats2 = run(cfg)(df)
    assert len(server.requests) == n and stats2["strings_cached"] == 3
    assert kept2.equals(kept) and rejected2.equals(rejected)


def test_openai_retries_429_500_timeout(tmp_path, server):
    plan = {1: (429, {"Retry-After": "0.05"}, ""), 2: (500, {}, ""), 3: ("sleep", 1.0, "")}
    server.behave = lambda texts, n: plan.get(n)
    df = records.from_rows([chat("a", ENGLISH[0])])
    cfg = config(tmp_path, url=server.url, openai={"timeout_s": 0.4, "concurrency": 1})
    kept, rejected, _ = run(cfg)(df)
    assert len(server.requests) == 4
    assert kept.height == 1 and rejected.height == 0


def test_openai_gives_up_after_max_retries(tmp_path, server):
    server.behave = lambda texts, n: (503, {}, "")
    df = records.from_rows([chat("a", ENGLISH[0])])
    kept, rejected, _ = run(config(tmp_path, url=server.url, openai={"max_retries": 2}))(df)
    assert len(server.requests) == 3 and kept.height == 0
    assert rejected["reason"][0] == "untranslated: openai failed (HTTP 503 after 3 attempts)"


def test_openai_malformed_answers_are_rejected(tmp_path, server):
    bad = {ENGLISH[0]: "this is not json", ENGLISH[1]: json.dumps(["only one"]),
           ENGLISH[2]: json.dumps([1, 2]), ENGLISH[3]: json.dumps(["", "x"]),
           ENGLISH[4]: json.dumps({"a": 1})}
    server.behave = lambda texts, n: (200, {}, bad[texts[0]]) if texts[0] in bad else None
    rows = [chat(f"r{i}", ENGLISH[i], answer=f"{ANSWER_EN} {ENGLISH[i]}") for i in range(6)]
    df = records.from_rows(rows)
    kept, rejected, _ = run(config(tmp_path, url=server.url, openai={"concurrency": 1}))(df)
    check_counts(df, kept, rejected)
    reasons = dict(zip(rejected["id"], rejected["reason"], strict=True))
    assert reasons[rows[0]["id"]] == "malformed: answer is not JSON"
    assert reasons[rows[1]["id"]] == "malformed: answer has 1 items, expected 2"
    assert reasons[rows[2]["id"]] == ("malformed: answer list holds items that are neither strings nor "
                                      "{'content': string}")
    assert reasons[rows[3]["id"]] == "malformed: answer list holds empty translations"
    assert reasons[rows[4]["id"]] == "malformed: answer is a JSON dict, not a list"
    assert kept["id"].to_list() == [rows[5]["id"]]
    # nothing malformed was cached: a rerun asks again for exactly those texts
    before = len(server.requests)
    server.behave = None
    kept, rejected, _ = run(config(tmp_path, url=server.url))(df)
    assert kept.height == 6
    assert sorted(t for r in server.requests[before:] for t in r) == sorted(
        t for r in rows[:5] for t in (m["content"] for m in r["messages"]))


def test_shared_string_of_failed_sample_is_asked_again(tmp_path, server):
    server.behave = lambda texts, n: (200, {}, "oops") if texts[0] == ENGLISH[0] else None
    rows = [chat("a", ENGLISH[0]), chat("b", ENGLISH[1])]  # both end with ANSWER_EN
    df = records.from_rows(rows)
    kept, rejected, stats = run(config(tmp_path, url=server.url, openai={"concurrency": 1}))(df)
    assert kept["id"].to_list() == [rows[1]["id"]]
    assert rejected["reason"].to_list() == ["malformed: answer is not JSON"]
    assert stats["requests"] == 3 and server.requests[-1] == [ANSWER_EN]


def test_parse_answer():
    # the paper's answer shape (Fig. 3): the original after [[Original]], then the translated JSON list
    paper = ('[[Original]]\n[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]\n\n'
             '[[Translation]]\n[{"role": "user", "content": "أ"}, {"role": "assistant", "content": "ب"}]')
    assert parse_answer(paper, 2) == ["أ", "ب"]
    assert parse_answer('[[Translation]]\n["أ", "ب"]\n', 2) == ["أ", "ب"]
    assert parse_answer('```json\n[{"content": "أ"}]\n```', 1) == ["أ"]
    for text, n in [("[", 1), ('"x"', 1), ('["a", null]', 2), ('["a"]', 2), ('[{"role": "user"}]', 1),
                    ('[{"content": " "}]', 1), ("[[Original]]\n[]\n[[Translation]]\nسلام", 1)]:
        with pytest.raises(MalformedAnswer):
            parse_answer(text, n)


# Fig. 3 of the paper (App. B.3.2), typed here from the paper, not from the code's constant
FIG3_LINES = [
    "Translate the 'content' field in the paragraph after [Source Text] to Moroccan dialect (Darija - Arabic "
    "alphabet) while following these guidelines:",
    "- Keep the format of the original text (list of json).",
    "- If a word is usually not used in Arabic, use its French equivalent.",
    "- Do not include any introduction or explanation after the translation, only the translation.",
    "- If there is a given context, example or question translate it as well.",
    "- Whenever you come across code contexts or technical words, keep them in English.",
    "- Whenever you come across literature, or example or question, translate it to Moroccan.",
    "- If the text is culturaly not accepted for Morrocans, change it to a more acceptable one.",
    "- Do not answer the request in the source text.",
    "- Write first the original text after the tag [[Original]] and then the translation after the tag "
    "[[Translation]].",
    "",
    "[Source Text]",
]


def test_prompt_sent_is_the_papers_fig3(tmp_path, server):
    rows = [chat("a", ENGLISH[0]), chat("b", ENGLISH[1])]  # both end with ANSWER_EN: asked for once
    df = records.from_rows(rows)
    kept, _, _ = run(config(tmp_path, url=server.url, openai={"concurrency": 1}))(df)
    assert kept.height == 2 and len(server.prompts) == 2
    for prompt in server.prompts:
        head, source = prompt.split("[Source Text]\n", 1)
        assert (head + "[Source Text]").split("\n") == FIG3_LINES
    # the source: the sample's messages not yet translated, in TÜLU's messages format (Fig. 2)
    assert server.sources == [[{"role": "user", "content": ENGLISH[0]},
                               {"role": "assistant", "content": ANSWER_EN}],
                              [{"role": "user", "content": ENGLISH[1]}]]


def test_app_b_fixes_each_applied_and_counted(tmp_path, server):
    """Each fix of App. B.3.1/B.3.3 on its own sample; every drop is a reject with its reason, counted."""
    keyword_src = "Write a short answer about the weather in Fes in the spring."
    keyword_out = ("### Response: الجو ففاس فالربيع كيكون زوين بزاف، الشمس كاينة والسما صافية، وكيبان "
                   "ليك Inputs ديال الناس فالسوق. Answer")
    english_src = "Tell me a short story about a cat that lives in a big library."
    english_ans = "Once upon a time, a grey cat slept every night between the old history books."
    stays = "This stays in English because the translator failed to translate it at all."
    out = {keyword_src: keyword_out, english_src: stays, english_ans: stays + " Again."}
    server.behave = lambda texts, n: (200, {}, json.dumps([out.get(t, TO_DARIJA.get(t, "هادي جملة بالدارجة"))
                                                           for t in texts]))
    names = ["ok", "sci", "sci_part", "empty", "translate", "translation", "not_en", "not_ar", "low_ar",
             "keyword"]
    rows = [chat("ok", ENGLISH[0]),
            chat("sci", ENGLISH[1], subset="science"),
            chat("sci_part", ENGLISH[2], subset="science.scifact_json"),
            chat("empty", ENGLISH[3], answer=""),
            chat("translate", "Can you translate this short sentence into French for me, please?"),
            chat("translation", "What is the best translation app to use on a long trip abroad?"),
            chat("not_en", "Quelle est la meilleure saison pour visiter la ville de Marrakech ?"),
            chat("not_ar", english_src, answer=english_ans),   # top-1 not Arabic
            chat("low_ar", english_src),                       # top-1 Arabic, below 0.80
            chat("keyword", keyword_src)]
    df = records.from_rows(rows)
    cfg = config(tmp_path, url=server.url,
                 postfilter={"keyword_replacements": {"Response": "الجواب"},
                             "report_keywords": ["Input", "Response", "Answer"]})
    kept, rejected, stats = run(cfg)(df)
    check_counts(df, kept, rejected)
    reasons = dict(zip(rejected["id"], rejected["reason"], strict=True))
    by_key = {name: r["id"] for name, r in zip(names, rows, strict=True)}
    assert reasons[by_key["sci"]] == "prefilter: subset science"
    assert reasons[by_key["sci_part"]] == "prefilter: subset science.scifact_json"
    assert reasons[by_key["empty"]] == "prefilter: empty message"
    assert reasons[by_key["translate"]] == "prefilter: pattern 'translate '"
    assert reasons[by_key["translation"]] == "prefilter: pattern ' translation '"
    assert reasons[by_key["not_en"]].startswith("prefilter: langid not English (top-1 fr")
    assert reasons[by_key["not_ar"]].startswith("postfilter: langid not Arabic script (top-1 en")
    low = reasons[by_key["low_ar"]]
    assert low.startswith("postfilter: langid not Arabic script (top-1 ar p=") and float(low[-5:-1]) < 0.8
    assert stats["reasons"] == {"postfilter: langid not Arabic script": 2, "prefilter: empty message": 1,
                                "prefilter: langid not English": 1, "prefilter: pattern ' translation '": 1,
                                "prefilter: pattern 'translate '": 1, "prefilter: subset science": 1,
                                "prefilter: subset science.scifact_json": 1}
    assert sorted(kept["id"]) == sorted([by_key["ok"], by_key["keyword"]])
    text = {r["id"]: r["messages"][0]["content"] for r in kept.iter_rows(named=True)}[by_key["keyword"]]
    # the keyword is replaced as a whole word; "Inputs" is not "Input"; "Answer" has no replacement set
    assert text.startswith("### الجواب: الجو ففاس") and "Response" not in text
    assert "Inputs" in text and text.endswith(" Answer")
    assert stats["keywords_left"] == {"Answer": 1}
    # the prompt never saw the dropped samples
    assert set(server.texts()) == {ENGLISH[0], ANSWER_EN, english_src, english_ans, keyword_src}


def test_replace_keywords_whole_words_longest_first():
    from atlas_forge.translate import PAPER_KEYWORDS, keywords_left, replace_keywords

    assert PAPER_KEYWORDS == ("Input", "Output", "Response", "Answer", "Instructions", "Hypothesis",
                              "Additional Context")
    repl = {"Context": "س", "Additional Context": "سياق إضافي", "Input": "المدخل"}
    assert replace_keywords("Additional Context: x. Context: y. Input: InputStream", repl) == (
        "سياق إضافي: x. س: y. المدخل: InputStream")
    assert replace_keywords("بلا حتى كلمة", {}) == "بلا حتى كلمة"
    left = keywords_left(["### Response: ok", "Hypothesis"], list(PAPER_KEYWORDS))
    assert left == {"Response", "Hypothesis"}
    assert keywords_left(["Responses", "TheAnswer"], list(PAPER_KEYWORDS)) == set()


def test_cache_backend_seed_untranslated_and_require_complete(tmp_path):
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps({"source": s, "target": t}, ensure_ascii=False) + "\n"
                            for s, t in TO_DARIJA.items() if s != ENGLISH[1]), encoding="utf-8")
    rows = [chat("a", ENGLISH[0]), chat("b", ENGLISH[1])]
    df = records.from_rows(rows)
    cfg = config(tmp_path, backend="cache", seed_caches=[str(seed)],
                 postfilter={"keyword_replacements": {"أتاي": "الشاي"}})
    kept, rejected, _ = run(cfg)(df)
    check_counts(df, kept, rejected)
    assert kept["id"].to_list() == [rows[0]["id"]]
    assert "الشاي" in kept["messages"][0][0]["content"] and "أتاي" not in kept["messages"][0][0]["content"]
    assert records.load_meta(kept["meta"][0])["backend"] == "cache"
    assert rejected["reason"].to_list() == ["untranslated: cache had no translation"]
    with pytest.raises(ValueError, match="1 sample"):
        run(config(tmp_path, backend="cache", seed_caches=[str(seed)], require_complete=True))(df)


def test_postfilter_rejects_non_arabic_output(tmp_path, server):
    server.behave = lambda texts, n: (200, {}, json.dumps([t.upper() for t in texts]))
    df = records.from_rows([chat("a", ENGLISH[0])])
    kept, rejected, _ = run(config(tmp_path, url=server.url))(df)
    assert kept.height == 0
    assert rejected["reason"][0].startswith("postfilter: langid not Arabic script (top-1 en")


def test_cache_key_and_truncated_tail(tmp_path):
    base = cache_key("openai", "m", "v1", "hello")
    assert base == cache_key("openai", "m", "v1", "hello") and len(base) == 64
    others = {cache_key("seq2seq", "m", "v1", "hello"), cache_key("openai", "m2", "v1", "hello"),
              cache_key("openai", "m", "v2", "hello"), cache_key("openai", "m", "v1", "hello ")}
    assert base not in others and len(others) == 4

    cache = TranslationCache(tmp_path, [])
    cache.put_many([{"key": "k1", "source": "a", "target": "أ"}])
    with open(tmp_path / FILENAME, "a", encoding="utf-8") as fh:
        fh.write('{"key": "k2", "source": "b", "tar')  # a crash mid-line
    cache = TranslationCache(tmp_path, [])
    assert cache.get("k1", "a") == "أ" and cache.get("k2", "b") is None
    cache.put_many([{"key": "k3", "source": "c", "target": "ج"}])
    lines = (tmp_path / FILENAME).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k1", "k3"]

    (tmp_path / FILENAME).write_text('{"broken\n{"key": "k1", "source": "a", "target": "x"}\n')
    with pytest.raises(ValueError, match="invalid JSON"):
        TranslationCache(tmp_path, [])


def test_crash_midway_then_resume(tmp_path, server, repo_root):
    gate = threading.Event()
    stall_after = 3

    def behave(texts, n):
        if n > stall_after:
            gate.wait(30)  # hold the request open until the client is killed
        return None

    server.behave = behave
    rows = [chat(f"r{i}", ENGLISH[i], answer=f"{ENGLISH[i]} Thank you so much.") for i in range(6)]
    df = records.from_rows(rows)
    io.write_table(df, tmp_path / "in.parquet", "test")
    params = {"backend": "openai", "cache_dir": str(tmp_path / "cache"), "prompt_version": "v1",
              "openai": {"base_url": server.url, "model": "test-model", "concurrency": 1, "backoff_s": 0.01}}
    argv = [sys.executable, "-m", "atlas_forge", "translate", "--params", json.dumps({"translate": params}),
            "--input", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out.parquet"),
            "--rejects", str(tmp_path / "rej.parquet")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while len(server.requests) <= stall_after and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert len(server.requests) == stall_after + 1, proc.stdout.read() if proc.poll() is not None else ""
    time.sleep(0.3)  # let the client store the answers it already has
    proc.kill()
    proc.wait()
    gate.set()
    assert not (tmp_path / "out.parquet").exists()
    cached = {json.loads(x)["source"] for x in (tmp_path / "cache" / FILENAME).read_text().splitlines()}
    assert len(cached) == 2 * stall_after

    first = len(server.requests)
    server.behave = None
    done = subprocess.run(argv, cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resumed = sorted(t for r in server.requests[first:] for t in r)
    every = {m["content"] for r in rows for m in r["messages"]}
    assert resumed == sorted(every - cached)
    assert pl.read_parquet(tmp_path / "out.parquet").height == 6

    # the same outputs, byte for byte, as an uninterrupted run (its own cache, the same answers)
    whole = tmp_path / "whole"
    argv = [sys.executable, "-m", "atlas_forge", "translate",
            "--params", json.dumps({"translate": {**params, "cache_dir": str(whole / "cache")}}),
            "--input", str(tmp_path / "in.parquet"), "--out", str(whole / "out.parquet"),
            "--rejects", str(whole / "rej.parquet")]
    done = subprocess.run(argv, cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("out.parquet", "rej.parquet"):
        assert (whole / name).read_bytes() == (tmp_path / name).read_bytes(), name


def _tiny_seq2seq(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<pad>", "<s>", "</s>", "<unk>", "ary_Arab"]
    tok.train_from_iterator(ENGLISH + DARIJA, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)
    import torch

    torch.manual_seed(0)
    cfg = BartConfig(vocab_size=tok.get_vocab_size(), d_model=16, encoder_layers=1, decoder_layers=1,
                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                     decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                     eos_token_id=2, decoder_start_token_id=2)
    BartForConditionalGeneration(cfg).save_pretrained(path)


def test_seq2seq_backend_end_to_end(tmp_path):
    model = tmp_path / "tiny"
    _tiny_seq2seq(model)
    rows = [chat(f"r{i}", ENGLISH[i]) for i in range(3)]
    df = records.from_rows(rows)
    cfg = config(tmp_path, backend="seq2seq",
                 seq2seq={"model": str(model), "batch_size": 2, "max_new_tokens": 6})
    backend = make_backend(cfg)
    assert backend.forced_bos == backend.tok.get_vocab()["ary_Arab"]
    kept, rejected, stats = translate_table(df, cfg, backend, TranslationCache(cfg.cache_dir, []))
    check_counts(df, kept, rejected)
    assert stats["requests"] == 3 and stats["strings_requested"] == 4
    # random weights emit English-vocabulary noise: the post-filter (or the empty check) must catch it
    assert kept.height == 0
    assert all(r.startswith(("postfilter: langid", "untranslated: seq2seq")) for r in rejected["reason"])


def test_prefilter_lid_text_user_or_all():
    from atlas_forge.translate import PrefilterConfig, prefilter_reason

    row = chat("a", "Bonjour, comment ça va aujourd'hui ?", answer=ANSWER_EN + " " + ENGLISH[2])
    assert prefilter_reason(row, PrefilterConfig(lid_text="user")).startswith("prefilter: langid not English")
    assert prefilter_reason(row, PrefilterConfig(lid_text="all")) is None
