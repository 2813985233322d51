# Tiny default: Gemma 2 pre-trained here, on the tokenizer phase's tokenizer, on Darija text that never
# reaches a benchmark set. A pretrained base (kind: pretrained) depends on no data (base_model_text).
rule base_model:
    input:
        text=base_model_text,
        tokenizer="models/tokenizer",
        code=code("atlas_forge.modeling.base_model"),
    output:
        directory("models/base"),
    params:
        cfg=phase_params("base_model"),
    log:
        "logs/base_model.log",
    # threads and resources (mem_mb, runtime, gpu) come from the workflow profile (profiles/)
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge base_model --params {params.cfg:q} --text {input.text} --tokenizer {input.tokenizer} --out {output} --threads {threads} > {log} 2>&1"
