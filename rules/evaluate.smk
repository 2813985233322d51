# A judged task's other side when it is a baseline model (the paper: Jais-13B-Chat's answers to
# DarijaAlpacaEval): made once per task, judged against by every model of the build.
rule answers:
    input:
        model=baseline_model,
        data=lambda w: [eval_table(s) for s in TASKS[w.task]["sources"]],
        code=code("atlas_forge.evaluate.answers"),
    output:
        answers="results/answers/{task}.jsonl",
        card="results/answers/{task}.json",
    params:
        cfg=phase_params("answers"),
    log:
        "logs/answers/{task}.log",
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge answers --params {params.cfg:q} --data {input.data} --device auto "
        "--out {output.answers} --card {output.card} --threads {threads} > {log} 2>&1"


rule evaluate_task:
    input:
        model=lambda w: MODEL_DIRS[w.model],
        data=lambda w: [eval_table(s) for s in TASKS[w.task]["sources"]],
        fewshot=lambda w: [eval_table(s) for s in TASKS[w.task].get("fewshot_sources", [])],
        judge=judge_model,
        answers=baseline_answers,
        code=code("atlas_forge.evaluate"),
    output:
        scores="results/{model}/{task}.json",
        samples="results/{model}/{task}.samples.jsonl",
    params:
        cfg=phase_params("evaluate"),
        name=lambda w: w.model,
    log:
        "logs/evaluate/{model}/{task}.log",
    # threads and resources (mem_mb, runtime, gpu) come from the workflow profile (profiles/):
    # how the job runs, not what it computes; --device auto picks the GPU when the job has one
    conda:
        "../envs/atlas-forge.yaml"
    shell:
        "python -m atlas_forge evaluate --params {params.cfg:q} --model {input.model} "
        "--model-name {params.name} --data {input.data} --fewshot-data {input.fewshot} --answers {input.answers} --device auto --out {output.scores} --samples {output.samples} "
        "--threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        expand("results/{model}/{task}.json", model=MODELS, task=TASKS),
