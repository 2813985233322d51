# Checkpoints live in models/sft/checkpoints, which is not an output: Snakemake removes the outputs
# of a failed job, and an interrupted run must keep its checkpoints to resume from them.
rule sft:
    input:
        base="models/base",
        train="data/processed/mixture/train.parquet",
        test="data/processed/mixture/test.parquet",
        code=code("atlas_forge.modeling.sft"),
    output:
        adapter=directory("models/sft/adapter"),
        merged=directory("models/sft/merged"),
        card="models/sft/README.md",
        metrics="metrics/train.json",
        loss="metrics/loss.tsv",
        plot="plots/loss.png",
    params:
        cfg=phase_params("sft"),
        checkpoints="models/sft/checkpoints",
    log:
        "logs/sft.log",
    # the chain from the base model to sft before the base model's scores: it is the build's critical path
    priority: 1
    # threads and resources (mem_mb, runtime, gpu, launcher) come from the workflow profile
    # (profiles/): neither is in the params nor in the rerun check of the shell command (Snakemake
    # compares the command before formatting), so other hardware or launcher reruns nothing
    resources:
        launcher="python",  # default when no profile sets it; FSDP: profiles/paper-gemma2-27b
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "{resources.launcher} -m atlas_forge sft --params {params.cfg:q} --base {input.base} --train {input.train} --test {input.test} "
        "--adapter {output.adapter} --merged {output.merged} --card {output.card} --checkpoints {params.checkpoints} "
        "--metrics {output.metrics} --loss {output.loss} --plot {output.plot} --threads {threads} > {log} 2>&1"
