rule mixture:
    input:
        tables=expand("data/interim/filtered/{source}.parquet", source=TRAIN_SOURCES),
        rejects=expand("data/reports/rejects/filter/{source}.parquet", source=TRAIN_SOURCES)
        + expand("data/reports/rejects/ingest/{source}.parquet", source=SOURCES)
        + expand("data/reports/rejects/instruct/{source}.parquet", source=[s for s in NATIVE if s in TRAIN_SOURCES])
        + expand("data/reports/rejects/translate/{source}.parquet", source=[s for s in CHAT if s in TRAIN_SOURCES])
        + expand("data/reports/rejects/generate/{source}.parquet", source=[s for s in GENERATED if s in TRAIN_SOURCES]),
        # per-set counts of the generate phase (rows in, generated) for the card
        sets=expand("data/reports/generate/{source}.json", source=[s for s in GENERATED if s in TRAIN_SOURCES]),
        # the tokenizer (its own target, never the model: data does not wait for pre-training): rows
        # whose assistant tokens sft.max_length cuts entirely are rejected here, counted in the card
        tokenizer="models/tokenizer",
        reference=subset_reference,
        code=code("atlas_forge.mixture"),
    output:
        train="data/processed/mixture/train.parquet",
        test="data/processed/mixture/test.parquet",
        card_json="data/reports/mixture_card.json",
        card_md="data/reports/mixture_card.md",
        rejects="data/reports/rejects/mixture/all.parquet",
    params:
        cfg=phase_params("mixture"),
    log:
        "logs/mixture.log",
    # the chain to sft before the base model's scores: it is the build's critical path
    priority: 1
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge mixture --params {params.cfg:q} --inputs {input.tables} --rejects {input.rejects} "
        "--train {output.train} --test {output.test} --card-json {output.card_json} --card-md {output.card_md} "
        "--tokenizer {input.tokenizer} --mixture-rejects {output.rejects} --set-stats {input.sets} > {log} 2>&1"
