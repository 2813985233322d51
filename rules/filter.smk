rule filter_index:
    input:
        bench=bench_sets,
        code=code("atlas_forge.filters.decontaminate"),
    output:
        "data/interim/decontamination/index.npz",
    params:
        # only what the index depends on (its contract's view): a changed length bound must not rebuild it
        cfg=phase_params("filter-index"),
    log:
        "logs/filter/decontamination_index.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge filter-index --params {params.cfg:q} --bench {input.bench} --out {output} > {log} 2>&1"


rule filter_source:
    input:
        table=training_table,
        index="data/interim/decontamination/index.npz",
        code=code("atlas_forge.filters"),
    output:
        table="data/interim/filtered/{source}.parquet",
        rejects="data/reports/rejects/filter/{source}.parquet",
        report="data/reports/filter/{source}.json",
    params:
        cfg=phase_params("filter"),
    log:
        "logs/filter/{source}.log",
    # the chain from the base model to sft before the base model's scores: it is the build's critical path
    priority: 1
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge filter --params {params.cfg:q} --input {input.table} --bench-index {input.index} --out {output.table} --rejects {output.rejects} --report {output.report} > {log} 2>&1"


rule filter:
    input:
        expand("data/interim/filtered/{source}.parquet", source=TRAIN_SOURCES),
