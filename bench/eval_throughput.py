"""Throughput of our evaluate phase vs lm-evaluation-harness 0.4.13's stock tasks (run by hand).

Three of the paper's benchmarks, on the Hub-schema fixtures in tests/fixtures/hub, scored both ways in
one process with the same model weights, batch size and torch threads:

- DarijaMMLU 3-shot (dev-split examples; letters, one-token continuations; acc),
- DarijaHellaSwag 0-shot (multi-token endings; acc_norm),
- DarijaBench translation on DODa, dr_en + en_dr (greedy generation through the chat template;
  max new tokens capped the same on both sides: our task's `max_new_tokens`, the lm-eval YAML's
  `generation_kwargs.max_gen_toks`).

Ours: atlas_forge.evaluate.evaluate() on the fixtures read through ingest's `kind: hf` path, with the
model and tokenizer preloaded (load_model) and no model_dir (so no weight hashing inside the timing).
lm-eval: simple_evaluate() with an already-constructed HFLM on the stock task YAMLs included by
absolute path (tests/test_benchmark_parity.py's helpers); its start-up (task index + model load) is
timed separately and left out. Each side runs `--repeats` times, interleaved; the best time counts.
The model is a random tiny Gemma 2 scaled up (default hidden 512 x 8 layers) so compute dominates.

A fourth set, "DODa translation, stops": the same 12 DODa prompts on a variant of the model that ends
its turn, so its rows stop at different lengths as a real chat model's do (the three sets above run
every generation to the cap, where continuous batching has nothing to refill and early stopping
nothing to stop). The variant: a smaller embedding (rows switch tokens instead of repeating one), and
`<end_of_turn>`'s row 1.01 x the row of "#", so the model ends its turn where it would write "#"; on
the DODa prompts that gives lengths 1..32 tokens, 3 of 12 rows running to the cap of
`--stop-max-new-tokens` (64). Generation (ours) is evaluate/engine.py for greedy decoding:
continuous batching, the shared prompt prefix encoded once, logits at the last position only.

Two vocabulary sizes, the same sets on each: the fixture tokenizer's own (526 words), and the same
model with its embedding padded to `--pad-vocab` rows (default 256,000, Gemma 2's vocabulary; the
extra rows are zero, so the small tokenizer's ids stay valid and no generated token falls in them).
With 526 words the LM head is a small part of the cost and the figures compare the transformer body;
with Gemma's 256,000 words the head and the log-softmax over the vocabulary at every position (what
lm-eval computes and we skip, evaluate/loglik.py) dominate, as on the real models, although less so
than here: Gemma-2-2B's body is about 4x its head per token, this model's about a quarter of it.
The padded rows make every token's log-probability about -log(256000) = -12.5, so an item's loglik
sums to -100..-300 where a float32 ulp is 1e-5..3e-5: its max|Δ loglik| is float noise of that size.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
        .venv/bin/python bench/eval_throughput.py --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def stock_generation_kwargs(path: str | Path) -> dict:
    """generation_kwargs of a stock lm-eval task YAML, following its includes (later ones and the file
    itself win, as lm-eval merges them); `!function` tags are not needed here and read as None."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    path = Path(path)
    cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    inc = cfg.get("include") or []
    out: dict = {}
    for sub in [inc] if isinstance(inc, str) else inc:
        out = stock_generation_kwargs(path.parent / sub) or out
    return dict(cfg.get("generation_kwargs") or out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side; the best counts")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--stop-max-new-tokens", type=int, default=64,
                    help="the cap of the set whose model ends its turn (DODa translation, stops)")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4000, help="BPE training target (the fixtures give 526)")
    ap.add_argument("--pad-vocab", type=int, default=256000,
                    help="second run with the embedding padded to this many rows (0: none)")
    ap.add_argument("--pad-vocab-repeats", type=int, default=2,
                    help="timed runs per side with the padded vocabulary (lm-eval takes minutes there)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_throughput.txt")
    args = ap.parse_args()

    import test_benchmark_parity
    import torch
    import yaml
    from test_benchmark_parity import GEN_TASKS, MC_TASKS, _check_mc, lm_eval_tasks, tables, write_yaml
    from test_evaluate import make_tiny_model

    from atlas_forge import io
    from atlas_forge.evaluate import evaluate, load_model

    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="af_bench_"))
    model_dir = tmp / "model"
    built, built_tok = make_tiny_model(model_dir, hidden=args.hidden, layers=args.layers, heads=4,
                                       intermediate=4 * args.hidden, vocab=args.vocab, lines=3000)
    # A random Gemma with tied embeddings mostly predicts its last input token (the scaled embedding
    # dominates the residual stream): after the chat template's "model\n" it writes newlines to the cap
    # and every output strips to "". Shrink the embedding (x sqrt(hidden) ~ std 0.5) so outputs are
    # non-empty, and zero the stop tokens' rows (logit 0, never the argmax) so every generation runs to
    # the cap on both sides.
    with torch.no_grad():
        emb = built.get_input_embeddings().weight
        emb.mul_(0.5 / (float(emb.std()) * args.hidden**0.5))
        for name in ("<eos>", "<end_of_turn>"):
            tid = built_tok.convert_tokens_to_ids(name)
            built.get_input_embeddings().weight[tid] = 0.0
            built.get_output_embeddings().weight[tid] = 0.0
    built.save_pretrained(model_dir)
    # the variant that ends its turn (see the docstring): where it would write "#", it writes <end_of_turn>
    stop_dir = tmp / "model_stops"
    with torch.no_grad():
        emb = built.get_input_embeddings().weight
        plain_rows = emb.detach().clone()
        emb.mul_(0.3)
        eot, hash_ = (built_tok.convert_tokens_to_ids(t) for t in ("<end_of_turn>", "#"))
        emb[eot] = 1.01 * emb[hash_]
    built.save_pretrained(stop_dir)
    built_tok.save_pretrained(stop_dir)
    model_dirs = [(model_dir, args.repeats, "plain"), (stop_dir, args.repeats, "stops")]
    if args.pad_vocab:
        n_words = built.get_input_embeddings().weight.shape[0]
        for name, kind in (("model_stops_padded", "stops"), ("model_padded", "plain")):
            if kind == "plain":
                with torch.no_grad():
                    built.get_input_embeddings().weight[:n_words] = plain_rows
            built.resize_token_embeddings(args.pad_vocab, mean_resizing=False)
            with torch.no_grad():  # tied: zero rows are never an input and never the argmax (logit 0)
                built.get_input_embeddings().weight[n_words:] = 0.0
            assert built.get_output_embeddings().weight.shape[0] == args.pad_vocab
            built.save_pretrained(tmp / name)
            built_tok.save_pretrained(tmp / name)
            built.resize_token_embeddings(n_words, mean_resizing=False)
        model_dirs += [(tmp / "model_padded", args.pad_vocab_repeats, "plain"),
                       (tmp / "model_stops_padded", args.pad_vocab_repeats, "stops")]
    del built

    # the fixtures through ingest's hf path (the parity test's `tables` fixture, called directly)
    data = tables.__wrapped__(None)
    data_dir = tmp / "tables"
    data_dir.mkdir()

    def paths(ids: list[str]) -> list[str]:
        for sid in ids:
            io.write_table(data[sid], data_dir / f"{sid}.parquet", "bench")
        return [str(data_dir / f"{sid}.parquet") for sid in ids]

    # the sets: (label, our task, lm-eval kind, shots, lm-eval specs), per model kind
    mc = {t["name"]: (t, kind, shots) for t, kind, shots in MC_TASKS}
    gen_task = next(t for t in GEN_TASKS if t["name"] == "translation")
    sets = {"plain": [], "stops": []}
    for label, name in (("DarijaMMLU 3-shot", "darijammlu_3"), ("DarijaHellaSwag 0-shot", "hellaswag")):
        task, kind, shots = mc[name]
        sets["plain"].append((label, task, kind, shots, lm_eval_tasks(kind, shots)))
    gen_specs = {n: s for n, s in lm_eval_tasks("generation", 0).items() if s["task"] == "translation"}
    sets["plain"].append(("DODa translation", {**gen_task, "max_new_tokens": args.max_new_tokens},
                          "generation", 0, gen_specs))
    sets["stops"].append(("DODa translation, stops", {**gen_task, "max_new_tokens": args.stop_max_new_tokens},
                          "generation", 0, {f"{n}_stops": s for n, s in gen_specs.items()}))

    task_dir = tmp / "tasks"
    task_dir.mkdir()
    for _, task, kind, shots, specs in sets["plain"] + sets["stops"]:
        for name, spec in specs.items():
            write_yaml(task_dir, name, spec, shots)
            if kind == "generation":  # cap new tokens as our task does: the stock kwargs + max_gen_toks
                path = task_dir / f"{name}.yaml"
                body = yaml.safe_load(path.read_text(encoding="utf-8"))
                gk = stock_generation_kwargs(spec["include"])
                body["generation_kwargs"] = {**gk, "max_gen_toks": task["max_new_tokens"]}
                path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    rows, models = [], []
    for mdir, repeats, model_kind in model_dirs:
        model, tok = load_model(mdir, device="cpu", dtype="float32", add_bos=True)
        n_params = sum(p.numel() for p in model.parameters())
        vocab = model.config.vocab_size
        t0 = time.perf_counter()
        tm = TaskManager(include_path=str(task_dir))
        lm = HFLM(pretrained=str(mdir), add_bos_token=True, dtype="float32", device="cpu",
                  batch_size=args.batch_size, attn_implementation="eager")
        startup = time.perf_counter() - t0
        torch.set_num_threads(args.threads)
        models.append(f"vocab {vocab} ({model_kind}): {n_params / 1e6:.1f}M params, best of {repeats}, "
                      "lm-eval start-up "
                      f"(task index + HFLM load) {startup:.1f} s")
        # the parity test's bound (1e-4) is float32 noise at the padded vocabulary's logliks of -100..-300
        test_benchmark_parity.TOL = 1e-4 if vocab < 1000 else 1e-3
        for label, task, kind, _, specs in sets[model_kind]:
            data_files = paths(task["sources"])
            fewshot_files = paths(task.get("fewshot_sources", []))
            t_ours, t_ref = [], []
            ours = ref = None
            for _ in range(repeats):  # interleaved, so drift in the machine's load hits both sides
                t0 = time.perf_counter()
                ours = evaluate(task, None, "bench", data_files, batch_size=args.batch_size,
                                threads=args.threads, model=model, tokenizer=tok,
                                fewshot_data=fewshot_files or None)
                t_ours.append(time.perf_counter() - t0)
                assert torch.get_num_threads() == args.threads
                t0 = time.perf_counter()
                ref = lm_eval.simple_evaluate(model=lm, tasks=list(specs), task_manager=tm,
                                              log_samples=True, bootstrap_iters=0,
                                              apply_chat_template=kind == "generation")
                t_ref.append(time.perf_counter() - t0)
                assert torch.get_num_threads() == args.threads
            result, samples = ours
            n_ours = len(samples)
            n_ref = sum(len(ref["samples"][n]) for n in specs)
            assert n_ours == n_ref, (label, n_ours, n_ref)
            row = {"set": label, "vocab": vocab, "n": n_ours, "ours": n_ours / min(t_ours),
                   "ref": n_ref / min(t_ref), "t_ours": t_ours, "t_ref": t_ref}
            if kind == "generation":
                gk = ref["configs"][next(iter(specs))]["generation_kwargs"]
                assert gk.get("max_gen_toks") == task["max_new_tokens"], gk
                assert result["settings"]["max_new_tokens"] == task["max_new_tokens"], result["settings"]
                same, ours_m, ref_m = True, [], []
                for name, spec in specs.items():
                    d = spec["direction"]
                    mine = [s["generation"] for s in samples if s["direction"] == d]
                    logged = sorted(ref["samples"][name], key=lambda s: s["doc_id"])
                    theirs = [t["filtered_resps"][0] for t in logged]
                    same &= mine == theirs
                    ours_m.append(result["scores"][f"chrf/{d}"])
                    ref_m.append(ref["results"][name]["chrf,STRIP_ANSWER"])
                row.update(metric="chrF dr_en/en_dr", m_ours="/".join(f"{v:.1f}" for v in ours_m),
                           m_ref="/".join(f"{v:.1f}" for v in ref_m),
                           check=f"outputs identical: {'yes' if same else 'NO'}",
                           note=f"non-empty outputs {sum(bool(s['generation']) for s in samples)}/{n_ours}, "
                                f"mean {sum(len(s['generation']) for s in samples) / n_ours:.0f} characters")
            else:
                try:
                    check = f"{_check_mc(result, samples, ref, specs, kind):.1e}"
                except AssertionError as e:  # prompts, logliks or acc differ: say so, keep the timings
                    check = f"PARITY FAILED {e!r}"[:60]
                if kind == "mmlu":  # the project's acc: mean over items = size-weighted mean of the subjects
                    n = {k: len(ref["samples"][k]) for k in specs}
                    m_ref = sum(ref["results"][k]["acc,none"] * n[k] for k in specs) / sum(n.values())
                    row.update(metric="acc", m_ours=f"{result['scores']['acc']:.3f}", m_ref=f"{m_ref:.3f}")
                else:
                    (name,) = specs
                    row.update(metric="acc_norm", m_ours=f"{result['scores']['acc_norm']:.3f}",
                               m_ref=f"{ref['results'][name]['acc_norm,none']:.3f}")
                row["check"] = check
            rows.append(row)

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# eval throughput, ours (atlas_forge.evaluate) vs lm-eval 0.4.13 stock tasks, {now}",
        "# Ratios (ours/lm-eval items/s) come from this one run, both sides in one process, interleaved;",
        f"# the machine is shared and noisy (load average {load_at_start[0]:.2f} at start, {os.cpu_count()} "
        "CPUs): compare ratios, not absolute items/s.",
        f"model: random Gemma 2 (hidden {args.hidden} x {args.layers} layers, tokenizer of {len(tok)} "
        f"words); fp32 CPU; batch {args.batch_size}; threads {args.threads}",
        *(f"  {m}" for m in models),
        "lm-eval start-up excluded below; lm-eval's bootstrap stderr off (bootstrap_iters=0: we compute "
        "none); both sides' times include reading the data",
        "the padded vocab = the same model, embedding padded with zero rows (Gemma 2's vocabulary: the LM "
        "head and log-softmax cost of the real models); its logliks are -100..-300, where float32 noise is "
        "~1e-4 (see the docstring): there the check allows |Δ| < 1e-3, acc and acc_norm still equal",
        "",
        f"{'set':<24}{'vocab':>7}{'items':>6}{'ours it/s':>11}{'lm-eval it/s':>14}{'ratio':>7}  "
        f"{'metric':<18}"
        f"{'ours':>11}{'lm-eval':>11}  max|Δ loglik| / generation",
    ]
    for r in rows:
        lines.append(
            f"{r['set']:<24}{r['vocab']:>7}{r['n']:>6}{r['ours']:>11.2f}{r['ref']:>14.2f}"
            f"{r['ours'] / r['ref']:>7.2f}  "
            f"{r['metric']:<18}{r['m_ours']:>11}{r['m_ref']:>11}  {r['check']}"
        )
    lines.append("")
    for r in rows:
        ours_s, ref_s = (" ".join(f"{t:.2f}" for t in r[k]) for k in ("t_ours", "t_ref"))
        secs = f"ours {ours_s}; lm-eval {ref_s}"
        note = f"; {r['note']}" if "note" in r else ""
        lines.append(f"{r['set']} (vocab {r['vocab']}): seconds per run, {secs}{note}")
    for what, keep in (("ours slower (ratio < 0.95)", lambda q: q < 0.95),
                       ("level within noise (0.95-1.05)", lambda q: 0.95 <= q <= 1.05),
                       ("ours faster (ratio > 1.05)", lambda q: q > 1.05)):
        names = [f"{r['set']} ({r['vocab']})" for r in rows if keep(r["ours"] / r["ref"])]
        lines.append(f"{what}: {', '.join(names) if names else 'none'}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
