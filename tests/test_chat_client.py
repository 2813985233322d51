"""chat_client: the one OpenAI-compatible client, its config and its concurrent fan-out, against the
local stand-in endpoint (tests/fake_openai.py); and what each caller (translate, generate, judge)
makes of the fan-out's results."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from atlas_forge.chat_client import (
    ChatClient,
    ChatError,
    MalformedResponse,
    OpenAIConfig,
    ReplayConfig,
    fan_out,
    make_client,
)
from atlas_forge.config import ConfigError, parse


def client_for(server, **kw) -> ChatClient:
    cfg = OpenAIConfig(base_url=server.url, model="m", max_retries=0, backoff_s=0.01, timeout_s=10, **kw)
    return make_client(cfg, "test")


def echo(prompt, n):
    """Answers `prompt` upper-cased; a prompt `sleep:<s>:<x>` answers x after s seconds, `status:<code>`
    fails with that status, `null` answers a null content (a malformed response)."""
    if prompt.startswith("sleep:"):
        _, s, x = prompt.split(":", 2)
        return "sleep", float(s), x.upper()
    if prompt.startswith("status:"):
        return int(prompt.split(":")[1]), {}, ""
    if prompt == "null":
        return 200, {}, None
    return 200, {}, prompt.upper()


# --- configs --------------------------------------------------------------------------------------
def test_configs_keep_their_fields_and_defaults():
    assert [(f.name, f.default) for f in dataclasses.fields(OpenAIConfig)] == [
        ("base_url", "http://localhost:8000/v1"), ("model", ""), ("concurrency", 25), ("timeout_s", 120.0),
        ("max_retries", 5), ("api_key_env", "OPENAI_API_KEY"), ("backoff_s", 1.0), ("max_backoff_s", 60.0),
        ("temperature", 0.0),
    ]
    assert [(f.name, f.default) for f in dataclasses.fields(ReplayConfig)] == [
        ("backend", "openai"), ("model", "")
    ]
    got = parse(OpenAIConfig, {"model": "x", "timeout_s": 3}, "t.openai")
    assert got == OpenAIConfig(model="x", timeout_s=3.0)
    with pytest.raises(ConfigError, match="need concurrency >= 1"):
        parse(OpenAIConfig, {"concurrency": 0}, "t.openai")


def test_make_client_takes_every_endpoint_field(monkeypatch):
    monkeypatch.setenv("SOME_KEY", "sk-x")
    cfg = OpenAIConfig(base_url="http://h:1/v1/", model="mm", concurrency=3, timeout_s=7, max_retries=2,
                       api_key_env="SOME_KEY", backoff_s=0.5, max_backoff_s=9, temperature=0.3)
    c = make_client(cfg, "who")
    got = (c.url, c.model, c.timeout_s, c.max_retries, c.backoff_s, c.max_backoff_s, c.temperature, c.name,
           c.api_key_env, c.has_key)
    assert got == ("http://h:1/v1/chat/completions", "mm", 7.0, 2, 0.5, 9.0, 0.3, "who", "SOME_KEY", True)
    # the judge's config is not an OpenAIConfig but has the same endpoint fields
    from atlas_forge.evaluate.judge import JudgeConfig

    j = make_client(JudgeConfig(backend="openai", model="j", base_url="http://x/v1", timeout_s=4,
                                api_key_env="NO_SUCH_KEY_ENV"), "judge")
    assert (j.url, j.model, j.timeout_s, j.name, j.has_key) == ("http://x/v1/chat/completions", "j", 4.0,
                                                                "judge", False)


# --- fan_out --------------------------------------------------------------------------------------
def test_fan_out_yields_as_answers_land(make_server):
    server = make_server(echo)
    prompts = ["sleep:0.6:slow", "sleep:0.3:mid", "fast"]
    got = list(fan_out(client_for(server), prompts, 3))
    assert [i for i, _, _ in got] == [2, 1, 0]  # completion order, each index once
    assert sorted(got) == [(0, "SLOW", None), (1, "MID", None), (2, "FAST", None)]


def test_fan_out_ordered_keeps_prompt_order(make_server):
    server = make_server(echo)
    prompts = ["sleep:0.4:a", "sleep:0.1:b", "c", "sleep:0.2:d"]
    got = list(fan_out(client_for(server), prompts, 4, ordered=True))
    assert got == [(0, "A", None), (1, "B", None), (2, "C", None), (3, "D", None)]


def test_fan_out_concurrency_bounds_requests_in_flight(make_server):
    lock, live, peak = threading.Lock(), [0], [0]

    def respond(prompt, n):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.1)
        with lock:
            live[0] -= 1
        return 200, {}, prompt

    server = make_server(respond)
    got = list(fan_out(client_for(server), [str(i) for i in range(8)], 2))
    assert sorted(got) == [(i, str(i), None) for i in range(8)]
    assert peak[0] == 2


def test_fan_out_reports_expected_errors_and_raises_others(make_server):
    server = make_server(echo)
    client = client_for(server)
    got = dict((i, (a, e)) for i, a, e in fan_out(client, ["ok", "status:400", "null", "status:503"], 2))
    assert got[0] == ("OK", None)
    assert got[1][0] is None and isinstance(got[1][1], ChatError) and str(got[1][1]) == "HTTP 400"
    assert got[2][0] is None and isinstance(got[2][1], MalformedResponse)
    assert str(got[2][1]) == "message content is not a string"
    assert isinstance(got[3][1], ChatError) and str(got[3][1]) == "HTTP 503 after 1 attempts"

    # parse runs on each answer; what it raises is caught when listed in `catch`, else propagates
    def parse(i, content):
        if content == "BAD":
            raise KeyError(i)
        return (i, content)

    got = sorted(fan_out(client, ["a", "bad"], 2, parse=parse, catch=(KeyError,)))
    assert got[0] == (0, (0, "A"), None) and got[1][0] == 1 and isinstance(got[1][2], KeyError)
    with pytest.raises(KeyError):
        list(fan_out(client, ["a", "bad"], 2, parse=parse))
    # with catch narrowed, a ChatError is no longer reported but raised
    with pytest.raises(ChatError, match="HTTP 400"):
        list(fan_out(client, ["status:400"], 1, catch=(MalformedResponse,)))


def test_fan_out_stopped_early_cancels_what_has_not_started(make_server):
    server = make_server(echo)
    results = fan_out(client_for(server), [f"sleep:0.2:{i}" for i in range(6)], 1)
    first = next(results)
    results.close()
    assert first == (0, "0", None)
    time.sleep(0.3)
    assert len(server.prompts) <= 2  # the first, and at most the one running when the caller stopped


def test_fan_out_of_nothing():
    client = ChatClient("http://127.0.0.1:9/v1", "m")
    assert list(fan_out(client, [], 4)) == [] and list(fan_out(client, [], 4, ordered=True)) == []


# --- the callers ----------------------------------------------------------------------------------
def test_translate_backend_maps_outcomes(make_server):
    import json

    from atlas_forge.translate.backends import OpenAIBackend

    def respond(prompt, n):
        texts = [m["content"] for m in json.loads(prompt.split("[Source Text]\n", 1)[1])]  # Fig. 3's source
        head = texts[0]
        if head == "bad status":
            return 400, {}, ""
        if head == "null":
            return 200, {}, None
        if head == "wrong count":
            return 200, {}, json.dumps(["x"])
        return 200, {}, json.dumps([f"<{t}>" for t in texts])

    server = make_server(respond)
    backend = OpenAIBackend(OpenAIConfig(base_url=server.url, model="m", concurrency=2, max_retries=0))
    groups = [["hi", "there"], ["bad status"], ["null"], ["wrong count", "y"]]
    got = {i: (outs, err) for i, outs, err in backend.translate(groups)}
    assert got == {
        0: (["<hi>", "<there>"], None),
        1: (None, "untranslated: openai failed (HTTP 400)"),
        2: (None, "malformed: message content is not a string"),
        3: (None, "malformed: answer has 1 items, expected 2"),
    }


def test_generate_backend_maps_outcomes(make_server):
    from atlas_forge.generate import Backend

    server = make_server(echo)
    backend = Backend(OpenAIConfig(base_url=server.url, model="m", concurrency=2, max_retries=0))
    got = {i: (c, e) for i, c, e in backend.run(["doc", "status:401", "null"])}
    assert got == {
        0: ("DOC", None),
        1: (None, "generate: endpoint failed (HTTP 401)"),
        2: (None, "generate: malformed response (message content is not a string)"),
    }


def test_judge_verdicts_in_prompt_order(make_server):
    from atlas_forge.evaluate.judge import JudgeConfig, OpenAIJudge

    def respond(prompt, n):
        if prompt.startswith("sleep"):
            time.sleep(0.3)
            return 200, {}, "(a)"
        return echo(prompt, n)

    server = make_server(respond)
    judge = OpenAIJudge(JudgeConfig(backend="openai", model="m", base_url=server.url, concurrency=3,
                                    max_retries=0))
    out = judge.verdicts(["sleep", "b", "status:400", "null", "maybe"])
    assert out == [
        {"raw": "(a)", "error": None, "letter": "a"},
        {"raw": "B", "error": None, "letter": "b"},
        {"raw": None, "error": "HTTP 400", "letter": None},
        {"raw": None, "error": "message content is not a string", "letter": None},
        {"raw": "MAYBE", "error": None, "letter": None},
    ]
    with pytest.raises(RuntimeError, match=r"every request failed \(HTTP 400\)"):
        judge.verdicts(["status:400", "status:400"])
