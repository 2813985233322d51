rule mixture:
    input:
        tables=mixture_inputs(TRAIN_SOURCES)["tables"],
        rejects=mixture_inputs(TRAIN_SOURCES)["rejects"],
        # per-set counts of the generate phase (rows in, generated) for the card
        sets=mixture_inputs(TRAIN_SOURCES)["sets"],
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
