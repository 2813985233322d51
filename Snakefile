# atlas-forge: the Atlas-Chat recipe as a build. This file is the table of contents;
# each phase lives in rules/<phase>.smk and its logic in src/atlas_forge/.
# Phase targets: snakemake --cores all <phase>   (ingest split instruct translate generate filter
#                mixture base_model sft evaluate report)

configfile: "params.yaml"


include: "rules/common.smk"


# The models and training metrics are targets too: Snakemake does not rebuild a missing intermediate
# whose dependants are up to date, so a crashed forced rerun of sft (which deletes its outputs) would
# otherwise leave no model behind existing scores and answer "Nothing to be done".
rule all:
    input:
        "results/scores.json",
        "results/report.md",
        "plots/scores.png",
        "models/base",
        "models/sft/adapter",
        "models/sft/merged",
        "models/sft/README.md",
        "metrics/train.json",
        "metrics/loss.tsv",
        "plots/loss.png",


include: "rules/ingest.smk"
include: "rules/split.smk"
include: "rules/instruct.smk"
include: "rules/translate.smk"
include: "rules/generate.smk"
include: "rules/filter.smk"
include: "rules/mixture.smk"
include: "rules/base_model.smk"
include: "rules/sft.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
