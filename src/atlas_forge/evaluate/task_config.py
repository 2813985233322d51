"""A benchmark task's typed config (one entry of `evaluate.tasks`), light to import: the graph checks
every task with it when it is built (atlas_forge.phase), without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from atlas_forge import benchmarks
from atlas_forge.evaluate.bertscore import BertScoreConfig

FAMILY_NAMES = (*benchmarks.FAMILIES, "judge")


@dataclass
class TaskConfig:
    name: str
    family: str
    sources: list[str] = field(default_factory=list)
    fewshot_sources: list[str] = field(default_factory=list)  # e.g. DarijaMMLU's dev split
    num_fewshot: int = 0
    column: str | None = None  # Table 2 column of the report
    max_items: int | None = None  # the first N documents (lm-eval --limit)
    max_new_tokens: int | None = None  # None: the harness's value for the family
    directions: list[str] | None = None  # DarijaBench codes (dr_en, ar_dr, ...); None: all
    n_choices: dict[str, int] = field(default_factory=dict)  # sentiment letters per source (default 3)
    add_bos: bool = True  # lm-eval's add_bos_token=True, as used for Gemma
    chat_template: bool | None = None  # None: the family's default (lm-eval --apply_chat_template)
    fewshot_seed: int = 1234  # lm-eval's fewshot_random_seed default
    rouge_tokenizer: Literal["harness", "arabic"] = "harness"
    bertscore: BertScoreConfig | None = None
    judge: Any = None  # judge.JudgeConfig for family judge

    def validate(self, section: str) -> None:
        if self.family not in FAMILY_NAMES:
            raise ValueError(f"{section}.family: {self.family!r} is not one of {', '.join(FAMILY_NAMES)}")
        if self.num_fewshot < 0:
            raise ValueError(f"{section}.num_fewshot: must be >= 0")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"{section}.max_items: must be >= 1")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"{section}.max_new_tokens: must be >= 1")
        if not self.sources:
            raise ValueError(f"{section}.sources: name at least one source")
        if self.family == "judge":
            from atlas_forge.evaluate.judge import JudgeConfig

            if self.judge is None:
                raise ValueError(f"{section}.judge: the judge family needs a judge")
            if isinstance(self.judge, dict):
                from atlas_forge import config

                self.judge = config.parse(JudgeConfig, self.judge, f"{section}.judge")
            return
        fam = benchmarks.FAMILIES[self.family]
        if self.num_fewshot and fam.sampler is None:
            raise ValueError(f"{section}.num_fewshot: the harness's {self.family} is zero-shot only")
        if self.num_fewshot and fam.fewshot_pool == "fewshot" and not self.fewshot_sources:
            raise ValueError(
                f"{section}.fewshot_sources: {self.num_fewshot}-shot {self.family} draws its examples from "
                "separate sources (the harness: DarijaMMLU's dev split, DarijaHellaSwag's train split)"
            )
        if self.num_fewshot and self.use_chat_template:
            raise ValueError(f"{section}: few-shot prompts through the chat template are not supported")
        for src, n in self.n_choices.items():
            if n not in (2, 3):
                raise ValueError(f"{section}.n_choices.{src}: the harness has 2 or 3 sentiment letters")

    @property
    def spec(self) -> benchmarks.Family:
        return benchmarks.FAMILIES[self.family]

    @property
    def use_chat_template(self) -> bool:
        if self.family == "judge":
            return True
        return self.spec.chat_template if self.chat_template is None else bool(self.chat_template)

    @property
    def new_tokens(self) -> int:
        return self.max_new_tokens or (256 if self.family == "judge" else self.spec.max_new_tokens)
