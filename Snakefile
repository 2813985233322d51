# atlas-forge: the Atlas-Chat recipe as a build. This file is the table of contents;
# each phase lives in rules/<phase>.smk and its logic in src/atlas_forge/.
# Phase targets: snakemake --cores all <phase>   (ingest split instruct translate generate filter
#                mixture tokenizer base_model sft evaluate variants report)
# variants: the models params `variants` declares beside the main build (configs/experiments-cpu.yaml)

configfile: "params.yaml"


include: "rules/common.smk"


# Every phase's outputs are targets too (every_output): Snakemake does not rebuild a missing
# intermediate whose dependants are up to date, so a crashed job (Snakemake deletes a job's outputs
# before it runs) would otherwise leave, e.g., no model or no scores file behind an existing report
# and answer "Nothing to be done", while `dvc status` reports the stage.
rule all:
    input:
        "results/scores.json",
        "results/report.md",
        "plots/scores.png",
        every_output,


include: "rules/ingest.smk"
include: "rules/split.smk"
include: "rules/instruct.smk"
include: "rules/translate.smk"
include: "rules/generate.smk"
include: "rules/filter.smk"
include: "rules/mixture.smk"
include: "rules/tokenizer.smk"
include: "rules/base_model.smk"
include: "rules/sft.smk"
include: "rules/evaluate.smk"
include: "rules/variants.smk"
include: "rules/report.smk"
