"""Data phases (ingest -> mixture) on the real corpora, and near-dedup against a plain datasketch loop.

Run by hand (not a test):   python bench/data_phases.py [--scales 1 10] [--dedup-rows N]

For each scale, a temporary copy of the project (tracked files) gets a `shared/corpora` beside it:
scale 1 is a symlink to ../shared/corpora; scale k copies every corpus file the corpora config reads
k times into one file, copy c > 0 with the suffix token " r<c>" appended to every mapped text field
(so exact dedup keeps the copies apart; near_dedup and decontamination then see near-identical rows,
which exercises them at their worst). The data phases run as a user runs them, one
`snakemake --cores 2 mixture` under /usr/bin/time: wall seconds, rows/s (rows read by ingest / wall),
the peak RSS of the largest process, and the seconds of each phase's jobs from Snakemake's log.

Near-dedup: the filter input of one source (its instruction rows, exact_dedup applied) goes through
our near_dedup.near_duplicates and through the straightforward datasketch loop (MinHash per row,
update() per shingle, MinHashLSH query then insert), same rows and params; the figures are throughput
of both, the ratio, and the agreement of the duplicate pairs found.

Targets: scale 1 < 60 s, scale 10 < 5 min, peak < 6 GB, near-dedup >= 3x the datasketch loop.
Figures go to bench/results/data_phases.json and stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
PHASES = ["ingest", "split", "instruct", "translate", "tokenizer", "generate", "filter", "mixture"]
OUT = ROOT / "bench" / "results" / "data_phases.json"


def copy_project(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("data/interim", "data/processed", "models/", "results/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _text_columns(src: dict) -> set:
    cols = src.get("columns", {})
    skip = {"label", "key", "answer", "choices", "subject"}
    return {v for k, v in cols.items() if k not in skip}


def replicate_corpora(dest: Path, factor: int, sources: list[dict]) -> None:
    """dest/corpora: every file the config reads, `factor` copies in one file, suffix-tagged text."""
    import glob

    for src in sources:
        if not src["path"].startswith("../shared/corpora/"):
            continue
        rel_glob = src["path"][len("../shared/corpora/"):]
        cols = _text_columns(src)
        for path in sorted(glob.glob(str(CORPORA / rel_glob))):
            rel = Path(path).relative_to(CORPORA)
            out = dest / "corpora" / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if src["kind"] == "jsonl":
                lines = Path(path).read_text(encoding="utf-8").splitlines()
                with open(out, "w", encoding="utf-8") as fh:
                    for c in range(factor):
                        for line in lines:
                            if not line.strip():
                                continue
                            obj = json.loads(line)
                            if c and isinstance(obj.get("messages"), list):
                                for m in obj["messages"]:
                                    if isinstance(m, dict) and isinstance(m.get("content"), str):
                                        m["content"] += f" r{c}"
                            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                continue
            sep = "\t" if src["kind"] == "tsv" else ","
            quoting = csv.QUOTE_MINIMAL if src["kind"] == "csv" else csv.QUOTE_NONE
            with open(path, encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.reader(fh, delimiter=sep, quoting=quoting))
            header = rows[0] if src.get("header", True) else None
            body = rows[1:] if header else rows
            idx = {header.index(c) for c in cols if c in header} if header else {int(c) for c in cols}
            with open(out, "w", encoding="utf-8", newline="") as fh:
                esc = "\\" if quoting == csv.QUOTE_NONE else None
                w = csv.writer(fh, delimiter=sep, quoting=quoting, escapechar=esc)
                if header:
                    w.writerow(header)
                for c in range(factor):
                    for row in body:
                        w.writerow(
                            [f"{v} r{c}" if c and i in idx and v.strip() else v for i, v in enumerate(row)]
                        )


_STAMP = r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]"


def job_seconds(log: str) -> dict[str, float]:
    """Seconds of every finished job in a Snakemake log, summed per rule family (ingest_source and
    ingest count as ingest). Jobs overlap on 2 cores, so the sum exceeds the wall time."""
    import re
    from datetime import datetime

    def when(stamp: str) -> datetime:
        return datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y")

    start, rule = {}, {}
    for m in re.finditer(_STAMP + r"\n(?:local)?rule (\w+):\n.*?jobid: (\d+)", log, re.S):
        start[m.group(3)], rule[m.group(3)] = when(m.group(1)), m.group(2)
    out: dict[str, float] = {}
    for m in re.finditer(_STAMP + r"\nFinished jobid: (\d+)", log):
        jid = m.group(2)
        phase = rule[jid].removesuffix("_source").removesuffix("_index")
        out[phase] = out.get(phase, 0.0) + (when(m.group(1)) - start[jid]).total_seconds()
    return out


def run_phases(work: Path) -> dict:
    """The data phases as a user runs them: one `snakemake --cores 2 mixture`, timed as a whole."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1"}
    cmd = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "snakemake", "mixture", "--cores", "2",
           "--configfile", "configs/corpora.yaml"]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode:
        raise RuntimeError(f"data phases failed:\n{run.stderr[-3000:]}")
    peak_kb = int(run.stderr.strip().splitlines()[-1].split()[1])
    jobs = job_seconds(run.stderr)
    import re

    ran = sorted(set(re.findall(r"^(?:local)?rule (\w+):$", run.stderr, re.M)))
    # the data never waits for the model (issue 19): the tokenizer is the data phases' only model input
    if "base_model" in ran:
        raise RuntimeError("the data phases ran a base_model job: the mixture depends on model weights")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak_kb / 1024, 1),
            "job_s": {p: jobs.get(p, 0.0) for p in PHASES}, "rules": ran}


def rows_read(work: Path) -> int:
    import polars as pl

    n = 0
    for p in (work / "data/interim/ingested").glob("*.parquet"):
        n += pl.read_parquet(p).height
        n += pl.read_parquet(work / "data/reports/rejects/ingest" / p.name).height
    return n


def bench_scale(factor: int) -> dict:
    sources = yaml.safe_load((ROOT / "configs/corpora.yaml").read_text())["ingest"]["sources"]
    with tempfile.TemporaryDirectory(prefix=f"data_phases_x{factor}_") as tmp:
        base = Path(tmp)
        shared = base / "shared"
        if factor == 1:
            shared.symlink_to(CORPORA.parent, target_is_directory=True)
        else:
            replicate_corpora(shared, factor, sources)
        work = copy_project(base / "main")
        phases = run_phases(work)
        n = rows_read(work)
        total = phases["wall_s"]
        card = json.loads((work / "data/reports/mixture_card.json").read_text())
        return {
            "scale": factor,
            "text_copies": "suffix token ' r<c>' on copy c>0" if factor > 1 else "original",
            "rows_read": n,
            "wall_s": round(total, 2),
            "rows_per_s": round(n / total, 1),
            "peak_rss_mb": phases["peak_rss_mb"],
            "job_seconds_by_phase": phases["job_s"],
            "rules_run": phases["rules"],
            "mixture_rows": {k: v["rows"] for k, v in card["splits"].items()},
        }


def datasketch_loop(ids: list[str], texts: list[str], nd) -> dict[int, str]:
    """The straightforward way: a MinHash per row, update() per shingle, LSH query then insert."""
    from datasketch import MinHash, MinHashLSH

    from atlas_forge.filters.near_dedup import shingles

    lsh = MinHashLSH(threshold=nd.threshold, num_perm=nd.num_perm)
    kept: dict[str, MinHash] = {}
    dup: dict[int, str] = {}
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        m = MinHash(num_perm=nd.num_perm, seed=nd.seed)
        for sh in shingles(texts[i], nd.ngram):
            m.update(sh.encode())
        matches = sorted(k for k in lsh.query(m) if kept[k].jaccard(m) >= nd.threshold)
        if matches:
            dup[i] = matches[0]
            continue
        if ids[i] in kept:
            dup[i] = ids[i]
            continue
        lsh.insert(ids[i], m)
        kept[ids[i]] = m
    return dup


def bench_near_dedup(source: str, max_rows: int) -> dict:

    from atlas_forge import io
    from atlas_forge.config import parse
    from atlas_forge.filters import Context, FilterConfig, exact_dedup, near_dedup

    params = yaml.safe_load((ROOT / "params.yaml").read_text())["filter"]
    cfg = parse(FilterConfig, params, "filter")
    path = ROOT / f"data/interim/instructions/{source}.parquet"
    df = io.read_table(path, "bench")
    if max_rows and df.height > max_rows:
        df = df.sort("id").head(max_rows)
    df, _ = exact_dedup.step(df, cfg, Context())
    ids, texts = df["id"].to_list(), exact_dedup.row_texts(df)
    t0 = time.perf_counter()
    ours = near_dedup.near_duplicates(ids, texts, cfg.near_dedup)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = datasketch_loop(ids, texts, cfg.near_dedup)
    t_ref = time.perf_counter() - t0
    pairs_ours = {(ids[i], k) for i, k in ours.items()}
    pairs_ref = {(ids[i], k) for i, k in ref.items()}
    agree = len(pairs_ours & pairs_ref) / len(pairs_ref) if pairs_ref else float(pairs_ours == pairs_ref)
    return {
        "source": source,
        "rows": len(ids),
        "params": params["near_dedup"],
        "ours_s": round(t_ours, 3),
        "ours_rows_per_s": round(len(ids) / t_ours, 1),
        "datasketch_loop_s": round(t_ref, 3),
        "datasketch_rows_per_s": round(len(ids) / t_ref, 1),
        "speedup": round(t_ref / t_ours, 2),
        "duplicates_ours": len(pairs_ours),
        "duplicates_datasketch": len(pairs_ref),
        "pairs_agreement": round(agree, 4),
        "pairs_identical": pairs_ours == pairs_ref,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="*", default=[1, 10])
    ap.add_argument("--dedup-source", default="doda_sentences")
    ap.add_argument("--dedup-rows", type=int, default=10000, help="0: all rows")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}
    if not (ROOT / f"data/interim/instructions/{args.dedup_source}.parquet").exists():
        print("near-dedup: build the corpora config first "
              "(snakemake instruct --configfile configs/corpora.yaml)")
    else:
        results["near_dedup"] = bench_near_dedup(args.dedup_source, args.dedup_rows)
        print(json.dumps({"near_dedup": results["near_dedup"]}, indent=2))
    for k in args.scales:
        results[f"scale_{k}"] = bench_scale(k)
        print(json.dumps({f"scale_{k}": results[f"scale_{k}"]}, indent=2))
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=2) + "\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
