rule ingest_source:
    input:
        data=source_files,
        code=code("atlas_forge.ingest"),
    output:
        table="data/interim/ingested/{source}.parquet",
        rejects="data/reports/rejects/ingest/{source}.parquet",
    params:
        cfg=phase_params("ingest"),
    log:
        "logs/ingest/{source}.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge ingest --params {params.cfg:q} --out {output.table} --rejects {output.rejects} > {log} 2>&1"


rule ingest:
    input:
        expand("data/interim/ingested/{source}.parquet", source=SOURCES),
