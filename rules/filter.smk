rule filter_source:
    input:
        table=training_table,
        bench=bench_sets,
        code=code("filters/*.py", "textnorm.py"),
    output:
        table="data/interim/filtered/{source}.parquet",
        rejects="data/reports/rejects/filter/{source}.parquet",
        report="data/reports/filter/{source}.json",
    params:
        cfg=as_json(config["filter"]),
    log:
        "logs/filter/{source}.log",
    resources:
        mem_mb=2000,
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge filter --params {params.cfg:q} --input {input.table} --bench {input.bench} --out {output.table} --rejects {output.rejects} --report {output.report} > {log} 2>&1"


rule filter:
    input:
        expand("data/interim/filtered/{source}.parquet", source=TRAIN_SOURCES),
