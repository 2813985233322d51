"""Variants (issue 21): declared once as parameter overrides, built side by side, and each reusing every
artifact of the main build that its overrides do not touch. Proved with Snakemake's own dry run on a
copy of the built default: the plan holds only the variant's own jobs."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import ROOT, SNAKEMAKE, copy_build, sh


def dry_run(root, variants: dict, check: bool = True):
    overlay = root / "variants.yaml"
    overlay.write_text(yaml.safe_dump({"variants": variants}), encoding="utf-8")
    return sh([*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(overlay)], root, check=check)


def jobs(out: str) -> dict[str, int]:
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if r not in ("total", "all")}


def job_inputs(out: str, rule: str) -> list[str]:
    """The input lines of every planned job of `rule`."""
    return re.findall(rf"^rule {rule}:\n\s+input: (.*)$", out, re.M)


@pytest.fixture(scope="module")
def built(default_build, tmp_path_factory):
    return copy_build(default_build, tmp_path_factory.mktemp("variants") / "repo")


def n_tasks(root) -> int:
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    return len(params["evaluate"]["tasks"]) + len(params["evaluate"].get("extra_tasks") or [])


def test_a_seed_reruns_only_sft_and_evaluate(built):
    out = dry_run(built, {"lora": {"seeds": [1, 2]}}).stdout
    assert jobs(out) == {"sft_variant": 2, "evaluate_variant": 2 * n_tasks(built), "report": 1}
    # its sft reads the main build's base model and mixture
    for line in job_inputs(out, "sft_variant"):
        assert "models/base," in line and "data/processed/mixture/train.parquet" in line, line
    # the report's seed group is the names the plan builds
    from atlas_forge.report import variant_seed_groups

    for name in variant_seed_groups({"lora": {"seeds": [1, 2]}})["lora"]:
        assert f"results/variants/{name}/" in out, name


def test_a_mixture_ablation_reruns_mixture_sft_and_evaluate(built):
    out = dry_run(built, {"no_translated": {"mixture": {"drop_roles": ["chat"]}}}).stdout
    assert jobs(out) == {"mixture_variant": 1, "sft_variant": 1, "evaluate_variant": n_tasks(built),
                         "report": 1}
    (mixture,) = job_inputs(out, "mixture_variant")
    params = yaml.safe_load((built / "params.yaml").read_text(encoding="utf-8"))
    chat = [s["id"] for s in params["ingest"]["sources"] if s["role"] == "chat"]
    native = [s["id"] for s in params["ingest"]["sources"] if s["role"] == "native"]
    assert chat and native
    assert not any(f"data/interim/filtered/{s}.parquet" in mixture for s in chat)
    assert all(f"data/interim/filtered/{s}.parquet" in mixture for s in native)
    assert "models/tokenizer," in mixture  # the main build's tokenizer: its params are untouched
    (sft,) = job_inputs(out, "sft_variant")
    assert "data/processed/variants/no_translated/mixture/train.parquet" in sft and "models/base," in sft


def test_the_worked_example_plans_only_the_variants(built):
    overlay = yaml.safe_load((ROOT / "configs" / "experiments-cpu.yaml").read_text(encoding="utf-8"))
    out = dry_run(built, overlay["variants"]).stdout
    n = len(overlay["variants"]) - 1 + len(overlay["variants"]["lora"]["seeds"])
    assert jobs(out) == {"mixture_variant": 1, "sft_variant": n, "evaluate_variant": n * n_tasks(built),
                         "report": 1}


@pytest.mark.parametrize("variants, message", [
    ({"x": {"filter": {"min_chars": 3}}},
     r"variants\.x\.filter: a variant overrides mixture, base_model, sft"),
    ({"x": {"sft": {"lora": {"rr": 3}}}}, r"variants\.x: sft\.lora\.rr: unknown key"),
    ({"x": {"sft": {"seed": 1234}}}, r"variants\.x: its overrides change nothing"),
    ({"x": {"seeds": "3"}}, r"variants\.x\.seeds: a non-empty list of integers"),
    ({"sft": {"sft": {"seed": 1}}}, r"variants\.sft: 'sft' is not a free variant name"),
])
def test_a_bad_variant_fails_the_plan_naming_the_key(built, variants, message):
    run = dry_run(built, variants, check=False)
    assert run.returncode != 0
    assert re.search(message, run.stdout + run.stderr), (run.stdout + run.stderr)[-2000:]
