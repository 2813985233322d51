"""Base model, tokenizer, chat template and LoRA SFT (phases `base_model` and `sft`).

Heavy libraries (torch, transformers, trl, peft) are imported inside functions only.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atlas_forge.store import files_sha256  # noqa: F401 - the modeling phases' fingerprint


@dataclass(frozen=True)
class TokenizerParams:
    """base_model.tokenizer: read by the tokenizer phase (which trains it) and base_model (its config)."""

    vocab_size: int = 2048
    min_frequency: int = 2


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield an empty temp folder beside `path`; swap it onto `path` only if the block succeeds.

    The old folder (if any) is renamed aside first, then removed, so `path` is never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_dir(tmp, path)


def swap_dir(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the finished folder `tmp` at `path`, replacing what was there (old one renamed aside first)."""
    tmp, path = Path(tmp), Path(path)
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


# the tokenizer phase's own record in its folder; not a tokenizer file (so not "tokenizer.json")
TOKENIZER_INFO = "tokenizer_info.json"


def tokenizer_files(folder: str | os.PathLike) -> list[Path]:
    """The files a model folder takes from the tokenizer folder: all but the tokenizer phase's record."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name != TOKENIZER_INFO)
