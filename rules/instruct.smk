rule instruct_source:
    input:
        train="data/interim/split/{source}/train.parquet",
        code=code("atlas_forge.instruct"),
    output:
        table="data/interim/instructions/{source}.parquet",
        rejects="data/reports/rejects/instruct/{source}.parquet",
    params:
        cfg=phase_params("instruct"),
    log:
        "logs/instruct/{source}.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge instruct --params {params.cfg:q} --input {input.train} --out {output.table} --rejects {output.rejects} > {log} 2>&1"


rule instruct:
    input:
        expand("data/interim/instructions/{source}.parquet", source=NATIVE),
