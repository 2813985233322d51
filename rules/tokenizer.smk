# The tokenizer is its own target: data phases (mixture's truncation check, generate's story segments)
# read it, never the model, so data never waits for pre-training. Tiny default: a BPE trained on the
# same text as the base model; pretrained: the Hub id or folder's own tokenizer (pinned revision).
rule tokenizer:
    input:
        text=base_model_text,
        code=code("atlas_forge.modeling.tokenizer"),
    output:
        directory("models/tokenizer"),
    params:
        cfg=phase_params("tokenizer"),
    log:
        "logs/tokenizer.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge tokenizer --params {params.cfg:q} --text {input.text} --out {output} > {log} 2>&1"
