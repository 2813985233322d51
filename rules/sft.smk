# Checkpoints live in models/sft/checkpoints, which is not an output: Snakemake removes the outputs
# of a failed job, and an interrupted run must keep its checkpoints to resume from them.
rule sft:
    input:
        base="models/base",
        train="data/processed/mixture/train.parquet",
        test="data/processed/mixture/test.parquet",
        code=code(
            "modeling/__init__.py", "modeling/sft.py", "modeling/chat_template.py", "modeling/render.py",
            "evaluate/loglik.py",
        ),
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
        launcher=config["sft"].get("launcher", "python"),
    log:
        "logs/sft.log",
    threads: config["sft"]["threads"]
    resources:
        mem_mb=res("sft", "mem_mb", 4000),
        runtime=res("sft", "runtime", 60),
        gpu=res("sft", "gpu", 0),
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "{params.launcher} -m atlas_forge sft --params {params.cfg:q} --base {input.base} --train {input.train} --test {input.test} "
        "--adapter {output.adapter} --merged {output.merged} --card {output.card} --checkpoints {params.checkpoints} "
        "--metrics {output.metrics} --loss {output.loss} --plot {output.plot} --threads {threads} > {log} 2>&1"
