"""The generate phase's request throughput against a stand-in endpoint with fixed latency.

Run by hand (not a test):
    python bench/generate_throughput.py [--docs 1000] [--latency 0.2] [--concurrency 25]

A local OpenAI-compatible endpoint (tests/fake_openai.py) answers every request after `latency`
seconds with a right answer for the document's type. `generate_table` (openai backend, empty cache,
the phase's real client, checks, cache writes and 80/10/10 assembly) generates `docs` documents with
`concurrency` requests in flight. The reference is the ideal of a latency-bound client:
requests x latency / concurrency. Target (issue 14): wall <= 1.2 x ideal, in the same run.
A second pass over the same documents (everything cached) shows what a resume costs.

Figures go to bench/results/generate_throughput.txt and stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fake_openai, tests.test_generate's stand-in answers
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=25)
    ap.add_argument("--out", default=str(ROOT / "bench/results/generate_throughput.txt"))
    args = ap.parse_args()

    import logging

    from atlas_forge.generate import generate_table, make_backend
    from atlas_forge.generate.cache import FILENAME, GenerationCache
    from tests.test_generate import Server, cfg_for, docs

    logging.basicConfig(level=logging.WARNING)
    table = docs(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = Server(cfg_for(tmp), table, delay=args.latency)
        try:
            openai = {
                "base_url": server.url,
                "model": "stand-in",
                "concurrency": args.concurrency,
                "max_retries": 0,
                "timeout_s": 30,
            }
            cfg = cfg_for(tmp, url=server.url, openai=openai)
            t0 = time.perf_counter()
            rows, rejected, stats = generate_table(
                table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir)
            )
            wall = time.perf_counter() - t0
            t1 = time.perf_counter()
            _, _, again = generate_table(table, cfg, make_backend(cfg), GenerationCache(cfg.cache_dir))
            cached_wall = time.perf_counter() - t1
            cache_lines = len((tmp / "cache" / FILENAME).read_text(encoding="utf-8").splitlines())
        finally:
            server.close()
    requests = len(server.prompts)
    ideal = requests * args.latency / args.concurrency
    ratio = wall / ideal
    lines = [
        "generate phase throughput against a stand-in endpoint (bench/generate_throughput.py)",
        f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.system()}",
        f"documents: {args.docs}; endpoint latency: {args.latency * 1000:.0f} ms per request; "
        f"concurrency: {args.concurrency}",
        f"requests sent: {requests} (generated {stats['generated']}, rejected {rejected.height}, "
        f"rows out {rows.height}, cache lines {cache_lines})",
        f"wall: {wall:.2f} s; ideal requests x latency / concurrency: {ideal:.2f} s; "
        f"ratio {ratio:.3f} (target <= 1.2): {'PASS' if ratio <= 1.2 else 'FAIL'}",
        f"throughput: {requests / wall:.1f} requests/s (ideal {args.concurrency / args.latency:.1f})",
        f"second pass, all {again['cached']} cached: {cached_wall:.2f} s, {again['requests']} requests",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(json.dumps({"wall_s": round(wall, 3), "ideal_s": round(ideal, 3), "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
