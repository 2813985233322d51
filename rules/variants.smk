# Variants (issue 21, rules/common.smk: VARIANTS, VARIANT_OWN): each declared variant is one more model,
# built by the main build's own rules with the variant's params, into models/variants/<name>/,
# data/processed/variants/<name>/ and results/variants/<name>/. A phase's artifact is the variant's
# own only when its params (or an input) differ; otherwise the variant reads the main build's file, so
# adding a seed reruns only sft and evaluate.


use rule tokenizer as tokenizer_variant with:
    output:
        directory("models/variants/{variant}/tokenizer"),
    params:
        cfg=variant_params("tokenizer"),
    log:
        "logs/variants/{variant}/tokenizer.log",


use rule mixture as mixture_variant with:
    input:
        tables=lambda w: mixture_inputs(variant_train_sources(w))["tables"],
        rejects=lambda w: mixture_inputs(variant_train_sources(w))["rejects"],
        sets=lambda w: mixture_inputs(variant_train_sources(w))["sets"],
        tokenizer=variant_tokenizer,
        reference=lambda w: [p for p in [VARIANTS[w.variant]["mixture"].get("subset_reference") or ""] if p],
        code=code("atlas_forge.mixture"),
    output:
        train="data/processed/variants/{variant}/mixture/train.parquet",
        test="data/processed/variants/{variant}/mixture/test.parquet",
        card_json="data/processed/variants/{variant}/mixture_card.json",
        card_md="data/processed/variants/{variant}/mixture_card.md",
        rejects="data/processed/variants/{variant}/rejects_mixture.parquet",
    params:
        cfg=variant_params("mixture"),
    log:
        "logs/variants/{variant}/mixture.log",


use rule base_model as base_model_variant with:
    input:
        text=base_model_text,
        tokenizer=variant_tokenizer,
        code=code("atlas_forge.modeling.base_model"),
    output:
        directory("models/variants/{variant}/base"),
    params:
        cfg=variant_params("base_model"),
    log:
        "logs/variants/{variant}/base_model.log",


use rule sft as sft_variant with:
    input:
        base=variant_base,
        train=variant_mixture("train"),
        test=variant_mixture("test"),
        code=code("atlas_forge.modeling.sft"),
    output:
        adapter=directory("models/variants/{variant}/sft/adapter"),
        merged=directory("models/variants/{variant}/sft/merged"),
        card="models/variants/{variant}/sft/README.md",
        metrics="models/variants/{variant}/metrics/train.json",
        loss="models/variants/{variant}/metrics/loss.tsv",
        plot="models/variants/{variant}/plots/loss.png",
    params:
        cfg=variant_params("sft"),
        checkpoints="models/variants/{variant}/sft/checkpoints",
    log:
        "logs/variants/{variant}/sft.log",


use rule evaluate_task as evaluate_variant with:
    input:
        model=lambda w: f"models/variants/{w.variant}/sft/merged",
        data=lambda w: [eval_table(s) for s in TASKS[w.task]["sources"]],
        fewshot=lambda w: [eval_table(s) for s in TASKS[w.task].get("fewshot_sources", [])],
        judge=judge_model,
        answers=baseline_answers,
        code=code("atlas_forge.evaluate"),
    output:
        scores="results/variants/{variant}/{task}.json",
        samples="results/variants/{variant}/{task}.samples.jsonl",
    params:
        cfg=phase_params("evaluate"),
        name=lambda w: w.variant,
    log:
        "logs/evaluate/variants/{variant}/{task}.log",


rule variants:
    input:
        expand("results/variants/{variant}/{task}.json", variant=VARIANTS, task=TASKS),
