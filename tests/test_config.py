from dataclasses import dataclass, field
from typing import Literal

import pytest

from atlas_forge.config import ConfigError, parse


@dataclass(frozen=True)
class Lora:
    r: int
    alpha: float = 16.0
    target_modules: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sft:
    lora: Lora
    optimizer: Literal["adamw_torch", "sgd"] = "adamw_torch"
    weights: dict[str, float] = field(default_factory=dict)


def test_parses_nested_and_coerces_int_to_float():
    data = {"lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj"]}, "weights": {"a": 2}}
    cfg = parse(Sft, data, "sft")
    assert cfg.lora.r == 8 and cfg.lora.alpha == 16.0 and isinstance(cfg.lora.alpha, float)
    assert cfg.weights == {"a": 2.0}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lora": {"r": "8"}}, "sft.lora.r: expected int, got str '8'"),
        ({"lora": {"r": 8, "rank": 3}}, "sft.lora.rank: unknown key"),
        ({}, "sft.lora: required key is missing"),
        ({"lora": {"r": 8}, "optimizer": "adam"}, "sft.optimizer: 'adam' is not one of"),
        ({"lora": {"r": 8, "target_modules": "q_proj"}}, "sft.lora.target_modules: expected a list"),
        ({"lora": {"r": True}}, "sft.lora.r: expected int, got bool"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        parse(Sft, data, "sft")
    assert message in str(e.value)
