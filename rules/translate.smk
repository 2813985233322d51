# The translation cache (translate.cache_dir) is deliberately not an output: Snakemake deletes
# the outputs of a failed job, and a cache must survive a crash so the rerun translates only the rest.
rule translate_source:
    input:
        table="data/interim/ingested/{source}.parquet",
        seed_caches=config["translate"]["seed_caches"],
        code=code("atlas_forge.translate"),
    output:
        table="data/interim/translated/{source}.parquet",
        rejects="data/reports/rejects/translate/{source}.parquet",
    params:
        cfg=phase_params("translate"),
    log:
        "logs/translate/{source}.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge translate --params {params.cfg:q} --input {input.table} --out {output.table} --rejects {output.rejects} --threads {threads} > {log} 2>&1"


rule translate:
    input:
        expand("data/interim/translated/{source}.parquet", source=CHAT + EVAL_CHAT),
