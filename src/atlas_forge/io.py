"""Readers and atomic writers. Every write goes to a temp file in the target folder, then rename,
so an interrupted job never leaves a half-written output that Snakemake or DVC would trust."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from atlas_forge import records


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(df: pl.DataFrame, path: str | os.PathLike, phase: str, rejects: bool = False) -> None:
    df = records.validate(df, str(path), phase, rejects=rejects)
    with atomic_path(path) as tmp:
        # no statistics: they embed nothing variable, but keep the file minimal and byte-stable
        df.write_parquet(tmp, compression="zstd", statistics=False)


def read_table(path: str | os.PathLike, phase: str, rejects: bool = False) -> pl.DataFrame:
    df = pl.read_parquet(path)
    return records.validate(df, str(path), phase, rejects=rejects)


def read_tables(paths: Iterable[str | os.PathLike], phase: str, rejects: bool = False) -> pl.DataFrame:
    frames = [read_table(p, phase, rejects) for p in paths]
    return pl.concat(frames) if frames else records.empty(rejects)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl(rows: Iterable[dict], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    return out


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
