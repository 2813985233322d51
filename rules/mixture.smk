rule mixture:
    input:
        tables=expand("data/interim/filtered/{source}.parquet", source=TRAIN_SOURCES),
        rejects=expand("data/reports/rejects/filter/{source}.parquet", source=TRAIN_SOURCES)
        + expand("data/reports/rejects/ingest/{source}.parquet", source=SOURCES)
        + expand("data/reports/rejects/instruct/{source}.parquet", source=NATIVE)
        + expand("data/reports/rejects/translate/{source}.parquet", source=CHAT),
        code=code("mixture.py"),
    output:
        train="data/processed/mixture/train.parquet",
        test="data/processed/mixture/test.parquet",
        card_json="data/reports/mixture_card.json",
        card_md="data/reports/mixture_card.md",
    params:
        cfg=as_json(config["mixture"]),
    log:
        "logs/mixture.log",
    resources:
        mem_mb=2000,
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge mixture --params {params.cfg:q} --inputs {input.tables} --rejects {input.rejects} "
        "--train {output.train} --test {output.test} --card-json {output.card_json} --card-md {output.card_md} > {log} 2>&1"
