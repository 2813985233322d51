rule report:
    input:
        results=expand("results/{model}/{task}.json", model=MODELS, task=TASKS)
        + expand("results/variants/{variant}/{task}.json", variant=VARIANTS, task=TASKS),
        # per-item samples: the paired tests against report.baseline (significance section)
        samples=expand("results/{model}/{task}.samples.jsonl", model=MODELS, task=TASKS)
        + expand("results/variants/{variant}/{task}.samples.jsonl", variant=VARIANTS, task=TASKS),
        code=code("atlas_forge.report"),
        # the paper's published figures shown beside the run's (report.paper): an edit reruns the report
        paper=lambda w: [config["report"]["paper"]] if config["report"].get("paper") else [],
    output:
        scores="results/scores.json",
        report="results/report.md",
        plot="plots/scores.png",
    params:
        cfg=phase_params("report"),
    log:
        "logs/report.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge report --params {params.cfg:q} --results {input.results} "
        "--samples {input.samples} --scores {output.scores} "
        "--report {output.report} --plot {output.plot} > {log} 2>&1"
