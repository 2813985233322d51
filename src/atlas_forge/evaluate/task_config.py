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
class DecodingConfig:
    """How a judged column's answers are decoded. The harness's tasks decode greedily; the paper decodes
    its two judged columns with "the default sampling-based decoding" (§9): `sample: true`, and each
    of temperature, top_p, top_k left null takes the model's own generation_config value."""

    sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int = 1234

    def validate(self, section: str) -> None:
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"{section}.temperature: must be > 0 (greedy is `sample: false`)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"{section}.top_p: must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"{section}.top_k: must be >= 1")

    def sampling(self) -> dict | None:
        """lm.generate's `sampling` argument: None for greedy."""
        if not self.sample:
            return None
        return {"seed": self.seed, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}

    def describe(self) -> str | dict:
        return {"sample": True, **self.sampling()} if self.sample else "greedy"


@dataclass
class BaselineConfig:
    """The model whose answers a judged task's candidate is compared with (the paper: Jais-13B-Chat for
    DarijaAlpacaEval). Its answers are made once per task by the `answers` phase and kept as an artifact
    (results/answers/<task>.jsonl): every evaluated model is judged against the same answers."""

    model: str  # local: a Hub name or a local folder (models/base); openai: the served model's name
    # local: the model loaded here (transformers); openai: any OpenAI-compatible endpoint that serves it.
    # A model whose code lives in its Hub repository (Jais-13B-Chat) is never run here: the project
    # runs no remote code (tests/test_safety.py); serve it (vLLM supports Jais) and use openai
    backend: Literal["local", "openai"] = "local"
    revision: str | None = None  # local: a Hub commit, for an exact twin
    base_url: str = "http://localhost:8000/v1"  # openai
    api_key_env: str = "OPENAI_API_KEY"  # openai: the key's environment variable, never the key
    concurrency: int = 8  # openai
    # local: a text with {instruction}, for a tokenizer without a chat template; null: the chat template
    # (openai: the server applies the model's chat template)
    prompt_template: str | None = None
    max_new_tokens: int | None = None  # null: the task's
    add_bos: bool = True
    decoding: DecodingConfig = field(default_factory=lambda: DecodingConfig(sample=True))

    def validate(self, section: str) -> None:
        if not self.model:
            raise ValueError(f"{section}.model: empty; name the baseline model (Hub name or local folder)")
        if self.prompt_template is not None and "{instruction}" not in self.prompt_template:
            raise ValueError(f"{section}.prompt_template: must contain {{instruction}}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"{section}.max_new_tokens: must be >= 1")
        if self.concurrency < 1:
            raise ValueError(f"{section}.concurrency: must be >= 1")
        if self.backend == "openai" and self.prompt_template is not None:
            raise ValueError(f"{section}.prompt_template: local only (an endpoint applies its chat template)")


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
    # family judge: what is judged (chat: instructions and answers; summarization: DarijaBench-style
    # summarization documents, the model's summary against the reference title, Fig. 7)
    judged: Literal["chat", "summarization"] = "chat"
    # family judge: the other side of each pair: the row's reference answer, or the baseline's answer
    opponent: Literal["reference", "baseline"] = "reference"
    baseline: BaselineConfig | None = None
    decoding: DecodingConfig = field(default_factory=DecodingConfig)  # family judge only

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
        if self.family != "judge":
            for key in ("baseline", "decoding", "judged", "opponent"):
                if getattr(self, key) != getattr(TaskConfig(name="", family=""), key):
                    raise ValueError(f"{section}.{key}: only the judge family reads it "
                                     "(the harness's tasks decode greedily against their references)")
        if self.family == "judge":
            from atlas_forge.evaluate.judge import JudgeConfig

            if self.judge is None:
                raise ValueError(f"{section}.judge: the judge family needs a judge")
            if (self.opponent == "baseline") != (self.baseline is not None):
                raise ValueError(f"{section}.baseline: set it exactly when opponent is baseline "
                                 f"(opponent: {self.opponent})")
            if self.judged == "summarization" and self.opponent != "reference":
                raise ValueError(f"{section}.opponent: summaries are judged against the reference titles "
                                 "(the paper's Fig. 7)")
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
