"""The greedy generation engine (evaluate/engine.py): identical outputs to the padded model.generate path
(lm-eval's HF backend) at every batch size, slots refilled as rows finish, the shared prefix encoded
once, logits only at the rows' last positions. (Against lm-eval itself: test_benchmark_parity.py.)"""

from __future__ import annotations

import collections
import random

import pytest

from .test_evaluate import WORDS, make_tiny_model

NEW_TOKENS = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random Gemma 2, prompts sharing a chat-template-and-instruction prefix, and a stop token
    and a stop string chosen from its own outputs so that both fire at different steps."""
    import torch

    from atlas_forge.evaluate import engine
    from atlas_forge.evaluate.lm import encode_chat

    model, tok = make_tiny_model(tmp_path_factory.mktemp("engine_model"), seed=3)
    with torch.no_grad():  # a smaller embedding: rows switch tokens mid-way instead of repeating one
        model.get_input_embeddings().weight.mul_(0.5)
    rng = random.Random(7)
    asks = [" ".join(rng.choices(WORDS, k=rng.randint(1, 14))) for _ in range(9)]
    prompts = [encode_chat(tok, "ترجم هادشي للإنجليزية:\n" + a) for a in asks]
    eos = list(model.generation_config.eos_token_id)
    plain = engine.Engine(model, NEW_TOKENS, 4, eos, tok.pad_token_id).run(prompts)
    # the token whose first appearance is spread over the most distinct steps becomes an end token
    first = collections.defaultdict(set)
    for toks in plain:
        for j, t in enumerate(toks):
            if t not in toks[:j]:
                first[t].add(j)
    stop = max(first, key=lambda t: (len(first[t] - {0}), -t))
    model.generation_config.eos_token_id = [*eos, stop]
    assert len(first[stop] - {0}) >= 2, "the stop token must fire at different steps"
    # a stop string: a short piece of the decoded outputs, found mid-text in some rows
    texts = [tok.decode(t, skip_special_tokens=True) for t in plain]
    pieces = collections.Counter(s[i : i + 2] for s in texts for i in range(3, len(s) - 2))
    piece = next(p for p, _ in pieces.most_common() if p.isalpha())
    until = (piece, "<end_of_turn>")
    return model, tok, prompts, until


def _both(model, tok, prompts, until, bs, ref_bs=None):
    from atlas_forge.evaluate.lm import generate_engine, generate_padded

    stats: dict = {}
    got = generate_engine(model, tok, prompts, NEW_TOKENS, bs, until=until, stats=stats)
    ref = generate_padded(model, tok, prompts, NEW_TOKENS, bs if ref_bs is None else ref_bs, until=until)
    return got, ref, stats


@pytest.mark.parametrize("bs", [1, 3, 8])
def test_engine_outputs_identical_to_padded_generate(setup, bs):
    model, tok, prompts, until = setup
    got, ref, stats = _both(model, tok, prompts, until, bs)
    assert got == ref
    assert sum(bool(g) for g in got) >= len(got) // 2, "too many empty outputs to prove anything"
    # rows stopped at different steps (stop token, stop string), before the cap
    assert stats["row_steps"] + len(prompts) < len(prompts) * NEW_TOKENS


def test_engine_sliding_window_counts_row_positions(setup):
    """Prompts longer than the sliding window: every batch size gives the batch-of-one outputs."""
    from atlas_forge.evaluate.lm import generate_engine, generate_padded

    model, tok, prompts, until = setup
    window = model.config.sliding_window
    model.config.sliding_window = 12
    try:
        ref = generate_padded(model, tok, prompts, NEW_TOKENS, 1, until=until)
        outs = [generate_engine(model, tok, prompts, NEW_TOKENS, bs, until=until) for bs in (3, 8)]
    finally:
        model.config.sliding_window = window
    assert max(len(p) for p in prompts) > 12
    assert all(got == ref for got in outs)


def test_engine_refills_slots_and_encodes_prefix_once(setup, monkeypatch):
    from atlas_forge.evaluate import engine, lm

    model, tok, prompts, until = setup
    bs = 4
    rows_per_step, prefills = [], []
    step, prefill = engine.Engine._step, engine.Engine._prefill

    def count_step(self, rows):
        rows_per_step.append(len(rows))
        return step(self, rows)

    def count_prefill(self, items, *a):
        prefills.append((len(rows_per_step), len(items)))
        return prefill(self, items, *a)

    monkeypatch.setattr(engine.Engine, "_step", count_step)
    monkeypatch.setattr(engine.Engine, "_prefill", count_prefill)
    monkeypatch.setattr(lm, "ENGINE_CHUNK_BATCHES", 4)  # all 9 prompts in one engine run
    got, ref, stats = _both(model, tok, prompts, until, bs)
    assert got == ref
    n_steps = len(rows_per_step)
    # a finished row's slot is taken by the next prompt at once: every decode step before the last
    # prompt came in ran with all slots busy, and prompts came in mid-run, a few at a time
    last_in = prefills[-1][0]
    assert len(prefills) > -(-len(prompts) // bs) and all(n == bs for n in rows_per_step[:last_in])
    # less work than the padded batches, which run every row until its batch's longest row stops (a
    # stop token or the cap; the stop strings are cut afterwards)
    stops, pad, cut, order = lm.generation_setup(model, tok, prompts, NEW_TOKENS)
    alone = engine.Engine(model, NEW_TOKENS, 1, stops, pad).run([cut[i] for i in order])
    steps = [min(len(t) + 1, NEW_TOKENS) for t in alone]  # the stop token's step counts
    batches = [steps[s : s + bs] for s in range(0, len(steps), bs)]
    assert n_steps < sum(max(b) - 1 for b in batches)
    assert stats["row_steps"] < sum((max(b) - 1) * len(b) for b in batches)
    # the shared prefix ran once; each row prefilled only its own suffix
    plen = engine.shared_prefix_len(cut)
    assert plen >= 8 and stats["prefix_tokens"] == plen
    assert stats["prefilled_tokens"] == sum(len(p) - plen for p in cut)


def test_engine_logits_only_at_last_positions(setup):
    from atlas_forge.evaluate.lm import generate_engine

    model, tok, prompts, until = setup
    shapes = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        generate_engine(model, tok, prompts, NEW_TOKENS, 3, until=until)
    finally:
        hook.remove()
    assert shapes and all(s[1] == 1 and s[0] <= 3 for s in shapes), shapes


def test_until_settled_only_when_no_later_token_can_change_the_cut():
    from atlas_forge.evaluate.engine import until_settled

    assert until_settled("abc<eos>", ("<eos>",))
    assert not until_settled("abc<eo", ("<eos>",))
    # "cd" may still appear straddling the end ("xcd" cuts at "x", "xce d" at "xce "): not settled
    assert not until_settled("xc", ("cd", "d"))
    assert until_settled("xcdzd", ("cd", "d"))
    assert until_settled("xx\n", ("\n\n", "x"))  # whatever follows, the cut is at the first "x"
    assert not until_settled("", ("a",))


def test_sampling_and_unsupported_models_take_the_padded_path(setup, monkeypatch):
    from atlas_forge.evaluate import engine, lm

    model, tok, prompts, until = setup
    monkeypatch.setattr(engine.Engine, "run", lambda *a: pytest.fail("the engine ran"))
    sampling = {"seed": 5, "temperature": 0.9, "top_p": None, "top_k": None}
    a = lm.generate(model, tok, prompts[:4], 6, 2, until=until, sampling=sampling)
    assert a == lm.generate(model, tok, prompts[:4], 6, 2, until=until, sampling=sampling)
    model.generation_config.repetition_penalty = 1.3
    try:
        assert not engine.supports(model)
        lm.generate(model, tok, prompts[:2], 4, 2, until=until)
    finally:
        model.generation_config.repetition_penalty = None
    assert engine.supports(model)
