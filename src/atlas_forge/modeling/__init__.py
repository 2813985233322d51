"""Base model, tokenizer, chat template and LoRA SFT (phases `base_model` and `sft`).

Heavy libraries (torch, transformers, trl, peft) are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path


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


def files_sha256(paths: Iterable[str | os.PathLike]) -> str:
    """One digest over the files' bytes, in the given order."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\x00")
    return h.hexdigest()
