rule split_source:
    input:
        table="data/interim/ingested/{source}.parquet",
        code=code("atlas_forge.split"),
    output:
        train="data/interim/split/{source}/train.parquet",
        bench="data/interim/split/{source}/bench.parquet",
    params:
        cfg=phase_params("split"),
    log:
        "logs/split/{source}.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge split --params {params.cfg:q} --input {input.table} --train {output.train} --bench {output.bench} > {log} 2>&1"


rule split:
    input:
        expand("data/interim/split/{source}/{part}.parquet", source=SPLIT_SOURCES, part=["train", "bench"]),
