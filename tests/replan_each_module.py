"""Edit each module of a built tree in turn and ask Snakemake what it would rerun (run by
tests/test_code_deps.py in a subprocess, in a copy of the default build).

Snakemake's own API in one process: the workflow is parsed and the DAG planned anew for every edit,
as `snakemake -n` does, but without starting Python and importing Snakemake 70 times (0.3 s a plan
against 4 s; the test ties the two together on one module). Prints one JSON object: module -> the
rules of the jobs Snakemake plans.
"""

import json
import os
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, Quietness, ResourceSettings


def planned(root: Path) -> list[str]:
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile",
                                workdir=root)
        updated: list[str] = []
        workflow.dag().execute_workflow(executor="dryrun", updated_files=updated)
        # the outputs of the jobs the dry run would run, back to their rules through the DAG's jobs
        # (the DAG itself is kept by the workflow; a dry run marks its jobs finished, hence the outputs)
        rule_of = {str(out): job.rule.name for job in workflow._workflow.dag.jobs for out in job.output}
        return sorted({rule_of[out] for out in updated})


def main(root: Path, modules: list[str]) -> dict[str, list[str]]:
    os.chdir(root)
    out = {"": planned(root)}  # the built tree before any edit: nothing
    for rel in modules:
        path = root / rel
        original = path.read_text(encoding="utf-8")
        # a real edit: Snakemake compares the checksums of inputs whose time changed
        path.write_text(original + "\n# an edit\n", encoding="utf-8")
        try:
            out[rel] = planned(root)
        finally:
            path.write_text(original, encoding="utf-8")
            os.utime(path, (0, 0))  # older than every output again, as before the edit
    return out


if __name__ == "__main__":
    print("@@PLANS@@" + json.dumps(main(Path(sys.argv[1]).resolve(), sys.argv[2:])))
