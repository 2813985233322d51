"""The generate phase (issue 14): checks, type draw, cache and resume against a local stand-in endpoint
(tests/fake_openai.py, as the translate tests), story segmentation, identity rows, the card's sets."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from atlas_forge import io, records
from atlas_forge.config import ConfigError, parse
from atlas_forge.conversations import Sides
from atlas_forge.generate import (
    AllWrong,
    GenerateConfig,
    StoryConfig,
    generate_table,
    make_backend,
    pick_type,
)
from atlas_forge.generate import checks as gen_checks
from atlas_forge.generate.cache import FILENAME, GenerationCache
from atlas_forge.generate.identity import repeat_table
from atlas_forge.generated_sets import sets_markdown, sets_section
from tests.fake_openai import FakeChatServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
CITIES = ["فاس", "مراكش", "طنجة", "الرباط", "أكادير", "وجدة", "مكناس", "تطوان", "الصويرة", "العيون"]
SPAN = "السوق ديالها كبير"


def doc_text(n: int) -> str:
    return (
        f"هادا النص رقم {n} على مدينة {CITIES[n % len(CITIES)]} فالمغرب، فيها بزاف ديال الناس "
        f"و{SPAN} وكيجيوها التجار من كل بلاصة."
    )


def docs(n: int, task: str = "document") -> pl.DataFrame:
    return records.from_rows(
        [
            records.make_record(
                "docs", f"k{i}", task, [{"role": "user", "content": doc_text(i)}], "ary_Arab", {"line": i + 1}
            )
            for i in range(n)
        ]
    )


def good_answer(kind: str) -> dict:
    choices = ["جواب الأول", "جواب التاني", "جواب التالت", "جواب الرابع"]
    return {
        "open_qa": {"question": "شنو كاين فهاد المدينة؟", "answer": "كاين بزاف ديال الناس والتجار"},
        "mcq": {"question": "شنو الصحيح على هاد المدينة؟", "choices": choices, "answer": "B"},
        "extractive": {"question": "كيفاش هو السوق ديالها؟", "answer": SPAN},
        "mc_extractive": {"question": "شنو قال النص على السوق؟", "choices": choices, "answer": "جواب التالت"},
    }.get(kind, {"answer": "هادا جواب بالدارجة على البوسط ديالك"})


def cfg_for(tmp_path, url="http://127.0.0.1:9/v1", **kw) -> GenerateConfig:
    openai = {
        "base_url": url,
        "model": "stand-in",
        "concurrency": 4,
        "max_retries": 3,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "timeout_s": 5,
    }
    data = {
        "backend": "openai",
        "seed_caches": [],
        "cache_dir": str(tmp_path / "cache"),
        "openai": openai,
        **kw,
    }
    return parse(GenerateConfig, data, "generate")


class Server(FakeChatServer):
    """A generation endpoint: answers each document with a right answer for its type, unless `behave`
    (prompt, n) returns (status, headers, content) for request n."""

    def __init__(self, cfg: GenerateConfig, table: pl.DataFrame, delay: float = 0.0):
        self.by_doc = {
            m[0]["content"]: pick_type(cfg, t, i) for i, t, m in table.select("id", "task", "messages").rows()
        }
        self.behave, self.delay = None, delay
        super().__init__(self._answer)

    @staticmethod
    def document(prompt: str) -> str:
        marker = "[[Passage]]\n" if "[[Passage]]" in prompt else "[[Post]]\n"
        return prompt.split(marker)[1].split("\n\n")[0]

    def _answer(self, prompt, n):
        out = self.behave(prompt, n) if self.behave else None
        if out is not None:
            return out
        content = json.dumps(good_answer(self.by_doc[self.document(prompt)]), ensure_ascii=False)
        return ("sleep", self.delay, content) if self.delay else (200, {}, content)

    def documents(self) -> list[str]:
        return [self.document(p) for p in self.prompts]


# ---- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content,kind,reason",
    [
        ("not json at all", "open_qa", "generate: malformed answer (not JSON"),
        ('["a list"]', "open_qa", "generate: malformed answer (a JSON list, not an object)"),
        ('{"question": "شنو؟"}', "open_qa", "generate: missing field (answer"),
        (
            '{"question": "سؤال؟", "choices": "أ ب ج د", "answer": "A"}',
            "mcq",
            "generate: missing field (choices",
        ),
        (
            '{"question": "سؤال؟", "choices": ["ألف", "باء", "جيم"], "answer": "A"}',
            "mcq",
            "generate: bad choices",
        ),
        (
            '{"question": "سؤال؟", "choices": ["ألف", "باء", "باء", "دال"], "answer": "A"}',
            "mcq",
            "generate: bad choices",
        ),
        (
            '{"question": "سؤال؟", "choices": ["ألف", "باء", "جيم", "دال"], "answer": "E"}',
            "mcq",
            "generate: answer not among the choices",
        ),
        (
            '{"question": "سؤال؟", "answer": "شي حاجة ماشي فالنص"}',
            "extractive",
            "generate: extractive answer not in",
        ),
        (
            '{"question": "What is it?", "answer": "A big market in the city"}',
            "open_qa",
            "generate: not Darija script",
        ),
    ],
)
def test_check_rejects_with_reason(content, kind, reason):
    with pytest.raises(gen_checks.Invalid) as e:
        gen_checks.check(content, kind, doc_text(1), 4, 0.5)
    assert str(e.value).startswith(reason)


def test_check_accepts_fenced_json_letter_or_text_answers():
    fenced = "```json\n" + json.dumps(good_answer("mcq"), ensure_ascii=False) + "\n```"
    assert gen_checks.check(fenced, "mcq", doc_text(1), 4, 0.5).answer_index == 1
    assert (
        gen_checks.check(
            json.dumps(good_answer("mc_extractive")), "mc_extractive", doc_text(1), 4, 0.5
        ).answer_index
        == 2
    )
    # whitespace differences do not make an extractive span "not in the passage"
    ok = {"question": "كيفاش السوق؟", "answer": "  السوق   ديالها كبير "}
    assert gen_checks.check(json.dumps(ok), "extractive", doc_text(1), 4, 0.5).answer.startswith("السوق")


def test_type_draw_is_per_document_and_follows_the_weights(tmp_path):
    cfg = cfg_for(tmp_path)
    ids = [records.record_id("docs", f"k{i}") for i in range(4000)]
    kinds = [pick_type(cfg, "document", i) for i in ids]
    for kind in ("open_qa", "mcq", "extractive", "mc_extractive"):
        assert abs(kinds.count(kind) / len(kinds) - 0.25) < 0.03
    skewed = dataclasses.replace(cfg, types={"document": {"open_qa": 3.0, "mcq": 1.0}})
    share = sum(pick_type(skewed, "document", i) == "open_qa" for i in ids) / len(ids)
    assert abs(share - 0.75) < 0.03
    with pytest.raises(ConfigError, match=r"generate.types.document.essay: unknown type"):
        cfg_for(tmp_path, types={"document": {"essay": 1.0}})
    with pytest.raises(ValueError, match="no type mix for source task 'tweet'"):
        pick_type(cfg, "tweet", ids[0])


# ---- endpoint ------------------------------------------------------------------------------------


def test_generates_caches_and_asks_only_for_added_documents(tmp_path):
    table = docs(12)
    cfg = cfg_for(tmp_path)
    server = Server(cfg, docs(16))
    try:
        cfg = cfg_for(tmp_path, url=server.url)
        rows, rejected, stats = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
        assert (stats["generated"], stats["rejected"], stats["requests"]) == (12, 0, 12)
        assert rejected.height == 0
        # every document answered exactly once over the conversations (80/10/10 assembly)
        origins = [o for m in rows["meta"].to_list() for o in json.loads(m)["origin_ids"]]
        assert sorted(origins) == sorted(table["id"].to_list())
        assert sum(stats["shots"].values()) == rows.height
        assert len((tmp_path / "cache" / FILENAME).read_text().splitlines()) == 12
        server.prompts.clear()
        again, _, stats2 = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
        assert server.prompts == [] and stats2["cached"] == 12
        assert again.equals(rows)
        # four added documents: four requests, the others' types and answers unchanged
        more, _, stats3 = generate_table(docs(16), cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
        assert sorted(server.documents()) == sorted(doc_text(i) for i in range(12, 16))
        assert stats3["requests"] == 4 and stats3["generated"] == 16
    finally:
        server.close()


def test_malformed_and_structurally_wrong_answers_are_rejects_with_reasons(tmp_path):
    table = docs(10)
    server = Server(cfg_for(tmp_path), table)
    wrong = {
        doc_text(1): "no json",
        doc_text(2): '{"question": "سؤال؟"}',
        doc_text(3): '{"question": "Which?", "answer": "an English answer here"}',
    }
    server.behave = lambda prompt, n: (
        (200, {}, wrong[Server.document(prompt)]) if Server.document(prompt) in wrong else None
    )
    try:
        cfg = cfg_for(tmp_path, url=server.url)
        rows, rejected, stats = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
    finally:
        server.close()
    reasons = dict(zip(rejected["id"].to_list(), rejected["reason"].to_list(), strict=True))
    ids = table["id"].to_list()
    assert reasons[ids[1]].startswith("generate: malformed answer")
    assert reasons[ids[2]].startswith("generate: missing field (answer")
    assert reasons[ids[3]].startswith("generate: not Darija script")
    assert stats["generated"] == 7 and rows.height + 0 <= 7 and rejected.height == 3
    assert set(rejected["phase"].to_list()) == {"generate"}
    # the run had right answers, so the wrong ones are remembered (same model, prompt, document)
    cached = [json.loads(line) for line in (tmp_path / "cache" / FILENAME).read_text().splitlines()]
    assert sum("failed" in c for c in cached) == 3


def test_retries_429_and_500_then_succeeds(tmp_path):
    table = docs(3)
    server = Server(cfg_for(tmp_path), table)
    server.behave = lambda prompt, n: {1: (429, {"Retry-After": "0"}, ""), 2: (500, {}, "")}.get(n)
    try:
        cfg = cfg_for(
            tmp_path,
            url=server.url,
            openai={
                "base_url": server.url,
                "model": "stand-in",
                "concurrency": 1,
                "max_retries": 3,
                "backoff_s": 0.01,
            },
        )
        _, rejected, stats = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
    finally:
        server.close()
    assert rejected.height == 0 and stats["generated"] == 3
    assert len(server.prompts) == 5  # 3 documents + 2 retried requests


def test_retries_exhausted_is_a_reject_not_a_cache_entry(tmp_path):
    table = docs(6)
    server = Server(cfg_for(tmp_path), table)
    server.behave = lambda prompt, n: (503, {}, "") if Server.document(prompt) == doc_text(0) else None
    try:
        cfg = cfg_for(tmp_path, url=server.url)
        _, rejected, _ = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
    finally:
        server.close()
    assert rejected["reason"].to_list() == ["generate: endpoint failed (HTTP 503 after 4 attempts)"]
    cached = (tmp_path / "cache" / FILENAME).read_text()
    assert doc_text(0) not in cached  # asked again next run: an outage is not an answer


def test_endpoint_answering_everything_wrongly_is_a_clear_error_and_caches_nothing(tmp_path):
    table = docs(12)
    server = Server(cfg_for(tmp_path), table)
    server.behave = lambda prompt, n: (200, {}, "Sorry, I cannot help with that.")
    try:
        cfg = cfg_for(tmp_path, url=server.url)
        with pytest.raises(
            AllWrong,
            match=r"the first 5 answers from http://127.0.0.1:\d+/v1/chat/completions "
            r"\(model stand-in\) all failed, e.g. generate: malformed answer",
        ):
            generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
    finally:
        server.close()
    path = tmp_path / "cache" / FILENAME
    assert not path.exists() or path.read_text() == ""


def test_cache_backend_counts_missing_generations_as_not_generated(tmp_path):
    table = docs(4)
    cfg = cfg_for(tmp_path)
    kind = pick_type(cfg, "document", table["id"][0])
    seed = tmp_path / "seed.jsonl"
    seed.write_text(
        json.dumps(
            {
                "type": kind,
                "prompt_version": cfg.prompt_versions[kind],
                "document": doc_text(0),
                "response": json.dumps(good_answer(kind), ensure_ascii=False),
            },
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    cfg = dataclasses.replace(cfg, backend="cache", seed_caches=[str(seed)])
    rows, rejected, stats = generate_table(
        table, cfg, make_backend(cfg), GenerationCache(None, cfg.seed_caches)
    )
    assert stats["generated"] == 1 and rows.height == 1
    assert rejected["reason"].to_list() == ["generate: not generated (cache backend has no generation)"] * 3


def test_sides_keep_few_shot_examples_on_their_side(tmp_path):
    table = docs(60)
    server = Server(cfg_for(tmp_path), table)
    try:
        cfg = dataclasses.replace(cfg_for(tmp_path, url=server.url), sides=Sides(seed=7, test_fraction=0.3))
        rows, _, _ = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
    finally:
        server.close()
    from atlas_forge.sides import is_test

    for meta in rows["meta"].to_list():
        m = json.loads(meta)
        keys = m["origin_ids"] + m.get("example_ids", [])
        assert len({is_test(7, k, 0.3) for k in keys}) == 1


# ---- SIGKILL mid-run, then an exact resume ----------------------------------------------------------


def _cli(tmp_path, params: dict, table: Path, out: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "atlas_forge",
        "generate",
        "--params",
        json.dumps({"generate": params}),
        "--input",
        str(table),
        "--out",
        str(tmp_path / f"{out}.parquet"),
        "--rejects",
        str(tmp_path / f"{out}.rejects.parquet"),
        "--stats",
        str(tmp_path / f"{out}.json"),
    ]


def test_sigkill_midway_then_resume_asks_only_the_rest_and_matches_a_clean_run(tmp_path):
    table = docs(40)
    path = tmp_path / "docs.parquet"
    io.write_table(table, path, "test")
    server = Server(cfg_for(tmp_path), table, delay=0.05)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def params(cache: str) -> dict:
        return {
            "backend": "openai",
            "seed_caches": [],
            "cache_dir": str(tmp_path / cache),
            "openai": {
                "base_url": server.url,
                "model": "stand-in",
                "concurrency": 2,
                "max_retries": 1,
                "backoff_s": 0.01,
            },
        }

    try:
        cache = tmp_path / "cache" / FILENAME
        proc = subprocess.Popen(
            _cli(tmp_path, params("cache"), path, "killed"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while time.time() < deadline and (not cache.exists() or len(cache.read_text().splitlines()) < 8):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (tmp_path / "killed.parquet").exists()  # nothing half-written
        done = {json.loads(line)["document"] for line in cache.read_text().splitlines() if line.endswith("}")}
        assert 8 <= len(done) < 40
        server.prompts.clear()
        subprocess.run(
            _cli(tmp_path, params("cache"), path, "resumed"),
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        asked = server.documents()
        assert sorted(asked) == sorted(set(doc_text(i) for i in range(40)) - done)  # exactly the rest, once
        subprocess.run(
            _cli(tmp_path, params("clean"), path, "clean"),
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    finally:
        server.close()
    assert (tmp_path / "resumed.parquet").read_bytes() == (tmp_path / "clean.parquet").read_bytes()
    stats = json.loads((tmp_path / "resumed.json").read_text())
    assert stats["cached"] == len(done) and stats["requests"] == 40 - len(done) and stats["generated"] == 40


# ---- stories and identity rows ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from atlas_forge.modeling.tokenizer import train_tokenizer

    texts = [doc_text(i) for i in range(50)] + [line for s in _stories() for line in s.split("\n")]
    tok = train_tokenizer(texts, vocab_size=400, min_frequency=1)
    out = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(out)
    return str(out)


def _stories() -> list[str]:
    lines = [
        f"فالنهار رقم {i} مشا يوسف للسوق ديال {CITIES[i % 10]} وشرا الخبز والأتاي ورجع للدار فرحان."
        for i in range(30)
    ]
    return ["\n".join(lines), " ".join(lines[:12]), "قصة قصيرة."]


def test_story_segments_fit_cut_at_line_breaks_and_are_deterministic(tokenizer_dir):
    from transformers import AutoTokenizer

    from atlas_forge.generate.story import USER_TURN, segment_table

    table = records.from_rows(
        [
            records.make_record("stories", f"s{i}", "story", [{"role": "user", "content": t}], "ary_Arab")
            for i, t in enumerate(_stories())
        ]
    )
    cfg = StoryConfig(segment_tokens=60, prompt_fraction=0.5, min_segment_tokens=8)
    rows, rejected, stats = segment_table(table, cfg, tokenizer_dir)
    again, _, _ = segment_table(table, cfg, tokenizer_dir)
    assert rows.equals(again)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    lines = set(_stories()[0].split("\n"))
    for msgs, meta in zip(rows["messages"].to_list(), rows["meta"].to_list(), strict=True):
        m = json.loads(meta)
        prompt = msgs[0]["content"].removeprefix(USER_TURN.format(prompt=""))
        segment = (
            prompt
            + ("\n" if m["cut"] == "line" and "\n" in prompt + msgs[1]["content"] else " ")
            + msgs[1]["content"]
        )
        assert len(tok(segment, add_special_tokens=False)["input_ids"]) <= 60
        if m["origin_ids"] == [table["id"][0]]:  # the many-line story: every piece is whole lines
            assert all(line in lines for line in (prompt + "\n" + msgs[1]["content"]).split("\n"))
    by_story = [json.loads(m)["origin_ids"][0] for m in rows["meta"].to_list()]
    assert by_story.count(table["id"][0]) >= 3 and by_story.count(table["id"][1]) >= 2  # one long line, cut
    assert rejected["reason"].to_list()[0].startswith("story: too short")
    assert stats["rows_in"] == 3 and stats["rejected"] == 1 and stats["generated"] == rows.height


def test_identity_rows_repeat_with_shared_origin(tmp_path):
    pairs = [
        records.make_record(
            "ident",
            f"p{i}",
            "chat",
            [
                {"role": "user", "content": f"شكون نتا {i}؟"},
                {"role": "assistant", "content": "أنا مساعد بالدارجة"},
            ],
            "ary_Arab",
        )
        for i in range(13)
    ]
    pairs.append(
        records.make_record("ident", "bad", "chat", [{"role": "user", "content": "غير سؤال"}], "ary_Arab")
    )
    rows, rejected, stats = repeat_table(records.from_rows(pairs), 10)
    assert rows.height == 130 and rows["id"].n_unique() == 130
    origins = [json.loads(m)["origin_ids"][0] for m in rows["meta"].to_list()]
    assert all(origins.count(o) == 10 for o in set(origins)) and len(set(origins)) == 13
    assert rejected["reason"].to_list() == ["identity: not one question and one answer (turns ['user'])"]
    assert (stats["rows_in"], stats["generated"], stats["rejected"]) == (14, 130, 1)


def test_card_sets_count_in_generated_rejected_mixed():
    card = {
        "rejects": {"generate": {"docs": {"generate: not generated": 2}}, "filter": {"docs": {}}},
        "sources": {"docs": {"train_rows": 5, "test_rows": 1}},
    }
    stats = [
        {
            "set": "generate_docs",
            "source": "docs",
            "rows_in": 10,
            "generated": 8,
            "rows_out": 7,
            "shots": {"zero": 6, "few": 1},
        }
    ]
    sets = sets_section(card, stats)
    assert sets["docs"]["rejected"] == {"generate": {"generate: not generated": 2}}
    assert sets["docs"]["mixed"] == {"train": 5, "test": 1, "total": 6}
    assert "| docs | generate_docs | 10 | 8 | 7 | generate: not generated 2 | 6 |" in sets_markdown(
        sets
    )


def test_snakemake_builds_the_generated_sets_of_the_default(tmp_path):
    """The default's generate_docs and identity sources through Snakemake (ingest + generate, no model)."""
    from .conftest import copy_project

    work = copy_project(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(work / "src"),
    }
    targets = [
        f"data/interim/generated/{s}.parquet" for s in ("sample_docs", "sample_posts", "sample_identity")
    ]
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *targets],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    stats = {
        s: json.loads((work / f"data/reports/generate/{s}.json").read_text())
        for s in ("sample_docs", "sample_posts", "sample_identity")
    }
    assert stats["sample_identity"]["generated"] == 130
    assert stats["sample_docs"]["reasons"] == {"generate: extractive answer not in the passage": 1}
    assert stats["sample_posts"]["reasons"] == {"generate: not generated": 1}
    assert not (
        work / "data/cache/generations.jsonl"
    ).exists()  # the cache backend asks nobody, writes nothing
