# The generate phase: sets built from raw text (paper §5, App. C.1), then filter and mixture like the
# others. One rule for the three kinds of source (rules/common.smk: GENERATE_DOCS, STORY, IDENTITY);
# the source's role picks what the CLI builds. Threads and memory: profiles/ (set-resources).
# The generation cache (generate.cache_dir) is deliberately not an output: Snakemake deletes the outputs
# of a failed job, and the cache must survive a crash so the rerun asks only for the rest.
# Input and params functions (generate_extra_inputs, generate_params): rules/common.smk.


rule generate_source:
    input:
        table="data/interim/ingested/{source}.parquet",
        extra=generate_extra_inputs,
        code=code("atlas_forge.generate"),
    output:
        table="data/interim/generated/{source}.parquet",
        rejects="data/reports/rejects/generate/{source}.parquet",
        stats="data/reports/generate/{source}.json",
    params:
        cfg=phase_params("generate"),
        role=lambda w: SOURCES[w.source]["role"],
        tokenizer=lambda w: "--tokenizer models/tokenizer" if SOURCES[w.source]["role"] == "story" else "",
    log:
        "logs/generate/{source}.log",
    # the chain from the base model to sft before the base model's scores: it is the build's critical path
    priority: 1
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge generate --params {params.cfg:q} --role {params.role} --input {input.table} "
        "--out {output.table} --rejects {output.rejects} --stats {output.stats} {params.tokenizer} > {log} 2>&1"


rule generate:
    input:
        expand("data/interim/generated/{source}.parquet", source=GENERATED),
